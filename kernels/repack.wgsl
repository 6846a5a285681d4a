// Transposes a weight chunk from the CPU-shaped forward packing [row][tap][ci4*4] to its
// input-gradient packing [ci][tap][row4*4] (conv2d_cpu.wgsl; zero padding), on first use
// of an input gradient. One thread per output word: an f32, or with HALF two f16 halves.

struct RepackParams {
    rows: u32, cin: u32, taps: u32, c4: u32, // c4 = cin rounded up to 4
    r4: u32, words: u32, _pad0: u32, _pad1: u32, // r4 = rows rounded up to 4; words: output words
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
