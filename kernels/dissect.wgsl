// Network dissection (Bau et al. 2017, NetDissect-Lite's tally): each unit's map is
// up-sampled bilinearly (align_corners = False) to the label masks' resolution and
// thresholded; the pixels above the threshold are counted against every label plane.

struct DissectParams {
    batch: u32,
    units: u32,
    h: u32, // the layer's map
    w: u32,
    sh: u32, // the label masks
    sw: u32,
    planes: u32, // label planes per image (padded with zero planes)
    labels: u32, // global label numbers are < labels
    categories: u32,
    _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: DissectParams;

// tally: one workgroup of TALLY lanes per (unit, image), each lane over every TALLY-th
// column of the mask and down its rows. Each lane counts its pixels above the threshold and the
// categories they hit in registers and adds them to the (image, unit) counters once, so
// the kernel needs no workgroup memory and no barrier: on a CPU driver a barrier makes a
// workgroup's lanes run as coroutines, and one workgroup per 256 pixels spent ~3 us a
// workgroup on that alone (lavapipe). Counts are integers, so their order is free.
const TALLY: u32 = 64u;

@group(0) @binding(1) var<storage, read> t_act: array<f32>; // [B, U, h, w]
@group(0) @binding(2) var<storage, read> t_thr: array<f32>; // [U]
@group(0) @binding(3) var<storage, read> t_lab: array<u32>; // [B, planes, sh * sw]
@group(0) @binding(4) var<storage, read> t_cats: array<u32>; // [labels] category bit set
@group(0) @binding(5) var<storage, read_write> t_both: array<atomic<u32>>; // [U, labels]
@group(0) @binding(6) var<storage, read_write> t_size: array<atomic<u32>>; // [B, U] |M_u|
@group(0) @binding(7) var<storage, read_write> t_hit: array<atomic<u32>>; // [B, U] categories hit
@group(0) @binding(8) var<storage, read> t_active: array<u32>; // [B, U] map max > threshold

// PyTorch's source index for align_corners = False, clamped below at 0.
fn source(d: u32, scale: f32) -> f32 {
    return max((f32(d) + 0.5) * scale - 0.5, 0.0);
}

@compute @workgroup_size(TALLY, 1, 1)
fn dissect_tally(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let u = wid.x;
    let b = wid.y;
    let bu = b * p.units + u;
    // an up-sampled value never exceeds the map's max: most (image, unit) pairs of a
    // deep layer stop here
    if (t_active[bu] == 0u) { return; }
    let thr = t_thr[u];
    let base = bu * p.h * p.w;
    let plane = p.sh * p.sw;
    let scale_y = f32(p.h) / f32(p.sh);
    let scale_x = f32(p.w) / f32(p.sw);
    var size = 0u;
    var hit = 0u;
    // columns outside, rows inside: a lane's columns' source indices are computed once
    for (var x = lid; x < p.sw; x += TALLY) {
        let sx = source(x, scale_x);
        let x0 = min(u32(sx), p.w - 1u);
        let x1 = min(x0 + 1u, p.w - 1u);
        let lx = sx - f32(x0);
        for (var y = 0u; y < p.sh; y++) {
            // the up-sampled map at (y, x), bilinear as PyTorch computes it
            let sy = source(y, scale_y);
            let y0 = min(u32(sy), p.h - 1u);
            let y1 = min(y0 + 1u, p.h - 1u);
            let ly = sy - f32(y0);
            let r0 = base + y0 * p.w;
            let r1 = base + y1 * p.w;
            let top = (1.0 - lx) * t_act[r0 + x0] + lx * t_act[r0 + x1];
            let bottom = (1.0 - lx) * t_act[r1 + x0] + lx * t_act[r1 + x1];
            if ((1.0 - ly) * top + ly * bottom > thr) {
                size += 1u;
                let i = y * p.sw + x;
                for (var k = 0u; k < p.planes; k++) {
                    let l = t_lab[(b * p.planes + k) * plane + i];
                    if (l > 0u && l < p.labels) {
                        atomicAdd(&t_both[u * p.labels + l], 1u);
                        hit |= t_cats[l];
                    }
                }
            }
        }
    }
    if (size > 0u) {
        atomicAdd(&t_size[bu], size);
        atomicOr(&t_hit[bu], hit);
    }
}

// active: one thread per (image, unit): whether the map's max exceeds the threshold.
@group(0) @binding(1) var<storage, read> a_act: array<f32>; // [B, U, h, w]
@group(0) @binding(2) var<storage, read> a_thr: array<f32>; // [U]
@group(0) @binding(3) var<storage, read_write> a_out: array<u32>; // [B, U]

@compute @workgroup_size(64, 1, 1)
fn dissect_active(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    if (i >= p.batch * p.units) { return; }
    let t = a_thr[i % p.units];
    let base = i * p.h * p.w;
    var on = 0u;
    for (var k = 0u; k < p.h * p.w; k++) {
        if (a_act[base + k] > t) { on = 1u; break; }
    }
    a_out[i] = on;
}

// unit_categories: one thread per (unit, category) sums |M_u| over the batch's images
// where M_u meets a label of the category (NetDissect-Lite's denominator) and where the
// image is annotated in the category (the paper's).
@group(0) @binding(1) var<storage, read> c_size: array<u32>; // [B, U]
@group(0) @binding(2) var<storage, read> c_hit: array<u32>; // [B, U]
@group(0) @binding(3) var<storage, read> c_annotated: array<u32>; // [B] category bit set
@group(0) @binding(4) var<storage, read_write> c_out: array<u32>; // [2, U, categories]

@compute @workgroup_size(64, 1, 1)
fn dissect_unit_categories(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.units * p.categories) { return; }
    let u = i / p.categories;
    let bit = 1u << (i % p.categories);
    var hit = 0u;
    var annotated = 0u;
    for (var b = 0u; b < p.batch; b++) {
        let s = c_size[b * p.units + u];
        if ((c_hit[b * p.units + u] & bit) != 0u) { hit += s; }
        if ((c_annotated[b] & bit) != 0u) { annotated += s; }
    }
    c_out[i] += hit;
    c_out[p.units * p.categories + i] += annotated;
}
