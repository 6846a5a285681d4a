// The pooling kernels' uniform (pool.wgsl, pool_pairs.wgsl) and a NaN test.

struct PoolParams {
    planes: u32, h: u32, w: u32, oh: u32,
    ow: u32, kh: u32, kw: u32, stride_h: u32,
    stride_w: u32, pad_h: u32, pad_w: u32, flags: u32, // flags: bit0 count_include_pad
}

@group(0) @binding(0) var<uniform> p: PoolParams;

// Whether v is a NaN, from its bits: drivers that compile floats with fast-math rules
// (lavapipe does) fold `v != v` to false.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}
