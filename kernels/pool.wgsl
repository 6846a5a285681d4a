// 2-D pooling, batched, one thread per output element (NCHW, planes = n * c).
// max_pool2d_forward keeps the argmax (flat index iy * w + ix within the input plane)
// for the backward pass; ties keep the first maximum in row-major order, a NaN wins
// (the last of a window's NaNs), as in PyTorch. avg_pool2d_forward follows PyTorch's
// count_include_pad and ceil_mode.
// adaptive_avg_pool2d_forward uses bins [floor(i*in/out), ceil((i+1)*in/out)).
// Each *_backward twin below computes the input-gradient. The uniform and is_nan:
// pool_common.wgsl.

@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>; // max_pool2d_forward
@group(0) @binding(3) var<storage, read> argmax_in: array<u32>; // max_pool2d_backward

fn out_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

// (plane, y, x) of flat index i over planes of `w` columns and `plane` elements.
fn split(i: u32, w: u32, plane: u32) -> vec3<u32> {
    let q = i % plane;
    return vec3<u32>(i / plane, q / w, q % w);
}

@compute @workgroup_size(64, 1, 1)
fn max_pool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = out_index(gid, nwg);
    let plane_out = p.oh * p.ow;
    if (idx >= p.planes * plane_out) { return; }
    let o = split(idx, p.ow, plane_out);
    let oy = o.y;
    let ox = o.z;
    let base = o.x * p.h * p.w;
    let y0 = i32(oy * p.stride_h) - i32(p.pad_h);
    let x0 = i32(ox * p.stride_w) - i32(p.pad_w);
    var best = 0.0;
    var best_i = 0xffffffffu;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = y0 + i32(ky);
        if (iy < 0 || iy >= i32(p.h)) { continue; }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = x0 + i32(kx);
            if (ix < 0 || ix >= i32(p.w)) { continue; }
            let flat = u32(iy) * p.w + u32(ix);
            let v = input[base + flat];
            // as PyTorch's loop: a NaN replaces anything, so the last NaN wins
            if (best_i == 0xffffffffu || v > best || is_nan(v)) {
                best = v;
                best_i = flat;
            }
        }
    }
    output[idx] = best;
    argmax[idx] = best_i;
}

@compute @workgroup_size(64, 1, 1)
fn avg_pool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = out_index(gid, nwg);
    let plane_out = p.oh * p.ow;
    if (idx >= p.planes * plane_out) { return; }
    let o = split(idx, p.ow, plane_out);
    let oy = o.y;
    let ox = o.z;
    let base = o.x * p.h * p.w;
    var ys = i32(oy * p.stride_h) - i32(p.pad_h);
    var xs = i32(ox * p.stride_w) - i32(p.pad_w);
    var ye = min(ys + i32(p.kh), i32(p.h + p.pad_h));
    var xe = min(xs + i32(p.kw), i32(p.w + p.pad_w));
    let padded_count = (ye - ys) * (xe - xs);
    ys = max(ys, 0);
    xs = max(xs, 0);
    ye = min(ye, i32(p.h));
    xe = min(xe, i32(p.w));
    var sum = 0.0;
    for (var iy = ys; iy < ye; iy++) {
        for (var ix = xs; ix < xe; ix++) { sum += input[base + u32(iy) * p.w + u32(ix)]; }
    }
    var count = (ye - ys) * (xe - xs);
    if ((p.flags & 1u) != 0u) { count = padded_count; }
    output[idx] = sum / f32(max(count, 1));
}

@compute @workgroup_size(64, 1, 1)
fn adaptive_avg_pool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = out_index(gid, nwg);
    let plane_out = p.oh * p.ow;
    if (idx >= p.planes * plane_out) { return; }
    let o = split(idx, p.ow, plane_out);
    let oy = o.y;
    let ox = o.z;
    let base = o.x * p.h * p.w;
    let ys = (oy * p.h) / p.oh;
    let ye = ((oy + 1u) * p.h + p.oh - 1u) / p.oh;
    let xs = (ox * p.w) / p.ow;
    let xe = ((ox + 1u) * p.w + p.ow - 1u) / p.ow;
    var sum = 0.0;
    for (var iy = ys; iy < ye; iy++) {
        for (var ix = xs; ix < xe; ix++) { sum += input[base + iy * p.w + ix]; }
    }
    output[idx] = sum / f32((ye - ys) * (xe - xs));
}

// ---- input-gradients: one thread per input element, gathering from the outputs whose
// window holds it (no atomics, deterministic). `input` holds dY, `output` receives dX.

// Output rows (or columns) whose window covers input index i: [lo, hi).
fn covering(i: u32, k: u32, s: u32, pad: u32, n_out: u32) -> vec2<u32> {
    let t = i32(i + pad) - i32(k) + 1;
    var lo = 0u;
    if (t > 0) { lo = (u32(t) + s - 1u) / s; }
    let hi = min((i + pad) / s + 1u, n_out);
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(64, 1, 1)
fn max_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = out_index(gid, nwg);
    let plane_in = p.h * p.w;
    if (idx >= p.planes * plane_in) { return; }
    let i = split(idx, p.w, plane_in);
    let pl = i.x;
    let q = i.y * p.w + i.z;
    let ry = covering(i.y, p.kh, p.stride_h, p.pad_h, p.oh);
    let rx = covering(i.z, p.kw, p.stride_w, p.pad_w, p.ow);
    var g = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            let o = (pl * p.oh + oy) * p.ow + ox;
            if (argmax_in[o] == q) { g += input[o]; }
        }
    }
    output[idx] = g;
}

// Writes the window of output idx (plane, y, x in o) of a pool whose windows tile its
// input: g at the window's argmax, zeros elsewhere.
fn write_window(idx: u32, o: vec3<u32>, g: f32) {
    let base = o.x * p.h * p.w;
    let arg = argmax_in[idx];
    var row = o.y * p.kh * p.w + o.z * p.kw;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            output[base + row + kx] = select(0.0, g, row + kx == arg);
        }
        row += p.w;
    }
}

// max_pool2d_backward where the windows tile the input exactly (kernel = stride, no
// padding, h = oh * kh, w = ow * kw): one thread per output element writes its window,
// the gradient at the argmax and zeros elsewhere, so each input element is written once
// and needs no search for the windows that cover it (integer divisions, which CPU
// drivers run lane by lane, fall from about eight an input element to two an output).
@compute @workgroup_size(64, 1, 1)
fn max_pool2d_backward_tiling(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = out_index(gid, nwg);
    let plane_out = p.oh * p.ow;
    if (idx >= p.planes * plane_out) { return; }
    let o = split(idx, p.ow, plane_out);
    write_window(idx, o, input[idx]);
}

// max_pool2d_backward_tiling and the backward of the ReLU before the pool in one pass:
// the gradient at the ReLU's input. Only a window's argmax gets a gradient, and the ReLU's
// output there is the pool's output (`pooled`), so the rule needs no full-size read.
// flags: the ReLU rule (0 gradient, 1 guided backprop, 2 deconvnet).
@group(0) @binding(4) var<storage, read> pooled: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn max_pool2d_relu_backward_tiling(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = out_index(gid, nwg);
    let plane_out = p.oh * p.ow;
    if (idx >= p.planes * plane_out) { return; }
    let o = split(idx, p.ow, plane_out);
    var g = input[idx];
    if (p.flags != 0u) { g = max(g, 0.0); }
    if (p.flags != 2u && pooled[idx] <= 0.0) { g = 0.0; }
    write_window(idx, o, g);
}

@compute @workgroup_size(64, 1, 1)
fn avg_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = out_index(gid, nwg);
    let plane_in = p.h * p.w;
    if (idx >= p.planes * plane_in) { return; }
    let i = split(idx, p.w, plane_in);
    let pl = i.x;
    let ry = covering(i.y, p.kh, p.stride_h, p.pad_h, p.oh);
    let rx = covering(i.z, p.kw, p.stride_w, p.pad_w, p.ow);
    var g = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            // the forward pass's divisor for this window
            var ys = i32(oy * p.stride_h) - i32(p.pad_h);
            var xs = i32(ox * p.stride_w) - i32(p.pad_w);
            var ye = min(ys + i32(p.kh), i32(p.h + p.pad_h));
            var xe = min(xs + i32(p.kw), i32(p.w + p.pad_w));
            var count = (ye - ys) * (xe - xs);
            if ((p.flags & 1u) == 0u) {
                count = (min(ye, i32(p.h)) - max(ys, 0)) * (min(xe, i32(p.w)) - max(xs, 0));
            }
            g += input[(pl * p.oh + oy) * p.ow + ox] / f32(max(count, 1));
        }
    }
    output[idx] = g;
}

@compute @workgroup_size(64, 1, 1)
fn adaptive_avg_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = out_index(gid, nwg);
    let plane_in = p.h * p.w;
    if (idx >= p.planes * plane_in) { return; }
    let i = split(idx, p.w, plane_in);
    let pl = i.x;
    let iy = i.y;
    let ix = i.z;
    var g = 0.0;
    for (var oy = 0u; oy < p.oh; oy++) {
        let ys = (oy * p.h) / p.oh;
        let ye = ((oy + 1u) * p.h + p.oh - 1u) / p.oh;
        if (iy < ys || iy >= ye) { continue; }
        for (var ox = 0u; ox < p.ow; ox++) {
            let xs = (ox * p.w) / p.ow;
            let xe = ((ox + 1u) * p.w + p.ow - 1u) / p.ow;
            if (ix < xs || ix >= xe) { continue; }
            g += input[(pl * p.oh + oy) * p.ow + ox] / f32((ye - ys) * (xe - xs));
        }
    }
    output[idx] = g;
}
