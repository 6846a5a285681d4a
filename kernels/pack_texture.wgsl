// Packs channels [start, start + count) of an NCHW tensor [n, c, plane] into an
// rgba32float texture, four channels a texel, zero past `count`: texel
// g = (b * c4n + c4) * plane + q at (g mod 2^shift, g >> shift), or with two ratios in one
// texture (b * gtotal + goff + c4) * plane + q. The cpu-tex GEMMs read
// their input from it (conv2d_cpu_texture.wgsl). One thread per texel.
// pack_ratio_texture packs an LRP ratio R / s(c0 za + c1 zb) of four tensors of that shape
// instead (lrp_ratio.wgsl; mode, eps, c0 and c1 as there), so that it is never stored;
// pack_pool_grad_texture4 the gradient a 2 x 2 max-pool and the ReLU before it pass back.

struct PackParams {
    n: u32, c: u32, plane: u32, start: u32,
    count: u32, c4n: u32, shift: u32, texels: u32,
    mode: u32, eps: f32, c0: f32, c1: f32,
    width: u32, // pack_pool_grad_texture4's rows
    // the texture's groups an item and the first of this launch's (two ratios packed
    // into one texture; c4n and 0 otherwise)
    gtotal: u32, goff: u32, pad0: u32,
}

@group(0) @binding(0) var<uniform> p: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;
// pack_ratio_texture: R, za, z0, zb and the texture
@group(0) @binding(2) var<storage, read> za: array<f32>;
@group(0) @binding(3) var<storage, read> z0: array<f32>;
@group(0) @binding(4) var<storage, read> zb: array<f32>;
@group(0) @binding(5) var ratio_dst: texture_storage_2d<rgba32float, write>;

struct Texel {
    b: u32, c4: u32, q: u32, at: vec2<u32>,
}

fn texel(g: u32) -> Texel {
    let bc = g / p.plane;
    let b = bc / p.c4n;
    let c4 = bc % p.c4n;
    let q = g % p.plane;
    let out = (b * p.gtotal + p.goff + c4) * p.plane + q;
    return Texel(b, c4, q, vec2<u32>(out & ((1u << p.shift) - 1u), out >> p.shift));
}

@compute @workgroup_size(64, 1, 1)
fn pack_texture(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = gid.x + gid.z * nwg.x * 64u;
    if (g >= p.texels) { return; }
    let t = texel(g);
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * t.c4 + j;
        if (c < p.count) { v[j] = src[(t.b * p.c + p.start + c) * p.plane + t.q]; }
    }
    textureStore(dst, t.at, v);
}

// pack_texture4 and pack_ratio_texture4, for planes of a multiple of 4 pixels, dispatched
// [quads / 64, c4n, n]: one thread per 4 pixels of one texel row (4 channels), with a vec4
// load of each channel's 4 pixels and no index division (the flat kernels divide three
// times a texel, and a CPU driver has no vector integer division).
@group(0) @binding(1) var<storage, read> src4: array<vec4<f32>>;

// Thread gid's 4 pixels: from q in the plane, texel row c4 (channels 4 c4 .. 4 c4 + 3) of
// item b.
struct Quad { q: u32, c4: u32, b: u32 }

fn quad_at(gid: vec3<u32>) -> Quad {
    return Quad(4u * gid.x, gid.y, gid.z);
}

// The vec4 index in the source tensors of the quad's 4 pixels of channel c (of those
// packed: c < count).
fn quad_source(t: Quad, c: u32) -> u32 {
    return ((t.b * p.c + p.start + c) * p.plane + t.q) >> 2u;
}

// The quad's first texel.
fn quad_texel(t: Quad) -> u32 {
    return (t.b * p.gtotal + p.goff + t.c4) * p.plane + t.q;
}

@compute @workgroup_size(64, 1, 1)
fn pack_texture4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = quad_at(gid);
    if (t.q >= p.plane) { return; }
    var x: array<vec4<f32>, 4>;
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * t.c4 + j;
        x[j] = vec4<f32>(0.0);
        if (c < p.count) { x[j] = src4[quad_source(t, c)]; }
    }
    let g = quad_texel(t);
    for (var k = 0u; k < 4u; k++) {
        textureStore(dst, texel_at(g + k), pixel_of(x, k));
    }
}

// The texture coordinates of texel g.
fn texel_at(g: u32) -> vec2<u32> {
    return vec2<u32>(g & ((1u << p.shift) - 1u), g >> p.shift);
}

// Pixel k's texel of four channels' vec4s of 4 pixels.
fn pixel_of(x: array<vec4<f32>, 4>, k: u32) -> vec4<f32> {
    return vec4<f32>(x[0][k], x[1][k], x[2][k], x[3][k]);
}

// pack_ratio_texture4: pack_texture4 of the ratio, four elements at a time.
@group(0) @binding(2) var<storage, read> za4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> z04: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> zb4: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn pack_ratio_texture4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = quad_at(gid);
    if (t.q >= p.plane) { return; }
    var x: array<vec4<f32>, 4>;
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * t.c4 + j;
        x[j] = vec4<f32>(0.0);
        if (c < p.count) {
            let i = quad_source(t, c);
            var keep = vec4<bool>(true);
            if (p.mode == 1u) { keep = z04[i] > vec4<f32>(0.0); }
            if (p.mode == 2u) { keep = z04[i] < vec4<f32>(0.0); }
            var z = p.c0 * za4[i];
            if (p.c1 != 0.0) { z += p.c1 * zb4[i]; }
            x[j] = select(vec4<f32>(0.0), src4[i] / stabilize4(z, p.eps), keep);
        }
    }
    let g = quad_texel(t);
    for (var k = 0u; k < 4u; k++) {
        textureStore(ratio_dst, texel_at(g + k), pixel_of(x, k));
    }
}

@compute @workgroup_size(64, 1, 1)
fn pack_ratio_texture(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = gid.x + gid.z * nwg.x * 64u;
    if (g >= p.texels) { return; }
    let t = texel(g);
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * t.c4 + j;
        if (c < p.count) {
            let i = (t.b * p.c + p.start + c) * p.plane + t.q;
            var keep = true;
            if (p.mode == 1u) { keep = z0[i] > 0.0; }
            if (p.mode == 2u) { keep = z0[i] < 0.0; }
            var z = p.c0 * za[i];
            if (p.c1 != 0.0) { z += p.c1 * zb[i]; }
            v[j] = select(0.0, src[i] / stabilize(z, p.eps), keep);
        }
    }
    textureStore(ratio_dst, t.at, v);
}

// pack_pool_grad_texture4: pack_texture4 of the gradient at the input of a ReLU that a
// 2 x 2, stride 2 max-pool alone reads, whose windows tile it (a conv's output gradient in
// a walk), made from the pool's tensors as max_pool2d_relu_backward_pairs makes it and
// never stored: dy at the pool's output, its argmax (flat indices in the plane) and its
// output (the ReLU's output at each argmax); mode: the ReLU rule (0 gradient, 1 guided
// backprop, 2 deconvnet). Rows of `width` pixels, a multiple of 4, so that a thread's 4
// pixels are two windows side by side, a vec2 of each pool tensor.
@group(0) @binding(1) var<storage, read> pool_dy: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> pool_arg: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> pool_out: array<vec2<f32>>;
@group(0) @binding(4) var pool_dst: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(64, 1, 1)
fn pack_pool_grad_texture4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = quad_at(gid);
    if (t.q >= p.plane) { return; }
    let y = t.q / p.width;
    let x = t.q - y * p.width;
    let pw = p.width / 2u;
    var v: array<vec4<f32>, 4>;
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * t.c4 + j;
        v[j] = vec4<f32>(0.0);
        if (c < p.count) {
            // the pair of windows over pixels x .. x + 3 (x / 2 even: one vec2)
            let i = ((t.b * p.c + p.start + c) * (p.plane / 4u) + (y / 2u) * pw + x / 2u) >> 1u;
            var g = pool_dy[i];
            if (p.mode != 0u) { g = max(g, vec2<f32>(0.0)); }
            if (p.mode != 2u) { g = select(g, vec2<f32>(0.0), pool_out[i] <= vec2<f32>(0.0)); }
            let a = pool_arg[i];
            let f = t.q;
            let z = 0.0;
            v[j] = vec4<f32>(select(z, g.x, a.x == f), select(z, g.x, a.x == f + 1u), select(z, g.y, a.y == f + 2u), select(z, g.y, a.y == f + 3u));
        }
    }
    let g0 = quad_texel(t);
    for (var k = 0u; k < 4u; k++) {
        textureStore(pool_dst, texel_at(g0 + k), pixel_of(v, k));
    }
}
