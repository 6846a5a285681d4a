// The tiled conv kernels' convolution fields and weight decoding (conv2d.wgsl,
// conv2d_gather.wgsl). A launch covers output channels [co_offset, co_offset + co_count):
// the weight binding holds only that chunk.

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32, // bit0 ReLU, bit1 bias, bit2 accumulate
}

// Weights are f32 words, or with HALF (a pipeline constant) f16 pairs packed in u32s
// (--weights f16): half the memory, f32 arithmetic.
override HALF: bool = false;
@group(0) @binding(2) var<storage, read> weight: array<u32>;

// Weight i of this launch's chunk, as f32.
fn wload(i: u32) -> f32 {
    if (HALF) {
        let pair = unpack2x16float(weight[i >> 1u]);
        return select(pair.x, pair.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(weight[i]);
}
