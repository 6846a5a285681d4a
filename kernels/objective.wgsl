// Objectives on the device: the seed of a backward walk (d objective / d layer output)
// and the objective's value per item, from the layer's output z and each item's target,
// so a loop iteration never reads back. One workgroup per item.
// Modes: 0 logit z_t (seed one-hot), 1 logit x one-hot (seed z_t at t: LRP's start),
// 2 softmax probability p_t (seed p_t (onehot - p)), 3 log-probability log p_t
// (seed onehot - p), 4 a unit z[t, y, x] (seed one-hot there), 5 a channel's mean
// (seed 1 / HW over channel t), 6 the logit of each row's argmax (first maximum; the
// targets are not read, and value holds the argmax index, so a pass with no given target
// needs no readback between its forward and backward walks), 7 as 6 with the seed one-hot x
// logit (LRP's start at each row's top class).

struct ObjectiveParams {
    rows: u32, // items
    per: u32, // values per item: classes, or C * H * W
    plane: u32, // H * W (1 for [N, F] outputs)
    mode: u32,
    width: u32, // W
    _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ObjectiveParams;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>; // [N] or [N, 3] (t, y, x)
@group(0) @binding(3) var<storage, read_write> seed: array<f32>;
@group(0) @binding(4) var<storage, read_write> value: array<f32>; // [N]

var<workgroup> part: array<f32, 64>;
var<workgroup> part_i: array<u32, 64>;

// The first maximum of part/part_i into slot 0 (larger value, else smaller index).
fn tree_argmax(lid: u32) {
    for (var s = 32u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lid < s) {
            let a = part[lid];
            let b = part[lid + s];
            if (b > a || (b == a && part_i[lid + s] < part_i[lid])) {
                part[lid] = b;
                part_i[lid] = part_i[lid + s];
            }
        }
    }
    workgroupBarrier();
}

fn tree_max(lid: u32) {
    for (var s = 32u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lid < s) { part[lid] = max(part[lid], part[lid + s]); }
    }
    workgroupBarrier();
}

fn tree_sum(lid: u32) {
    for (var s = 32u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lid < s) { part[lid] += part[lid + s]; }
    }
    workgroupBarrier();
}

@compute @workgroup_size(64, 1, 1)
fn objective(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.z * nwg.x;
    if (row >= p.rows) { return; } // uniform per workgroup
    let base = row * p.per;
    if (p.mode == 6u || p.mode == 7u) {
        var best = -3.4e38;
        var at = 0xffffffffu;
        for (var j = lid; j < p.per; j += 64u) {
            let v = z[base + j];
            if (v > best) { best = v; at = j; } // strided ascending: first maximum kept
        }
        part[lid] = best;
        part_i[lid] = at;
        tree_argmax(lid);
        let arg = min(part_i[0], p.per - 1u);
        let s = select(1.0, z[base + arg], p.mode == 7u);
        for (var j = lid; j < p.per; j += 64u) { seed[base + j] = select(0.0, s, j == arg); }
        if (lid == 0u) { value[row] = f32(arg); }
        return;
    }
    let t = select(u32(targets[row]), 0u, p.mode == 4u);
    if (p.mode <= 1u) {
        for (var j = lid; j < p.per; j += 64u) {
            var s = select(0.0, 1.0, j == t);
            if (p.mode == 1u) { s *= z[base + j]; }
            seed[base + j] = s;
        }
        if (lid == 0u) { value[row] = z[base + t]; }
        return;
    }
    if (p.mode <= 3u) {
        var m = -3.4e38;
        for (var j = lid; j < p.per; j += 64u) { m = max(m, z[base + j]); }
        part[lid] = m;
        tree_max(lid);
        let zmax = part[0];
        workgroupBarrier();
        var e = 0.0;
        for (var j = lid; j < p.per; j += 64u) { e += exp(z[base + j] - zmax); }
        part[lid] = e;
        tree_sum(lid);
        let total = part[0];
        let logp_t = z[base + t] - zmax - log(total);
        let p_t = exp(logp_t);
        for (var j = lid; j < p.per; j += 64u) {
            let pj = exp(z[base + j] - zmax) / total;
            let d = select(0.0, 1.0, j == t) - pj;
            seed[base + j] = select(d, p_t * d, p.mode == 2u);
        }
        if (lid == 0u) { value[row] = select(logp_t, p_t, p.mode == 2u); }
        return;
    }
    if (p.mode == 4u) {
        // targets [N, 3]: channel, y, x
        let at = u32(targets[3u * row]) * p.plane + u32(targets[3u * row + 1u]) * p.width + u32(targets[3u * row + 2u]);
        for (var j = lid; j < p.per; j += 64u) { seed[base + j] = select(0.0, 1.0, j == at); }
        if (lid == 0u) { value[row] = z[base + at]; }
        return;
    }
    // mode 5: mean of channel t
    let lo = t * p.plane;
    let inv = 1.0 / f32(p.plane);
    var acc = 0.0;
    for (var j = lid; j < p.per; j += 64u) {
        let inside = j >= lo && j < lo + p.plane;
        seed[base + j] = select(0.0, inv, inside);
        if (inside) { acc += z[base + j]; }
    }
    part[lid] = acc;
    tree_sum(lid);
    if (lid == 0u) { value[row] = part[0] * inv; }
}
