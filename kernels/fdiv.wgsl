// A prelude of the kernels that divide indices (the CPU-shaped GEMMs, pool_pairs.wgsl):
// a / b for a < 2^24 through a float division, corrected to the exact quotient (CPU
// drivers have no vector integer division).
fn fdiv(a: u32, b: u32) -> u32 {
    var q = u32(f32(a) / f32(b));
    if (q * b > a) { q -= 1u; }
    if ((q + 1u) * b <= a) { q += 1u; }
    return q;
}
