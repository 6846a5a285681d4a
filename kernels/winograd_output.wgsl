// y = A^T m A for every tile's 16 GEMM sums m ([16][n][cc][tiles]), with the bias, ReLU,
// accumulation and scale flags as conv2d.wgsl's `store` applies them, into channels c0 ..
// c0 + cc of y ([items][c][h][w]).

@group(0) @binding(1) var<storage, read> m: array<f32>;
// bias (bit1: one a transformed channel) or, with bit6, the tensor that multiplies y
// (y's shape)
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// A^T applied along a row: (m0 + m1 + m2, m1 - m2 - m3).
fn at(r: vec4<f32>) -> vec2<f32> {
    return vec2<f32>(r.x + r.y + r.z, r.y - r.z - r.w);
}

fn put(o: u32, sum: f32, b: f32) {
    var v = sum;
    if ((u.flags & 2u) != 0u) { v += b; }
    if ((u.flags & 1u) != 0u) { v = max(v, 0.0); }
    if ((u.flags & 64u) != 0u) { v *= bias[o]; }
    if ((u.flags & 4u) != 0u) { y[o] += v; } else { y[o] = v; }
}

@compute @workgroup_size(64, 1, 1)
fn winograd_output(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = thread_index(gid, nwg);
    if (i >= u.n * u.cc * u.th * u.tw) { return; }
    let s = slot(i);
    var r: array<vec4<f32>, 4>;
    for (var a = 0u; a < 4u; a++) {
        r[a] = vec4<f32>(m[point_index(4u * a, s)], m[point_index(4u * a + 1u, s)], m[point_index(4u * a + 2u, s)], m[point_index(4u * a + 3u, s)]);
    }
    // A^T down the columns, then along the rows
    let top = at(r[0] + r[1] + r[2]);
    let bottom = at(r[1] - r[2] - r[3]);
    var b = 0.0;
    if ((u.flags & 2u) != 0u) { b = bias[s.ch]; }
    let base = ((u.item0 + s.b) * u.c + u.c0 + s.ch) * u.h * u.w;
    let oy = 2u * s.ty;
    let ox = 2u * s.tx;
    let right = ox + 1u < u.w;
    put(base + oy * u.w + ox, top.x, b);
    if (right) { put(base + oy * u.w + ox + 1u, top.y, b); }
    if (oy + 1u < u.h) {
        put(base + (oy + 1u) * u.w + ox, bottom.x, b);
        if (right) { put(base + (oy + 1u) * u.w + ox + 1u, bottom.y, b); }
    }
}
