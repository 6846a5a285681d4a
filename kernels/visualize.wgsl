// Steps of class-model and unit visualisation (Simonyan 2014, Yosinski 2015): the pixel
// range per channel, and the clipping of pixels whose norm or contribution is small.

struct VisParams {
    items: u32,
    channels: u32,
    plane: u32, // H * W
    mode: u32, // clip_small: 0 norm over channels, 1 |sum over channels of x * g|
    pct: f32, // clip_small: percentile in [0, 100]
    _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: VisParams;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

// x[n, c, v] clamped in place to [bounds[2c], bounds[2c + 1]]: the pixel range [0, 1]
// seen through the model's normalisation.
@group(0) @binding(1) var<storage, read> range_bounds: array<f32>;
@group(0) @binding(2) var<storage, read_write> range_x: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn clamp_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.items * p.channels * p.plane) { return; }
    let c = (i / p.plane) % p.channels;
    range_x[i] = min(max(range_x[i], range_bounds[2u * c]), range_bounds[2u * c + 1u]);
}

// One workgroup per item: each pixel's score s (mode 0: the norm of x over channels;
// mode 1: |sum over channels of x * g|, Yosinski's linearised contribution) goes to a
// scratch row; pixels scoring below the item's pct-th percentile (numpy's linear
// interpolation) are set to 0 in every channel (the mean colour in input space).
@group(0) @binding(1) var<storage, read> clip_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> clip_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> clip_s: array<f32>; // [N, plane] scratch

const WG: u32 = 256u;
var<workgroup> counts: array<u32, 256>;

fn count_sum(lid: u32) -> u32 {
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lid < s) { counts[lid] += counts[lid + s]; }
    }
    workgroupBarrier();
    let total = counts[0];
    workgroupBarrier();
    return total;
}

// The k-th smallest (from 0) score of the row at `base`. Scores are >= 0, so their bit
// patterns order as u32s: the answer is the largest pattern with at most k scores below
// it, built bit by bit from the top.
fn kth(base: u32, k: u32, lid: u32) -> f32 {
    var ans = 0u;
    for (var b = 31i; b >= 0i; b--) {
        let cand = ans | (1u << u32(b));
        var c = 0u;
        for (var v = lid; v < p.plane; v += WG) {
            c += select(0u, 1u, bitcast<u32>(clip_s[base + v]) < cand);
        }
        counts[lid] = c;
        if (count_sum(lid) <= k) { ans = cand; }
    }
    return bitcast<f32>(ans);
}

@compute @workgroup_size(256, 1, 1)
fn clip_small(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let n = wid.x;
    if (n >= p.items) { return; }
    let base = n * p.plane;
    let xb = n * p.channels * p.plane;
    for (var v = lid; v < p.plane; v += WG) {
        var acc = 0.0;
        for (var c = 0u; c < p.channels; c++) {
            let i = xb + c * p.plane + v;
            if (p.mode == 0u) { acc += clip_x[i] * clip_x[i]; } else { acc += clip_x[i] * clip_g[i]; }
        }
        clip_s[base + v] = select(abs(acc), sqrt(acc), p.mode == 0u);
    }
    storageBarrier();
    let pos = p.pct / 100.0 * f32(p.plane - 1u);
    let lo = min(u32(floor(pos)), p.plane - 1u);
    let hi = min(lo + 1u, p.plane - 1u);
    let a = kth(base, lo, lid);
    let b = kth(base, hi, lid);
    let thr = a + (pos - f32(lo)) * (b - a);
    for (var v = lid; v < p.plane; v += WG) {
        if (clip_s[base + v] < thr) {
            for (var c = 0u; c < p.channels; c++) { clip_x[xb + c * p.plane + v] = 0.0; }
        }
    }
}
