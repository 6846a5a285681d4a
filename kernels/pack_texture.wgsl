// Packs channels [start, start + count) of an NCHW tensor [n, c, plane] into an
// rgba32float texture, four channels a texel, zero past `count`: texel
// g = (b * c4n + c4) * plane + q at (g mod 2^shift, g >> shift). The cpu-tex GEMMs read
// their input from it (conv2d_cpu_texture.wgsl). One thread per texel.

struct PackParams {
    n: u32, c: u32, plane: u32, start: u32,
    count: u32, c4n: u32, shift: u32, texels: u32,
}

@group(0) @binding(0) var<uniform> p: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var dst: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(64, 1, 1)
fn pack_texture(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = gid.x + gid.z * nwg.x * 64u;
    if (g >= p.texels) { return; }
    let q = g % p.plane;
    let bc = g / p.plane;
    let c4 = bc % p.c4n;
    let b = bc / p.c4n;
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let c = 4u * c4 + j;
        if (c < p.count) { v[j] = src[(b * p.c + p.start + c) * p.plane + q]; }
    }
    textureStore(dst, vec2<u32>(g & ((1u << p.shift) - 1u), g >> p.shift), v);
}
