// conv2d forward and input-gradient as implicit GEMMs, batched, sharing one tiled loop.
// forward:        y[m, co] = sum_k A[m, k] W[co, k] (+ bias), m = (b, oy, ox), k = (ci, ky, kx)
// backward_input: dx[m, ci] = sum_k dY[m, k] W[co, ci, ky, kx], m = (b, iy, ix), k = (co, ky, kx)
// Operands are read straight from NCHW tensors (im2col on the fly); padding reads 0.
// A launch covers output channels [co_offset, co_offset + co_count): the weight and bias
// bindings hold only that chunk, so weights over the binding limit are split; backward
// launches after the first accumulate into dx (flags bit 2; forward honours it too, for
// sums of convolutions such as LRP's W+ a+ + W- a-).

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32, // bit0 ReLU, bit1 bias, bit2 accumulate
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(1) var<storage, read> input: array<f32>; // x, or dY for backward
// Weights are f32 words, or with HALF (a pipeline constant) f16 pairs packed in u32s
// (--weights f16): half the memory, f32 arithmetic.
override HALF: bool = false;
@group(0) @binding(2) var<storage, read> weight: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>; // y, or dx for backward

// Weight i of this launch's chunk, as f32.
fn wload(i: u32) -> f32 {
    if (HALF) {
        let pair = unpack2x16float(weight[i >> 1u]);
        return select(pair.x, pair.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(weight[i]);
}

const BM: u32 = 64u; // output pixels per tile
const BN: u32 = 64u; // output channels per tile
const BK: u32 = 16u; // reduction slice

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM]
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]

const FORWARD: u32 = 0u;
const BACKWARD_INPUT: u32 = 1u;

// a / b for a < 2^24 through a float reciprocal, corrected to the exact quotient
// (CPU drivers have no vector integer division; GPUs prefer this too).
fn fdiv(a: u32, b: u32, inv: f32) -> u32 {
    var q = u32(f32(a) * inv);
    if (q * b > a) { q -= 1u; }
    if ((q + 1u) * b <= a) { q += 1u; }
    return q;
}

// Where one thread's A column sits: batch item and (y, x) in the plane it indexes
// (output plane forward, input plane backward). Fixed for the whole K loop.
struct Pixel { b: u32, y: i32, x: i32, ok: bool }

fn pixel(mode: u32, m: u32, m_total: u32) -> Pixel {
    var w = p.ow;
    var plane = p.oh * p.ow;
    if (mode == BACKWARD_INPUT) { w = p.w; plane = p.h * p.w; }
    let b = m / plane;
    let q = m % plane;
    return Pixel(b, i32(q / w), i32(q % w), m < m_total);
}

// A[m, k]: an input pixel (forward) or an output-gradient pixel (backward).
fn load_a(mode: u32, px: Pixel, k: u32, k_total: u32, inv_khw: f32, inv_kw: f32) -> f32 {
    if (!px.ok || k >= k_total) { return 0.0; }
    let khw = p.kh * p.kw;
    let c = fdiv(k, khw, inv_khw);
    let r = k - c * khw;
    let ky = fdiv(r, p.kw, inv_kw);
    let kx = r - ky * p.kw;
    if (mode == FORWARD) {
        let iy = px.y * i32(p.stride_h) + i32(ky) - i32(p.pad_h);
        let ix = px.x * i32(p.stride_w) + i32(kx) - i32(p.pad_w);
        if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) { return 0.0; }
        return input[((px.b * p.cin + c) * p.h + u32(iy)) * p.w + u32(ix)];
    }
    let ty = px.y + i32(p.pad_h) - i32(ky);
    let tx = px.x + i32(p.pad_w) - i32(kx);
    if (ty < 0 || tx < 0) { return 0.0; }
    var oy = u32(ty);
    var ox = u32(tx);
    if (p.stride_h != 1u || p.stride_w != 1u) { // uniform branch: stride 1 needs no division
        oy = oy / p.stride_h;
        ox = ox / p.stride_w;
        if (oy * p.stride_h != u32(ty) || ox * p.stride_w != u32(tx)) { return 0.0; }
    }
    if (oy >= p.oh || ox >= p.ow) { return 0.0; }
    return input[((px.b * p.cout + p.co_offset + c) * p.oh + oy) * p.ow + ox];
}

// B[k, n]: W[co, k] (forward, n = co) or W[co, ci, ky, kx] (backward, n = ci).
fn load_b(mode: u32, k: u32, n: u32, k_total: u32, n_total: u32, inv_khw: f32) -> f32 {
    if (k >= k_total || n >= n_total) { return 0.0; }
    if (mode == FORWARD) { return wload(n * k_total + k); }
    let khw = p.kh * p.kw;
    let co = fdiv(k, khw, inv_khw);
    return wload((co * p.cin + n) * khw + k - co * khw);
}

fn store(mode: u32, m: u32, n: u32, acc: f32) {
    if (mode == FORWARD) {
        let plane = p.oh * p.ow;
        var v = acc;
        if ((p.flags & 2u) != 0u) { v += bias[n]; }
        if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
        let o = ((m / plane) * p.cout + p.co_offset + n) * plane + m % plane;
        if ((p.flags & 4u) != 0u) { output[o] += v; } else { output[o] = v; }
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
    // 4x4 accumulators as four vec4 rows: no dynamically indexed private arrays.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let tx = lxy.x; // n direction
    let ty = lxy.y; // m direction
    // This thread loads tile elements lid + 256 j = [lid / 64 + 4 j][lid % 64]: always
    // the same column, so its pixel is decoded once.
    let col = lid % BM;
    let px = pixel(mode, m0 + col, m_total);
    let inv_khw = 1.0 / f32(p.kh * p.kw);
    let inv_kw = 1.0 / f32(p.kw);
    for (var k0 = 0u; k0 < k_total; k0 += BK) {
        for (var j = 0u; j < 4u; j++) {
            let kk = lid / BM + 4u * j;
            let e = kk * BM + col; // BM == BN
            tile_a[e] = load_a(mode, px, k0 + kk, k_total, inv_khw, inv_kw);
            tile_b[e] = load_b(mode, k0 + kk, n0 + col, k_total, n_total, inv_khw);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            // thread (tx, ty) owns rows ty + 16 i and columns tx + 16 j: neighbouring
            // threads read neighbouring words (contiguous vector loads on CPU drivers,
            // conflict-free banks on GPUs)
            let ab = kk * BM + ty;
            let bb = kk * BN + tx;
            let b = vec4<f32>(tile_b[bb], tile_b[bb + 16u], tile_b[bb + 32u], tile_b[bb + 48u]);
            acc0 = fma(vec4<f32>(tile_a[ab]), b, acc0);
            acc1 = fma(vec4<f32>(tile_a[ab + 16u]), b, acc1);
            acc2 = fma(vec4<f32>(tile_a[ab + 32u]), b, acc2);
            acc3 = fma(vec4<f32>(tile_a[ab + 48u]), b, acc3);
        }
        workgroupBarrier();
    }
    store_row(mode, m0 + ty, n0 + tx, m_total, n_total, acc0);
    store_row(mode, m0 + ty + 16u, n0 + tx, m_total, n_total, acc1);
    store_row(mode, m0 + ty + 32u, n0 + tx, m_total, n_total, acc2);
    store_row(mode, m0 + ty + 48u, n0 + tx, m_total, n_total, acc3);
}

// Writes columns n, n + 16, n + 32, n + 48 of row m.
fn store_row(mode: u32, m: u32, n: u32, m_total: u32, n_total: u32, v: vec4<f32>) {
    if (m >= m_total) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (n + 16u * j < n_total) { store(mode, m, n + 16u * j, v[j]); }
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
