// Selection per row of [rows, per] values: histograms (u32 counts, for quantiles) and the
// k largest values with their indices (for thresholds and top patches).

struct SelectParams {
    rows: u32, per: u32, bins: u32, k: u32,
    lo: f32, hi: f32, accumulate: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: SelectParams;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

// counts[row, b] (+)= the values of the row in bin b of [lo, hi) split in `bins` equal
// bins; values below lo count in bin 0, at or above hi in the last bin.
@group(0) @binding(1) var<storage, read> hist_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> hist_counts: array<atomic<u32>>;

@compute @workgroup_size(64, 1, 1)
fn histogram(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.rows * p.per) { return; }
    let row = i / p.per;
    let t = (hist_x[i] - p.lo) / (p.hi - p.lo) * f32(p.bins);
    let b = u32(clamp(t, 0.0, f32(p.bins - 1u)));
    atomicAdd(&hist_counts[row * p.bins + b], 1u);
}

// values[row, 0..k] and indices[row, 0..k]: the row's k largest values, largest first,
// ties by the smaller index. One workgroup per row: each invocation keeps its own top k
// of a strided share, then invocation 0 merges the 64 lists.
const KMAX: u32 = 16u;

@group(0) @binding(1) var<storage, read> top_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> top_values: array<f32>;
@group(0) @binding(3) var<storage, read_write> top_indices: array<u32>;

var<workgroup> cand_v: array<f32, 1024>; // [64][KMAX]
var<workgroup> cand_i: array<u32, 1024>;

// a ranks before b: larger value, or equal value and smaller index
fn before(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
    return av > bv || (av == bv && ai < bi);
}

@compute @workgroup_size(64, 1, 1)
fn top_k(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.z * nwg.x;
    if (row >= p.rows) { return; } // uniform per workgroup
    let base = row * p.per;
    let slot = lid * KMAX;
    for (var j = 0u; j < KMAX; j++) {
        cand_v[slot + j] = -3.4e38;
        cand_i[slot + j] = 0xffffffffu;
    }
    // insertion into this invocation's sorted list of k
    for (var e = lid; e < p.per; e += 64u) {
        let v = top_x[base + e];
        if (!before(v, e, cand_v[slot + p.k - 1u], cand_i[slot + p.k - 1u])) { continue; }
        var j = p.k - 1u;
        loop {
            if (j == 0u || !before(v, e, cand_v[slot + j - 1u], cand_i[slot + j - 1u])) { break; }
            cand_v[slot + j] = cand_v[slot + j - 1u];
            cand_i[slot + j] = cand_i[slot + j - 1u];
            j -= 1u;
        }
        cand_v[slot + j] = v;
        cand_i[slot + j] = e;
    }
    workgroupBarrier();
    if (lid != 0u) { return; }
    // merge: k times, take the best head among the 64 lists
    var heads: array<u32, 64>;
    for (var l = 0u; l < 64u; l++) { heads[l] = 0u; }
    for (var r = 0u; r < p.k; r++) {
        var best = 0u;
        var bv = -3.4e38;
        var bi = 0xffffffffu;
        for (var l = 0u; l < 64u; l++) {
            if (heads[l] >= p.k) { continue; }
            let v = cand_v[l * KMAX + heads[l]];
            let ix = cand_i[l * KMAX + heads[l]];
            if (before(v, ix, bv, bi)) { best = l; bv = v; bi = ix; }
        }
        heads[best] += 1u;
        top_values[row * p.k + r] = bv;
        top_indices[row * p.k + r] = bi;
    }
}
