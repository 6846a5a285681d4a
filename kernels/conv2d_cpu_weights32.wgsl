// Prelude of the cpu-tex kernels with f32 weights: the packed weights as an rgba32float
// texture, read as a read-only storage texture (conv2d_cpu_texture.wgsl).

@group(0) @binding(2) var weight: texture_storage_2d<rgba32float, read>;
