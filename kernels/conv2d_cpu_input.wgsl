// Prelude of the CPU-shaped kernels that read their input (x, or dY for the gradients)
// from a storage buffer, NCHW (the `cpu` variant's).

@group(0) @binding(1) var<storage, read> input: array<f32>;

// Four consecutive channels c .. c + 3 of a plane stack at `off` (stride `plane`); the
// ones at or past `count`, and all of them where !ok, read 0 (from a valid address).
fn load4(off: u32, c: u32, plane: u32, count: u32, ok: bool) -> vec4<f32> {
    let last = count - 1u;
    return vec4<f32>(
        select(0.0, input[off + min(c, last) * plane], ok && c < count),
        select(0.0, input[off + min(c + 1u, last) * plane], ok && c + 1u < count),
        select(0.0, input[off + min(c + 2u, last) * plane], ok && c + 2u < count),
        select(0.0, input[off + min(c + 3u, last) * plane], ok && c + 3u < count),
    );
}

// Where pixel offset 0 of item b's channels [offset, offset + count) of `total` lies.
fn xbase(b: u32, total: u32, offset: u32, count: u32, plane: u32) -> u32 {
    return (b * total + offset) * plane;
}

// Channels 4 c4 .. 4 c4 + 3 of the pixel at `off` (from xbase, plus the pixel's offset).
fn xload4(off: u32, c4: u32, plane: u32, count: u32, ok: bool) -> vec4<f32> {
    return load4(off, 4u * c4, plane, count, ok);
}
