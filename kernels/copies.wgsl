// Batches of generated copies for integrated gradients and SmoothGrad, and their weighted
// reduction, all on the device: copies k = first .. first + m of one item of `per` values.

struct CopyParams {
    per: u32, // values per item
    m: u32, // copies in this launch
    first: u32, // index of the first copy
    seed_lo: u32,
    seed_hi: u32,
    sigma: f32,
    relu: u32, // lerp copies: 1 takes max(0, .) of each value
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: CopyParams;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

// copy k: b + alpha_k (x - b), or its ReLU
@group(0) @binding(1) var<storage, read> lerp_x: array<f32>;
@group(0) @binding(2) var<storage, read> lerp_b: array<f32>;
@group(0) @binding(3) var<storage, read> lerp_alpha: array<f32>;
@group(0) @binding(4) var<storage, read_write> lerp_out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn lerp_copies(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.m * p.per) { return; }
    let k = i / p.per;
    let j = i - k * p.per;
    let b = lerp_b[j];
    let v = b + lerp_alpha[p.first + k] * (lerp_x[j] - b);
    lerp_out[i] = select(v, max(v, 0.0), p.relu == 1u);
}

// lerp_copies four values a thread, for items of a multiple of 4 values, dispatched
// [x, y, m]: copy k in z (no index division), its values over x and y.
@group(0) @binding(1) var<storage, read> lerp_x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> lerp_b4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lerp_out4: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn lerp_copies4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x + gid.y * nwg.x * 64u;
    let per4 = p.per / 4u;
    if (j >= per4) { return; }
    let k = gid.z;
    let b = lerp_b4[j];
    let v = b + lerp_alpha[p.first + k] * (lerp_x4[j] - b);
    lerp_out4[k * per4 + j] = select(v, max(v, vec4<f32>(0.0)), p.relu == 1u);
}

// PCG's output hash of one 32-bit word.
fn pcg(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// A standard normal draw for (seed, copy, element), Box-Muller on two hashed uniforms.
// It depends on nothing else, so an item's noise is the same in any batch.
fn normal(copy: u32, j: u32) -> f32 {
    let key = pcg(p.seed_lo ^ pcg(p.seed_hi ^ pcg(copy ^ pcg(j))));
    let h2 = pcg(key ^ 0x9e3779b9u);
    let u1 = (f32(key >> 8u) + 0.5) / 16777216.0;
    let u2 = (f32(h2 >> 8u) + 0.5) / 16777216.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// copy k: x + sigma * N(0, 1)
@group(0) @binding(1) var<storage, read> noise_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> noise_out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn noisy_copies(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.m * p.per) { return; }
    let k = i / p.per;
    let j = i - k * p.per;
    noise_out[i] = noise_x[j] + p.sigma * normal(p.first + k, j);
}

// acc[j] += sum over this launch's copies k of w[first + k] * g[k, j]
@group(0) @binding(1) var<storage, read> acc_g: array<f32>;
@group(0) @binding(2) var<storage, read> acc_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn weighted_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = index(gid, nwg);
    if (j >= p.per) { return; }
    var s = acc[j];
    for (var k = 0u; k < p.m; k++) { s = fma(acc_w[p.first + k], acc_g[k * p.per + j], s); }
    acc[j] = s;
}

// weighted_sum four values a thread, for items of a multiple of 4 values: vec4 loads
// (lavapipe makes every storage load a loop over the lanes, as wide or not).
@group(0) @binding(1) var<storage, read> acc_g4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> acc4: array<vec4<f32>>;

@compute @workgroup_size(64, 1, 1)
fn weighted_sum4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = index(gid, nwg);
    let per4 = p.per / 4u;
    if (j >= per4) { return; }
    var s = acc4[j];
    for (var k = 0u; k < p.m; k++) { s = fma(vec4<f32>(acc_w[p.first + k]), acc_g4[k * per4 + j], s); }
    acc4[j] = s;
}
