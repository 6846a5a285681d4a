// Lucid's Fourier-space image parametrisation (and its adjoints for the backward pass):
// a half spectrum P [N, C, h, W2, 2] (W2 = w / 2 + 1; real, imaginary), scaled per
// frequency, inverse-transformed as torch.fft.irfftn(s=(h, w), norm="ortho") and divided
// by 4 (Lucid's constant), done as two separable passes: columns (complex, along y) then
// rows (Hermitian, along x). Then decorrelated colour and a sigmoid give pixels in [0, 1].

struct FourierParams {
    planes: u32, // N * C
    h: u32,
    w: u32,
    w2: u32, // w / 2 + 1
    a: f32, // rows: 1 / (4 sqrt(h w))
    _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: FourierParams;

const TAU: f32 = 6.283185307179586;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

// The angle 2 pi (a b mod n) / n, kept small for accuracy.
fn angle(a: u32, b: u32, n: u32) -> f32 {
    return TAU * f32((a * b) % n) / f32(n);
}

@group(0) @binding(1) var<storage, read> cols_in: array<f32>;
@group(0) @binding(2) var<storage, read> cols_scale: array<f32>; // [h, W2]
@group(0) @binding(3) var<storage, read_write> cols_out: array<f32>;

// T[y, k] = sum over ky of scale[ky, k] P[ky, k] e^{+i theta}, theta = 2 pi ky y / h.
@compute @workgroup_size(64, 1, 1)
fn fft_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.h * p.w2) { return; }
    let plane = i / (p.h * p.w2);
    let y = (i / p.w2) % p.h;
    let k = i % p.w2;
    var tr = 0.0;
    var ti = 0.0;
    for (var ky = 0u; ky < p.h; ky++) {
        let s = cols_scale[ky * p.w2 + k];
        let at = 2u * ((plane * p.h + ky) * p.w2 + k);
        let sr = s * cols_in[at];
        let si = s * cols_in[at + 1u];
        let t = angle(ky, y, p.h);
        let c = cos(t);
        let sn = sin(t);
        tr += sr * c - si * sn;
        ti += sr * sn + si * c;
    }
    cols_out[2u * i] = tr;
    cols_out[2u * i + 1u] = ti;
}

// The adjoint: gP[ky, k] = scale (sum over y of (gTr cos + gTi sin), (-gTr sin + gTi cos)).
@compute @workgroup_size(64, 1, 1)
fn fft_cols_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.h * p.w2) { return; }
    let plane = i / (p.h * p.w2);
    let ky = (i / p.w2) % p.h;
    let k = i % p.w2;
    var gr = 0.0;
    var gi = 0.0;
    for (var y = 0u; y < p.h; y++) {
        let at = 2u * ((plane * p.h + y) * p.w2 + k);
        let tr = cols_in[at];
        let ti = cols_in[at + 1u];
        let t = angle(ky, y, p.h);
        let c = cos(t);
        let sn = sin(t);
        gr += tr * c + ti * sn;
        gi += -tr * sn + ti * c;
    }
    let s = cols_scale[ky * p.w2 + k];
    cols_out[2u * i] = s * gr;
    cols_out[2u * i + 1u] = s * gi;
}

@group(0) @binding(1) var<storage, read> rows_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> rows_out: array<f32>;

// The Hermitian weight of frequency k: 1 for k = 0 and (even w) k = w / 2, else 2.
fn weight(k: u32) -> f32 {
    return select(2.0, 1.0, k == 0u || 2u * k == p.w);
}

// x[y, j] = a sum over k of c_k (Tr cos phi - Ti sin phi), phi = 2 pi k j / w.
@compute @workgroup_size(64, 1, 1)
fn fft_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.h * p.w) { return; }
    let row = i / p.w;
    let j = i % p.w;
    var acc = 0.0;
    for (var k = 0u; k < p.w2; k++) {
        let at = 2u * (row * p.w2 + k);
        let t = angle(k, j, p.w);
        acc += weight(k) * (rows_in[at] * cos(t) - rows_in[at + 1u] * sin(t));
    }
    rows_out[i] = p.a * acc;
}

// The adjoint: gT[y, k] = a c_k (sum over j of g cos phi, - sum over j of g sin phi).
@compute @workgroup_size(64, 1, 1)
fn fft_rows_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.planes * p.h * p.w2) { return; }
    let row = i / p.w2;
    let k = i % p.w2;
    var gr = 0.0;
    var gi = 0.0;
    for (var j = 0u; j < p.w; j++) {
        let g = rows_in[row * p.w + j];
        let t = angle(k, j, p.w);
        gr += g * cos(t);
        gi -= g * sin(t);
    }
    let f = p.a * weight(k);
    rows_out[2u * i] = f * gr;
    rows_out[2u * i + 1u] = f * gi;
}

// Pixels of v [N, 3, h, w]: sigmoid(M v) per pixel, M the colour matrix (row-major 3x3).
@group(0) @binding(1) var<storage, read> color_v: array<f32>;
@group(0) @binding(2) var<storage, read> color_m: array<f32>;
@group(0) @binding(3) var<storage, read_write> color_out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn color_sigmoid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let plane = p.h * p.w;
    if (i >= p.planes * plane) { return; } // planes = N here
    let base = (i / plane) * 3u * plane + i % plane;
    for (var c = 0u; c < 3u; c++) {
        var z = 0.0;
        for (var k = 0u; k < 3u; k++) { z += color_m[3u * c + k] * color_v[base + k * plane]; }
        let e = exp(-abs(z));
        color_out[base + c * plane] = select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
    }
}

// The adjoint, from the gradient g at the pixels and the pixels themselves (binding 1:
// g, binding 3 is written): gv_k = sum over c of M[c, k] g_c pix_c (1 - pix_c).
@group(0) @binding(4) var<storage, read> color_pix: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn color_sigmoid_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let plane = p.h * p.w;
    if (i >= p.planes * plane) { return; }
    let base = (i / plane) * 3u * plane + i % plane;
    var gz: array<f32, 3>;
    for (var c = 0u; c < 3u; c++) {
        let s = color_pix[base + c * plane];
        gz[c] = color_v[base + c * plane] * s * (1.0 - s);
    }
    for (var k = 0u; k < 3u; k++) {
        var acc = 0.0;
        for (var c = 0u; c < 3u; c++) { acc += color_m[3u * c + k] * gz[c]; }
        color_out[base + k * plane] = acc;
    }
}
