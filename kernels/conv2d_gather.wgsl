// The input gradient of a convolution with few input channels (at most 4: an image's
// RGB first layer) for the tiled variant, gathered one input pixel a thread:
// dx[b, ci, iy, ix] = sum over the taps (ky, kx) whose output pixel (oy, ox) is whole,
// oy = (iy + pad - ky) / stride, and over this launch's output channels co, of
// dY[b, co, oy, ox] W[co, ci, ky, kx]. The GEMM's 64-channel tiles would compute 64
// channels for these 3, and at stride 2 every tap for a quarter of them (ResNet's 7x7
// stem: about 80x the multiply-adds this does). Sums in the order ky, kx, co: an item's
// are the same bits in any batch.

// Conv2dParams (flags bit2 accumulate, bit6 scale), the weight binding (this launch's
// chunk of rows [co][ci][ky][kx]) and wload: conv2d_weights.wgsl.
@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
// with flags bit6, the tensor dx is multiplied by (dx's shape; LRP's a ⊙ Wᵀq)
@group(0) @binding(3) var<storage, read> times: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn conv2d_backward_input_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    let plane = p.h * p.w;
    if (i >= p.n * plane) { return; }
    let b = i / plane;
    let q = i - b * plane;
    let iy = q / p.w;
    let ix = q - iy * p.w;
    let ty = iy + p.pad_h;
    let tx = ix + p.pad_w;
    let taps = p.kh * p.kw;
    let cin = min(p.cin, 4u); // the launcher's bound; acc holds 4
    var acc = vec4<f32>(0.0);
    // the taps whose output pixel is whole: ky ≡ ty (mod stride), ky <= ty
    for (var ky = ty % p.stride_h; ky < p.kh && ky <= ty; ky += p.stride_h) {
        let oy = (ty - ky) / p.stride_h;
        if (oy >= p.oh) { continue; }
        for (var kx = tx % p.stride_w; kx < p.kw && kx <= tx; kx += p.stride_w) {
            let ox = (tx - kx) / p.stride_w;
            if (ox >= p.ow) { continue; }
            let g0 = ((b * p.cout + p.co_offset) * p.oh + oy) * p.ow + ox;
            let step = p.oh * p.ow;
            for (var co = 0u; co < p.co_count; co++) {
                let g = dy[g0 + co * step];
                let w0 = co * p.cin * taps + ky * p.kw + kx;
                for (var ci = 0u; ci < cin; ci++) {
                    acc[ci] = fma(g, wload(w0 + ci * taps), acc[ci]);
                }
            }
        }
    }
    for (var ci = 0u; ci < cin; ci++) {
        let o = (b * p.cin + ci) * plane + q;
        var v = acc[ci];
        if ((p.flags & 64u) != 0u) { v *= times[o]; }
        if ((p.flags & 4u) != 0u) { dx[o] += v; } else { dx[o] = v; }
    }
}
