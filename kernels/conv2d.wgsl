// conv2d forward and input-gradient as implicit GEMMs, batched, sharing one tiled loop.
// forward:        y[m, co] = sum_k A[m, k] W[co, k] (+ bias), m = (b, oy, ox), k = (ci, ky, kx)
// backward_input: dx[m, ci] = sum_k dY[m, k] W[co, ci, ky, kx], m = (b, iy, ix), k = (co, ky, kx)
// Operands are read straight from NCHW tensors (im2col on the fly); padding reads 0.
// A launch covers output channels [co_offset, co_offset + co_count): the weight and bias
// bindings hold only that chunk, so weights over the binding limit are split; backward
// launches after the first accumulate into dx (flags bit 2).

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32, // bit0 ReLU, bit1 bias, bit2 accumulate
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(1) var<storage, read> input: array<f32>; // x, or dY for backward
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>; // y, or dx for backward

const BM: u32 = 64u; // output pixels per tile
const BN: u32 = 64u; // output channels per tile
const BK: u32 = 16u; // reduction slice
const TM: u32 = 4u;
const TN: u32 = 4u;

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM]
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]

const FORWARD: u32 = 0u;
const BACKWARD_INPUT: u32 = 1u;

// A[m, k]: an input pixel (forward) or an output-gradient pixel (backward).
fn load_a(mode: u32, m: u32, k: u32, m_total: u32, k_total: u32) -> f32 {
    if (m >= m_total || k >= k_total) { return 0.0; }
    let khw = p.kh * p.kw;
    let r = k % khw;
    let ky = r / p.kw;
    let kx = r % p.kw;
    if (mode == FORWARD) {
        let ci = k / khw;
        let plane = p.oh * p.ow;
        let b = m / plane;
        let q = m % plane;
        let iy = i32((q / p.ow) * p.stride_h + ky) - i32(p.pad_h);
        let ix = i32((q % p.ow) * p.stride_w + kx) - i32(p.pad_w);
        if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) { return 0.0; }
        return input[((b * p.cin + ci) * p.h + u32(iy)) * p.w + u32(ix)];
    }
    let co = k / khw;
    let plane = p.h * p.w;
    let b = m / plane;
    let q = m % plane;
    let ty = i32(q / p.w) + i32(p.pad_h) - i32(ky);
    let tx = i32(q % p.w) + i32(p.pad_w) - i32(kx);
    if (ty < 0 || tx < 0) { return 0.0; }
    let oy = u32(ty) / p.stride_h;
    let ox = u32(tx) / p.stride_w;
    if (u32(ty) % p.stride_h != 0u || u32(tx) % p.stride_w != 0u || oy >= p.oh || ox >= p.ow) { return 0.0; }
    return input[((b * p.cout + p.co_offset + co) * p.oh + oy) * p.ow + ox];
}

// B[k, n]: W[co, k] (forward, n = co) or W[co, ci, ky, kx] (backward, n = ci).
fn load_b(mode: u32, k: u32, n: u32, k_total: u32, n_total: u32) -> f32 {
    if (k >= k_total || n >= n_total) { return 0.0; }
    if (mode == FORWARD) { return weight[n * k_total + k]; }
    let khw = p.kh * p.kw;
    return weight[((k / khw) * p.cin + n) * khw + k % khw];
}

fn store(mode: u32, m: u32, n: u32, acc: f32) {
    if (mode == FORWARD) {
        let plane = p.oh * p.ow;
        var v = acc;
        if ((p.flags & 2u) != 0u) { v += bias[n]; }
        if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
        output[((m / plane) * p.cout + p.co_offset + n) * plane + m % plane] = v;
        return;
    }
    let plane = p.h * p.w;
    let i = ((m / plane) * p.cin + n) * plane + m % plane;
    if ((p.flags & 4u) != 0u) { output[i] += acc; } else { output[i] = acc; }
}

// One 64x64 output tile per workgroup, 4x4 per thread, K in slices of 16.
fn gemm(mode: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, lxy: vec3<u32>) {
    var m_total = p.n * p.oh * p.ow;
    var n_total = p.co_count;
    var k_total = p.cin * p.kh * p.kw;
    if (mode == BACKWARD_INPUT) {
        m_total = p.n * p.h * p.w;
        n_total = p.cin;
        k_total = p.co_count * p.kh * p.kw;
    }
    let m0 = (wid.x + wid.z * nwg.x) * BM;
    let n0 = wid.y * BN;
    if (m0 >= m_total) { return; } // uniform per workgroup
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
    let tx = lxy.x; // n direction
    let ty = lxy.y; // m direction
    for (var k0 = 0u; k0 < k_total; k0 += BK) {
        for (var j = 0u; j < 4u; j++) {
            let e = lid + j * 256u; // 0..1023 = [kk][mm or nn], BM == BN
            let kk = e / BM;
            let col = e % BM;
            tile_a[e] = load_a(mode, m0 + col, k0 + kk, m_total, k_total);
            tile_b[e] = load_b(mode, k0 + kk, n0 + col, k_total, n_total);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < TM; i++) { a[i] = tile_a[kk * BM + ty * TM + i]; }
            for (var j = 0u; j < TN; j++) { bv[j] = tile_b[kk * BN + tx * TN + j]; }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) { acc[i * TN + j] = fma(a[i], bv[j], acc[i * TN + j]); }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i++) {
        let m = m0 + ty * TM + i;
        if (m >= m_total) { continue; }
        for (var j = 0u; j < TN; j++) {
            let n = n0 + tx * TN + j;
            if (n >= n_total) { continue; }
            store(mode, m, n, acc[i * TN + j]);
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) lxy: vec3<u32>,
) {
    gemm(FORWARD, wid, nwg, lid, lxy);
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) lxy: vec3<u32>,
) {
    gemm(BACKWARD_INPUT, wid, nwg, lid, lxy);
}
