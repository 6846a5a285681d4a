// Element-wise and row-wise kernels, batched over a flat index.

struct ElementParams {
    count: u32, cols: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ElementParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    if (i >= p.count) { return; }
    output[i] = max(input[i], 0.0);
}

// ReLU input-gradient from the forward output y; cols selects the rule:
// 0 gradient: dy * (y > 0); 1 guided backprop: max(dy, 0) * (y > 0); 2 deconvnet: max(dy, 0).
// Bindings: input = y, extra = dy, output = dx.
@group(0) @binding(3) var<storage, read> extra: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    if (i >= p.count) { return; }
    var g = extra[i];
    if (p.cols != 0u) { g = max(g, 0.0); }
    if (p.cols != 2u && input[i] <= 0.0) { g = 0.0; }
    output[i] = g;
}

var<workgroup> scratch: array<f32, 64>;

// softmax over each row of `cols` values; one workgroup per row, count = rows.
@compute @workgroup_size(64, 1, 1)
fn softmax_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.z * nwg.x;
    if (row >= p.count) { return; } // uniform per workgroup
    let base = row * p.cols;
    var m = -3.4028235e38;
    for (var j = lid; j < p.cols; j += 64u) { m = max(m, input[base + j]); }
    scratch[lid] = m;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) { scratch[lid] = max(scratch[lid], scratch[lid + s]); }
        workgroupBarrier();
    }
    let row_max = scratch[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var j = lid; j < p.cols; j += 64u) { sum += exp(input[base + j] - row_max); }
    scratch[lid] = sum;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) { scratch[lid] += scratch[lid + s]; }
        workgroupBarrier();
    }
    let total = scratch[0];
    for (var j = lid; j < p.cols; j += 64u) { output[base + j] = exp(input[base + j] - row_max) / total; }
}
