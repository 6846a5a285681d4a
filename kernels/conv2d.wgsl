// conv2d forward and input-gradient as implicit GEMMs for GPUs, batched, sharing one loop.
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

// Two buffers of [BK][BM] and [BK][BN] as vec4s along m and n, 12.25 KiB in all. B's rows
// are padded to 17 vec4s: the 8 lanes that store one weight row's 8 slices then hit
// different banks.
const BROW: u32 = 17u;
var<workgroup> tile_a: array<vec4<f32>, 512>;
var<workgroup> tile_b: array<vec4<f32>, 272>;

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
    let ty = px.y + i32(p.pad_h) - i32(kp.ky);
    let tx = px.x + i32(p.pad_w) - i32(kp.kx);
    if (ty < 0 || tx < 0) { return 0.0; }
    var oy = u32(ty);
    var ox = u32(tx);
    if (p.stride_h != 1u || p.stride_w != 1u) { // uniform branch: stride 1 needs no division
        oy = oy / p.stride_h;
        ox = ox / p.stride_w;
        if (oy * p.stride_h != u32(ty) || ox * p.stride_w != u32(tx)) { return 0.0; }
    }
    if (oy >= p.oh || ox >= p.ow) { return 0.0; }
    return input[((px.b * p.cout + p.co_offset + kp.c) * p.oh + oy) * p.ow + ox];
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
    return wload(w0 + ((kp.c * p.cin + n) * p.kh + kp.ky) * p.kw + kp.kx);
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
    let i = ((item0 + m / plane) * p.cin + n) * plane + m % plane;
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

// Thread (tx, ty) of 16 x 16 owns pixels m0 + 4 tx + (0..3) and m0 + 64 + 4 tx + (0..3)
// and channels n0 + 4 ty + (0..3): eight vec4 rows of accumulators. Per slice it loads
// 4 A and 2 B values from memory into registers, which go to the other shared buffer while
// this one is multiplied: one barrier per slice. `pointwise` (a constant at each entry
// point, so the driver compiles the loop without the other path): a 1x1 convolution at
// stride 1 without padding, whose A loads need no tap arithmetic (nor, going back, the
// stride's divisions).
fn gemm(mode: u32, pointwise: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, lxy: vec3<u32>) {
    let s = sizes(mode);
    let n_tiles = (s.n + BN - 1u) / BN;
    let per_group = n_tiles * u.splits;
    let group = wid.y / per_group;
    let rest = wid.y - group * per_group;
    let split = rest / n_tiles;
    let m0 = (wid.x + wid.z * nwg.x) * BM;
    let n0 = (rest - split * n_tiles) * BN;
    let item0 = u.item0 + group * u.group_items;
    let w0 = group * u.w_stride;
    if (m0 >= s.m) { return; } // uniform per workgroup
    let k_begin = split * u.k_chunk;
    let k_end = min(k_begin + u.k_chunk, s.k);
    // A loads: column lid % 128, slices lid / 128 + 2 j; B loads: slice lid % 8, column
    // lid / 8 + 32 j, so 8 neighbouring lanes read 8 neighbouring weights of one row. Each
    // load's reduction index is kept in parts (ka, kb) and advanced by additions.
    let a_col = lid % BM;
    let a_kk = lid / BM;
    let px = pixel(mode, item0, m0 + a_col, s.m);
    let b_kk = lid % BK;
    let b_col = lid / BK;
    let d = kpos(BK);
    var ka: array<Kpos, 4>;
    var ra: vec4<f32>;
    let plane_in = u.c.h * u.c.w; // the output's too, where pointwise
    var a_base = px.b * u.c.cin * plane_in + u32(px.y) * u.c.w + u32(px.x);
    if (mode == BACKWARD_INPUT) { // dY's channels of this launch's chunk
        a_base = (px.b * u.c.cout + u.c.co_offset) * plane_in + u32(px.y) * u.c.w + u32(px.x);
    }
    for (var j = 0u; j < 4u; j++) {
        ka[j] = kpos(k_begin + a_kk + 2u * j);
        ra[j] = load_a(mode, px, ka[j], k_end);
    }
    var kb = kpos(k_begin + b_kk);
    var rb: vec2<f32>;
    for (var j = 0u; j < 2u; j++) {
        rb[j] = load_b(mode, w0, kb, n0 + b_col + 32u * j, k_end, s.k, s.n);
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
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        // registers -> shared buffer `buf`
        for (var j = 0u; j < 4u; j++) {
            let kk = a_kk + 2u * j;
            tile_a[buf * 256u + kk * 32u + a_col / 4u][a_col % 4u] = ra[j];
        }
        for (var j = 0u; j < 2u; j++) {
            let col = b_col + 32u * j;
            tile_b[buf * BK * BROW + b_kk * BROW + col / 4u][col % 4u] = rb[j];
        }
        workgroupBarrier();
        // the next slice's loads are in flight while this one is multiplied
        let k1 = k0 + BK;
        if (k1 < k_end) {
            if (pointwise) {
                for (var j = 0u; j < 4u; j++) {
                    ka[j].k += BK;
                    ra[j] = load_a_pointwise(px, ka[j].k, k_end, a_base, plane_in);
                }
            } else {
                for (var j = 0u; j < 4u; j++) {
                    ka[j] = advance(ka[j], d);
                    ra[j] = load_a(mode, px, ka[j], k_end);
                }
            }
            kb = advance(kb, d);
            for (var j = 0u; j < 2u; j++) {
                rb[j] = load_b(mode, w0, kb, n0 + b_col + 32u * j, k_end, s.k, s.n);
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
    let ma = m0 + 4u * tx;
    let mb = ma + 64u;
    let n = n0 + 4u * ty;
    store_row(mode, item0, group * u.splits + split, ma, n, s, acc0);
    store_row(mode, item0, group * u.splits + split, ma + 1u, n, s, acc1);
    store_row(mode, item0, group * u.splits + split, ma + 2u, n, s, acc2);
    store_row(mode, item0, group * u.splits + split, ma + 3u, n, s, acc3);
    store_row(mode, item0, group * u.splits + split, mb, n, s, acc4);
    store_row(mode, item0, group * u.splits + split, mb + 1u, n, s, acc5);
    store_row(mode, item0, group * u.splits + split, mb + 2u, n, s, acc6);
    store_row(mode, item0, group * u.splits + split, mb + 3u, n, s, acc7);
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
