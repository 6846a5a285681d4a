// Resampling of NCHW planes and the adjoints the backward passes of masks and
// parametrisations need: bilinear resize (F.interpolate, align_corners=False), separable
// Gaussian blur with reflect padding, and roll (translation jitter). One thread per output
// element (the forward blur: four); adjoints are gathers, so no atomics.

struct ResampleParams {
    planes: u32, // N * C
    h: u32, w: u32, // the input planes (of the forward map)
    oh: u32, ow: u32, // the output planes (of the forward map)
    radius: u32, // blur: taps each side
    axis: u32, // blur: 0 along x, 1 along y
    adjoint: u32, // 1: apply the adjoint (transpose) of the forward map
    sigma: f32,
    channels: u32, // roll: C, to find each plane's item
    replicate: u32, // blur: 1 replicates the border instead of reflecting (forward only)
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ResampleParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

// PyTorch's source coordinate for output d of an axis of n_in -> n_out (align_corners =
// False, no scale factor): i0, i1 = the two taps, l = the weight of i1.
struct Taps { i0: u32, i1: u32, l: f32 }

fn taps(d: u32, n_in: u32, n_out: u32) -> Taps {
    let scale = f32(n_in) / f32(n_out);
    let s = max(scale * (f32(d) + 0.5) - 0.5, 0.0);
    let i0 = min(u32(s), n_in - 1u);
    let i1 = select(i0, i0 + 1u, i0 < n_in - 1u);
    return Taps(i0, i1, s - f32(i0));
}

// The weight output d puts on input i along one axis.
fn weight_on(d: u32, i: u32, n_in: u32, n_out: u32) -> f32 {
    let t = taps(d, n_in, n_out);
    return select(0.0, 1.0 - t.l, t.i0 == i) + select(0.0, t.l, t.i1 == i);
}

// The outputs along an axis that can touch input i: [lo, hi].
fn reach(i: u32, n_in: u32, n_out: u32) -> vec2<u32> {
    let inv = f32(n_out) / f32(n_in);
    let lo = i32(floor((f32(i) - 0.5) * inv - 0.5)) - 1;
    let hi = i32(ceil((f32(i) + 1.5) * inv - 0.5)) + 1;
    return vec2<u32>(u32(max(lo, 0)), u32(min(hi, i32(n_out) - 1)));
}

// Forward: dst [planes, oh, ow] from src [planes, h, w]. Adjoint: dst [planes, h, w] from
// src [planes, oh, ow].
@compute @workgroup_size(64, 1, 1)
fn bilinear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (p.adjoint == 0u) {
        if (i >= p.planes * p.oh * p.ow) { return; }
        let plane = i / (p.oh * p.ow);
        let r = i - plane * p.oh * p.ow;
        let y = taps(r / p.ow, p.h, p.oh);
        let x = taps(r % p.ow, p.w, p.ow);
        let b = plane * p.h * p.w;
        let top = (1.0 - x.l) * src[b + y.i0 * p.w + x.i0] + x.l * src[b + y.i0 * p.w + x.i1];
        let bottom = (1.0 - x.l) * src[b + y.i1 * p.w + x.i0] + x.l * src[b + y.i1 * p.w + x.i1];
        dst[i] = (1.0 - y.l) * top + y.l * bottom;
        return;
    }
    if (i >= p.planes * p.h * p.w) { return; }
    let plane = i / (p.h * p.w);
    let r = i - plane * p.h * p.w;
    let iy = r / p.w;
    let ix = r % p.w;
    let ry = reach(iy, p.h, p.oh);
    let rx = reach(ix, p.w, p.ow);
    let b = plane * p.oh * p.ow;
    var acc = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        let wy = weight_on(oy, iy, p.h, p.oh);
        if (wy == 0.0) { continue; }
        var row = 0.0;
        for (var ox = rx.x; ox <= rx.y; ox++) {
            row += weight_on(ox, ix, p.w, p.ow) * src[b + oy * p.ow + ox];
        }
        acc += wy * row;
    }
    dst[i] = acc;
}

// a mod n in [0, n) for n > 0. `%` only sees non-negative operands: GLSL (wgpu's GL
// backend) leaves the remainder of a negative operand undefined.
fn wrap(a: i32, n: i32) -> i32 {
    if (a >= 0) { return a % n; }
    return n - 1 - (-1 - a) % n;
}

// Reflect padding of index j on an axis of n (period 2(n - 1); n = 1 maps to 0).
fn reflect(j: i32, n: u32) -> u32 {
    if (n == 1u) { return 0u; }
    let period = 2 * (i32(n) - 1);
    let m = wrap(j, period);
    return u32(select(period - m, m, m < i32(n)));
}

fn gauss(d: i32) -> f32 {
    return exp(-f32(d * d) / (2.0 * p.sigma * p.sigma));
}

// The adjoint of one pass of a separable Gaussian blur along p.axis (weights
// exp(-d^2 / 2 sigma^2), d = -radius..radius, normalised, reflect padding): a gather of
// the outputs each input feeds. src and dst both [planes, h, w].
@compute @workgroup_size(64, 1, 1)
fn blur_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.h * p.w) { return; }
    let plane = i / (p.h * p.w);
    let r = i - plane * p.h * p.w;
    let y = r / p.w;
    let x = r % p.w;
    let along_x = p.axis == 0u;
    let n = select(p.h, p.w, along_x);
    let pos = select(y, x, along_x);
    let stride = select(p.w, 1u, along_x);
    let base = plane * p.h * p.w + select(x, y * p.w, along_x);
    let rad = i32(p.radius);
    var norm = 0.0;
    for (var d = -rad; d <= rad; d++) { norm += gauss(d); }
    var acc = 0.0;
    if (n == 1u) {
        acc = norm * src[base];
    } else {
        // outputs o with reflect(o + d) == pos: o + d = pos or period - pos (mod period)
        let period = 2 * (i32(n) - 1);
        for (var d = -rad; d <= rad; d++) {
            for (var k = 0; k < 2; k++) {
                if (k == 1 && (pos == 0u || pos == n - 1u)) { break; } // one preimage
                let tgt = select(period - i32(pos), i32(pos), k == 0);
                let o = wrap(tgt - d, period);
                if (o < i32(n)) { acc += gauss(d) * src[base + u32(o) * stride]; }
            }
        }
    }
    dst[i] = acc / norm;
}

// Index q of an axis of n as the forward blur's border reads it: reflected (without a
// division where one reflection suffices), clamped (replicate = 1), or -1 (zeros).
fn border_tap(q: i32, n: i32) -> i32 {
    if (q >= 0 && q < n) { return q; }
    if (p.replicate == 1u) { return clamp(q, 0, n - 1); }
    if (p.replicate == 2u) { return -1; }
    if (q < 0 && q > -n) { return -q; }
    if (q >= n && q < 2 * n - 1) { return 2 * (n - 1) - q; }
    return i32(reflect(q, u32(n)));
}

// One pass of a separable Gaussian blur along p.axis (weights exp(-d^2 / 2 sigma^2),
// d = -radius..radius, normalised), reflect padding (replicate = 1: replicated border,
// 2: zeros), four outputs a thread: each tap is read once for the four, its weight
// computed once and handed on (w[k] = gauss(j - k)). Threads: along x, [planes, h,
// ceil(w / 4)]; along y, [planes, ceil(h / 4), w]. src and dst both [planes, h, w].
@compute @workgroup_size(64, 1, 1)
fn blur4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let along_x = p.axis == 0u;
    let gw = select(p.w, (p.w + 3u) / 4u, along_x);
    let gh = select((p.h + 3u) / 4u, p.h, along_x);
    if (i >= p.planes * gh * gw) { return; }
    let plane = i / (gh * gw);
    let r = i - plane * gh * gw;
    let gy = r / gw;
    let gx = r - gy * gw;
    let n = i32(select(p.h, p.w, along_x));
    let pos0 = i32(select(gy, gx, along_x)) * 4;
    let stride = select(p.w, 1u, along_x);
    let base = plane * p.h * p.w + select(gx, gy * p.w, along_x);
    let rad = i32(p.radius);
    var w = vec4<f32>(0.0);
    var acc = vec4<f32>(0.0);
    var norm = 0.0;
    for (var j = -rad; j <= rad + 3; j++) {
        var g = 0.0;
        if (j <= rad) {
            g = gauss(j);
            norm += g;
        }
        w = vec4<f32>(g, w.x, w.y, w.z);
        let q = border_tap(pos0 + j, n);
        if (q >= 0) { acc += w * src[base + u32(q) * stride]; }
    }
    acc /= norm;
    for (var k = 0; k < 4; k++) {
        if (pos0 + k < n) { dst[base + u32(pos0 + k) * stride] = acc[k]; }
    }
}

// Roll each item by its own offset (torch.roll over H and W): dst[n, c, y, x] =
// src[n, c, (y - dy_n) mod H, (x - dx_n) mod W]; the adjoint rolls back. Offsets [N, 2]
// (dy, dx) are whole numbers stored as f32.
@group(0) @binding(3) var<storage, read> offsets: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn roll(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.h * p.w) { return; }
    let plane = i / (p.h * p.w);
    let r = i - plane * p.h * p.w;
    let item = plane / p.channels;
    let sign = select(1, -1, p.adjoint == 1u);
    let dy = sign * i32(round(offsets[2u * item]));
    let dx = sign * i32(round(offsets[2u * item + 1u]));
    let sy = wrap(i32(r / p.w) - dy, i32(p.h));
    let sx = wrap(i32(r % p.w) - dx, i32(p.w));
    dst[i] = src[plane * p.h * p.w + u32(sy) * p.w + u32(sx)];
}

// Nearest resize (F.interpolate(mode="nearest")): dst [planes, oh, ow] from src
// [planes, h, w], source index min(floor(d * in / out), in - 1) in f32 as PyTorch.
@compute @workgroup_size(64, 1, 1)
fn nearest(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.oh * p.ow) { return; }
    let plane = i / (p.oh * p.ow);
    let r = i - plane * p.oh * p.ow;
    let sy = min(u32(floor(f32(r / p.ow) * (f32(p.h) / f32(p.oh)))), p.h - 1u);
    let sx = min(u32(floor(f32(r % p.ow) * (f32(p.w) / f32(p.ow)))), p.w - 1u);
    dst[i] = src[plane * p.h * p.w + sy * p.w + sx];
}

// Mirror every plane left to right (torch.flip(x, dims=(3,))); its own adjoint.
@compute @workgroup_size(64, 1, 1)
fn flip_x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.h * p.w) { return; }
    let row = i / p.w;
    let x = i - row * p.w;
    dst[i] = src[row * p.w + p.w - 1u - x];
}
