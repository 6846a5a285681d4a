// Perturbed copies of an input, made on the GPU.
// occlude: copy j of item `item` has window j (row-major over a grid of nx windows per
// row, step `stride`, clipped at the border, all channels) replaced by the same pixels of
// the baseline (a constant, a blurred copy, channel means), as Captum's Occlusion builds
// them.

struct OccludeParams {
    count: u32, c: u32, h: u32, w: u32,
    win_h: u32, win_w: u32, stride_h: u32, stride_w: u32,
    nx: u32, first: u32, item: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: OccludeParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> baseline: array<f32>; // like input

@compute @workgroup_size(64, 1, 1)
fn occlude(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    if (i >= p.count) { return; }
    let per = p.c * p.h * p.w;
    let j = p.first + i / per;
    let r = i % per;
    let y = (r % (p.h * p.w)) / p.w;
    let x = r % p.w;
    let y0 = (j / p.nx) * p.stride_h;
    let x0 = (j % p.nx) * p.stride_w;
    let inside = y >= y0 && y < y0 + p.win_h && x >= x0 && x < x0 + p.win_w;
    output[i] = select(input[p.item * per + r], baseline[p.item * per + r], inside);
}
