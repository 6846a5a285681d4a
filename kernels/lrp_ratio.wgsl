// The LRP ratio R / s(z), shared by lrp.wgsl, lrp4.wgsl and pack_texture.wgsl (which packs
// it straight into a GEMM's input texture). s(v) = v + eps * sign(v), sign(0) = +1:
// Zennit's stabilizer. z = c0 * za + c1 * zb (zb not read when c1 = 0); the unit is kept
// everywhere (mode 0), where z0 > 0 (1) or where z0 < 0 (2), else 0 (the Gamma rule).

fn stabilize(v: f32, eps: f32) -> f32 {
    return v + select(-eps, eps, v >= 0.0);
}

fn stabilize4(v: vec4<f32>, eps: f32) -> vec4<f32> {
    return v + select(vec4<f32>(-eps), vec4<f32>(eps), v >= vec4<f32>(0.0));
}
