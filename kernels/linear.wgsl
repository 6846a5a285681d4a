// linear forward for small batches: one workgroup per (output feature, group of 8 batch
// rows); its 64 threads split k and reduce in shared memory.
var<workgroup> partial: array<f32, 512>; // [ROWS][64]

@compute @workgroup_size(64, 1, 1)
fn linear_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = wid.x + wid.z * nwg.x;
    if (o >= p.o_count) { return; } // uniform per workgroup
    let n0 = wid.y * ROWS;
    let rows = min(ROWS, p.n - n0);
    var acc = lane_sums(o, n0, rows, lid, 64u);
    for (var r = 0u; r < ROWS; r++) { partial[r * 64u + lid] = acc[r]; }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) {
            for (var r = 0u; r < ROWS; r++) { partial[r * 64u + lid] += partial[r * 64u + lid + s]; }
        }
        workgroupBarrier();
    }
    if (lid < rows) { finish(o, n0 + lid, partial[lid * 64u]); }
}

// linear input-gradient for small batches: dx[n, k] (+)= sum_o dy[n, o_offset + o] W[o, k].
// One thread per (k, group of 8 rows); threads of a workgroup read adjacent k, so weight
// columns are read coalesced. Launches after the first chunk accumulate (flags bit 2).
@compute @workgroup_size(64, 1, 1)
fn linear_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.z * nwg.x * 64u;
    if (k >= p.in_features) { return; }
    let n0 = gid.y * ROWS;
    let rows = min(ROWS, p.n - n0);
    var acc: array<f32, 8>;
    for (var r = 0u; r < ROWS; r++) { acc[r] = 0.0; }
    for (var o = 0u; o < p.o_count; o++) {
        let wv = wload(o * p.in_features + k);
        for (var r = 0u; r < rows; r++) {
            acc[r] = fma(input[(n0 + r) * p.out_features + p.o_offset + o], wv, acc[r]);
        }
    }
    for (var r = 0u; r < rows; r++) {
        let i = (n0 + r) * p.in_features + k;
        if ((p.flags & 4u) != 0u) { output[i] += acc[r]; } else { output[i] = acc[r]; }
    }
}
