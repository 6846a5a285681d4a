// conv2d forward and input-gradient shaped for software adapters (lavapipe, llvmpipe),
// which run 8 invocations as the SIMD lanes of one CPU thread. Such a driver turns every
// storage load inside a loop into a per-lane gather, wherever the address is the same in
// all lanes, so the kernel loads as few words per multiply-add as it can:
// - one invocation owns one pixel (consecutive invocations, consecutive pixels) and a
//   block of 16 channels, in four vec4 accumulators; no workgroup memory, no barriers;
// - per reduction step the 8 lanes of a subgroup load 8 different weights in one gather
//   (lane s the weight of channel s of the block) and share them by subgroupBroadcast,
//   so a step costs 3 gathers (1 input, 2 weight) for 16 multiply-adds per lane;
// - kernel taps run outside and channels inside: the padding test and the pixel offset
//   are paid once per tap; padded taps read a valid word and drop it, so control flow
//   stays uniform (subgroup operations need it) and the inner loop has no division.
// Needs subgroups of exactly 8 invocations. Same uniform and bindings as conv2d.wgsl
// (flags bit0 ReLU, bit1 bias, bit2 accumulate).

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(1) var<storage, read> input: array<f32>; // x, or dY for backward
// Weights are f32 words, or with HALF (a pipeline constant) f16 pairs packed in u32s
// (--weights f16): half the memory, f32 arithmetic.
override HALF: bool = false;
@group(0) @binding(2) var<storage, read> weight: array<u32>; // this launch's rows [co_count, cin, kh, kw]
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>; // y, or dx for backward

// Weight i of this launch's chunk, as f32.
fn wload(i: u32) -> f32 {
    if (HALF) {
        let pair = unpack2x16float(weight[i >> 1u]);
        return select(pair.x, pair.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(weight[i]);
}

const LANES: u32 = 64u; // pixels per workgroup
const BLOCK: u32 = 16u; // channels per invocation

// a / b for a < 2^24 through a float division, corrected to the exact quotient (CPU
// drivers have no vector integer division).
fn fdiv(a: u32, b: u32) -> u32 {
    var q = u32(f32(a) / f32(b));
    if (q * b > a) { q -= 1u; }
    if ((q + 1u) * b <= a) { q += 1u; }
    return q;
}

// The weights of lanes 4h .. 4h + 3, in every lane.
fn share(w: f32, h: u32) -> vec4<f32> {
    if (h == 0u) {
        return vec4<f32>(subgroupBroadcast(w, 0u), subgroupBroadcast(w, 1u), subgroupBroadcast(w, 2u), subgroupBroadcast(w, 3u));
    }
    return vec4<f32>(subgroupBroadcast(w, 4u), subgroupBroadcast(w, 5u), subgroupBroadcast(w, 6u), subgroupBroadcast(w, 7u));
}

struct Acc { a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32> }

fn pick(a: Acc, j: u32) -> f32 {
    switch (j / 4u) {
        case 0u: { return a.a0[j % 4u]; }
        case 1u: { return a.a1[j % 4u]; }
        case 2u: { return a.a2[j % 4u]; }
        default: { return a.a3[j % 4u]; }
    }
}

fn put(i: u32, v: f32) {
    if ((p.flags & 4u) != 0u) { output[i] += v; } else { output[i] = v; }
}

// This invocation's pixel: batch item, offset in the plane, and whether it exists.
struct Pixel { b: u32, q: u32, y: u32, x: u32, live: bool }

fn pixel(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, plane: u32, width: u32) -> Pixel {
    let m = (wid.x + wid.z * nwg.x) * LANES + lid;
    let live = m < p.n * plane;
    let mm = select(0u, m, live); // lanes past the end compute pixel 0 and store nothing
    let b = fdiv(mm, plane);
    let q = mm - b * plane;
    let y = fdiv(q, width);
    return Pixel(b, q, y, q - y * width, live);
}

// y[b, co, oy, ox] = sum_{ky, kx, ci} x[b, ci, oy*s + ky - pad, ox*s + kx - pad] W[co, ci, ky, kx]
@compute @workgroup_size(64, 1, 1)
fn conv2d_forward_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    let plane = p.oh * p.ow;
    let px = pixel(wid, nwg, lid, plane, p.ow);
    let hw = p.h * p.w;
    let khw = p.kh * p.kw;
    let klen = p.cin * khw;
    let co0 = wid.y * BLOCK;
    // lane sid loads the rows of channels co0 + sid and co0 + 8 + sid (clamped: a partial
    // block reads a valid row and never stores it)
    let r0 = min(co0 + sid, p.co_count - 1u) * klen;
    let r1 = min(co0 + 8u + sid, p.co_count - 1u) * klen;
    let xb = px.b * p.cin * hw;
    var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(px.y * p.stride_h + ky) - i32(p.pad_h);
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(px.x * p.stride_w + kx) - i32(p.pad_w);
            let ok = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
            let off = xb + select(0u, u32(iy) * p.w + u32(ix), ok);
            let tap = ky * p.kw + kx;
            for (var ci = 0u; ci < p.cin; ci++) {
                let x = vec4<f32>(select(0.0, input[off + ci * hw], ok));
                let col = ci * khw + tap;
                let w0 = wload(r0 + col);
                let w1 = wload(r1 + col);
                acc.a0 = fma(x, share(w0, 0u), acc.a0);
                acc.a1 = fma(x, share(w0, 1u), acc.a1);
                acc.a2 = fma(x, share(w1, 0u), acc.a2);
                acc.a3 = fma(x, share(w1, 1u), acc.a3);
            }
        }
    }
    if (!px.live) { return; }
    let yb = (px.b * p.cout + p.co_offset) * plane + px.q;
    for (var j = 0u; j < BLOCK; j++) {
        let co = co0 + j;
        if (co >= p.co_count) { break; }
        var v = pick(acc, j);
        if ((p.flags & 2u) != 0u) { v += bias[co]; }
        if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
        put(yb + co * plane, v);
    }
}

// dx[b, ci, iy, ix] = sum_{ky, kx, co} dY[b, co, oy, ox] W[co, ci, ky, kx] where
// oy * s = iy + pad - ky (and likewise x); co runs over this launch's weight rows.
@compute @workgroup_size(64, 1, 1)
fn conv2d_backward_input_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    let plane = p.h * p.w;
    let px = pixel(wid, nwg, lid, plane, p.w);
    let ohw = p.oh * p.ow;
    let khw = p.kh * p.kw;
    let ci0 = wid.y * BLOCK;
    // lane sid loads W[co, ci0 + sid, ky, kx] and W[co, ci0 + 8 + sid, ky, kx]
    let c0 = min(ci0 + sid, p.cin - 1u) * khw;
    let c1 = min(ci0 + 8u + sid, p.cin - 1u) * khw;
    let yb = (px.b * p.cout + p.co_offset) * ohw;
    var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var ky = 0u; ky < p.kh; ky++) {
        let ty = i32(px.y + p.pad_h) - i32(ky);
        let oy = fdiv(u32(max(ty, 0)), p.stride_h);
        let oky = ty >= 0 && oy * p.stride_h == u32(ty) && oy < p.oh;
        for (var kx = 0u; kx < p.kw; kx++) {
            let tx = i32(px.x + p.pad_w) - i32(kx);
            let ox = fdiv(u32(max(tx, 0)), p.stride_w);
            let ok = oky && tx >= 0 && ox * p.stride_w == u32(tx) && ox < p.ow;
            let off = yb + select(0u, oy * p.ow + ox, ok);
            let tap = ky * p.kw + kx;
            for (var co = 0u; co < p.co_count; co++) {
                let g = vec4<f32>(select(0.0, input[off + co * ohw], ok));
                let col = co * p.cin * khw + tap;
                let w0 = wload(c0 + col);
                let w1 = wload(c1 + col);
                acc.a0 = fma(g, share(w0, 0u), acc.a0);
                acc.a1 = fma(g, share(w0, 1u), acc.a1);
                acc.a2 = fma(g, share(w1, 0u), acc.a2);
                acc.a3 = fma(g, share(w1, 1u), acc.a3);
            }
        }
    }
    if (!px.live) { return; }
    let xb = px.b * p.cin * plane + px.q;
    for (var j = 0u; j < BLOCK; j++) {
        let ci = ci0 + j;
        if (ci >= p.cin) { break; }
        put(xb + ci * plane, pick(acc, j));
    }
}
