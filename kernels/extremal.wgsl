// Extremal perturbations (Fong, Patrick & Vedaldi 2019, as TorchRay defines them): the
// smooth-mask parametrisation, the blur-pyramid blend and the area-ranking regulariser,
// each with its gradient. Shapes and constants in the uniform.

struct ExParams {
    rows: u32,      // masks K
    hin: u32,       // parameter grid
    win: u32,
    oh: u32,        // full mask (with margin)
    ow: u32,
    step: u32,
    pad: u32,       // unfold padding
    radius: u32,    // neighbourhood radius in cells
    sigma: f32,
    margin: f32,
    coldness: f32,
    levels: u32,
    h: u32,         // input
    w: u32,
    channels: u32,
    crop: u32,      // round(margin): the input's offset in the full mask
    areas: u32,     // masks per item (rows = items * areas)
    items: u32,
    invert: u32,    // pyramid_mix: blend with 1 - m; grad: bit0 delete-only, bit1 dual
    weight: f32,    // area regulariser weight
    row0: u32,      // pyramid_mix: first output row
    mid_h: u32,
    mid_w: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ExParams;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}

// TorchRay's bump: exp(-2 max(d / sigma - 1/2, 0)^2) at distance d from a cell's centre.
fn bump(u: u32, v: u32, iy: i32, ix: i32) -> f32 {
    let dy = f32(u) - (p.margin + f32(p.step) * f32(iy));
    let dx = f32(v) - (p.margin + f32(p.step) * f32(ix));
    let z = max(sqrt(dy * dy + dx * dx) / p.sigma - 0.5, 0.0);
    return exp(-2.0 * z * z);
}

fn cell(k: u32, iy: i32, ix: i32) -> f32 {
    if (iy < 0 || ix < 0 || iy >= i32(p.hin) || ix >= i32(p.win)) { return 0.0; }
    return pm[(k * p.hin + u32(iy)) * p.win + u32(ix)];
}

@group(0) @binding(1) var<storage, read> pm: array<f32>;         // [K, hin, win]
@group(0) @binding(2) var<storage, read_write> full: array<f32>; // [K, oh, ow]
@group(0) @binding(3) var<storage, read_write> stats: array<vec4<f32>>; // [K, oh, ow]

// The full mask: per pixel, the softmax-pooled (coldness c) bumps of the (2r+1)^2 cells
// around it, clamped to [0, 1]; stats keep (unclamped value, max, normaliser, 0).
@compute @workgroup_size(64, 1, 1)
fn smooth_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.rows * p.oh * p.ow) { return; }
    let k = i / (p.oh * p.ow);
    let r = i - k * p.oh * p.ow;
    let u = r / p.ow;
    let v = r - u * p.ow;
    let cy = i32(u / p.step) - i32(p.pad);
    let cx = i32(v / p.step) - i32(p.pad);
    let span = i32(2u * p.radius + 1u);
    var mx = -1e30;
    for (var ky = 0; ky < span; ky++) {
        for (var kx = 0; kx < span; kx++) {
            mx = max(mx, bump(u, v, cy + ky, cx + kx) * cell(k, cy + ky, cx + kx));
        }
    }
    var z = 0.0;
    var acc = 0.0;
    for (var ky = 0; ky < span; ky++) {
        for (var kx = 0; kx < span; kx++) {
            let val = bump(u, v, cy + ky, cx + kx) * cell(k, cy + ky, cx + kx);
            let e = exp(p.coldness * (val - mx));
            z += e;
            acc += val * e;
        }
    }
    let out = acc / z;
    full[i] = clamp(out, 0.0, 1.0);
    stats[i] = vec4<f32>(out, mx, z, 0.0);
}

@group(0) @binding(2) var<storage, read> g_stats: array<vec4<f32>>; // [K, oh, ow]
@group(0) @binding(3) var<storage, read> g_full: array<f32>;     // [K, oh, ow]
@group(0) @binding(4) var<storage, read_write> g_pm: array<f32>; // [K, hin, win]

// The gradient for the parameters: each cell gathers, over the pixels whose neighbourhood
// holds it, g * [0 <= value <= 1] * s_k (1 + c (val_k - value)) * bump.
@compute @workgroup_size(64, 1, 1)
fn smooth_mask_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.rows * p.hin * p.win) { return; }
    let k = i / (p.hin * p.win);
    let r = i - k * p.hin * p.win;
    let a = r / p.win;
    let b = r - a * p.win;
    let own = pm[i];
    let span = i32(2u * p.radius + 1u);
    var acc = 0.0;
    for (var ky = 0; ky < span; ky++) {
        let my = i32(a) - ky + i32(p.pad);
        if (my < 0 || my >= i32(p.mid_h)) { continue; }
        for (var kx = 0; kx < span; kx++) {
            let mxi = i32(b) - kx + i32(p.pad);
            if (mxi < 0 || mxi >= i32(p.mid_w)) { continue; }
            for (var u = u32(my) * p.step; u < min(u32(my + 1) * p.step, p.oh); u++) {
                for (var v = u32(mxi) * p.step; v < min(u32(mxi + 1) * p.step, p.ow); v++) {
                    let j = (k * p.oh + u) * p.ow + v;
                    let st = g_stats[j]; // (value, max, normaliser, 0): one load
                    let value = st.x;
                    if (value < 0.0 || value > 1.0) { continue; }
                    let wgt = bump(u, v, i32(a), i32(b));
                    let val = wgt * own;
                    let s = exp(p.coldness * (val - st.y)) / st.z;
                    acc += g_full[j] * s * (1.0 + p.coldness * (val - value)) * wgt;
                }
            }
        }
    }
    g_pm[i] = acc;
}

@group(0) @binding(1) var<storage, read> mix_full: array<f32>;   // [K, oh, ow]
@group(0) @binding(2) var<storage, read> pyramid: array<f32>;    // [levels, items, C, h, w]
@group(0) @binding(3) var<storage, read_write> blended: array<f32>; // [rows', C, h, w]

fn level_of(m: f32) -> vec2<f32> {
    let w = m * f32(p.levels - 1u);
    let l = floor(w);
    return vec2<f32>(l, w - l);
}

fn pyr(level: u32, item: u32, c: u32, pix: u32) -> f32 {
    return pyramid[((level * p.items + item) * p.channels + c) * p.h * p.w + pix];
}

// Row row0 + k of the batch: the pyramid read at level m (m or 1 - m) of the cropped mask,
// linear between the two levels around it.
@compute @workgroup_size(64, 1, 1)
fn pyramid_mix(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let plane = p.h * p.w;
    if (i >= p.rows * p.channels * plane) { return; }
    let k = i / (p.channels * plane);
    let r = i - k * p.channels * plane;
    let c = r / plane;
    let pix = r - c * plane;
    let y = pix / p.w;
    let x = pix - y * p.w;
    var m = mix_full[(k * p.oh + y + p.crop) * p.ow + x + p.crop];
    if (p.invert == 1u) { m = 1.0 - m; }
    let lf = level_of(m);
    let l0 = u32(lf.x);
    let l1 = min(l0 + 1u, p.levels - 1u);
    let item = k / p.areas;
    let out = (1.0 - lf.y) * pyr(l0, item, c, pix) + lf.y * pyr(l1, item, c, pix);
    blended[(p.row0 + k) * p.channels * plane + r] = out;
}

@group(0) @binding(3) var<storage, read> g_blend: array<f32>;    // [rows', C, h, w]
@group(0) @binding(4) var<storage, read_write> g_mask: array<f32>; // [K, oh, ow]

fn branch(k: u32, row: u32, m: f32, pix: u32) -> f32 {
    let lf = level_of(m);
    let l0 = u32(lf.x);
    let l1 = min(l0 + 1u, p.levels - 1u);
    let item = k / p.areas;
    let plane = p.h * p.w;
    var s = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        s += g_blend[(row * p.channels + c) * plane + pix] * (pyr(l1, item, c, pix) - pyr(l0, item, c, pix));
    }
    return s * f32(p.levels - 1u);
}

// d loss / d full mask from the blend (zero in the margin): the preserve branch reads m,
// the delete branch 1 - m (its gradient negated); the dual game has both.
@compute @workgroup_size(64, 1, 1)
fn pyramid_mix_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.rows * p.oh * p.ow) { return; }
    let k = i / (p.oh * p.ow);
    let r = i - k * p.oh * p.ow;
    let u = r / p.ow;
    let v = r - u * p.ow;
    if (u < p.crop || v < p.crop || u >= p.crop + p.h || v >= p.crop + p.w) {
        g_mask[i] = 0.0;
        return;
    }
    let pix = (u - p.crop) * p.w + (v - p.crop);
    let m = mix_full[i];
    var g = 0.0;
    if (p.invert == 0u) {
        g = branch(k, k, m, pix);
    } else if (p.invert == 1u) {
        g = -branch(k, k, 1.0 - m, pix);
    } else {
        g = branch(k, k, m, pix) - branch(k, p.rows + k, 1.0 - m, pix);
    }
    g_mask[i] = g;
}

// The area regulariser of row k, in one workgroup: with the row's n values sorted
// ascending (ties by index) against a reference of q zeros (floor(n (1 - area)), made on
// the host in f64 as TorchRay's Python does) then
// ones, loss = weight * mean((sorted - ref)^2), and its gradient 2 weight (v - ref) / n
// is added to g_area. The q-th value is found by a radix select on the f32 bits (the
// values are in [0, 1], so the bits order like the values).
@group(0) @binding(1) var<storage, read> a_full: array<f32>;      // [K, n]
@group(0) @binding(2) var<storage, read> a_zeros: array<f32>;     // [areas]: q per area
@group(0) @binding(3) var<storage, read_write> g_area: array<f32>; // [K, n]
@group(0) @binding(4) var<storage, read_write> a_loss: array<f32>; // [K]

var<workgroup> bins: array<atomic<u32>, 256>;
var<workgroup> found: vec2<u32>;   // (bits prefix, equal values still below)
var<workgroup> counts: array<u32, 256>;
var<workgroup> sums: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn area_regulariser(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = wg.x;
    let t = lid.x;
    let n = p.oh * p.ow;
    let base = k * n;
    let q = u32(a_zeros[k % p.areas]);
    if (t == 0u) { found = vec2<u32>(0u, q); }
    var want = 0u;
    for (var pass_ = 0u; pass_ < 4u; pass_++) {
        let shift = 24u - 8u * pass_;
        atomicStore(&bins[t], 0u);
        workgroupBarrier();
        let prefix = found.x;
        let high = select(0u, 0xffffffffu << (shift + 8u), shift < 24u);
        for (var j = t; j < n; j += 256u) {
            let bits = bitcast<u32>(a_full[base + j]);
            if ((bits & high) == prefix && q < n) {
                atomicAdd(&bins[(bits >> shift) & 255u], 1u);
            }
        }
        workgroupBarrier();
        if (t == 0u && q < n) {
            var rem = found.y;
            var b = 0u;
            loop {
                let c = atomicLoad(&bins[b]);
                if (rem < c || b == 255u) { break; }
                rem -= c;
                b++;
            }
            found = vec2<u32>(prefix | (b << shift), rem);
        }
        workgroupBarrier();
    }
    let tau = found.x;
    let below_eq = found.y;
    // equal values ranked by index: each thread a contiguous chunk
    let chunk = (n + 255u) / 256u;
    let lo = min(t * chunk, n);
    let hi = min(lo + chunk, n);
    var eq = 0u;
    for (var j = lo; j < hi; j++) {
        if (bitcast<u32>(a_full[base + j]) == tau) { eq++; }
    }
    counts[t] = eq;
    workgroupBarrier();
    if (t == 0u) {
        var run = 0u;
        for (var j = 0u; j < 256u; j++) {
            let c = counts[j];
            counts[j] = run;
            run += c;
        }
    }
    workgroupBarrier();
    var seen = counts[t];
    var part = 0.0;
    let scale = 2.0 * p.weight / f32(n);
    for (var j = lo; j < hi; j++) {
        let v = a_full[base + j];
        let bits = bitcast<u32>(v);
        var ref_ = 1.0;
        if (q >= n || bits < tau) {
            ref_ = 0.0;
        } else if (bits == tau) {
            if (seen < below_eq) { ref_ = 0.0; }
            seen++;
        }
        let d = v - ref_;
        part += d * d;
        g_area[base + j] += scale * d;
    }
    sums[t] = part;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (t < s) { sums[t] += sums[t + s]; }
        workgroupBarrier();
    }
    if (t == 0u) { a_loss[k] = p.weight * sums[0] / f32(n); }
}
