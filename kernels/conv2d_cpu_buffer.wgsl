// Prelude of conv2d_cpu.wgsl: the packed weights in a storage buffer, as f32 vec4s, or
// with HALF (a pipeline constant, --weights f16) as f16 quadruples two to a vec4<u32>.

@group(0) @binding(2) var<storage, read> weight: array<vec4<u32>>;

fn winit() {}

// Packed weight group g (4 consecutive reduction channels) as f32.
fn wload4(g: u32) -> vec4<f32> {
    return unpack4(weight[select(g, g >> 1u, HALF)], g);
}


// conv2d_cpu.wgsl's TEXELS output is the texture-reading kernels' (conv2d_cpu_texture.wgsl):
// never asked of these.
fn store_texel(g: u32, v: vec4<f32>) {}
