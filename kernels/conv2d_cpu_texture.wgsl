// Prelude of the CPU-shaped kernels on CPUs without AVX-512 (`cpu-tex`) and without
// subgroups (`cpu-fetch`): the packed weights in a 2-D texture, one vec4 group per texel,
// group g at (g mod W, g / W) for the texture's power-of-two width W (declared by
// conv2d_cpu_weights32.wgsl or, for --weights f16, conv2d_cpu_weights16.wgsl), and the
// input packed four channels a texel. lavapipe compiles a storage-buffer load into a loop
// over the lanes that, without AVX-512, passes every word through the stack; a texel load
// is one 16-byte load per lane (four channels) and a transpose in registers, about three
// times faster on AVX2, and a read-only storage texture's (an image load: no sampler, no
// mip level) about 1.4 times faster again than a sampled texture's (README, Kernel
// variants).

// (HALF, declared in conv2d_cpu_common.wgsl, is unused here: the texture's format converts
// halves.)

// The input, packed four channels a texel (pack_texture.wgsl): texel
// (b * ceil(count / 4) + c4) * plane + q at (g mod W, g / W), zero past the last channel.
@group(0) @binding(1) var input: texture_storage_2d<rgba32float, read>;

var<private> wshift: u32;
var<private> xshift: u32;

fn winit() {
    wshift = countTrailingZeros(textureDimensions(weight).x);
    xshift = countTrailingZeros(textureDimensions(input).x);
}

// Where pixel offset 0 of item b's packed channels lies (the texture holds only the
// launch's `count` channels from `offset`).
fn xbase(b: u32, total: u32, offset: u32, count: u32, plane: u32) -> u32 {
    return b * ((count + 3u) / 4u) * plane;
}

// Channels 4 c4 .. 4 c4 + 3 of the pixel at `off`: one texel load (one 16-byte load a
// lane on lavapipe, where four storage loads are four per-lane loops), 0 where !ok.
fn xload4(off: u32, c4: u32, plane: u32, count: u32, ok: bool) -> vec4<f32> {
    let g = off + c4 * plane;
    let t = textureLoad(input, vec2<u32>(g & ((1u << xshift) - 1u), g >> xshift));
    return select(vec4<f32>(0.0), t, ok);
}

// Packed weight group g (4 consecutive reduction channels).
fn wload4(g: u32) -> vec4<f32> {
    return textureLoad(weight, vec2<u32>(g & ((1u << wshift) - 1u), g >> wshift));
}


// The forward's output packed four channels a texel (conv2d_cpu.wgsl's TEXELS; the input's
// layout, at (g mod W, g / W) for this texture's power-of-two width W).
@group(0) @binding(6) var output_texels: texture_storage_2d<rgba32float, write>;

fn store_texel(g: u32, v: vec4<f32>) {
    let shift = countTrailingZeros(textureDimensions(output_texels).x);
    textureStore(output_texels, vec2<u32>(g & ((1u << shift) - 1u), g >> shift), v);
}
