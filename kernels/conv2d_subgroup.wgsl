// The tiled GEMM with the weights through subgroup broadcasts instead of workgroup memory,
// for GPUs whose subgroups are 8 to 32 lanes wide (`tiled-subgroup`; conv2d_tiled.wgsl
// holds the rest). Same tiles, same A slices through workgroup memory, same sums in the
// same order as conv2d.wgsl, so the same bits; no B buffers, no B stores, 8 KiB of
// workgroup memory instead of 12.25.
//
// Thread i = subgroup * size + lane (counted by subgroup, so the driver's numbering of
// invocations does not matter) owns pixels m0 + 4 (i % 32) + (0..3) and channels
// n0 + 8 (i / 32) + (0..7). A subgroup's size divides 32, so its lanes share i / 32: its
// channels. Each lane loads the slice's weights of those 8 channels at reduction index
// k0 + lane % 8 (lanes past 8 repeat lanes 0..7), and subgroupBroadcast from lane kk
// hands every lane the 8 weights of step kk: a register read on GPUs that keep a subgroup
// in one register file row (Intel's), where workgroup memory is the slow path.

// acc[2 p] and acc[2 p + 1]: channels 0..3 and 4..7 of the thread's pixel p.
fn mac(acc: ptr<function, array<vec4<f32>, 8>>, a: vec4<f32>, lo: vec4<f32>, hi: vec4<f32>) {
    (*acc)[0] = fma(vec4<f32>(a.x), lo, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(a.x), hi, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(a.y), lo, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(a.y), hi, (*acc)[3]);
    (*acc)[4] = fma(vec4<f32>(a.z), lo, (*acc)[4]);
    (*acc)[5] = fma(vec4<f32>(a.z), hi, (*acc)[5]);
    (*acc)[6] = fma(vec4<f32>(a.w), lo, (*acc)[6]);
    (*acc)[7] = fma(vec4<f32>(a.w), hi, (*acc)[7]);
}

// Weights of channels n .. n + 3 at reduction index kb.
fn load_b4(mode: u32, t: Tile, kb: Kpos, n: u32) -> vec4<f32> {
    return vec4<f32>(
        load_b(mode, t.w0, kb, n, t.k_end, t.s.k, t.s.n),
        load_b(mode, t.w0, kb, n + 1u, t.k_end, t.s.k, t.s.n),
        load_b(mode, t.w0, kb, n + 2u, t.k_end, t.s.k, t.s.n),
        load_b(mode, t.w0, kb, n + 3u, t.k_end, t.s.k, t.s.n),
    );
}

fn gemm_subgroup(mode: u32, pointwise: bool, wid: vec3<u32>, nwg: vec3<u32>, sg: u32, size: u32, lane: u32) {
    let t = tile(mode, wid, nwg);
    if (t.m0 >= t.s.m) { return; } // uniform per workgroup
    let i = sg * size + lane;
    var a = a_first(mode, t, i);
    let col = i % 32u;
    let n = t.n0 + 8u * (i / 32u);
    let d = kpos(BK);
    var kb = kpos(t.k_begin + lane % BK);
    var lo = load_b4(mode, t, kb, n);
    var hi = load_b4(mode, t, kb, n + 4u);
    var acc: array<vec4<f32>, 8>;
    var buf = 0u;
    // Every lane runs every step: broadcasts need the whole subgroup.
    for (var k0 = t.k_begin; k0 < t.k_end; k0 += BK) {
        a_store(a, buf);
        workgroupBarrier();
        let wl = lo;
        let wh = hi;
        // the next slice's loads are in flight while this one is multiplied
        if (k0 + BK < t.k_end) {
            a_next(mode, pointwise, &a, d, t.k_end);
            kb = advance(kb, d);
            lo = load_b4(mode, t, kb, n);
            hi = load_b4(mode, t, kb, n + 4u);
        }
        let r = buf * 256u + col;
        mac(&acc, tile_a[r], subgroupBroadcast(wl, 0u), subgroupBroadcast(wh, 0u));
        mac(&acc, tile_a[r + 32u], subgroupBroadcast(wl, 1u), subgroupBroadcast(wh, 1u));
        mac(&acc, tile_a[r + 64u], subgroupBroadcast(wl, 2u), subgroupBroadcast(wh, 2u));
        mac(&acc, tile_a[r + 96u], subgroupBroadcast(wl, 3u), subgroupBroadcast(wh, 3u));
        mac(&acc, tile_a[r + 128u], subgroupBroadcast(wl, 4u), subgroupBroadcast(wh, 4u));
        mac(&acc, tile_a[r + 160u], subgroupBroadcast(wl, 5u), subgroupBroadcast(wh, 5u));
        mac(&acc, tile_a[r + 192u], subgroupBroadcast(wl, 6u), subgroupBroadcast(wh, 6u));
        mac(&acc, tile_a[r + 224u], subgroupBroadcast(wl, 7u), subgroupBroadcast(wh, 7u));
        // The other buffer was last read before the previous barrier: no second barrier.
        buf ^= 1u;
    }
    let m = t.m0 + 4u * col;
    for (var p = 0u; p < 4u; p++) {
        store_row(mode, t.item0, t.slice, m + p, n, t.s, acc[2u * p]);
        store_row(mode, t.item0, t.slice, m + p, n + 4u, t.s, acc[2u * p + 1u]);
    }
}

@compute @workgroup_size(256, 1, 1)
fn conv2d_forward_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_size) size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    gemm_subgroup(FORWARD, false, wid, nwg, sg, size, lane);
}

// 1x1 convolutions at stride 1 without padding (the launchers check).
@compute @workgroup_size(256, 1, 1)
fn conv2d_forward_pointwise_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_size) size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    gemm_subgroup(FORWARD, true, wid, nwg, sg, size, lane);
}

@compute @workgroup_size(256, 1, 1)
fn conv2d_backward_input_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_size) size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    gemm_subgroup(BACKWARD_INPUT, false, wid, nwg, sg, size, lane);
}

@compute @workgroup_size(256, 1, 1)
fn conv2d_backward_input_pointwise_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_size) size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    gemm_subgroup(BACKWARD_INPUT, true, wid, nwg, sg, size, lane);
}
