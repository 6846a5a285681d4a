// Prelude of the cpu-tex kernels with f16 weights (--weights f16): the packed weights as
// an rgba16float texture, read as a read-only storage texture (conv2d_cpu_texture.wgsl);
// the format converts the halves to f32.

@group(0) @binding(2) var weight: texture_storage_2d<rgba16float, read>;
