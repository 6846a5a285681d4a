// Element-wise maps, the steps of device-resident loops (masks, class models): one thread
// per element of a flat, batched tensor; scalars in the uniform.

struct MapParams {
    count: u32, // elements
    plane: u32, // mix: elements per channel plane (H*W)
    channels: u32, // mix: channels of a and b
    m_channels: u32, // mix: channels of m (1: broadcast over channels)
    a: f32, b: f32, c: f32, d: f32, // per op, below
    e: f32, f: f32, g: f32, flags: u32,
}

@group(0) @binding(0) var<uniform> p: MapParams;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// y = a * x + y
@compute @workgroup_size(64, 1, 1)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    y[i] = fma(p.a, x[i], y[i]);
}

// y = a * x + b
@compute @workgroup_size(64, 1, 1)
fn affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    y[i] = fma(p.a, x[i], p.b);
}

// y = clamp(x, a, b)
@compute @workgroup_size(64, 1, 1)
fn clamp_range(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    y[i] = min(max(x[i], p.a), p.b);
}

// y = 1 / (1 + exp(-x)), without overflow for large |x|
@compute @workgroup_size(64, 1, 1)
fn sigmoid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let v = x[i];
    let e = exp(-abs(v));
    y[i] = select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

// out = m * a + (1 - m) * b for a, b [N, C, H, W] and m [N, Cm, H, W], Cm = 1 or C.
@group(0) @binding(1) var<storage, read> mix_m: array<f32>;
@group(0) @binding(2) var<storage, read> mix_a: array<f32>;
@group(0) @binding(3) var<storage, read> mix_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> mix_out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn mix_masked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let per = p.channels * p.plane;
    let item = i / per;
    let r = i - item * per;
    var j = item * p.plane + r % p.plane;
    if (p.m_channels != 1u) { j = i; }
    let m = mix_m[j];
    mix_out[i] = m * mix_a[i] + (1.0 - m) * mix_b[i];
}

// One Adam step in place, as torch.optim.Adam (amsgrad off): with g' = ±g + wd * w,
// m = b1 m + (1 - b1) g', v = b2 v + (1 - b2) g'^2, w -= lr (m / c1) / (sqrt(v / c2) + eps),
// c1 = 1 - b1^t, c2 = 1 - b2^t. Uniform: a lr, b b1, c b2, d eps, e c1, f c2, g wd;
// flags bit0 maximize (ascend: g' = -g + wd w).
@group(0) @binding(1) var<storage, read> adam_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> adam_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> adam_m: array<f32>;
@group(0) @binding(4) var<storage, read_write> adam_v: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    var g = adam_g[i];
    if ((p.flags & 1u) != 0u) { g = -g; }
    let w = adam_w[i];
    g = fma(p.g, w, g);
    let m = fma(p.b, adam_m[i], (1.0 - p.b) * g);
    let v = fma(p.c, adam_v[i], (1.0 - p.c) * g * g);
    adam_m[i] = m;
    adam_v[i] = v;
    adam_w[i] = w - p.a * (m / p.e) / (sqrt(v / p.f) + p.d);
}

// out = a * b, element-wise
@group(0) @binding(3) var<storage, read_write> mul_out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn multiply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    mul_out[i] = mix_m[i] * mix_a[i];
}

// x = clamp(x, a, b) in place
@group(0) @binding(1) var<storage, read_write> own: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn clamp_own(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    own[i] = min(max(own[i], p.a), p.b);
}

// The mask's gradient of mix: out[n, 0, v] = sum over c of g * (a - b) at [n, c, v];
// one thread per mask element (count = N * plane).
@compute @workgroup_size(64, 1, 1)
fn mix_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let item = i / p.plane;
    let v = i - item * p.plane;
    var s = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let j = (item * p.channels + c) * p.plane + v;
        s = fma(mix_m[j], mix_a[j] - mix_b[j], s);
    }
    mix_out[i] = s;
}

// y[plane + i] = x[i]: a row into a history buffer (plane = the row's offset)
@compute @workgroup_size(64, 1, 1)
fn store_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    y[p.plane + i] = x[i];
}

// SGD with momentum in place, as torch.optim.SGD: buf = g on the first step (flags bit0),
// else b * buf + (1 - c) * g; w -= a * buf. Uniform: a lr, b momentum, c dampening.
@group(0) @binding(1) var<storage, read> sgd_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> sgd_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> sgd_buf: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let g = sgd_g[i];
    var b = g;
    if ((p.flags & 1u) == 0u) { b = fma(p.b, sgd_buf[i], (1.0 - p.c) * g); }
    sgd_buf[i] = b;
    sgd_w[i] = sgd_w[i] - p.a * b;
}

// out = a + b * x + c * y + d * z, element-wise over three inputs (a loss from its terms)
@group(0) @binding(1) var<storage, read> lin_x: array<f32>;
@group(0) @binding(2) var<storage, read> lin_y: array<f32>;
@group(0) @binding(3) var<storage, read> lin_z: array<f32>;
@group(0) @binding(4) var<storage, read_write> lin_out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn combine3(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    lin_out[i] = p.a + p.b * lin_x[i] + p.c * lin_y[i] + p.d * lin_z[i];
}

// Best iterate, step 1: rows of x (plane = row length) whose loss beats the best so far
// are copied into best_x. Step 2 (min_into) then lowers the best losses.
@group(0) @binding(1) var<storage, read> kb_x: array<f32>;
@group(0) @binding(2) var<storage, read> kb_loss: array<f32>;
@group(0) @binding(3) var<storage, read> kb_best: array<f32>;
@group(0) @binding(4) var<storage, read_write> kb_best_x: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn copy_if_better(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    let row = i / p.plane;
    if (kb_loss[row] < kb_best[row]) { kb_best_x[i] = kb_x[i]; }
}

// y = min(y, x)
@compute @workgroup_size(64, 1, 1)
fn min_into(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.count) { return; }
    y[i] = min(y[i], x[i]);
}
