// The linear kernels' uniform, bindings and weight decoding (linear.wgsl,
// linear_subgroup.wgsl). y[n, o] = sum_k x[n, k] * W[o, k] + b[o] for small batches; large
// batches run through conv2d_forward as a 1x1 convolution instead. A launch covers output
// features [o_offset, o_offset + o_count) (split weights).

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

const ROWS: u32 = 8u; // batch rows per workgroup: each weight row is read once per 8 rows


// Stores y[n, o_offset + o] = v (+ bias, ReLU, or added to y).
fn finish(o: u32, n: u32, acc: f32) {
    var v = acc;
    if ((p.flags & 2u) != 0u) { v += bias[o]; }
    if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
    let i = n * p.out_features + p.o_offset + o;
    if ((p.flags & 4u) != 0u) { output[i] += v; } else { output[i] = v; }
}

// One lane's share of output o for batch rows n0 .. n0 + rows - 1 (rows <= ROWS): the sums
// over k = lane, lane + lanes, ... Both forward kernels reduce these across their lanes.
fn lane_sums(o: u32, n0: u32, rows: u32, lane: u32, lanes: u32) -> array<f32, 8> {
    var acc: array<f32, 8>; // zero-initialised
    let wrow = o * p.in_features;
    for (var k = lane; k < p.in_features; k += lanes) {
        let wv = wload(wrow + k);
        for (var r = 0u; r < rows; r++) {
            acc[r] = fma(input[(n0 + r) * p.in_features + k], wv, acc[r]);
        }
    }
    return acc;
}
