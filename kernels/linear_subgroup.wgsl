// linear forward for small batches on adapters whose subgroups have one fixed size SG (a
// pipeline constant, the adapter's): a workgroup is one subgroup, one per (output feature,
// group of 8 batch rows); its lanes split k and subgroupAdd reduces, so there is no
// workgroup memory and no barrier (linear_forward reduces through shared memory in 6).
override SG: u32 = 32u;

@compute @workgroup_size(SG, 1, 1)
fn linear_forward_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = wid.x + wid.z * nwg.x;
    if (o >= p.o_count) { return; } // uniform per workgroup
    let n0 = wid.y * ROWS;
    let rows = min(ROWS, p.n - n0);
    var acc = lane_sums(o, n0, rows, lid, SG);
    for (var r = 0u; r < ROWS; r++) {
        let v = subgroupAdd(acc[r]);
        if (lid == 0u && r < rows) { finish(o, n0 + r, v); }
    }
}
