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

// Top patches: per channel of a batch x [B, C, P], the k best (value, image, position)
// among the running list (run_*, [C, k]) and the batch's values (images base .. base + B),
// best first: larger value, then smaller image, then smaller position. One workgroup per
// channel; step j picks the best candidate strictly after step j - 1's pick. Empty slots
// have image 0xffffffff and are never picked.
@group(0) @binding(1) var<storage, read> top_x: array<f32>;
@group(0) @binding(2) var<storage, read> run_v: array<f32>;
@group(0) @binding(3) var<storage, read> run_i: array<u32>; // [C, k, 2] (image, position)
@group(0) @binding(4) var<storage, read_write> out_v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_i: array<u32>;

struct TopParams {
    items: u32, channels: u32, plane: u32, k: u32,
    base: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> tp: TopParams;

const NONE: u32 = 0xffffffffu;
var<workgroup> best_v: array<f32, 64>;
var<workgroup> best_im: array<u32, 64>;
var<workgroup> best_pos: array<u32, 64>;

// Whether (v, im, pos) ranks before (bv, bim, bpos); NONE images rank last.
fn before(v: f32, im: u32, pos: u32, bv: f32, bim: u32, bpos: u32) -> bool {
    if (im == NONE) { return false; }
    if (bim == NONE) { return true; }
    if (v != bv) { return v > bv; }
    if (im != bim) { return im < bim; }
    return pos < bpos;
}

@compute @workgroup_size(64, 1, 1)
fn unit_top_k(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let c = wid.x;
    if (c >= tp.channels) { return; }
    var pv = 0.0;
    var pim = NONE; // nothing picked yet: every candidate is after it
    var ppos = 0u;
    let batch = tp.items * tp.plane;
    for (var j = 0u; j < tp.k; j++) {
        var bv = 0.0;
        var bim = NONE;
        var bpos = 0u;
        for (var e = lid; e < tp.k + batch; e += 64u) {
            var v: f32; var im: u32; var pos: u32;
            if (e < tp.k) {
                v = run_v[c * tp.k + e];
                im = run_i[2u * (c * tp.k + e)];
                pos = run_i[2u * (c * tp.k + e) + 1u];
            } else {
                let b = (e - tp.k) / tp.plane;
                pos = (e - tp.k) - b * tp.plane;
                im = tp.base + b;
                v = top_x[(b * tp.channels + c) * tp.plane + pos];
            }
            let after_prev = pim == NONE || before(pv, pim, ppos, v, im, pos);
            if (after_prev && before(v, im, pos, bv, bim, bpos)) {
                bv = v; bim = im; bpos = pos;
            }
        }
        best_v[lid] = bv; best_im[lid] = bim; best_pos[lid] = bpos;
        for (var s = 32u; s > 0u; s >>= 1u) {
            workgroupBarrier();
            if (lid < s) {
                let o = lid + s;
                if (before(best_v[o], best_im[o], best_pos[o], best_v[lid], best_im[lid], best_pos[lid])) {
                    best_v[lid] = best_v[o]; best_im[lid] = best_im[o]; best_pos[lid] = best_pos[o];
                }
            }
        }
        workgroupBarrier();
        pv = best_v[0]; pim = best_im[0]; ppos = best_pos[0];
        workgroupBarrier();
        if (lid == 0u) {
            out_v[c * tp.k + j] = pv;
            out_i[2u * (c * tp.k + j)] = pim;
            out_i[2u * (c * tp.k + j) + 1u] = ppos;
        }
        if (pim == NONE) { pim = 0u; pv = -3.0e38; ppos = NONE; } // exhausted: nothing is after
    }
}

// y[n, c, v] = x[n, c, v] * ab[2c] + ab[2c + 1]: the model's normalisation and its adjoint.
@group(0) @binding(1) var<storage, read> aff_x: array<f32>;
@group(0) @binding(2) var<storage, read> aff_ab: array<f32>;
@group(0) @binding(3) var<storage, read_write> aff_y: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn channel_affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.items * p.channels * p.plane) { return; }
    let c = (i / p.plane) % p.channels;
    aff_y[i] = fma(aff_x[i], aff_ab[2u * c], aff_ab[2u * c + 1u]);
}
