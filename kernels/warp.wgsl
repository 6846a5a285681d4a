// Affine warps of image planes (Lucid's transformation robustness: pad, crop, scale,
// rotate): out[y, x] samples the input bilinearly at (sx, sy) = M (x, y, 1), taps outside
// the input reading `fill` (grid_sample's padding with a constant). The adjoint gathers,
// for each input pixel, the outputs whose samples fall within one pixel of it.

struct WarpParams {
    planes: u32,
    h: u32, w: u32, // input
    oh: u32, ow: u32, // output
    _p0: u32, _p1: u32, _p2: u32,
    m: vec4<f32>, // m00 m01 m02 m10
    n: vec4<f32>, // m11 m12 fill _
    inv: vec4<f32>, // the inverse of the linear part: i00 i01 i10 i11
}

@group(0) @binding(0) var<uniform> p: WarpParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

fn tap(base: u32, y: i32, x: i32) -> f32 {
    if (y < 0 || x < 0 || y >= i32(p.h) || x >= i32(p.w)) { return p.n.z; }
    return src[base + u32(y) * p.w + u32(x)];
}

@compute @workgroup_size(64, 1, 1)
fn warp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.oh * p.ow) { return; }
    let plane = i / (p.oh * p.ow);
    let x = f32(i % p.ow);
    let y = f32((i / p.ow) % p.oh);
    let sx = p.m.x * x + p.m.y * y + p.m.z;
    let sy = p.m.w * x + p.n.x * y + p.n.y;
    let x0 = floor(sx);
    let y0 = floor(sy);
    let fx = sx - x0;
    let fy = sy - y0;
    let base = plane * p.h * p.w;
    let xi = i32(x0);
    let yi = i32(y0);
    dst[i] = (1.0 - fy) * ((1.0 - fx) * tap(base, yi, xi) + fx * tap(base, yi, xi + 1))
        + fy * ((1.0 - fx) * tap(base, yi + 1, xi) + fx * tap(base, yi + 1, xi + 1));
}

// The adjoint: g at the input from g at the output (src: [planes, oh, ow], dst: [planes,
// h, w]); the outputs searched are the preimage of the input pixel's 2 x 2 neighbourhood.
@compute @workgroup_size(64, 1, 1)
fn warp_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.h * p.w) { return; }
    let plane = i / (p.h * p.w);
    let px = f32(i % p.w);
    let py = f32((i / p.w) % p.h);
    var lo = vec2<f32>(3.0e38, 3.0e38);
    var hi = vec2<f32>(-3.0e38, -3.0e38);
    for (var c = 0u; c < 4u; c++) {
        let sx = px + select(-1.0, 1.0, (c & 1u) != 0u) - p.m.z;
        let sy = py + select(-1.0, 1.0, (c & 2u) != 0u) - p.n.y;
        let q = vec2<f32>(p.inv.x * sx + p.inv.y * sy, p.inv.z * sx + p.inv.w * sy);
        lo = min(lo, q);
        hi = max(hi, q);
    }
    let x_lo = u32(clamp(floor(lo.x), 0.0, f32(p.ow)));
    let x_hi = u32(clamp(ceil(hi.x) + 1.0, 0.0, f32(p.ow)));
    let y_lo = u32(clamp(floor(lo.y), 0.0, f32(p.oh)));
    let y_hi = u32(clamp(ceil(hi.y) + 1.0, 0.0, f32(p.oh)));
    var acc = 0.0;
    for (var y = y_lo; y < y_hi; y++) {
        for (var x = x_lo; x < x_hi; x++) {
            let sx = p.m.x * f32(x) + p.m.y * f32(y) + p.m.z;
            let sy = p.m.w * f32(x) + p.n.x * f32(y) + p.n.y;
            let dx = abs(sx - px);
            let dy = abs(sy - py);
            if (dx < 1.0 && dy < 1.0) {
                acc += src[(plane * p.oh + y) * p.ow + x] * (1.0 - dx) * (1.0 - dy);
            }
        }
    }
    dst[i] = acc;
}
