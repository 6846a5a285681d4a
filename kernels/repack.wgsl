// Transposes a weight chunk from a CPU-shaped forward packing to its input-gradient
// packing (zero padding), on first use of an input gradient. One thread per output word:
// an f32, or with HALF two f16 halves.
// - transpose_packed: [row][tap][ci4*4] to [ci][tap][row4*4] (conv2d_cpu.wgsl);
// - transpose_blocked: [row/64][tap][ci4*4][row % 64] to [ci/64][tap][row4*4][ci % 64]
//   (conv2d_cpu_uniform.wgsl). Those buffers may pass the storage binding limit, so a
//   launch binds a range of each: it writes the output words of its range whose values
//   lie in its source range (and the padding, with the first source range).

struct RepackParams {
    rows: u32, cin: u32, taps: u32, c4: u32, // c4 = cin rounded up to 4
    r4: u32, words: u32, src_lo: u32, src_words: u32, // r4 = rows rounded up to 4; words: output words bound
    dst_lo: u32, _pad0: u32, _pad1: u32, _pad2: u32, // first bound word of the source and the output
}

override HALF: bool = false;

@group(0) @binding(0) var<uniform> p: RepackParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

// Bits of element e of the output (a float's, or a half's in the low 16 bits).
fn element(e: u32) -> u32 {
    let r = e % p.r4;
    let rest = e / p.r4;
    let t = rest % p.taps;
    let ci = rest / p.taps;
    if (r >= p.rows || ci >= p.cin) { return 0u; }
    let i = (r * p.taps + t) * p.c4 + ci;
    if (HALF) { return (src[i >> 1u] >> (16u * (i & 1u))) & 0xffffu; }
    return src[i];
}

@compute @workgroup_size(64, 1, 1)
fn transpose_packed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = gid.x + gid.z * nwg.x * 64u;
    if (w >= p.words) { return; }
    if (HALF) {
        dst[w] = element(2u * w) | (element(2u * w + 1u) << 16u);
    } else {
        dst[w] = element(w);
    }
}

const NONE: u32 = 0xffffffffu;

// Where element e of the blocked input-gradient layout [ci/64][tap][r4/4][co % 4][ci % 64]
// sits in the blocked forward one [row/64][tap][c4/4][ci % 4][row % 64]; NONE: padding.
fn source_blocked(e: u32) -> u32 {
    let j = e % 64u;
    let s = (e / 64u) % 4u;
    let rest = e / 256u;
    let o4 = rest % (p.r4 / 4u);
    let rest2 = rest / (p.r4 / 4u);
    let t = rest2 % p.taps;
    let ci = (rest2 / p.taps) * 64u + j;
    let co = o4 * 4u + s;
    if (co >= p.rows || ci >= p.cin) { return NONE; }
    return (((co / 64u) * p.taps + t) * p.c4 + ci) * 64u + co % 64u;
}

// Whether this launch writes a value from source word `sw` (NONE: padding, written with
// the first source range).
fn in_range(sw: u32) -> bool {
    if (sw == NONE) { return p.src_lo == 0u; }
    return sw >= p.src_lo && sw - p.src_lo < p.src_words;
}

@compute @workgroup_size(64, 1, 1)
fn transpose_blocked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = gid.x + gid.z * nwg.x * 64u;
    if (w >= p.words) { return; }
    let g = p.dst_lo + w;
    if (!HALF) {
        let i = source_blocked(g);
        if (i == NONE) {
            if (p.src_lo == 0u) { dst[w] = 0u; }
        } else if (in_range(i)) {
            dst[w] = src[i - p.src_lo];
        }
        return;
    }
    var v = dst[w];
    var any = false;
    for (var h = 0u; h < 2u; h++) {
        let i = source_blocked(2u * g + h);
        let sw = select(i >> 1u, NONE, i == NONE);
        if (in_range(sw)) {
            var bits = 0u;
            if (i != NONE) { bits = (src[sw - p.src_lo] >> (16u * (i & 1u))) & 0xffffu; }
            v = (v & ~(0xffffu << (16u * h))) | (bits << (16u * h));
            any = true;
        }
    }
    if (any) { dst[w] = v; }
}
