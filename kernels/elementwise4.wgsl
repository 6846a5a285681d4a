// ReLU forward and backward four elements an invocation, for tensors whose length is a
// multiple of 4 (elementwise.wgsl's relu kernels otherwise): one vec4 access where those
// make four. CPU drivers turn each storage access into a loop over the SIMD lanes, so this
// quarters the loops; GPUs read 16 bytes a lane. Same uniform and rules; count = vec4s.

struct ElementParams {
    count: u32, cols: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ElementParams;
@group(0) @binding(1) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> extra: array<vec4<f32>>; // dy (backward)

@compute @workgroup_size(64, 1, 1)
fn relu_forward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    if (i >= p.count) { return; }
    output[i] = max(input[i], vec4<f32>(0.0));
}

// dx from y (input) and dy (extra); cols 0 gradient, 1 guided backprop, 2 deconvnet.
@compute @workgroup_size(64, 1, 1)
fn relu_backward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    if (i >= p.count) { return; }
    var g = extra[i];
    if (p.cols != 0u) { g = max(g, vec4<f32>(0.0)); }
    if (p.cols != 2u) { g = select(vec4<f32>(0.0), g, input[i] > vec4<f32>(0.0)); }
    output[i] = g;
}
