// The tiled conv kernels' convolution fields and weight decoding (conv2d_tiled.wgsl and
// its two loops, conv2d.wgsl and conv2d_subgroup.wgsl; conv2d_gather.wgsl). A launch covers output channels [co_offset, co_offset + co_count):
// the weight binding holds only that chunk.

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32, // bit0 ReLU, bit1 bias, bit2 accumulate
    // Where the launch's taps and an input gradient's pixels sit in the whole convolution
    // (a strided conv's input gradient runs a stride-1 launch per stride phase over the
    // phase's sub-grid and taps: ops::Conv2dParams::stride_phases): tap (ky, kx) is weight
    // tap tap0 + ky tap_dy + kx tap_dx of `taps`; pixel (y, x) is dx_origin + y dx_sy +
    // x dx_sx of a dx plane of dx_plane. A whole launch: 0, kw, 1, kh kw; 0, w, 1, h w.
    tap0: u32, tap_dy: u32, tap_dx: u32, taps: u32,
    dx_origin: u32, dx_sy: u32, dx_sx: u32, dx_plane: u32,
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
