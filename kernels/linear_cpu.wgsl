// Linear layers at small batches on the CPU-shaped variants (cpu, cpu-tex): one
// matrix-vector product per batch item over the conv GEMMs' packed weights (rows of vec4
// groups of 4 reduction channels: outputs' rows [co][ci/4] forward, inputs' rows
// [ci][co/4] for the input gradient, as conv2d_cpu.wgsl reads them with one tap). That
// GEMM shares each weight load between 16 pixels; at batch 1 fifteen of them are idle.
// Here a workgroup (one subgroup of 8 lanes) owns 8 rows of one item, the lanes split
// the reduction (lane s groups s, 8 + s, ..) and subgroupAdd joins their sums; every
// weight group is loaded once and used once, so memory sets the pace. Needs subgroups of
// exactly 8 invocations. Bindings and preludes as conv2d_cpu.wgsl (winit, wload4, xbase,
// xload4); same uniform (flags bit0 ReLU, bit1 bias, bit2 accumulate).

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>; // y, or dx

// The 8 sums of the workgroup's rows, in every lane.
struct Dots { d0: f32, d1: f32, d2: f32, d3: f32, d4: f32, d5: f32, d6: f32, d7: f32 }

// Rows row0 .. row0 + 7 (clamped to `rows`: a partial block reads a valid row and never
// stores it) of c4n groups each, against the input groups at xb (`count` channels, zero
// past them). Lane s takes groups s, 8 + s, ..: the lanes read 8 neighbouring groups of
// each row at once, eight streams through memory a workgroup, and the lanes' partial sums
// are added at the end.
fn dots(row0: u32, rows: u32, c4n: u32, xb: u32, count: u32, s: u32) -> Dots {
    let last = rows - 1u;
    let r0 = min(row0, last) * c4n;
    let r1 = min(row0 + 1u, last) * c4n;
    let r2 = min(row0 + 2u, last) * c4n;
    let r3 = min(row0 + 3u, last) * c4n;
    let r4 = min(row0 + 4u, last) * c4n;
    let r5 = min(row0 + 5u, last) * c4n;
    let r6 = min(row0 + 6u, last) * c4n;
    let r7 = min(row0 + 7u, last) * c4n;
    let z = vec4<f32>(0.0);
    var a0 = z; var a1 = z; var a2 = z; var a3 = z;
    var a4 = z; var a5 = z; var a6 = z; var a7 = z;
    let steps = (c4n + LANES - 1u) / LANES;
    for (var i = 0u; i < steps; i++) {
        let g = i * LANES + s;
        let c4 = min(g, c4n - 1u);
        let x = xload4(xb, c4, 1u, count, g < c4n);
        a0 = fma(wload4(r0 + c4), x, a0);
        a1 = fma(wload4(r1 + c4), x, a1);
        a2 = fma(wload4(r2 + c4), x, a2);
        a3 = fma(wload4(r3 + c4), x, a3);
        a4 = fma(wload4(r4 + c4), x, a4);
        a5 = fma(wload4(r5 + c4), x, a5);
        a6 = fma(wload4(r6 + c4), x, a6);
        a7 = fma(wload4(r7 + c4), x, a7);
    }
    let one = vec4<f32>(1.0);
    return Dots(subgroupAdd(dot(a0, one)), subgroupAdd(dot(a1, one)), subgroupAdd(dot(a2, one)), subgroupAdd(dot(a3, one)), subgroupAdd(dot(a4, one)), subgroupAdd(dot(a5, one)), subgroupAdd(dot(a6, one)), subgroupAdd(dot(a7, one)));
}

fn dot_of(d: Dots, t: u32) -> f32 {
    var r = d.d0;
    r = select(r, d.d1, t == 1u);
    r = select(r, d.d2, t == 2u);
    r = select(r, d.d3, t == 3u);
    r = select(r, d.d4, t == 4u);
    r = select(r, d.d5, t == 5u);
    r = select(r, d.d6, t == 6u);
    r = select(r, d.d7, t == 7u);
    return r;
}

// Lane t stores row row0 + t (if < rows) of item b at output[base + row]: the local
// row's bias added with flags bit1, ReLU with bit0, added to the output with bit2.
fn store(d: Dots, row0: u32, rows: u32, base: u32, t: u32) {
    let r = row0 + t;
    if (r >= rows) { return; }
    var v = dot_of(d, t);
    if ((p.flags & 2u) != 0u) { v += bias[r]; }
    if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
    let i = base + r;
    if ((p.flags & 4u) != 0u) { output[i] += v; } else { output[i] = v; }
}

// y[b, co] = sum_ci x[b, ci] W[co, ci] + bias[co], co over this launch's weight rows.
@compute @workgroup_size(8, 1, 1)
fn linear_forward_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    winit();
    let b = wid.y;
    let row0 = (wid.x + wid.z * nwg.x) * LANES;
    let xb = xbase(b, p.cin, 0u, p.cin, 1u);
    let d = dots(row0, p.co_count, (p.cin + 3u) / 4u, xb, p.cin, sid);
    store(d, row0, p.co_count, b * p.cout + p.co_offset, sid);
}

// dx[b, ci] = sum_co dY[b, co] W[co, ci], co over this launch's weight rows (packed
// [ci][co/4]); no bias or ReLU (flags bit 2 at most).
@compute @workgroup_size(8, 1, 1)
fn linear_backward_input_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    winit();
    let b = wid.y;
    let row0 = (wid.x + wid.z * nwg.x) * LANES;
    let yb = xbase(b, p.cout, p.co_offset, p.co_count, 1u);
    let d = dots(row0, p.cin, (p.co_count + 3u) / 4u, yb, p.co_count, sid);
    store(d, row0, p.cin, b * p.cin, sid);
}
