// Reductions per item (a row of `per` values; an item, or a channel plane for per-channel
// statistics): one workgroup per row, a tree in workgroup memory. And total variation of
// [N, C, H, W] planes with its gradient, the smoothness terms of masks and class models.

struct ReduceParams {
    rows: u32, per: u32, mode: u32, _pad0: u32, // mode: 0 sum, 1 mean, 2 L1, 3 L2 norm, 4 variance
    // tv: planes of h x w, channels per item, exponent beta
    h: u32, w: u32, channels: u32, beta: f32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

var<workgroup> part: array<f32, 64>;

// The sum of part[0..64] into part[0].
fn tree(lid: u32) {
    for (var s = 32u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lid < s) { part[lid] += part[lid + s]; }
    }
    workgroupBarrier();
}

fn term(v: f32, mode: u32) -> f32 {
    switch (mode) {
        case 2u: { return abs(v); }
        case 3u: { return v * v; }
        default: { return v; }
    }
}

// dst[row] = the reduction of src[row * per .. (row + 1) * per].
@compute @workgroup_size(64, 1, 1)
fn reduce_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.z * nwg.x;
    if (row >= p.rows) { return; } // uniform per workgroup
    let base = row * p.per;
    var acc = 0.0;
    for (var j = lid; j < p.per; j += 64u) { acc += term(src[base + j], p.mode); }
    part[lid] = acc;
    tree(lid);
    let total = part[0];
    if (p.mode != 4u) {
        if (lid == 0u) {
            switch (p.mode) {
                case 1u: { dst[row] = total / f32(p.per); }
                case 3u: { dst[row] = sqrt(total); }
                default: { dst[row] = total; }
            }
        }
        return;
    }
    // variance (population, as torch.var(unbiased=False)): a second pass about the mean
    let mean = total / f32(p.per);
    workgroupBarrier();
    var sq = 0.0;
    for (var j = lid; j < p.per; j += 64u) {
        let d = src[base + j] - mean;
        sq += d * d;
    }
    part[lid] = sq;
    tree(lid);
    if (lid == 0u) { dst[row] = part[0] / f32(p.per); }
}

// |d|^beta, 0 at d = 0 (pow(0, beta) is not defined for every driver).
fn powabs(d: f32) -> f32 {
    return select(pow(abs(d), p.beta), 0.0, d == 0.0);
}

// Total variation per item: dst[n] = mean over the item's horizontal and vertical
// neighbour pairs (in every channel) of |difference|^beta.
@compute @workgroup_size(64, 1, 1)
fn tv_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.z * nwg.x;
    if (row >= p.rows) { return; }
    let hw = p.h * p.w;
    let per = p.channels * hw;
    let base = row * per;
    var acc = 0.0;
    for (var j = lid; j < per; j += 64u) {
        let q = j % hw;
        let y = q / p.w;
        let x = q % p.w;
        let v = src[base + j];
        if (x + 1u < p.w) { acc += powabs(src[base + j + 1u] - v); }
        if (y + 1u < p.h) { acc += powabs(src[base + j + p.w] - v); }
    }
    part[lid] = acc;
    tree(lid);
    let pairs = p.channels * ((p.w - 1u) * p.h + (p.h - 1u) * p.w);
    if (lid == 0u) { dst[row] = select(0.0, part[0] / f32(pairs), pairs > 0u); }
}

// d tv / d src, element-wise: each element gathers the pairs it belongs to.
// d/da |b - a|^beta = -beta |b - a|^(beta - 1) sign(b - a).
fn pair_grad(a: f32, b: f32) -> f32 {
    let d = b - a;
    if (d == 0.0) { return 0.0; }
    return -p.beta * pow(abs(d), p.beta - 1.0) * sign(d);
}

@compute @workgroup_size(64, 1, 1)
fn tv_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    let hw = p.h * p.w;
    if (i >= p.rows * p.channels * hw) { return; }
    let q = i % hw;
    let y = q / p.w;
    let x = q % p.w;
    let v = src[i];
    var g = 0.0;
    if (x + 1u < p.w) { g += pair_grad(v, src[i + 1u]); }
    if (x > 0u) { g += pair_grad(v, src[i - 1u]); }
    if (y + 1u < p.h) { g += pair_grad(v, src[i + p.w]); }
    if (y > 0u) { g += pair_grad(v, src[i - p.w]); }
    let pairs = p.channels * ((p.w - 1u) * p.h + (p.h - 1u) * p.w);
    dst[i] = select(0.0, g / f32(pairs), pairs > 0u);
}

// Grad-CAM's map: out[n, q] = sum_c w[n, c] act[n, c, q] over the plane's pixels q, ReLU
// when mode is 1. rows = N, channels = C.
@group(0) @binding(1) var<storage, read> cam_act: array<f32>;
@group(0) @binding(2) var<storage, read> cam_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> cam_out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn channel_combination(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    let hw = p.h * p.w;
    if (i >= p.rows * hw) { return; }
    let n = i / hw;
    let q = i - n * hw;
    var s = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        s = fma(cam_w[n * p.channels + c], cam_act[(n * p.channels + c) * hw + q], s);
    }
    cam_out[i] = select(s, max(s, 0.0), p.mode == 1u);
}
