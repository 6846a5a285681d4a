// Prelude of conv2d_cpu.wgsl: the packed weights in a 2-D texture, one vec4 group per
// texel (rgba32float, or rgba16float with --weights f16), group g at (g mod W, g / W) for
// the texture's power-of-two width W. lavapipe compiles a storage-buffer load into a loop
// over the lanes that, without AVX-512, passes every word through the stack; a texel
// fetch is a vector gather, about three times faster on AVX2 (README, Benchmarks).

// (HALF, declared in conv2d_cpu_common.wgsl, is unused here: the texture's format converts
// halves.)

@group(0) @binding(2) var weight: texture_2d<f32>;

var<private> wshift: u32;

fn winit() {
    wshift = countTrailingZeros(textureDimensions(weight).x);
}

// Packed weight group g (4 consecutive reduction channels).
fn wload4(g: u32) -> vec4<f32> {
    return textureLoad(weight, vec2<u32>(g & ((1u << wshift) - 1u), g >> wshift), 0);
}

