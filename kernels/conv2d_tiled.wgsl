// conv2d forward and input-gradient as implicit GEMMs for GPUs, batched: what the tiled
// loops share (the tile, the A loads, the stores, the split sum). The loops: conv2d.wgsl
// (both operands through workgroup memory) and conv2d_subgroup.wgsl (the weights through
// subgroup broadcasts).
// forward:        y[m, co] = sum_k A[m, k] W[co, k] (+ bias), m = (b, oy, ox), k = (ci, ky, kx)
// backward_input: dx[m, ci] = sum_k dY[m, k] W[co, ci, ky, kx], m = (b, iy, ix), k = (co, ky, kx)
// Operands are read straight from NCHW tensors (im2col on the fly); padding reads 0.
// A launch covers output channels [co_offset, co_offset + co_count): the weight and bias
// bindings hold only that chunk, so weights over the binding limit are split; backward
// launches after the first accumulate into dx (flags bit 2; forward honours it too, for
// sums of convolutions such as LRP's W+ a+ + W- a-).
// Split-K: with `splits` > 1, workgroup row y = n_tile + n_tiles * s sums the reduction
// slice [s * k_chunk, (s + 1) * k_chunk) and stores it raw (flags bit 3) into a scratch
// [splits][n][m] bound as the output; `conv2d_split_sum` then adds the slices in order and
// applies bias, ReLU and accumulation, so small layers (batch 1 at 14x14) fill a GPU.
// The split depends on one item's shape, never on the batch (an item's sums are the same
// bits in any batch); a launch covers items [item0, item0 + n), so a batch whose scratch
// is too large runs as several launches.
// Groups: one launch may run `groups` independent GEMMs of one shape (Winograd's 16, one a
// transform point), each over its own items (group g's first is item0 + g * group_items)
// and its own weights (w_stride values on); workgroup row y then counts groups outermost.

// Conv2dParams, the weight binding and wload: conv2d_weights.wgsl.
struct GemmParams {
    c: Conv2dParams,
    splits: u32, k_chunk: u32, // k_chunk: a multiple of BK
    mode: u32,                 // FORWARD or BACKWARD_INPUT (read by conv2d_split_sum)
    item0: u32,                // the launch's first batch item: pixel m is of item0 + m / plane
    groups: u32, group_items: u32, w_stride: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> u: GemmParams;
@group(0) @binding(1) var<storage, read> input: array<f32>; // x, dY, or the split scratch
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>; // y, dx, or the scratch

const BM: u32 = 128u; // output pixels per tile
const BN: u32 = 64u;  // output channels per tile
const BK: u32 = 8u;   // reduction slice
const PARTIAL: u32 = 8u; // flags bit 3: store raw split sums

// Two buffers of A's [BK][BM] slice as vec4s along m, 8 KiB.
var<workgroup> tile_a: array<vec4<f32>, 512>;

const FORWARD: u32 = 0u;
const BACKWARD_INPUT: u32 = 1u;

// a / b for a < 2^24 through a float reciprocal, corrected to the exact quotient.
fn fdiv(a: u32, b: u32, inv: f32) -> u32 {
    var q = u32(f32(a) * inv);
    if (q * b > a) { q -= 1u; }
    if ((q + 1u) * b <= a) { q += 1u; }
    return q;
}

// Where one thread's A column sits: batch item and (y, x) in the plane it indexes
// (output plane forward, input plane backward). Fixed for the whole K loop.
struct Pixel { b: u32, y: i32, x: i32, ok: bool }

fn pixel(mode: u32, item0: u32, m: u32, m_total: u32) -> Pixel {
    var w = u.c.ow;
    var plane = u.c.oh * u.c.ow;
    if (mode == BACKWARD_INPUT) { w = u.c.w; plane = u.c.h * u.c.w; }
    let b = m / plane;
    let q = m % plane;
    return Pixel(item0 + b, i32(q / w), i32(q % w), m < m_total);
}

// A reduction index k and its parts: channel c (ci forward, co backward) and tap (ky, kx).
// Loads step k by BK: the parts follow by additions, with no division in the loop.
struct Kpos { k: u32, c: u32, ky: u32, kx: u32 }

fn kpos(k: u32) -> Kpos {
    let kw = u.c.kw;
    let khw = u.c.kh * kw;
    let c = fdiv(k, khw, 1.0 / f32(khw));
    let r = k - c * khw;
    let ky = fdiv(r, kw, 1.0 / f32(kw));
    return Kpos(k, c, ky, r - ky * kw);
}

// kp advanced by d = kpos(BK): d.kx < kw and d.ky < kh, so one carry each suffices.
fn advance(kp: Kpos, d: Kpos) -> Kpos {
    var kx = kp.kx + d.kx;
    var ky = kp.ky + d.ky;
    var c = kp.c + d.c;
    if (kx >= u.c.kw) { kx -= u.c.kw; ky += 1u; }
    if (ky >= u.c.kh) { ky -= u.c.kh; c += 1u; }
    return Kpos(kp.k + BK, c, ky, kx);
}

// A[m, k]: an input pixel (forward) or an output-gradient pixel (backward); 0 past k_end.
fn load_a(mode: u32, px: Pixel, kp: Kpos, k_end: u32) -> f32 {
    let p = u.c;
    if (!px.ok || kp.k >= k_end) { return 0.0; }
    if (mode == FORWARD) {
        let iy = px.y * i32(p.stride_h) + i32(kp.ky) - i32(p.pad_h);
        let ix = px.x * i32(p.stride_w) + i32(kp.kx) - i32(p.pad_w);
        if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) { return 0.0; }
        return input[((px.b * p.cin + kp.c) * p.h + u32(iy)) * p.w + u32(ix)];
    }
    // stride 1 (a strided conv's input gradient runs a launch per stride phase: the
    // weights' taps and dx's pixels are placed by Conv2dParams' phase fields)
    let oy = px.y + i32(p.pad_h) - i32(kp.ky);
    let ox = px.x + i32(p.pad_w) - i32(kp.kx);
    if (oy < 0 || ox < 0 || oy >= i32(p.oh) || ox >= i32(p.ow)) { return 0.0; }
    return input[((px.b * p.cout + p.co_offset + kp.c) * p.oh + u32(oy)) * p.ow + u32(ox)];
}

// A[m, k] of a pointwise GEMM (a 1x1 convolution at stride 1 without padding, forward or
// input gradient: Winograd's GEMMs, ResNets' 1x1 convs): the thread's pixel's first
// reduction channel at `base`, channels `plane` apart.
fn load_a_pointwise(px: Pixel, k: u32, k_end: u32, base: u32, plane: u32) -> f32 {
    if (!px.ok || k >= k_end) { return 0.0; }
    return input[base + k * plane];
}

// B[k, n]: W[co, k] (forward, n = co) or W[co, ci, ky, kx] (backward, n = ci), of the
// matrix that starts at value w0.
fn load_b(mode: u32, w0: u32, kp: Kpos, n: u32, k_end: u32, k_total: u32, n_total: u32) -> f32 {
    if (kp.k >= k_end || n >= n_total) { return 0.0; }
    if (mode == FORWARD) { return wload(w0 + n * k_total + kp.k); }
    let p = u.c;
    return wload(w0 + (kp.c * p.cin + n) * p.taps + p.tap0 + kp.ky * p.tap_dy + kp.kx * p.tap_dx);
}

// Stores sum `acc` of output pixel m (of the items from item0) and channel n.
fn store(mode: u32, item0: u32, m: u32, n: u32, acc: f32) {
    let p = u.c;
    if (mode == FORWARD) {
        let plane = p.oh * p.ow;
        var v = acc;
        if ((p.flags & 2u) != 0u) { v += bias[n]; }
        if ((p.flags & 1u) != 0u) { v = max(v, 0.0); }
        let o = ((item0 + m / plane) * p.cout + p.co_offset + n) * plane + m % plane;
        if ((p.flags & 4u) != 0u) { output[o] += v; } else { output[o] = v; }
        return;
    }
    let plane = p.h * p.w;
    let b = m / plane;
    let q = m - b * plane;
    let y = q / p.w;
    let i = ((item0 + b) * p.cin + n) * p.dx_plane + p.dx_origin + y * p.dx_sy + (q - y * p.w) * p.dx_sx;
    // flags bit6: times the element of the tensor bound as the bias at its own index (LRP's
    // a ⊙ Wᵀq stored as products: one multiplication, the bits of a pass after)
    var v = acc;
    if ((p.flags & 64u) != 0u) { v *= bias[i]; }
    if ((p.flags & 4u) != 0u) { output[i] += v; } else { output[i] = v; }
}

struct Sizes { m: u32, n: u32, k: u32 }

fn sizes(mode: u32) -> Sizes {
    let p = u.c;
    if (mode == BACKWARD_INPUT) {
        return Sizes(p.n * p.h * p.w, p.cin, p.co_count * p.kh * p.kw);
    }
    return Sizes(p.n * p.oh * p.ow, p.co_count, p.cin * p.kh * p.kw);
}

// Where a workgroup's output tile sits: its GEMM (`group`), reduction split, first pixel
// and channel, the group's first item and weights, its reduction range, and the slice of
// the split scratch it stores to.
struct Tile {
    s: Sizes, m0: u32, n0: u32, item0: u32, w0: u32, k_begin: u32, k_end: u32, slice: u32,
}

fn tile(mode: u32, wid: vec3<u32>, nwg: vec3<u32>) -> Tile {
    let s = sizes(mode);
    let n_tiles = (s.n + BN - 1u) / BN;
    let per_group = n_tiles * u.splits;
    let group = wid.y / per_group;
    let rest = wid.y - group * per_group;
    let split = rest / n_tiles;
    let k_begin = split * u.k_chunk;
    return Tile(
        s, (wid.x + wid.z * nwg.x) * BM, (rest - split * n_tiles) * BN,
        u.item0 + group * u.group_items, group * u.w_stride,
        k_begin, min(k_begin + u.k_chunk, s.k), group * u.splits + split,
    );
}

// Thread i's share of A's slices: column i % BM, slices i / BM + 2 j (j < 4), each load's
// reduction index kept in parts and advanced by additions; `v` the values loaded.
struct ALoads { px: Pixel, col: u32, kk: u32, base: u32, plane: u32, k: array<Kpos, 4>, v: vec4<f32> }

fn a_first(mode: u32, t: Tile, i: u32) -> ALoads {
    var a: ALoads;
    a.col = i % BM;
    a.kk = i / BM;
    a.px = pixel(mode, t.item0, t.m0 + a.col, t.s.m);
    a.plane = u.c.h * u.c.w; // the output's too, where pointwise
    a.base = a.px.b * u.c.cin * a.plane + u32(a.px.y) * u.c.w + u32(a.px.x);
    if (mode == BACKWARD_INPUT) { // dY's channels of this launch's chunk
        a.base = (a.px.b * u.c.cout + u.c.co_offset) * a.plane + u32(a.px.y) * u.c.w + u32(a.px.x);
    }
    for (var j = 0u; j < 4u; j++) {
        a.k[j] = kpos(t.k_begin + a.kk + 2u * j);
        a.v[j] = load_a(mode, a.px, a.k[j], t.k_end);
    }
    return a;
}

// The next slice's loads (`d` = kpos(BK)). `pointwise` (a constant at each entry point, so
// the driver compiles the loop without the other path): a 1x1 convolution at stride 1
// without padding, whose loads need no tap arithmetic (nor, going back, the stride's
// divisions).
fn a_next(mode: u32, pointwise: bool, a: ptr<function, ALoads>, d: Kpos, k_end: u32) {
    if (pointwise) {
        for (var j = 0u; j < 4u; j++) {
            (*a).k[j].k += BK;
            (*a).v[j] = load_a_pointwise((*a).px, (*a).k[j].k, k_end, (*a).base, (*a).plane);
        }
    } else {
        for (var j = 0u; j < 4u; j++) {
            (*a).k[j] = advance((*a).k[j], d);
            (*a).v[j] = load_a(mode, (*a).px, (*a).k[j], k_end);
        }
    }
}

// The loaded values into buffer `buf` of tile_a.
fn a_store(a: ALoads, buf: u32) {
    for (var j = 0u; j < 4u; j++) {
        tile_a[buf * 256u + (a.kk + 2u * j) * 32u + a.col / 4u][a.col % 4u] = a.v[j];
    }
}

// Writes channels n .. n + 3 of pixel m: finished, or raw into slice `slice` of the split
// scratch ([groups][splits][n][m]).
fn store_row(mode: u32, item0: u32, slice: u32, m: u32, n: u32, s: Sizes, v: vec4<f32>) {
    if (m >= s.m) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (n + j < s.n) {
            if ((u.c.flags & PARTIAL) != 0u) {
                output[(slice * s.n + n + j) * s.m + m] = v[j];
            } else {
                store(mode, item0, m, n + j, v[j]);
            }
        }
    }
}

// Sums a split launch's slices [groups][splits][n][m] (in `input`) in slice order and
// stores them as the unsplit kernel would: one thread per (group, m, n), neighbouring
// threads on neighbouring pixels.
@compute @workgroup_size(64, 1, 1)
fn conv2d_split_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = sizes(u.mode);
    let i = gid.x + gid.z * nwg.x * 64u;
    let per = s.m * s.n;
    if (i >= per * u.groups) { return; }
    let group = i / per;
    let r = i - group * per;
    let n = r / s.m;
    let m = r - n * s.m;
    var acc = 0.0;
    for (var k = 0u; k < u.splits; k++) {
        acc += input[((group * u.splits + k) * s.n + n) * s.m + m];
    }
    store(u.mode, u.item0 + group * u.group_items, m, n, acc);
}
