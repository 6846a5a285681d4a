// (Preludes: fdiv.wgsl, pool_pair.wgsl.)
// Integrated gradients over a linear stem followed by a ReLU and a 2 x 2, stride 2
// max-pool that tiles its output (rows of a multiple of 4): the interpolated copies
// made, ReLU'd and pooled in one pass (lerp_pool_copies), and their gradients summed back
// through that pool and ReLU in one pass (weighted_pool_grad_sum), so the copies' full-size
// stem outputs and their gradients are never stored. Each is the same bits as the passes
// it replaces: copies.wgsl's lerp_copies4 then pool_pairs.wgsl's max_pool2d_forward_pairs,
// and max_pool2d_relu_backward_pairs (the gradient rule) then copies.wgsl's weighted_sum4.

struct StemParams {
    planes: u32, h: u32, w: u32, oh: u32, // channels; the stem output's rows and columns; pooled rows
    ow: u32, first: u32, m: u32, pad0: u32, // pooled columns; the launch's first copy and count
}

@group(0) @binding(0) var<uniform> p: StemParams;

// lerp_pool_copies: the stem's outputs for x and the baseline, one item each; the copies'
// alphas; the pooled copies and their argmaxes (flat indices in the stem output's plane)
@group(0) @binding(1) var<storage, read> stem_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> stem_b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> alphas: array<f32>;
@group(0) @binding(4) var<storage, read_write> pooled_out: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> argmax_out: array<vec2<u32>>;

// Copy `copy`'s four values at vec4 j: max(0, b + alpha (x - b)) as lerp_copies4 makes it.
fn lerped(j: u32, copy: u32) -> vec4<f32> {
    let b = stem_b[j];
    let v = b + alphas[p.first + copy] * (stem_x[j] - b);
    return max(v, vec4<f32>(0.0));
}

// Dispatched [x, m, z]: pair x + z * 64 nwg.x of copy y.
@compute @workgroup_size(64, 1, 1)
fn lerp_pool_copies(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = pair_of(gid.x + gid.z * nwg.x * 64u);
    if (q.y == 0xffffffffu) { return; }
    let copy = gid.y;
    let a = lerped(q.y, copy);
    let b = lerped(q.y + p.w / 4u, copy);
    let mx = pair_max(a, b, q.z);
    let i = copy * p.planes * p.oh * (p.ow / 2u) + q.x;
    pooled_out[i] = vec2<f32>(mx[0].v, mx[1].v);
    argmax_out[i] = vec2<u32>(mx[0].i, mx[1].i);
}

// weighted_pool_grad_sum: the gradients at the pooled copies, the forward's argmaxes and
// pooled copies, the copies' weights, and the sum at the stem output (one item)
@group(0) @binding(1) var<storage, read> pool_g: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> pool_arg: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> pool_y: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read_write> acc: array<vec4<f32>>;

// acc's vec4 j (4 pixels of one row) += Σ_k w[first + k] · the gradient copy k's pool and
// ReLU pass back to those pixels, in weighted_sum4's order.
@compute @workgroup_size(64, 1, 1)
fn weighted_pool_grad_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x + gid.z * nwg.x * 64u;
    let w4 = p.w / 4u;
    if (j >= p.planes * p.h * w4) { return; }
    let row = fdiv(j, w4); // over all planes
    let x = 4u * (j - row * w4);
    let plane = fdiv(row, p.h);
    let y = row - plane * p.h;
    let f = y * p.w + x; // the first pixel's flat index in the plane
    let pairs = p.planes * p.oh * (p.ow / 2u);
    let pair = (plane * p.oh + y / 2u) * (p.ow / 2u) + x / 4u;
    let z = 0.0;
    var s = acc[j];
    for (var k = 0u; k < p.m; k++) {
        let i = k * pairs + pair;
        let g = select(pool_g[i], vec2<f32>(0.0), pool_y[i] <= vec2<f32>(0.0));
        let a = pool_arg[i];
        let v = vec4<f32>(select(z, g.x, a.x == f), select(z, g.x, a.x == f + 1u), select(z, g.y, a.y == f + 2u), select(z, g.y, a.y == f + 3u));
        s = fma(vec4<f32>(weights[p.first + k]), v, s);
    }
    acc[j] = s;
}
