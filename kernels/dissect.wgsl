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

// tally: one workgroup per (pixel chunk, unit, image).
@group(0) @binding(1) var<storage, read> t_act: array<f32>; // [B, U, h, w]
@group(0) @binding(2) var<storage, read> t_thr: array<f32>; // [U]
@group(0) @binding(3) var<storage, read> t_lab: array<u32>; // [B, planes, sh * sw]
@group(0) @binding(4) var<storage, read> t_cats: array<u32>; // [labels] category bit set
@group(0) @binding(5) var<storage, read_write> t_both: array<atomic<u32>>; // [U, labels]
@group(0) @binding(6) var<storage, read_write> t_size: array<atomic<u32>>; // [B, U] |M_u|
@group(0) @binding(7) var<storage, read_write> t_hit: array<atomic<u32>>; // [B, U] categories hit
@group(0) @binding(8) var<storage, read> t_active: array<u32>; // [B, U] map max > threshold

var<workgroup> wg_size: atomic<u32>;
var<workgroup> wg_hit: atomic<u32>;
var<workgroup> wg_active: u32;

// PyTorch's source index for align_corners = False, clamped below at 0.
fn source(d: u32, scale: f32) -> f32 {
    return max((f32(d) + 0.5) * scale - 0.5, 0.0);
}

// The up-sampled map of (b, u) at mask pixel (y, x), computed as PyTorch does.
fn upsampled(base: u32, y: u32, x: u32) -> f32 {
    let sy = source(y, f32(p.h) / f32(p.sh));
    let sx = source(x, f32(p.w) / f32(p.sw));
    let y0 = min(u32(sy), p.h - 1u);
    let x0 = min(u32(sx), p.w - 1u);
    let y1 = min(y0 + 1u, p.h - 1u);
    let x1 = min(x0 + 1u, p.w - 1u);
    let ly = sy - f32(y0);
    let lx = sx - f32(x0);
    let top = (1.0 - lx) * t_act[base + y0 * p.w + x0] + lx * t_act[base + y0 * p.w + x1];
    let bottom = (1.0 - lx) * t_act[base + y1 * p.w + x0] + lx * t_act[base + y1 * p.w + x1];
    return (1.0 - ly) * top + ly * bottom;
}

@compute @workgroup_size(256, 1, 1)
fn dissect_tally(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let u = wid.y;
    let b = wid.z;
    if (lid == 0u) {
        atomicStore(&wg_size, 0u);
        atomicStore(&wg_hit, 0u);
        wg_active = t_active[b * p.units + u];
    }
    // an up-sampled value never exceeds the map's max: most (image, unit) pairs of a
    // deep layer stop here
    if (workgroupUniformLoad(&wg_active) == 0u) { return; }
    let plane = p.sh * p.sw;
    let i = gid.x;
    if (i < plane) {
        let v = upsampled((b * p.units + u) * p.h * p.w, i / p.sw, i % p.sw);
        if (v > t_thr[u]) {
            atomicAdd(&wg_size, 1u);
            var hit = 0u;
            for (var k = 0u; k < p.planes; k++) {
                let l = t_lab[(b * p.planes + k) * plane + i];
                if (l > 0u && l < p.labels) {
                    atomicAdd(&t_both[u * p.labels + l], 1u);
                    hit |= t_cats[l];
                }
            }
            if (hit != 0u) { atomicOr(&wg_hit, hit); }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        let s = atomicLoad(&wg_size);
        if (s > 0u) {
            atomicAdd(&t_size[b * p.units + u], s);
            atomicOr(&t_hit[b * p.units + u], atomicLoad(&wg_hit));
        }
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
