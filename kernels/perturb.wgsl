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

// ranked: copies first..first+m of one item where copy j replaces every pixel whose unit
// (patch or pixel) ranks below thr[first + j] by the substitute (all channels); with
// insert = 1 the other way round: the substitute with those pixels restored.
struct RankedParams {
    count: u32, per: u32, plane: u32, first: u32,
    insert: u32, _a: u32, _b: u32, _c: u32,
}

@group(0) @binding(0) var<uniform> rp: RankedParams;
@group(0) @binding(1) var<storage, read> r_x: array<f32>;      // [C, H, W]
@group(0) @binding(2) var<storage, read> r_sub: array<f32>;    // [C, H, W]
@group(0) @binding(3) var<storage, read> r_rank: array<u32>;   // [H * W]
@group(0) @binding(4) var<storage, read> r_thr: array<u32>;    // [copies]
@group(0) @binding(5) var<storage, read_write> r_out: array<f32>; // [m, C, H, W]

@compute @workgroup_size(64, 1, 1)
fn ranked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    if (i >= rp.count) { return; }
    let j = i / rp.per;
    let r = i - j * rp.per;
    let hit = r_rank[r % rp.plane] < r_thr[rp.first + j];
    let replace = select(hit, !hit, rp.insert == 1u);
    r_out[i] = select(r_x[r], r_sub[r], replace);
}
