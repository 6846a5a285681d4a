// conv2d forward and input-gradient shaped for software adapters without 8-lane subgroups
// (llvmpipe through GL): the CPU-shaped kernels of conv2d_cpu.wgsl, with the weights read
// from a uniform buffer instead of shared across lanes. CPU drivers load a uniform word
// whose address is the same in every lane once and broadcast it (a storage or texture
// load inside a loop is a per-lane gather), so each invocation reads all 64 channels'
// weights itself at the cost of a broadcast per multiply-add.
// - A uniform binding holds at most 64 KiB, so a launch sees one window of the weights:
//   one block of 64 output channels and a run of reduction steps, a step being one tap
//   and 4 reduction channels. Weights are laid out for that (WeightBuffer, blocked):
//   [block][tap][ci/4][ci % 4][64 channels], each vec4 four consecutive channels; the
//   input gradient's twin [ci block][tap][co/4][co % 4][64 ci] is made on first use
//   (repack.wgsl).
// - The launcher splits the reduction into windows. A window after the first resumes the
//   sums where the one before stored them (so every variant sums in the same order); the
//   last adds the bias and applies the ReLU.
// - One invocation owns two pixels, 8 apart (a workgroup covers 16 consecutive pixels), and
//   the block's 64 channels for each (conv2d_cpu_common.wgsl): a broadcast weight feeds two
//   multiply-adds (about 1.4x the speed of one pixel on llvmpipe).

struct UniformConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32, // bit0 ReLU, bit1 bias, bit2 resume
    s0: u32, s1: u32, block: u32, _pad: u32, // this window's steps [s0, s1) of channel block `block`
}

@group(0) @binding(0) var<uniform> p: UniformConvParams;
@group(0) @binding(2) var<uniform> weight: array<vec4<u32>, 4096>; // one 64 KiB window

// Weights of 4 consecutive channels, group g of the window.
fn wl(g: u32) -> vec4<f32> {
    return unpack4(weight[select(g, g >> 1u, HALF)], g);
}

// a += x * the 64 weights of groups g .. g + 15, and b += y * the same.
fn mac64(a: ptr<function, Acc>, b: ptr<function, Acc>, x: f32, y: f32, g: u32) {
    let u = vec4<f32>(x);
    let v = vec4<f32>(y);
    var w = wl(g);
    (*a).a0 = fma(u, w, (*a).a0); (*b).a0 = fma(v, w, (*b).a0);
    w = wl(g + 1u);
    (*a).a1 = fma(u, w, (*a).a1); (*b).a1 = fma(v, w, (*b).a1);
    w = wl(g + 2u);
    (*a).a2 = fma(u, w, (*a).a2); (*b).a2 = fma(v, w, (*b).a2);
    w = wl(g + 3u);
    (*a).a3 = fma(u, w, (*a).a3); (*b).a3 = fma(v, w, (*b).a3);
    w = wl(g + 4u);
    (*a).a4 = fma(u, w, (*a).a4); (*b).a4 = fma(v, w, (*b).a4);
    w = wl(g + 5u);
    (*a).a5 = fma(u, w, (*a).a5); (*b).a5 = fma(v, w, (*b).a5);
    w = wl(g + 6u);
    (*a).a6 = fma(u, w, (*a).a6); (*b).a6 = fma(v, w, (*b).a6);
    w = wl(g + 7u);
    (*a).a7 = fma(u, w, (*a).a7); (*b).a7 = fma(v, w, (*b).a7);
    w = wl(g + 8u);
    (*a).a8 = fma(u, w, (*a).a8); (*b).a8 = fma(v, w, (*b).a8);
    w = wl(g + 9u);
    (*a).a9 = fma(u, w, (*a).a9); (*b).a9 = fma(v, w, (*b).a9);
    w = wl(g + 10u);
    (*a).a10 = fma(u, w, (*a).a10); (*b).a10 = fma(v, w, (*b).a10);
    w = wl(g + 11u);
    (*a).a11 = fma(u, w, (*a).a11); (*b).a11 = fma(v, w, (*b).a11);
    w = wl(g + 12u);
    (*a).a12 = fma(u, w, (*a).a12); (*b).a12 = fma(v, w, (*b).a12);
    w = wl(g + 13u);
    (*a).a13 = fma(u, w, (*a).a13); (*b).a13 = fma(v, w, (*b).a13);
    w = wl(g + 14u);
    (*a).a14 = fma(u, w, (*a).a14); (*b).a14 = fma(v, w, (*b).a14);
    w = wl(g + 15u);
    (*a).a15 = fma(u, w, (*a).a15); (*b).a15 = fma(v, w, (*b).a15);
}

// One step: 4 reduction channels of each pixel (x, y) against the window's step at group g.
fn step(a: ptr<function, Acc>, b: ptr<function, Acc>, x: vec4<f32>, y: vec4<f32>, g: u32) {
    mac64(a, b, x.x, y.x, g);
    mac64(a, b, x.y, y.y, g + 16u);
    mac64(a, b, x.z, y.z, g + 32u);
    mac64(a, b, x.w, y.w, g + 48u);
}

// The window's steps of tap t: [first, end) among its c4n steps.
fn steps_of(t: u32, c4n: u32) -> vec2<u32> {
    let base = t * c4n;
    return vec2<u32>(max(p.s0, base) - base, min(p.s1, base + c4n) - base);
}

// Output channel c of a plane stack at `base` (stride `plane`), 0 at or past `count`.
fn partial(base: u32, plane: u32, c: u32, count: u32) -> f32 {
    return select(0.0, output[base + min(c, count - 1u) * plane], c < count);
}

fn partial4(base: u32, plane: u32, c: u32, count: u32) -> vec4<f32> {
    return vec4<f32>(partial(base, plane, c, count), partial(base, plane, c + 1u, count),
        partial(base, plane, c + 2u, count), partial(base, plane, c + 3u, count));
}

// The sums earlier windows stored for channels c0 .. c0 + 63 (flag bit2), else zeros.
fn resume(base: u32, plane: u32, c0: u32, count: u32, live: bool) -> Acc {
    if ((p.flags & 4u) == 0u || !live) { return zero(); }
    return Acc(partial4(base, plane, c0, count), partial4(base, plane, c0 + 4u, count),
        partial4(base, plane, c0 + 8u, count), partial4(base, plane, c0 + 12u, count),
        partial4(base, plane, c0 + 16u, count), partial4(base, plane, c0 + 20u, count),
        partial4(base, plane, c0 + 24u, count), partial4(base, plane, c0 + 28u, count),
        partial4(base, plane, c0 + 32u, count), partial4(base, plane, c0 + 36u, count),
        partial4(base, plane, c0 + 40u, count), partial4(base, plane, c0 + 44u, count),
        partial4(base, plane, c0 + 48u, count), partial4(base, plane, c0 + 52u, count),
        partial4(base, plane, c0 + 56u, count), partial4(base, plane, c0 + 60u, count));
}

// Stores the block's channels from c0 (below `count`) at base + c * plane, with the bias
// and the ReLU where this launch's flags ask.
fn finish(acc: Acc, base: u32, plane: u32, c0: u32, count: u32) {
    for (var j = 0u; j < BLOCK; j++) {
        let c = c0 + j;
        if (c >= count) { break; }
        output[base + c * plane] = activate(pick(acc, j), c); // bit2 resumed the sums
    }
}

// y[b, co, oy, ox] = sum_{ky, kx, ci} x[b, ci, oy*s + ky - pad, ox*s + kx - pad] W[co, ci, ky, kx]
@compute @workgroup_size(8, 1, 1)
fn conv2d_forward_uniform(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let plane = p.oh * p.ow;
    let m = (wid.x + wid.z * nwg.x) * 2u * LANES + lid;
    let pa = pixel_at(m, plane, p.ow);
    let pb = pixel_at(m + LANES, plane, p.ow);
    let hw = p.h * p.w;
    let c4n = (p.cin + 3u) / 4u;
    let xa = pa.b * p.cin * hw;
    let xb = pb.b * p.cin * hw;
    let ya = (pa.b * p.cout + p.co_offset) * plane + pa.q;
    let yb = (pb.b * p.cout + p.co_offset) * plane + pb.q;
    let c0 = p.block * BLOCK;
    var acc_a = resume(ya, plane, c0, p.co_count, pa.live);
    var acc_b = resume(yb, plane, c0, p.co_count, pb.live);
    let t1 = (p.s1 + c4n - 1u) / c4n;
    for (var t = p.s0 / c4n; t < t1; t++) {
        let ky = t / p.kw;
        let kx = t - ky * p.kw;
        let ta = forward_tap(pa, xa, ky, kx);
        let tb = forward_tap(pb, xb, ky, kx);
        let r = steps_of(t, c4n);
        for (var c4 = r.x; c4 < r.y; c4++) {
            let g = (t * c4n + c4 - p.s0) * 64u;
            step(&acc_a, &acc_b, load4(ta.off, 4u * c4, hw, p.cin, ta.ok), load4(tb.off, 4u * c4, hw, p.cin, tb.ok), g);
        }
    }
    if (pa.live) { finish(acc_a, ya, plane, c0, p.co_count); }
    if (pb.live) { finish(acc_b, yb, plane, c0, p.co_count); }
}

// dx[b, ci, iy, ix] = sum_{ky, kx, co} dY[b, co, oy, ox] W[co, ci, ky, kx] where
// oy * s = iy + pad - ky (and likewise x); co runs over this launch's weight rows.
@compute @workgroup_size(8, 1, 1)
fn conv2d_backward_input_uniform(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let plane = p.h * p.w;
    let m = (wid.x + wid.z * nwg.x) * 2u * LANES + lid;
    let pa = pixel_at(m, plane, p.w);
    let pb = pixel_at(m + LANES, plane, p.w);
    let ohw = p.oh * p.ow;
    let c4n = (p.co_count + 3u) / 4u;
    let ya = (pa.b * p.cout + p.co_offset) * ohw;
    let yb = (pb.b * p.cout + p.co_offset) * ohw;
    let xa = pa.b * p.cin * plane + pa.q;
    let xb = pb.b * p.cin * plane + pb.q;
    let c0 = p.block * BLOCK;
    var acc_a = resume(xa, plane, c0, p.cin, pa.live);
    var acc_b = resume(xb, plane, c0, p.cin, pb.live);
    let t1 = (p.s1 + c4n - 1u) / c4n;
    for (var t = p.s0 / c4n; t < t1; t++) {
        let ky = t / p.kw;
        let kx = t - ky * p.kw;
        let ta = backward_tap(pa, ya, ky, kx);
        let tb = backward_tap(pb, yb, ky, kx);
        let r = steps_of(t, c4n);
        for (var c4 = r.x; c4 < r.y; c4++) {
            let g = (t * c4n + c4 - p.s0) * 64u;
            step(&acc_a, &acc_b, load4(ta.off, 4u * c4, ohw, p.co_count, ta.ok), load4(tb.off, 4u * c4, ohw, p.co_count, tb.ok), g);
        }
    }
    if (pa.live) { finish(acc_a, xa, plane, c0, p.cin); }
    if (pb.live) { finish(acc_b, xb, plane, c0, p.cin); }
}
