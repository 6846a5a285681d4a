// conv2d forward and input-gradient for launches with few output channels (the input
// gradient of a network's first conv: 3 channels), on the CPU-shaped variants.
// conv2d_cpu.wgsl spreads 64 channels over the lanes, so with 3 of them 61 of every 64
// multiply-adds are thrown away. Here a lane owns 4 pixels (s, 8 + s, 16 + s, 24 + s of
// the workgroup's 32) and a block of 4 channels for each: per step the 4 channels' weight
// groups are loaded once (the same in every lane), transposed, and used for all 4
// pixels; no subgroup operations, no workgroup memory. Weights, preludes (winit, wload4,
// xbase, xload4) and uniform as conv2d_cpu.wgsl (flags bit0 ReLU, bit1 bias, bit2
// accumulate).

@group(0) @binding(0) var<uniform> p: Conv2dParams;

// The sums of a lane's 4 pixels, each over the block's 4 channels.
struct Sums { a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32> }

// Rows r .. r + 3 of packed weights (`rows` of them, clamped: a partial block reads a
// valid row and never stores it), each `len` groups long, as offsets.
fn row_offsets(r: u32, rows: u32, len: u32) -> vec4<u32> {
    let last = rows - 1u;
    return vec4<u32>(min(r, last), min(r + 1u, last), min(r + 2u, last), min(r + 3u, last)) * len;
}

// Step g of the 4 rows at o, transposed: column j holds the 4 rows' weights of the
// step's reduction channel j.
fn columns(o: vec4<u32>, g: u32) -> mat4x4<f32> {
    let w0 = wload4(o.x + g);
    let w1 = wload4(o.y + g);
    let w2 = wload4(o.z + g);
    let w3 = wload4(o.w + g);
    return transpose(mat4x4<f32>(w0, w1, w2, w3));
}


// Stores pixel px's sums v of rows r .. r + 3 (below `count`) of a stack of planes:
// row k at ((b * total + offset + r + k) * plane + q), with the bias (bias[r + k]), ReLU
// and accumulation flags.
fn store(v: vec4<f32>, px: Pixel, plane: u32, total: u32, offset: u32, r: u32, count: u32) {
    if (!px.live) { return; }
    for (var k = 0u; k < 4u; k++) {
        let row = r + k;
        if (row >= count) { return; }
        put((px.b * total + offset + row) * plane + px.q, activate(v[k], row));
    }
}

// y[b, co, oy, ox] = sum_{ky, kx, ci} x[b, ci, oy*s + ky - pad, ox*s + kx - pad] W[co, ci, ky, kx]
@compute @workgroup_size(8, 1, 1)
fn conv2d_forward_cpu_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    winit();
    let plane = p.oh * p.ow;
    let m = (wid.x + wid.z * nwg.x) * 4u * LANES + lid;
    let pa = pixel_at(m, plane, p.ow);
    let pb = pixel_at(m + LANES, plane, p.ow);
    let pc = pixel_at(m + 2u * LANES, plane, p.ow);
    let pd = pixel_at(m + 3u * LANES, plane, p.ow);
    let hw = p.h * p.w;
    let c4n = (p.cin + 3u) / 4u;
    let r = wid.y * 4u;
    let o = row_offsets(r, p.co_count, p.kh * p.kw * c4n);
    var s = Sums(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let ta = forward_tap(pa, xbase(pa.b, p.cin, 0u, p.cin, hw), ky, kx);
            let tb = forward_tap(pb, xbase(pb.b, p.cin, 0u, p.cin, hw), ky, kx);
            let tc = forward_tap(pc, xbase(pc.b, p.cin, 0u, p.cin, hw), ky, kx);
            let td = forward_tap(pd, xbase(pd.b, p.cin, 0u, p.cin, hw), ky, kx);
            let t = (ky * p.kw + kx) * c4n;
            for (var c4 = 0u; c4 < c4n; c4++) {
                let w = columns(o, t + c4);
                s.a = mac_cols(s.a, xload4(ta.off, c4, hw, p.cin, ta.ok), w);
                s.b = mac_cols(s.b, xload4(tb.off, c4, hw, p.cin, tb.ok), w);
                s.c = mac_cols(s.c, xload4(tc.off, c4, hw, p.cin, tc.ok), w);
                s.d = mac_cols(s.d, xload4(td.off, c4, hw, p.cin, td.ok), w);
            }
        }
    }
    store(s.a, pa, plane, p.cout, p.co_offset, r, p.co_count);
    store(s.b, pb, plane, p.cout, p.co_offset, r, p.co_count);
    store(s.c, pc, plane, p.cout, p.co_offset, r, p.co_count);
    store(s.d, pd, plane, p.cout, p.co_offset, r, p.co_count);
}

// dx[b, ci, iy, ix] = sum_{ky, kx, co} dY[b, co, oy, ox] W[co, ci, ky, kx] where
// oy * s = iy + pad - ky (and likewise x), run with s = 1 (a strided conv runs a launch per
// stride phase: Conv2dParams); co runs over this launch's weight rows, packed [ci][tap][co/4]. No bias or ReLU (flags bit 2 at most).
@compute @workgroup_size(8, 1, 1)
fn conv2d_backward_input_cpu_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    winit();
    let plane = p.h * p.w;
    let m = (wid.x + wid.z * nwg.x) * 4u * LANES + lid;
    let pa = pixel_at(m, plane, p.w);
    let pb = pixel_at(m + LANES, plane, p.w);
    let pc = pixel_at(m + 2u * LANES, plane, p.w);
    let pd = pixel_at(m + 3u * LANES, plane, p.w);
    let ohw = p.oh * p.ow;
    let c4n = (p.co_count + 3u) / 4u;
    let r = wid.y * 4u;
    let o = row_offsets(r, p.cin, p.taps * c4n);
    var s = Sums(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            let ta = backward_tap(pa, xbase(pa.b, p.cout, p.co_offset, p.co_count, ohw), ky, kx);
            let tb = backward_tap(pb, xbase(pb.b, p.cout, p.co_offset, p.co_count, ohw), ky, kx);
            let tc = backward_tap(pc, xbase(pc.b, p.cout, p.co_offset, p.co_count, ohw), ky, kx);
            let td = backward_tap(pd, xbase(pd.b, p.cout, p.co_offset, p.co_count, ohw), ky, kx);
            let t = (p.tap0 + ky * p.tap_dy + kx * p.tap_dx) * c4n; // a stride phase's taps
            for (var c4 = 0u; c4 < c4n; c4++) {
                let w = columns(o, t + c4);
                s.a = mac_cols(s.a, xload4(ta.off, c4, ohw, p.co_count, ta.ok), w);
                s.b = mac_cols(s.b, xload4(tb.off, c4, ohw, p.co_count, tb.ok), w);
                s.c = mac_cols(s.c, xload4(tc.off, c4, ohw, p.co_count, tc.ok), w);
                s.d = mac_cols(s.d, xload4(td.off, c4, ohw, p.co_count, td.ok), w);
            }
        }
    }
    store_dx(s.a, pa, r);
    store_dx(s.b, pb, r);
    store_dx(s.c, pc, r);
    store_dx(s.d, pd, r);
}

// Stores input-gradient pixel px's sums v of rows r .. r + 3 (below cin) at their place in
// dx (Conv2dParams' dx fields: a stride phase's pixels, or the whole plane's), with the
// accumulation flag.
fn store_dx(v: vec4<f32>, px: Pixel, r: u32) {
    if (!px.live) { return; }
    let at = p.dx_origin + px.y * p.dx_sy + px.x * p.dx_sx;
    for (var k = 0u; k < 4u; k++) {
        let row = r + k;
        if (row >= p.cin) { return; }
        put((px.b * p.cin + row) * p.dx_plane + at, v[k]);
    }
}
