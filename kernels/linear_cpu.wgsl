// Linear layers at small batches on the CPU-shaped variants (cpu, cpu-tex): one
// matrix-vector product per batch item over the conv GEMMs' packed weights (rows of vec4
// groups of 4 reduction channels: outputs' rows [co][ci/4] forward, inputs' rows
// [ci][co/4] for the input gradient, as conv2d_cpu.wgsl reads them with one tap). That
// GEMM shares each weight load between 16 pixels; at batch 1 fifteen of them are idle.
// Here a workgroup (8 lanes) owns 32 rows of one item, lane s rows s, 8 + s, 16 + s and
// 24 + s, and every weight group is loaded once and used once. The input gradient can also
// read the forward rows (linear_backward_input_cpu_strips), so that a model's first
// gradients make no transposed copy. Each output is summed in the GEMM's order (one
// multiply-add after another along the reduction), so a layer's output does not depend on
// which kernel ran: a batch split into passes gives the same bits.
// Bindings and preludes as conv2d_cpu.wgsl (winit, wload4, xbase, xload4); same uniform
// (flags bit0 ReLU, bit1 bias, bit2 accumulate).

const ROWS: u32 = 32u; // rows a workgroup owns (ops/conv.rs: GEMV_ROWS)

@group(0) @binding(0) var<uniform> p: Conv2dParams;

// The sums of a lane's 4 rows.
struct Dots { d0: f32, d1: f32, d2: f32, d3: f32 }

// a + x . w, one multiply-add after another (conv2d_cpu.wgsl's mac, for one output).
fn chain(a: f32, x: vec4<f32>, w: vec4<f32>) -> f32 {
    var r = fma(x.x, w.x, a);
    r = fma(x.y, w.y, r);
    r = fma(x.z, w.z, r);
    return fma(x.w, w.w, r);
}

// Rows row0, row0 + 8, row0 + 16, row0 + 24 (clamped to `rows`: a partial block reads a
// valid row and never stores it) of c4n groups each, against the input groups at xb
// (`count` channels, zero past them; the same in every lane).
fn dots(row0: u32, rows: u32, c4n: u32, xb: u32, count: u32) -> Dots {
    let last = rows - 1u;
    let r0 = min(row0, last) * c4n;
    let r1 = min(row0 + 8u, last) * c4n;
    let r2 = min(row0 + 16u, last) * c4n;
    let r3 = min(row0 + 24u, last) * c4n;
    var d = Dots(0.0, 0.0, 0.0, 0.0);
    for (var c4 = 0u; c4 < c4n; c4++) {
        let x = xload4(xb, c4, 1u, count, true);
        d.d0 = chain(d.d0, x, wload4(r0 + c4));
        d.d1 = chain(d.d1, x, wload4(r1 + c4));
        d.d2 = chain(d.d2, x, wload4(r2 + c4));
        d.d3 = chain(d.d3, x, wload4(r3 + c4));
    }
    return d;
}

fn dot_of(d: Dots, t: u32) -> f32 {
    var r = d.d0;
    r = select(r, d.d1, t == 1u);
    r = select(r, d.d2, t == 2u);
    r = select(r, d.d3, t == 3u);
    return r;
}

// Stores rows row0 + 8t (t < 4, below `rows`) of item b at output[base + row], the local
// row's bias added with flags bit1, ReLU with bit0, added to the output with bit2.
fn store(d: Dots, row0: u32, rows: u32, base: u32) {
    for (var t = 0u; t < 4u; t++) {
        let r = row0 + 8u * t;
        if (r >= rows) { return; }
        put(base + r, activate(dot_of(d, t), r));
    }
}

// y[b, co] = sum_ci x[b, ci] W[co, ci] + bias[co], co over this launch's weight rows.
@compute @workgroup_size(8, 1, 1)
fn linear_forward_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    winit();
    let b = wid.y;
    let row0 = (wid.x + wid.z * nwg.x) * ROWS + lid;
    let xb = xbase(b, p.cin, 0u, p.cin, 1u);
    let d = dots(row0, p.co_count, (p.cin + 3u) / 4u, xb, p.cin);
    store(d, row0, p.co_count, b * p.cout + p.co_offset);
}

// dx[b, ci] = sum_co dY[b, co] W[co, ci], co over this launch's weight rows (packed
// [ci][co/4]); no bias or ReLU (flags bit 2 at most).
@compute @workgroup_size(8, 1, 1)
fn linear_backward_input_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    winit();
    let b = wid.y;
    let row0 = (wid.x + wid.z * nwg.x) * ROWS + lid;
    let yb = xbase(b, p.cout, p.co_offset, p.co_count, 1u);
    let d = dots(row0, p.cin, (p.co_count + 3u) / 4u, yb, p.co_count);
    store(d, row0, p.cin, b * p.cin);
}

// The four rows co .. co + 3 of group g (clamped to `last`: dY is 0 past the chunk's rows,
// where the GEMM's weights are zero padding, so with finite weights the sums are the same).
fn rows4(co: u32, last: u32, c4n: u32, g: u32) -> mat4x4<f32> {
    return mat4x4<f32>(
        wload4(co * c4n + g),
        wload4(min(co + 1u, last) * c4n + g),
        wload4(min(co + 2u, last) * c4n + g),
        wload4(min(co + 3u, last) * c4n + g),
    );
}

// Stores item b's sums a[j] of input groups g[j] (4 inputs each; those below cin).
fn store_groups(b: u32, g: vec4<u32>, a: mat4x4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        for (var k = 0u; k < 4u; k++) {
            let ci = 4u * g[j] + k;
            if (ci < p.cin) { put(b * p.cin + ci, a[j][k]); }
        }
    }
}

// As linear_backward_input_cpu, reading the weights in their forward packing ([co][ci/4]).
// A workgroup owns 64 input groups (STRIP inputs), lane s groups s, 8 + s, ..., 56 + s, so
// that each row is read 1 KB at a time (a strip 8 times narrower ran 2.9x slower on fc6);
// still, walking down the rows, it takes about twice as long as the kernel above.
const STRIP: u32 = 256u; // inputs a workgroup owns (ops/conv.rs: GEMV_STRIP)

@compute @workgroup_size(8, 1, 1)
fn linear_backward_input_cpu_strips(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    winit();
    let b = wid.y;
    let c4n = (p.cin + 3u) / 4u;
    let g0 = (wid.x + wid.z * nwg.x) * (STRIP / 4u) + lid;
    let g = vec4<u32>(g0, g0 + 8u, g0 + 16u, g0 + 24u);
    let h = g + vec4<u32>(32u);
    // lanes past the end read a valid group and store nothing
    let gg = min(g, vec4<u32>(c4n - 1u));
    let hh = min(h, vec4<u32>(c4n - 1u));
    let yb = xbase(b, p.cout, p.co_offset, p.co_count, 1u);
    let last = p.co_count - 1u;
    var a0 = vec4<f32>(0.0);
    var a1 = a0;
    var a2 = a0;
    var a3 = a0;
    var a4 = a0;
    var a5 = a0;
    var a6 = a0;
    var a7 = a0;
    for (var c4 = 0u; c4 < (p.co_count + 3u) / 4u; c4++) {
        let y = xload4(yb, c4, 1u, p.co_count, true);
        let co = 4u * c4;
        a0 = mac_cols(a0, y, rows4(co, last, c4n, gg.x));
        a1 = mac_cols(a1, y, rows4(co, last, c4n, gg.y));
        a2 = mac_cols(a2, y, rows4(co, last, c4n, gg.z));
        a3 = mac_cols(a3, y, rows4(co, last, c4n, gg.w));
        a4 = mac_cols(a4, y, rows4(co, last, c4n, hh.x));
        a5 = mac_cols(a5, y, rows4(co, last, c4n, hh.y));
        a6 = mac_cols(a6, y, rows4(co, last, c4n, hh.z));
        a7 = mac_cols(a7, y, rows4(co, last, c4n, hh.w));
    }
    store_groups(b, g, mat4x4<f32>(a0, a1, a2, a3));
    store_groups(b, h, mat4x4<f32>(a4, a5, a6, a7));
}
