// conv2d forward and input-gradient (linear layers run as 1x1 convolutions), shaped for software
// adapters (lavapipe, llvmpipe), which run 8 invocations as the SIMD lanes of one CPU
// thread and turn every storage load inside a loop into a per-lane gather (even where
// the address is the same in all lanes). A vec4 load costs little more than a scalar
// one, so the kernels load as few words per multiply-add as they can:
// - weights are repacked at upload so that a vec4 holds 4 consecutive reduction
//   channels of one output (see WeightBuffer): [co][tap][ci/4] forward, [ci][tap][co/4]
//   for the input gradient (made from the first on first use, repack.wgsl), zero-padded
//   to a multiple of 4;
// - a workgroup of 8 lanes owns 16 consecutive pixels and a block of 64 channels; lane s
//   loads the weights of channels 4s .. 4s + 3 and 32 + 4s .. 32 + 4s + 3, and keeps the
//   sums of those 8 channels for all 16 pixels (two sets of sixteen vec4 accumulators, one
//   vec4 a pixel's 4 consecutive channels, as a packed texel holds them: TEXELS stores
//   them as one); no workgroup memory, no barriers; the weights never leave their lane; a
//   block of at most 32 channels (the last of 96, or all of 32) sums only channels 4s ..
//   4s + 3 (`sweep`);
// - every lane needs every pixel's inputs. How they reach it is a prelude's, which also
//   declares the entry points (calling forward and backward_input below):
//   conv2d_cpu_share.wgsl, where lane s loads pixels s and 8 + s and subgroupBroadcast
//   shares them (each broadcast feeds 8 multiply-adds; needs subgroups of exactly 8), or
//   conv2d_cpu_fetch.wgsl, where every lane loads all 16 itself (no subgroups);
// - kernel taps run outside and channels inside: the padding test and the pixel offset
//   are paid once per tap; padded taps read a valid word and drop it, so control flow
//   stays uniform (subgroup operations need it) and the inner loop has no division.
// - with flags bit3 (POOL, forward only) a workgroup's 16 pixels are two output rows by 8
//   columns and it stores only their 2 x 2, stride 2 max-pools (`store_pooled`): a
//   quarter of the stores, which bound the layers of short reductions on a CPU driver
//   (a store is a loop over the lanes there), and no pass of its own for the pool.
// Same uniform as conv2d.wgsl (flags bit0 ReLU, bit1 bias, bit2 accumulate); binding 2
// holds this launch's packed weights, read through wload4 and set up by winit, and binding
// 1 the input, read through xbase and xload4, which prelude files define: storage buffers
// (conv2d_cpu_buffer.wgsl, conv2d_cpu_input.wgsl) or textures (conv2d_cpu_texture.wgsl).
// Shared helpers (pixel, taps, accumulators): conv2d_cpu_common.wgsl.

@group(0) @binding(0) var<uniform> p: Conv2dParams;

// A stride phase's input gradient (a pipeline constant: the launch's taps are every
// stride-th of the conv's and its pixels every stride-th of dx's; Conv2dParams).
override PHASES: bool = false;

// flags bit3: store the 2 x 2, stride 2 max-pool of the (activated) output; bit4 with it:
// also each window's argmax (its flat index in the conv output's plane, max_pool2d's)
const POOL: u32 = 8u;
const ARGMAX: u32 = 16u;
// flags bit5 (forward only, texture-reading preludes): store the output (or its pools)
// packed four channels a texel, as the next conv reads it (pack_texture.wgsl's layout:
// texel (b * cout / 4 + c / 4) * plane + q), through the prelude's store_texel
const TEXELS: u32 = 32u;

// The forward's pool argmax (POOL and ARGMAX; a placeholder otherwise).
@group(0) @binding(5) var<storage, read_write> pool_argmax: array<vec4<u32>>;

// Pixel k (0 .. 15) of the workgroup whose first is m0 (the preludes' pixels_init): output
// pixel m0 + k of the batch (planes of `plane` pixels, rows of `width`), or with POOL one
// of a tile of two rows (k < 8 the top one) by 8 columns, which makes 4 pooled windows side
// by side: pooled row r, columns 4 cb .. 4 cb + 3 of item b, for workgroup m0 / 16 in
// (b, r, cb) order. Columns a floor-mode pool drops are dead pixels (valid, never stored).
fn group_pixel(m0: u32, k: u32, plane: u32, width: u32) -> Pixel {
    if ((p.flags & POOL) == 0u) { return pixel_at(m0 + k, plane, width); }
    let pw = width / 2u;
    let blocks = (pw + 3u) / 4u;
    let per_item = (p.oh / 2u) * blocks;
    let g = m0 / (2u * LANES);
    let live = g < p.n * per_item;
    let gg = select(0u, g, live); // past the end: item 0's first tile, stored nowhere
    let b = fdiv(gg, per_item);
    let rb = gg - b * per_item;
    let r = fdiv(rb, blocks);
    let y = 2u * r + k / LANES;
    let x = 8u * (rb - r * blocks) + (k % LANES);
    let inside = x < 2u * pw;
    let xx = select(0u, x, inside);
    return Pixel(b, y * width + xx, y, xx, live && inside);
}

// Sums a (four of lane s's channels: 4s .. 4s + 3 of a block, or 32 more) plus one group
// of pixel k: its 4 reduction channels xk (the same in every lane) against w, lane s's
// weights of those 4 channels (w[0]: the first's, ..).
fn mac(a: vec4<f32>, xk: vec4<f32>, w: array<vec4<f32>, 4>) -> vec4<f32> {
    var r = fma(vec4<f32>(xk.x), vec4<f32>(w[0].x, w[1].x, w[2].x, w[3].x), a);
    r = fma(vec4<f32>(xk.y), vec4<f32>(w[0].y, w[1].y, w[2].y, w[3].y), r);
    r = fma(vec4<f32>(xk.z), vec4<f32>(w[0].z, w[1].z, w[2].z, w[3].z), r);
    return fma(vec4<f32>(xk.w), vec4<f32>(w[0].w, w[1].w, w[2].w, w[3].w), r);
}

// a plus a step of pixel k: group xk against w, then the next group yk against v, back
// to back, so that an accumulator a CPU driver keeps in memory (blending every write in
// a loop with the lanes' mask) is loaded, blended and stored once for 8 multiply-adds.
fn mac2(a: vec4<f32>, xk: vec4<f32>, w: array<vec4<f32>, 4>, yk: vec4<f32>, v: array<vec4<f32>, 4>) -> vec4<f32> {
    return mac(mac(a, xk, w), yk, v);
}

// One step for pixel set j (0: the workgroup's pixels 0 .. 7, 1: 8 .. 15; the prelude's
// pixel_input gives pixel k of a set in every lane): reduction groups c4 and c4 + 1 of
// the current tap; lo and hi this lane's weights of group c4 for channels 4s .. 4s + 3
// and 32 + 4s .. 32 + 4s + 3 of the block, lo2 and hi2 of group c4 + 1. Without `two`
// (c4 is the tap's last group) the second group's inputs read 0 (from group c4).
// Accumulators 2k and 2k + 1 hold pixel k's; without `wide` the odd ones are left alone.
fn mac8(acc: ptr<function, Acc>, j: u32, c4: u32, two: bool, plane: u32, count: u32, lo: array<vec4<f32>, 4>, hi: array<vec4<f32>, 4>, lo2: array<vec4<f32>, 4>, hi2: array<vec4<f32>, 4>, wide: bool) {
    let own = own_input(j, c4, plane, count, true);
    let c4b = select(c4, c4 + 1u, two); // a valid group either way
    let own2 = own_input(j, c4b, plane, count, two);
    let x0 = pixel_input(own, j, 0u, c4, plane, count, true);
    let y0 = pixel_input(own2, j, 0u, c4b, plane, count, two);
    (*acc).a0 = mac2((*acc).a0, x0, lo, y0, lo2);
    if (wide) { (*acc).a1 = mac2((*acc).a1, x0, hi, y0, hi2); }
    let x1 = pixel_input(own, j, 1u, c4, plane, count, true);
    let y1 = pixel_input(own2, j, 1u, c4b, plane, count, two);
    (*acc).a2 = mac2((*acc).a2, x1, lo, y1, lo2);
    if (wide) { (*acc).a3 = mac2((*acc).a3, x1, hi, y1, hi2); }
    let x2 = pixel_input(own, j, 2u, c4, plane, count, true);
    let y2 = pixel_input(own2, j, 2u, c4b, plane, count, two);
    (*acc).a4 = mac2((*acc).a4, x2, lo, y2, lo2);
    if (wide) { (*acc).a5 = mac2((*acc).a5, x2, hi, y2, hi2); }
    let x3 = pixel_input(own, j, 3u, c4, plane, count, true);
    let y3 = pixel_input(own2, j, 3u, c4b, plane, count, two);
    (*acc).a6 = mac2((*acc).a6, x3, lo, y3, lo2);
    if (wide) { (*acc).a7 = mac2((*acc).a7, x3, hi, y3, hi2); }
    let x4 = pixel_input(own, j, 4u, c4, plane, count, true);
    let y4 = pixel_input(own2, j, 4u, c4b, plane, count, two);
    (*acc).a8 = mac2((*acc).a8, x4, lo, y4, lo2);
    if (wide) { (*acc).a9 = mac2((*acc).a9, x4, hi, y4, hi2); }
    let x5 = pixel_input(own, j, 5u, c4, plane, count, true);
    let y5 = pixel_input(own2, j, 5u, c4b, plane, count, two);
    (*acc).a10 = mac2((*acc).a10, x5, lo, y5, lo2);
    if (wide) { (*acc).a11 = mac2((*acc).a11, x5, hi, y5, hi2); }
    let x6 = pixel_input(own, j, 6u, c4, plane, count, true);
    let y6 = pixel_input(own2, j, 6u, c4b, plane, count, two);
    (*acc).a12 = mac2((*acc).a12, x6, lo, y6, lo2);
    if (wide) { (*acc).a13 = mac2((*acc).a13, x6, hi, y6, hi2); }
    let x7 = pixel_input(own, j, 7u, c4, plane, count, true);
    let y7 = pixel_input(own2, j, 7u, c4b, plane, count, two);
    (*acc).a14 = mac2((*acc).a14, x7, lo, y7, lo2);
    if (wide) { (*acc).a15 = mac2((*acc).a15, x7, hi, y7, hi2); }
}

// The bias of channels c .. c + 3 (0 without a bias).
fn bias4(c: u32, count: u32) -> vec4<f32> {
    if ((p.flags & 2u) == 0u) { return vec4<f32>(0.0); }
    let last = count - 1u;
    return vec4<f32>(bias[min(c, last)], bias[min(c + 1u, last)], bias[min(c + 2u, last)], bias[min(c + 3u, last)]);
}

// The four output values of channel row c at pixels m .. m + 3 (sums v) with the
// launch's bias (b, the row's) and ReLU flags.
fn activate4(v: vec4<f32>, b: f32) -> vec4<f32> {
    var r = v;
    if ((p.flags & 2u) != 0u) { r += vec4<f32>(b); }
    if ((p.flags & 1u) != 0u) { r = max(r, vec4<f32>(0.0)); }
    return r;
}

// The output index of channel 0 at output pixel m (over all items) of a stack of planes,
// `total` channels an item from `offset`.
fn out_base(m: u32, plane: u32, total: u32, offset: u32) -> u32 {
    let item = fdiv(m, plane);
    return (item * total + offset) * plane + m - item * plane;
}

// Stores the sums of output pixels m .. m + 3 (m a multiple of 4, planes of a multiple of
// 4 pixels: the four lie in one plane, 16-byte aligned) as one vec4 a channel: q0 .. q3
// hold the pixels' channels c0 + 8 first + t in component t (t < 4; b their biases), of
// a stack of planes, `total` channels an item from `offset`, `count` of them in this
// launch. A storage store is a loop over the lanes on lavapipe, as wide or not, so this
// stores four values for the price of one.
fn store_quad(q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>, b: vec4<f32>, first: u32, m: u32, plane: u32, total: u32, offset: u32, c0: u32, count: u32) {
    let base = out_base(m, plane, total, offset);
    for (var t = 0u; t < 4u; t++) {
        let c = c0 + 8u * first + t;
        if (c >= count) { return; }
        let v = activate4(vec4<f32>(q0[t], q1[t], q2[t], q3[t]), b[t]);
        let i = (base + c * plane) >> 2u;
        if ((p.flags & 4u) != 0u) { output[i] += v; } else { output[i] = v; }
    }
}

// Pixel k's sums (0 .. 7 in this set): accumulators 2k (lo) and 2k + 1 (hi), picked by
// selects (a switch on k would branch per lane on a CPU driver).
fn lo_of(a: Acc, k: u32) -> vec4<f32> {
    var r = a.a0;
    r = select(r, a.a2, k == 1u);
    r = select(r, a.a4, k == 2u);
    r = select(r, a.a6, k == 3u);
    r = select(r, a.a8, k == 4u);
    r = select(r, a.a10, k == 5u);
    r = select(r, a.a12, k == 6u);
    r = select(r, a.a14, k == 7u);
    return r;
}

fn hi_of(a: Acc, k: u32) -> vec4<f32> {
    var r = a.a1;
    r = select(r, a.a3, k == 1u);
    r = select(r, a.a5, k == 2u);
    r = select(r, a.a7, k == 3u);
    r = select(r, a.a9, k == 4u);
    r = select(r, a.a11, k == 5u);
    r = select(r, a.a13, k == 6u);
    r = select(r, a.a15, k == 7u);
    return r;
}

// How many of the store loop's 8 steps have a pixel (step k stores pixels m0 + k and
// m0 + 8 + k). The store loops take their bounds from the uniform so that the driver
// keeps them loops: written out straight (16 copies of the stores) they took lavapipe's
// LLVM about 5 s to compile on a cold shader cache.
fn stores(m0: u32, plane: u32) -> u32 {
    let total = p.n * plane;
    return select(0u, min(LANES, total - m0), m0 < total);
}

// Stores this lane's sums of output pixel m one value at a time: lo and hi hold channels
// c0 .. c0 + 3 and c0 + 32 .. c0 + 35 (c0 the block's first plus 4s; bl, bh their
// biases) of a stack of
// planes, `total` channels an item from `offset`, `count` of them in this launch; with the
// launch's bias, ReLU and accumulation flags.
fn store_pixel(lo: vec4<f32>, hi: vec4<f32>, bl: vec4<f32>, bh: vec4<f32>, m: u32, plane: u32, total: u32, offset: u32, c0: u32, count: u32) {
    if (m >= p.n * plane || c0 >= count) { return; }
    let base = out_base(m, plane, total, offset);
    for (var t = 0u; t < 8u; t++) {
        let c = lane_channel(c0, t);
        if (c >= count) { return; }
        var v = select(lo[t & 3u], hi[t & 3u], t >= 4u);
        if ((p.flags & 2u) != 0u) { v += select(bl[t & 3u], bh[t & 3u], t >= 4u); }
        if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
        put(base + c * plane, v);
    }
}

// One accumulator of quad h (0 .. 3: the workgroup's pixels 4h .. 4h + 3), chosen from the
// same accumulator of each quad: a0 and a1 acc_a's (pixels 0 .. 3, 4 .. 7), b0 and b1
// acc_b's.
fn quad_of(a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, h: u32) -> vec4<f32> {
    let odd = (h & 1u) == 1u;
    return select(select(a0, a1, odd), select(b0, b1, odd), h >= 2u);
}

// Stores this lane's sums of the workgroup's 16 pixels from m0 (acc_a pixels 0 .. 7, acc_b
// 8 .. 15; accumulators 2k and 2k + 1 hold pixel k's channels c0 .. c0 + 3, c0 + 32 ..
// c0 + 35,
// bl and bh their biases), four pixels at a time (loop bounds from the uniform: see
// `stores`).
fn store_all(a: Acc, b: Acc, bl: vec4<f32>, bh: vec4<f32>, m0: u32, plane: u32, total: u32, offset: u32, c0: u32, count: u32) {
    let total_px = p.n * plane;
    let quads = select(0u, (min(2u * LANES, total_px - m0) + 3u) / 4u, m0 < total_px);
    // two loops, one of them empty: choosing between the two inside the store loop cost
    // lavapipe about 45% more instructions in conv1_1's forward (callgrind)
    let fours = (plane & 3u) == 0u;
    let whole = select(0u, quads, fours);
    for (var h = 0u; h < whole; h++) {
        let m = m0 + 4u * h;
        store_quad(quad_of(a.a0, a.a8, b.a0, b.a8, h), quad_of(a.a2, a.a10, b.a2, b.a10, h), quad_of(a.a4, a.a12, b.a4, b.a12, h), quad_of(a.a6, a.a14, b.a6, b.a14, h), bl, 0u, m, plane, total, offset, c0, count);
        store_quad(quad_of(a.a1, a.a9, b.a1, b.a9, h), quad_of(a.a3, a.a11, b.a3, b.a11, h), quad_of(a.a5, a.a13, b.a5, b.a13, h), quad_of(a.a7, a.a15, b.a7, b.a15, h), bh, 4u, m, plane, total, offset, c0, count);
    }
    // planes of other sizes: a pixel at a time
    for (var k = 0u; k < select(stores(m0, plane), 0u, fours); k++) {
        store_pixel(lo_of(a, k), hi_of(a, k), bl, bh, m0 + k, plane, total, offset, c0, count);
        store_pixel(lo_of(b, k), hi_of(b, k), bl, bh, m0 + LANES + k, plane, total, offset, c0, count);
    }
}

// Channel t (0 .. 7) of the lane whose first is c0 (a block's first plus 4s): c0 + t, then
// c0 + 32 + t - 4, increasing with t.
fn lane_channel(c0: u32, t: u32) -> u32 {
    return c0 + 32u * (t / 4u) + (t & 3u);
}

// The offsets of this lane's 8 packed weight rows in a block from `first`: rows
// lane_channel(first + 4 sid, t) of `count`, each `len` groups long, clamped to the last (a
// partial block reads a valid row and never stores it).
fn rows_of(first: u32, sid: u32, count: u32, len: u32) -> array<u32, 8> {
    var r: array<u32, 8>;
    for (var t = 0u; t < 8u; t++) {
        r[t] = min(lane_channel(first + 4u * sid, t), count - 1u) * len;
    }
    return r;
}

// The sums of the workgroup's pixels (acc_a, acc_b: sets 0 and 1) over every tap and
// reduction channel: packed weight rows `rows` (this lane's channels, `c4n` groups a tap)
// against an input of `total` channels an item, `count` of them read from `offset`, planes
// of `in_plane` pixels; `backward` for the input gradient's taps. Without `wide` (a
// constant at each call, so the driver compiles two loops) only the first 4 rows are
// summed: a block of at most 32 channels.
fn sweep(acc_a: ptr<function, Acc>, acc_b: ptr<function, Acc>, rows: array<u32, 8>, c4n: u32, total: u32, offset: u32, count: u32, in_plane: u32, backward: bool, wide: bool) {
    // one loop over steps of two channel groups of a tap, taps outside: a loop per tap
    // cost more than a step of entry and exit per tap, which a layer of few channels paid
    // on every step. Where a tap has an odd number of groups its last step has one: the
    // second's inputs read 0 against the first's weights again (a first layer, 1 group a
    // tap, does twice the multiply-adds: a separate one-group loop, tried, made the
    // kernel's first compile 0.8 s longer)
    // Step g reads weight group g + d of `rows`: d is 0, or with PHASES (a stride phase's
    // input gradient, whose taps are every stride-th of the conv's: Conv2dParams) moves at
    // each tap to that tap's weights; a pipeline constant, so the other launches compile
    // without it.
    var ky = 0u;
    var kx = 0u;
    var c4 = 0u;
    var d = 0u;
    if (PHASES) { d = p.tap0 * c4n; }
    taps_set(total, offset, count, in_plane, 0u, 0u, backward);
    for (var g = 0u; g < p.kh * p.kw * c4n; ) {
        let two = c4 + 1u < c4n;
        let h = select(g, g + 1u, two);
        let lo = array(wload4(rows[0] + g + d), wload4(rows[1] + g + d), wload4(rows[2] + g + d), wload4(rows[3] + g + d));
        let lo2 = array(wload4(rows[0] + h + d), wload4(rows[1] + h + d), wload4(rows[2] + h + d), wload4(rows[3] + h + d));
        var hi = lo;
        var hi2 = lo2;
        if (wide) {
            hi = array(wload4(rows[4] + g + d), wload4(rows[5] + g + d), wload4(rows[6] + g + d), wload4(rows[7] + g + d));
            hi2 = array(wload4(rows[4] + h + d), wload4(rows[5] + h + d), wload4(rows[6] + h + d), wload4(rows[7] + h + d));
        }
        mac8(acc_a, 0u, c4, two, in_plane, count, lo, hi, lo2, hi2, wide);
        mac8(acc_b, 1u, c4, two, in_plane, count, lo, hi, lo2, hi2, wide);
        let step = select(1u, 2u, two);
        g += step;
        c4 += step;
        if (c4 == c4n) { // the next tap (past the last one after the last step: unused)
            c4 = 0u;
            kx += 1u;
            if (kx == p.kw) {
                kx = 0u;
                ky += 1u;
            }
            // (modulo 2^32: d may be "negative")
            if (PHASES) { d = (p.tap0 + ky * p.tap_dy + kx * p.tap_dx) * c4n - g; }
            taps_set(total, offset, count, in_plane, ky, kx, backward);
        }
    }
}

// y[b, co, oy, ox] = sum_{ky, kx, ci} x[b, ci, oy*s + ky - pad, ox*s + kx - pad] W[co, ci, ky, kx]
// (workgroup `group` of the pixels, channel block `block`; lane `lid`, `sid` in its subgroup)
// With POOL, y's 2 x 2 max-pools instead (store_pooled).
fn forward(group: u32, block: u32, lid: u32, sid: u32) {
    winit();
    let plane = p.oh * p.ow;
    let m0 = group * 2u * LANES;
    pixels_init(m0, lid, plane, p.ow);
    let hw = p.h * p.w;
    let taps = p.kh * p.kw;
    let c4n = (p.cin + 3u) / 4u;
    let co0 = block * BLOCK;
    let rows = rows_of(co0, sid, p.co_count, taps * c4n);
    var acc_a = zero();
    var acc_b = zero();
    if (co0 + 32u < p.co_count) {
        sweep(&acc_a, &acc_b, rows, c4n, p.cin, 0u, p.cin, hw, false, true);
    } else {
        sweep(&acc_a, &acc_b, rows, c4n, p.cin, 0u, p.cin, hw, false, false);
    }
    // lane s holds channels co0 + 4s .. co0 + 4s + 3 and 32 more of each of the
    // workgroup's pixels
    let c = co0 + 4u * sid;
    let bl = bias4(c, p.co_count);
    let bh = bias4(c + 32u, p.co_count);
    if ((p.flags & POOL) != 0u) {
        store_pooled(acc_a, acc_b, bl, bh, m0, c);
        return;
    }
    if ((p.flags & TEXELS) != 0u) {
        for (var k = 0u; k < stores(m0, plane); k++) {
            texel_pixel(lo_of(acc_a, k), hi_of(acc_a, k), bl, bh, m0 + k, plane, c);
            texel_pixel(lo_of(acc_b, k), hi_of(acc_b, k), bl, bh, m0 + LANES + k, plane, c);
        }
        return;
    }
    store_all(acc_a, acc_b, bl, bh, m0, plane, p.cout, p.co_offset, c, p.co_count);
}

// The texel of this launch's channel c (a multiple of 4) at output pixel m of the batch.
fn texel_of(m: u32, plane: u32, c: u32) -> u32 {
    let item = fdiv(m, plane);
    return (item * (p.cout / 4u) + (p.co_offset + c) / 4u) * plane + m - item * plane;
}

// TEXELS: this lane's sums of output pixel m (lo: channels c0 .. c0 + 3, hi: 32 more; bl
// and bh their biases) with the bias and ReLU flags, as two texels.
fn texel_pixel(lo: vec4<f32>, hi: vec4<f32>, bl: vec4<f32>, bh: vec4<f32>, m: u32, plane: u32, c0: u32) {
    if (m >= p.n * plane || c0 >= p.co_count) { return; }
    let g = texel_of(m, plane, c0);
    store_texel(g, act_bias(lo, bl));
    if (c0 + 32u < p.co_count) { store_texel(g + 8u * plane, act_bias(hi, bh)); }
}

// Whether v is a NaN, from its bits (pool_common.wgsl's is_nan: a fast-math driver folds
// v != v to false).
fn nan4(v: vec4<f32>) -> vec4<bool> {
    return (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

// A pooled window's maxima (four channels in the components) and their argmaxes.
struct Win { v: vec4<f32>, i: vec4<u32> }

// The 2 x 2 max of four sums (top left, top right, bottom left, bottom right; four
// channels in the components), each with the bias b and the ReLU flag as store_quad
// applies them, compared in max_pool2d_forward's order by its rule (a later value wins
// if larger or a NaN): the same bits as the two passes. f: the top left's flat index in
// the conv output's plane.
fn pool_act(tl: vec4<f32>, tr: vec4<f32>, bl: vec4<f32>, br: vec4<f32>, b: vec4<f32>, f: u32) -> Win {
    var m = act_bias(tl, b);
    var i = vec4<u32>(f);
    let v1 = act_bias(tr, b);
    let t1 = (v1 > m) | nan4(v1);
    m = select(m, v1, t1);
    i = select(i, vec4<u32>(f + 1u), t1);
    let v2 = act_bias(bl, b);
    let t2 = (v2 > m) | nan4(v2);
    m = select(m, v2, t2);
    i = select(i, vec4<u32>(f + p.ow), t2);
    let v3 = act_bias(br, b);
    let t3 = (v3 > m) | nan4(v3);
    return Win(select(m, v3, t3), select(i, vec4<u32>(f + p.ow + 1u), t3));
}

// v with the bias b (one a component) and the ReLU, in activate4's order.
fn act_bias(v: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    var r = v;
    if ((p.flags & 2u) != 0u) { r += b; }
    if ((p.flags & 1u) != 0u) { r = max(r, vec4<f32>(0.0)); }
    return r;
}

// Stores the 2 x 2 max-pools of this lane's sums (POOL), and with ARGMAX their argmaxes:
// acc a the tile's top row (pixel k in accumulators 2k, channels c0 .. c0 + 3, and
// 2k + 1, c0 + 32 .. c0 + 35), b its bottom row; window w covers pixels 2w and 2w + 1
// of both; bl and bh the biases. The output holds `cout` pooled planes an item, this
// launch's `co_count` from `co_offset`. Where pooled rows hold a multiple of 4 windows, a
// channel's 4 are one vec4 store.
fn store_pooled(a: Acc, b: Acc, bl: vec4<f32>, bh: vec4<f32>, m0: u32, c0: u32) {
    let px = group_pixel(m0, 0u, p.oh * p.ow, p.ow); // the tile's top left
    if (!px.live) { return; }
    let pw = p.ow / 2u;
    let plane = (p.oh / 2u) * pw;
    let first = px.x / 2u;
    let base = (px.b * p.cout + p.co_offset) * plane + (px.y / 2u) * pw + first;
    let f = px.y * p.ow + px.x; // window 0's top left in the conv plane
    let lo = array(pool_act(a.a0, a.a2, b.a0, b.a2, bl, f), pool_act(a.a4, a.a6, b.a4, b.a6, bl, f + 2u), pool_act(a.a8, a.a10, b.a8, b.a10, bl, f + 4u), pool_act(a.a12, a.a14, b.a12, b.a14, bl, f + 6u));
    let hi = array(pool_act(a.a1, a.a3, b.a1, b.a3, bh, f), pool_act(a.a5, a.a7, b.a5, b.a7, bh, f + 2u), pool_act(a.a9, a.a11, b.a9, b.a11, bh, f + 4u), pool_act(a.a13, a.a15, b.a13, b.a15, bh, f + 6u));
    let whole = (pw & 3u) == 0u; // then all 4 windows exist and base is a multiple of 4
    let windows = min(4u, pw - first);
    let arg = (p.flags & ARGMAX) != 0u;
    let texels = (p.flags & TEXELS) != 0u;
    if (texels) {
        // window w's pooled pixel: texel g + w (and 8 planes on for the hi channels)
        let g = ((px.b * p.cout + p.co_offset + c0) / 4u) * plane + (px.y / 2u) * pw + first;
        texel_windows(lo, g, windows, c0);
        texel_windows(hi, g + 8u * plane, windows, c0 + 32u);
        if (!arg) { return; }
    }
    for (var t = 0u; t < 8u; t++) {
        let c = lane_channel(c0, t);
        if (c >= p.co_count) { return; }
        let j = t & 3u;
        let up = t >= 4u;
        let v = select(vec4<f32>(lo[0].v[j], lo[1].v[j], lo[2].v[j], lo[3].v[j]), vec4<f32>(hi[0].v[j], hi[1].v[j], hi[2].v[j], hi[3].v[j]), up);
        let k = select(vec4<u32>(lo[0].i[j], lo[1].i[j], lo[2].i[j], lo[3].i[j]), vec4<u32>(hi[0].i[j], hi[1].i[j], hi[2].i[j], hi[3].i[j]), up);
        let i = base + c * plane;
        if (whole) {
            if (!texels) { output[i >> 2u] = v; }
            if (arg) { pool_argmax[i >> 2u] = k; }
        } else {
            for (var w = 0u; w < windows; w++) {
                if (!texels) { output[(i + w) >> 2u][(i + w) & 3u] = v[w]; }
                if (arg) { pool_argmax[(i + w) >> 2u][(i + w) & 3u] = k[w]; }
            }
        }
    }
}

// dx[b, ci, iy, ix] = sum_{ky, kx, co} dY[b, co, oy, ox] W[co, ci, ky, kx] where
// oy * s = iy + pad - ky (and likewise x), run with s = 1 (a strided conv runs a launch per
// stride phase: Conv2dParams); co runs over this launch's weight rows, packed [ci][tap][co/4].
fn backward_input(group: u32, block: u32, lid: u32, sid: u32) {
    winit();
    let plane = p.h * p.w;
    let m0 = group * 2u * LANES;
    pixels_init(m0, lid, plane, p.w);
    let ohw = p.oh * p.ow;
    let taps = select(p.kh * p.kw, p.taps, PHASES); // the conv's taps, where a phase's are fewer
    let c4n = (p.co_count + 3u) / 4u;
    let ci0 = block * BLOCK;
    let rows = rows_of(ci0, sid, p.cin, taps * c4n);
    var acc_a = zero();
    var acc_b = zero();
    if (ci0 + 32u < p.cin) {
        sweep(&acc_a, &acc_b, rows, c4n, p.cout, p.co_offset, p.co_count, ohw, true, true);
    } else {
        sweep(&acc_a, &acc_b, rows, c4n, p.cout, p.co_offset, p.co_count, ohw, true, false);
    }
    // no bias or ReLU here (flags bit 2 at most)
    let c = ci0 + 4u * sid;
    if (PHASES) { // a stride phase's pixels, every stride-th of dx's
        for (var k = 0u; k < stores(m0, plane); k++) {
            store_dx(lo_of(acc_a, k), hi_of(acc_a, k), m0 + k, plane, c);
            store_dx(lo_of(acc_b, k), hi_of(acc_b, k), m0 + LANES + k, plane, c);
        }
        return;
    }
    let z = vec4<f32>(0.0);
    store_all(acc_a, acc_b, z, z, m0, plane, p.cin, 0u, c, p.cin);
}

// A stride phase's input gradient (Conv2dParams' dx fields): this lane's sums of the
// launch's pixel m (lo: channels c0 .. c0 + 3, hi: 32 more) at their place in dx, a value
// at a time, with the accumulation flag.
fn store_dx(lo: vec4<f32>, hi: vec4<f32>, m: u32, plane: u32, c0: u32) {
    if (m >= p.n * plane || c0 >= p.cin) { return; }
    let item = fdiv(m, plane);
    let q = m - item * plane;
    let y = fdiv(q, p.w);
    let base = item * p.cin * p.dx_plane + p.dx_origin + y * p.dx_sy + (q - y * p.w) * p.dx_sx;
    for (var t = 0u; t < 8u; t++) {
        let c = lane_channel(c0, t);
        if (c >= p.cin) { return; }
        put(base + c * p.dx_plane, select(lo[t & 3u], hi[t & 3u], t >= 4u));
    }
}

// TEXELS with POOL: the first `windows` of four pooled windows' maxima (4 channels from
// this launch's c) as texels g, g + 1, ...
fn texel_windows(win: array<Win, 4>, g: u32, windows: u32, c: u32) {
    if (c >= p.co_count) { return; }
    store_texel(g, win[0].v);
    if (windows > 1u) { store_texel(g + 1u, win[1].v); }
    if (windows > 2u) { store_texel(g + 2u, win[2].v); }
    if (windows > 3u) { store_texel(g + 3u, win[3].v); }
}
