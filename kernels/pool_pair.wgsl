// A prelude of the kernels that max-pool 2 x 2 windows at stride 2, two neighbouring
// windows a thread, over rows of a multiple of 4 (pool_pairs.wgsl, copies_pool.wgsl). The
// kernel declares the uniform `p` with planes, h, w (the input's), oh and ow (the
// output's) and includes fdiv.wgsl.

// A window's maximum so far and its flat index in the input plane.
struct Best { v: f32, i: u32 }

// b, or (v, i) where v is larger or a NaN (max_pool2d_forward's rule; a NaN found from its
// bits: drivers that compile floats with fast-math rules fold `v != v` to false).
fn step(b: Best, v: f32, i: u32) -> Best {
    let take = v > b.v || (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
    return Best(select(b.v, v, take), select(b.i, i, take));
}

// Pair k over all planes: x k, y the vec4 index of its windows' top input row, z the flat
// index in the input plane of that row's first element (y = z = 2^32 - 1 past the last
// pair). (fdiv.wgsl's division: launchers keep the pair count below 2^24.)
fn pair_of(k: u32) -> vec3<u32> {
    let half = p.ow / 2u;
    if (k >= p.planes * p.oh * half) { return vec3<u32>(k, 0xffffffffu, 0xffffffffu); }
    let r = fdiv(k, half); // output row over all planes
    let j = k - r * half;
    let plane = fdiv(r, p.oh);
    let y0 = 2u * (r - plane * p.oh);
    return vec3<u32>(k, (plane * p.h + y0) * p.w / 4u + j, y0 * p.w + 4u * j);
}

// The two windows' maxima over the pair's rows a (top) and b, in max_pool2d_forward's
// order; f the top row's first flat index.
fn pair_max(a: vec4<f32>, b: vec4<f32>, f: u32) -> array<Best, 2> {
    var l = Best(a.x, f);
    l = step(l, a.y, f + 1u);
    l = step(l, b.x, f + p.w);
    l = step(l, b.y, f + p.w + 1u);
    var h = Best(a.z, f + 2u);
    h = step(h, a.w, f + 3u);
    h = step(h, b.z, f + p.w + 2u);
    h = step(h, b.w, f + p.w + 3u);
    return array(l, h);
}
