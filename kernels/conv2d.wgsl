// conv2d forward as an implicit GEMM, batched.
// out[m, co] = sum_k A[m, k] * W[co, k] (+ bias[co]), ReLU optional.
// m runs over (batch, oy, ox); k over (ci, ky, kx), the torch weight layout.
// A is read straight from the NCHW input (im2col on the fly); padding reads 0.
// A launch covers output channels [co_offset, co_offset + co_count): the weight and
// bias bindings hold only that chunk, so weights over the binding limit are split.

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32, // flags: bit0 ReLU, bit1 bias
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

const BM: u32 = 64u; // output pixels per tile
const BN: u32 = 64u; // output channels per tile
const BK: u32 = 16u; // reduction slice
const TM: u32 = 4u;
const TN: u32 = 4u;

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM]
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]

fn load_a(m: u32, k: u32, m_total: u32, k_total: u32) -> f32 {
    if (m >= m_total || k >= k_total) { return 0.0; }
    let khw = p.kh * p.kw;
    let ci = k / khw;
    let r = k % khw;
    let ky = r / p.kw;
    let kx = r % p.kw;
    let plane = p.oh * p.ow;
    let b = m / plane;
    let q = m % plane;
    let oy = q / p.ow;
    let ox = q % p.ow;
    let iy = i32(oy * p.stride_h + ky) - i32(p.pad_h);
    let ix = i32(ox * p.stride_w + kx) - i32(p.pad_w);
    if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) { return 0.0; }
    return input[((b * p.cin + ci) * p.h + u32(iy)) * p.w + u32(ix)];
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) lxy: vec3<u32>,
) {
    let m_total = p.n * p.oh * p.ow;
    let k_total = p.cin * p.kh * p.kw;
    let m0 = (wid.x + wid.z * nwg.x) * BM;
    let n0 = wid.y * BN;
    if (m0 >= m_total) { return; } // uniform per workgroup
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
    let tx = lxy.x; // channel direction
    let ty = lxy.y; // pixel direction
    for (var k0 = 0u; k0 < k_total; k0 += BK) {
        for (var j = 0u; j < 4u; j++) {
            let e = lid + j * 256u; // 0..1023
            let kk = e / BM;
            let mm = e % BM;
            tile_a[e] = load_a(m0 + mm, k0 + kk, m_total, k_total);
            let nn = e % BN;
            let co = n0 + nn;
            var wv = 0.0;
            if (co < p.co_count && k0 + kk < k_total) { wv = weight[co * k_total + k0 + kk]; }
            tile_b[e] = wv; // same [kk][nn] order since BM == BN
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
    let plane = p.oh * p.ow;
    for (var i = 0u; i < TM; i++) {
        let m = m0 + ty * TM + i;
        if (m >= m_total) { continue; }
        let b = m / plane;
        let q = m % plane;
        for (var j = 0u; j < TN; j++) {
            let co = n0 + tx * TN + j;
            if (co >= p.co_count) { continue; }
            var v = acc[i * TN + j];
            if ((p.flags & 2u) != 0u) { v += bias[co]; }
            if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
            output[(b * p.cout + p.co_offset + co) * plane + q] = v;
        }
    }
}
