// The tiled GEMM through workgroup memory (conv2d_tiled.wgsl holds the rest). B's slice
// buffers: [BK][BN] as vec4s along n, rows padded to 17 vec4s so that the 8 lanes storing
// one weight row's 8 slices hit different banks; 4.25 KiB beside A's 8.
const BROW: u32 = 17u;
var<workgroup> tile_b: array<vec4<f32>, 272>;

// Thread (tx, ty) of 16 x 16 owns pixels m0 + 4 tx + (0..3) and m0 + 64 + 4 tx + (0..3)
// and channels n0 + 4 ty + (0..3): eight vec4 rows of accumulators. Per slice it loads
// 4 A and 2 B values from memory into registers, which go to the other shared buffer while
// this one is multiplied: one barrier per slice.
fn gemm(mode: u32, pointwise: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, lxy: vec3<u32>) {
    let t = tile(mode, wid, nwg);
    if (t.m0 >= t.s.m) { return; } // uniform per workgroup
    var a = a_first(mode, t, lid);
    // B loads: slice lid % 8, column lid / 8 + 32 j, so 8 neighbouring lanes read 8
    // neighbouring weights of one row.
    let b_kk = lid % BK;
    let b_col = lid / BK;
    let d = kpos(BK);
    var kb = kpos(t.k_begin + b_kk);
    var rb: vec2<f32>;
    for (var j = 0u; j < 2u; j++) {
        rb[j] = load_b(mode, t.w0, kb, t.n0 + b_col + 32u * j, t.k_end, t.s.k, t.s.n);
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    let tx = lxy.x;
    let ty = lxy.y;
    var buf = 0u;
    for (var k0 = t.k_begin; k0 < t.k_end; k0 += BK) {
        // registers -> shared buffer `buf`
        a_store(a, buf);
        for (var j = 0u; j < 2u; j++) {
            let col = b_col + 32u * j;
            tile_b[buf * BK * BROW + b_kk * BROW + col / 4u][col % 4u] = rb[j];
        }
        workgroupBarrier();
        // the next slice's loads are in flight while this one is multiplied
        if (k0 + BK < t.k_end) {
            a_next(mode, pointwise, &a, d, t.k_end);
            kb = advance(kb, d);
            for (var j = 0u; j < 2u; j++) {
                rb[j] = load_b(mode, t.w0, kb, t.n0 + b_col + 32u * j, t.k_end, t.s.k, t.s.n);
            }
        }
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = tile_a[buf * 256u + kk * 32u + tx];
            let a1 = tile_a[buf * 256u + kk * 32u + 16u + tx];
            let b = tile_b[buf * BK * BROW + kk * BROW + ty];
            acc0 = fma(vec4<f32>(a0.x), b, acc0);
            acc1 = fma(vec4<f32>(a0.y), b, acc1);
            acc2 = fma(vec4<f32>(a0.z), b, acc2);
            acc3 = fma(vec4<f32>(a0.w), b, acc3);
            acc4 = fma(vec4<f32>(a1.x), b, acc4);
            acc5 = fma(vec4<f32>(a1.y), b, acc5);
            acc6 = fma(vec4<f32>(a1.z), b, acc6);
            acc7 = fma(vec4<f32>(a1.w), b, acc7);
        }
        // The other buffer was last read before the previous barrier, so it is free to be
        // written; no second barrier.
        buf ^= 1u;
    }
    let ma = t.m0 + 4u * tx;
    let mb = ma + 64u;
    let n = t.n0 + 4u * ty;
    store_row(mode, t.item0, t.slice, ma, n, t.s, acc0);
    store_row(mode, t.item0, t.slice, ma + 1u, n, t.s, acc1);
    store_row(mode, t.item0, t.slice, ma + 2u, n, t.s, acc2);
    store_row(mode, t.item0, t.slice, ma + 3u, n, t.s, acc3);
    store_row(mode, t.item0, t.slice, mb, n, t.s, acc4);
    store_row(mode, t.item0, t.slice, mb + 1u, n, t.s, acc5);
    store_row(mode, t.item0, t.slice, mb + 2u, n, t.s, acc6);
    store_row(mode, t.item0, t.slice, mb + 3u, n, t.s, acc7);
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) lxy: vec3<u32>,
) {
    gemm(FORWARD, false, wid, nwg, lid, lxy);
}

// conv2d_forward and conv2d_backward_input for 1x1 convolutions at stride 1 without
// padding (the launchers check).
@compute @workgroup_size(16, 16, 1)
fn conv2d_forward_pointwise(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) lxy: vec3<u32>,
) {
    gemm(FORWARD, true, wid, nwg, lid, lxy);
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_backward_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) lxy: vec3<u32>,
) {
    gemm(BACKWARD_INPUT, false, wid, nwg, lid, lxy);
}

@compute @workgroup_size(16, 16, 1)
fn conv2d_backward_input_pointwise(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) lxy: vec3<u32>,
) {
    gemm(BACKWARD_INPUT, true, wid, nwg, lid, lxy);
}

