// Max-pooling with 2x2 windows at stride 2 without padding over rows of a multiple of 4
// inputs (VGG's pools), two neighbouring windows an invocation, their two input rows
// read or written as one vec4 each and their outputs as vec2s: fewer, wider loads and
// stores, which lavapipe runs as loops over the lanes whatever their width.
// max_pool2d_forward_pairs makes the same comparisons in the same order as pool.wgsl's
// max_pool2d_forward (so the same ties and NaNs); the backward twins match
// max_pool2d_backward_tiling and max_pool2d_relu_backward_tiling.

// forward: x, y, argmax
@group(0) @binding(1) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> argmax: array<vec2<u32>>;
// backward: dy, dx, the forward's argmax and (ReLU twin) output
@group(0) @binding(1) var<storage, read> dy: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> dx: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> argmax_in: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> pooled: array<vec2<f32>>;

// This invocation's output pair (pool_pair.wgsl's pair_of).
fn pair_at(gid: vec3<u32>, nwg: vec3<u32>) -> vec3<u32> {
    return pair_of(gid.x + gid.z * nwg.x * 64u);
}

@compute @workgroup_size(64, 1, 1)
fn max_pool2d_forward_pairs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = pair_at(gid, nwg);
    if (q.y == 0xffffffffu) { return; }
    let a = input[q.y];
    let b = input[q.y + p.w / 4u];
    let m = pair_max(a, b, q.z);
    output[q.x] = vec2<f32>(m[0].v, m[1].v);
    argmax[q.x] = vec2<u32>(m[0].i, m[1].i);
}

// Writes pair q's two windows: g.x and g.y at their argmaxes, zeros elsewhere.
fn write_pair(q: vec3<u32>, g: vec2<f32>) {
    let a = argmax_in[q.x];
    let f = q.z;
    let z = 0.0;
    dx[q.y] = vec4<f32>(select(z, g.x, a.x == f), select(z, g.x, a.x == f + 1u), select(z, g.y, a.y == f + 2u), select(z, g.y, a.y == f + 3u));
    let e = f + p.w;
    dx[q.y + p.w / 4u] = vec4<f32>(select(z, g.x, a.x == e), select(z, g.x, a.x == e + 1u), select(z, g.y, a.y == e + 2u), select(z, g.y, a.y == e + 3u));
}

@compute @workgroup_size(64, 1, 1)
fn max_pool2d_backward_pairs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = pair_at(gid, nwg);
    if (q.y == 0xffffffffu) { return; }
    write_pair(q, dy[q.x]);
}

// flags: the ReLU rule (0 gradient, 1 guided backprop, 2 deconvnet), as in pool.wgsl.
@compute @workgroup_size(64, 1, 1)
fn max_pool2d_relu_backward_pairs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = pair_at(gid, nwg);
    if (q.y == 0xffffffffu) { return; }
    var g = dy[q.x];
    if (p.flags != 0u) { g = max(g, vec2<f32>(0.0)); }
    if (p.flags != 2u) { g = select(g, vec2<f32>(0.0), pooled[q.x] <= vec2<f32>(0.0)); }
    write_pair(q, g);
}
