// linear forward for small batches: y[n, o] = sum_k x[n, k] * W[o, k] + b[o].
// One workgroup per (output feature, group of 8 batch rows); its 64 threads split k and
// reduce in shared memory, so each weight row is read once per 8 rows.
// Large batches run through conv2d_forward as a 1x1 convolution instead.
// A launch covers output features [o_offset, o_offset + o_count) (split weights).

struct LinearParams {
    n: u32, in_features: u32, out_features: u32, o_offset: u32,
    o_count: u32, flags: u32, _pad0: u32, _pad1: u32, // bit0 ReLU, bit1 bias, bit2 accumulate
}

@group(0) @binding(0) var<uniform> p: LinearParams;
@group(0) @binding(1) var<storage, read> input: array<f32>; // x, or dy for backward
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

const ROWS: u32 = 8u;
var<workgroup> partial: array<f32, 512>; // [ROWS][64]

@compute @workgroup_size(64, 1, 1)
fn linear_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = wid.x + wid.z * nwg.x;
    if (o >= p.o_count) { return; } // uniform per workgroup
    let n0 = wid.y * ROWS;
    var acc: array<f32, 8>;
    for (var r = 0u; r < ROWS; r++) { acc[r] = 0.0; }
    let rows = min(ROWS, p.n - n0);
    let wrow = o * p.in_features;
    for (var k = lid; k < p.in_features; k += 64u) {
        let wv = wload(wrow + k);
        for (var r = 0u; r < rows; r++) {
            acc[r] = fma(input[(n0 + r) * p.in_features + k], wv, acc[r]);
        }
    }
    for (var r = 0u; r < ROWS; r++) { partial[r * 64u + lid] = acc[r]; }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) {
            for (var r = 0u; r < ROWS; r++) { partial[r * 64u + lid] += partial[r * 64u + lid + s]; }
        }
        workgroupBarrier();
    }
    if (lid < rows) {
        var v = partial[lid * 64u];
        if ((p.flags & 2u) != 0u) { v += bias[o]; }
        if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
        let i = (n0 + lid) * p.out_features + p.o_offset + o;
        if ((p.flags & 4u) != 0u) { output[i] += v; } else { output[i] = v; }
    }
}

// linear input-gradient for small batches: dx[n, k] (+)= sum_o dy[n, o_offset + o] W[o, k].
// One thread per (k, group of 8 rows); threads of a workgroup read adjacent k, so weight
// columns are read coalesced. Launches after the first chunk accumulate (flags bit 2).
@compute @workgroup_size(64, 1, 1)
fn linear_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.z * nwg.x * 64u;
    if (k >= p.in_features) { return; }
    let n0 = gid.y * ROWS;
    let rows = min(ROWS, p.n - n0);
    var acc: array<f32, 8>;
    for (var r = 0u; r < ROWS; r++) { acc[r] = 0.0; }
    for (var o = 0u; o < p.o_count; o++) {
        let wv = wload(o * p.in_features + k);
        for (var r = 0u; r < rows; r++) {
            acc[r] = fma(input[(n0 + r) * p.out_features + p.o_offset + o], wv, acc[r]);
        }
    }
    for (var r = 0u; r < rows; r++) {
        let i = (n0 + r) * p.in_features + k;
        if ((p.flags & 4u) != 0u) { output[i] += acc[r]; } else { output[i] = acc[r]; }
    }
}
