// lrp.wgsl's element-wise steps four elements an invocation, for tensors whose length is a
// multiple of 4: one vec4 access where those make four (as elementwise4.wgsl for ReLU).
// Same uniform, bindings and rules (the ratio's: lrp_ratio.wgsl); count = vec4s.

struct LrpParams {
    count: u32, mode: u32, flags: u32, item: u32, // item: in vec4s here
    eps: f32, c0: f32, c1: f32, _pad1: f32,
}

@group(0) @binding(0) var<uniform> p: LrpParams;
@group(0) @binding(1) var<storage, read> x0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> y0: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> x1: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> y1: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> a0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> a1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> a2: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> a3: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> ratio_out: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> axpby_out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> clamp_out: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> sum_out2: array<vec4<f32>>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

@compute @workgroup_size(64, 1, 1)
fn lrp_ratio4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    var keep = vec4<bool>(true);
    if (p.mode == 1u) { keep = a2[i] > vec4<f32>(0.0); }
    if (p.mode == 2u) { keep = a2[i] < vec4<f32>(0.0); }
    var z = p.c0 * a1[i];
    if (p.c1 != 0.0) { z += p.c1 * a3[i]; }
    ratio_out[stacked_at(i, p.item, (p.flags >> 1u) & 1u)] = select(vec4<f32>(0.0), a0[i] / stabilize4(z, p.eps), keep);
}

@compute @workgroup_size(64, 1, 1)
fn lrp_combine4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    var v = p.c0 * x0[i] * y0[i];
    if (p.c1 != 0.0) { v += p.c1 * x1[i] * y1[i]; }
    if ((p.flags & 1u) != 0u) { v += out[i]; }
    out[i] = v;
}

@compute @workgroup_size(64, 1, 1)
fn lrp_axpby4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let v = p.c0 * a0[i] + p.c1 * a1[i];
    // flags bit0: a ReLU after it (a residual sum's), as relu_forward4 computes it
    axpby_out[i] = select(v, max(v, vec4<f32>(0.0)), (p.flags & 1u) != 0u);
}

@compute @workgroup_size(64, 1, 1)
fn lrp_clamp4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let v = a0[i];
    clamp_out[i] = select(max(v, vec4<f32>(0.0)), min(v, vec4<f32>(0.0)), p.mode == 1u);
}

@compute @workgroup_size(64, 1, 1)
fn lrp_sum4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let g = a0[i] / stabilize4(p.c0 * a1[i], p.eps);
    ratio_out[i] = p.c0 * a2[i] * g;
    sum_out2[i] = p.c0 * a3[i] * g;
}
