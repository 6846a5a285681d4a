// Transposes a weight chunk from the CPU-shaped forward packing [row][tap][ci4*4] to its
// input-gradient packing [ci][tap][row4*4] (conv2d_cpu.wgsl; zero padding), on first use
// of an input gradient.

struct RepackParams {
    rows: u32, cin: u32, taps: u32, c4: u32, // c4 = cin rounded up to 4
    r4: u32, tiles: u32, shift: u32, src_shift: u32, // r4 = rows rounded up to 4; tiles: see block_of
}

override HALF: bool = false;

// Both packings as pairs of words: 4 values are two pairs (f32) or one (f16, two halves a
// word, the first in the low bits), and every 4-value group starts on a pair.
@group(0) @binding(0) var<uniform> p: RepackParams;
@group(0) @binding(1) var<storage, read> src: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec2<u32>>;

// The 4 values (as bits) at value index i, a multiple of 4.
fn load4(i: u32) -> vec4<u32> {
    if (HALF) {
        let w = src[i >> 2u];
        return vec4<u32>(w.x & 0xffffu, w.x >> 16u, w.y & 0xffffu, w.y >> 16u);
    }
    return vec4<u32>(src[i >> 1u], src[(i >> 1u) + 1u]);
}

fn store4(i: u32, v: vec4<u32>) {
    if (HALF) {
        dst[i >> 2u] = vec2<u32>(v.x | (v.y << 16u), v.z | (v.w << 16u));
    } else {
        dst[i >> 1u] = v.xy;
        dst[(i >> 1u) + 1u] = v.zw;
    }
}

// Thread lid of a workgroup: one block of 4 rows x 4 channels of one tap, a workgroup a
// tile of 8 x 8 such blocks (32 rows x 32 channels), so that a tile reads and writes
// whole cache lines (fc6's rows are 100 KB apart). `ok` is false past the matrix.
struct Block { r0: u32, t: u32, c0: u32, ok: bool }

fn block_of(wid: vec3<u32>, lid: u32, nwg: vec3<u32>) -> Block {
    let tile = wid.x + wid.z * nwg.x;
    let ctiles = (p.c4 / 4u + 7u) / 8u;
    let rest = tile / ctiles;
    let r0 = 4u * (8u * (rest / p.taps) + lid / 8u);
    let c0 = 4u * (8u * (tile % ctiles) + lid % 8u);
    return Block(r0, rest % p.taps, c0, tile < p.tiles && r0 < p.r4 && c0 < p.c4);
}

// The forward packing's index of the block's row k (its 4 channels from there on).
fn source_of(b: Block, k: u32) -> u32 {
    return ((b.r0 + k) * p.taps + b.t) * p.c4 + b.c0;
}

// The block's four rows of 4 channels (bits); rows past `rows` are zeros.
fn rows_of(b: Block) -> array<vec4<u32>, 4> {
    var m: array<vec4<u32>, 4>;
    for (var k = 0u; k < 4u; k++) {
        m[k] = vec4<u32>(0u);
        if (b.r0 + k < p.rows) { m[k] = load4(source_of(b, k)); }
    }
    return m;
}

// Channel j of the block's four rows: its 4 rows.
fn column(m: array<vec4<u32>, 4>, j: u32) -> vec4<u32> {
    return vec4<u32>(m[0][j], m[1][j], m[2][j], m[3][j]);
}

// The transposed packing's index of the block's channel j (its 4 rows from there on).
fn target_of(b: Block, j: u32) -> u32 {
    return ((b.c0 + j) * p.taps + b.t) * p.r4 + b.r0;
}

// Four channels of 4 rows out; channels past `cin` are not stored (the transposed packing
// has `cin` of them).
@compute @workgroup_size(64, 1, 1)
fn transpose_packed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let b = block_of(wid, lid, nwg);
    if (!b.ok) { return; }
    let m = rows_of(b);
    for (var j = 0u; j < 4u; j++) {
        if (b.c0 + j < p.cin) { store4(target_of(b, j), column(m, j)); }
    }
}

// transpose_packed_texture: the same for f32 weights held only as the rgba32float texture
// the cpu-tex kernels read (forward packing texel g at (g mod 2^src_shift, g >>
// src_shift)), written into another such texture (2^shift wide).
@group(0) @binding(1) var src_texture: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var dst_texture: texture_storage_2d<rgba32float, write>;

fn texel_at(g: u32, shift: u32) -> vec2<u32> {
    return vec2<u32>(g & ((1u << shift) - 1u), g >> shift);
}

@compute @workgroup_size(64, 1, 1)
fn transpose_packed_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let b = block_of(wid, lid, nwg);
    if (!b.ok) { return; }
    // as bits, so that every value, subnormal or not, moves unchanged
    var m: array<vec4<u32>, 4>;
    for (var k = 0u; k < 4u; k++) {
        m[k] = vec4<u32>(0u);
        if (b.r0 + k < p.rows) {
            let at = texel_at(source_of(b, k) >> 2u, p.src_shift);
            m[k] = bitcast<vec4<u32>>(textureLoad(src_texture, at));
        }
    }
    for (var j = 0u; j < 4u; j++) {
        if (b.c0 + j < p.cin) {
            let at = texel_at(target_of(b, j) >> 2u, p.shift);
            textureStore(dst_texture, at, bitcast<vec4<f32>>(column(m, j)));
        }
    }
}
