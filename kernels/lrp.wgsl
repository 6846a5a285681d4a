// Element-wise steps of LRP rules (the matrix products reuse conv2d/linear kernels);
// lrp4.wgsl holds their four-a-thread twins, lrp_ratio.wgsl the stabilizer.

struct LrpParams {
    count: u32, mode: u32, flags: u32, item: u32, // item: lrp_ratio's stacking (below)
    eps: f32, c0: f32, c1: f32, _pad1: f32,
}

@group(0) @binding(0) var<uniform> p: LrpParams;
// lrp_combine: four inputs and the output
@group(0) @binding(1) var<storage, read> x0: array<f32>;
@group(0) @binding(2) var<storage, read> y0: array<f32>;
@group(0) @binding(3) var<storage, read> x1: array<f32>;
@group(0) @binding(4) var<storage, read> y1: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
// lrp_ratio: R, za, z0, zb and the output (lrp_ratio.wgsl); lrp_axpby: two inputs and the
// output; lrp_clamp: one input and the output
@group(0) @binding(1) var<storage, read> a0: array<f32>;
@group(0) @binding(2) var<storage, read> a1: array<f32>;
@group(0) @binding(3) var<storage, read> a2: array<f32>;
@group(0) @binding(4) var<storage, read> a3: array<f32>;
@group(0) @binding(5) var<storage, read_write> ratio_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> axpby_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> clamp_out: array<f32>;
// lrp_sum: a0 .. a3 and ratio_out as lrp_ratio's, and a second output
@group(0) @binding(6) var<storage, read_write> sum_out2: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

// out = R / s(c0 za + c1 zb) where mode keeps the unit (lrp_ratio.wgsl): a0 = R, a1 = za,
// a2 = the layer's original output z0, a3 = zb. With item > 0 the output stacks two
// ratios an item: element i of item b (items of `item` values) goes to half h (flags
// bit1) of an output item twice as long (lrp_ratio.wgsl's stacked_at).
@compute @workgroup_size(64, 1, 1)
fn lrp_ratio(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    var keep = true;
    if (p.mode == 1u) { keep = a2[i] > 0.0; }
    if (p.mode == 2u) { keep = a2[i] < 0.0; }
    var z = p.c0 * a1[i];
    if (p.c1 != 0.0) { z += p.c1 * a3[i]; }
    ratio_out[stacked_at(i, p.item, (p.flags >> 1u) & 1u)] = select(0.0, a0[i] / stabilize(z, p.eps), keep);
}

// out (+)= c0 * x0 * y0 + c1 * x1 * y1 (flags bit 0: accumulate); c1 = 0 reads neither x1
// nor y1.
@compute @workgroup_size(64, 1, 1)
fn lrp_combine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    var v = p.c0 * x0[i] * y0[i];
    if (p.c1 != 0.0) { v += p.c1 * x1[i] * y1[i]; }
    if ((p.flags & 1u) != 0u) { v += out[i]; }
    out[i] = v;
}

// out = c0 * a0 + c1 * a1.
@compute @workgroup_size(64, 1, 1)
fn lrp_axpby(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let v = p.c0 * a0[i] + p.c1 * a1[i];
    // flags bit0: a ReLU after it (a residual sum's), as relu_forward computes it
    axpby_out[i] = select(v, max(v, 0.0), (p.flags & 1u) != 0u);
}

// out = max(a0, 0) (mode 0) or min(a0, 0) (mode 1).
@compute @workgroup_size(64, 1, 1)
fn lrp_clamp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    clamp_out[i] = select(max(a0[i], 0.0), min(a0[i], 0.0), p.mode == 1u);
}

// Zennit's rule for a sum of two inputs, a2 + a3 = a1 (its output), with R = a0: each
// input's share a_k R / s(c0 a1) (mode 0) into ratio_out and sum_out2. The same
// expressions as lrp_ratio and then lrp_combine for each input, so the same bits.
@compute @workgroup_size(64, 1, 1)
fn lrp_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let g = a0[i] / stabilize(p.c0 * a1[i], p.eps);
    ratio_out[i] = p.c0 * a2[i] * g;
    sum_out2[i] = p.c0 * a3[i] * g;
}
