// The LRP ratio R / s(z), shared by lrp.wgsl, lrp4.wgsl and pack_texture.wgsl (which packs
// it straight into a GEMM's input texture). s(v) = v + eps * sign(v), sign(0) = +1:
// Zennit's stabilizer. z = c0 * za + c1 * zb (zb not read when c1 = 0); the unit is kept
// everywhere (mode 0), where z0 > 0 (1) or where z0 < 0 (2), else 0 (the Gamma rule).

// Where element i of a ratio goes in an output that stacks two ratios an item: items of
// `item` elements, this ratio's in half h (0 or 1) of an output item twice as long; i
// itself where item is 0.
fn stacked_at(i: u32, item: u32, h: u32) -> u32 {
    if (item == 0u) { return i; }
    let b = i / item;
    return (2u * b + h) * item + i - b * item;
}

fn stabilize(v: f32, eps: f32) -> f32 {
    return v + select(-eps, eps, v >= 0.0);
}

fn stabilize4(v: vec4<f32>, eps: f32) -> vec4<f32> {
    return v + select(vec4<f32>(-eps), vec4<f32>(eps), v >= vec4<f32>(0.0));
}
