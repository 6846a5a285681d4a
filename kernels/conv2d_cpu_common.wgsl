// Helpers shared by the CPU-shaped kernels (conv2d_cpu.wgsl and its sharing preludes,
// conv2d_cpu_narrow.wgsl, linear_cpu.wgsl): workgroups of LANES invocations over
// consecutive output pixels, the 64-channel kernels' sums in sets of sixteen vec4
// accumulators (Acc; which channels and pixels a set holds is the kernel's choice). The
// kernel file declares the uniform `p` (Conv2dParams' fields first); a prelude the input
// binding; this file the bias and output bindings.

override HALF: bool = false; // f16 weights (--weights f16), a pipeline constant

struct Conv2dParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, oh: u32, ow: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_h: u32,
    pad_w: u32, co_offset: u32, co_count: u32, flags: u32,
    // the launch's taps and an input gradient's pixels in the whole convolution
    // (conv2d_weights.wgsl says how; a whole launch: 0, kw, 1, kh kw; 0, w, 1, h w)
    tap0: u32, tap_dy: u32, tap_dx: u32, taps: u32,
    dx_origin: u32, dx_sy: u32, dx_sx: u32, dx_plane: u32,
}

@group(0) @binding(3) var<storage, read> bias: array<f32>;
// y, or dx, as vec4s: four consecutive values of a plane go in one store where the
// kernel can (conv2d_cpu.wgsl's store_quad); `put` writes one value.
@group(0) @binding(4) var<storage, read_write> output: array<vec4<f32>>;

const LANES: u32 = 8u; // pixels per workgroup: one SIMD row of a CPU driver
const BLOCK: u32 = 64u; // channels per invocation

// v, a sum of this launch's output row `row`, with the row's bias (flags bit1) and the
// ReLU (bit0).
fn activate(v: f32, row: u32) -> f32 {
    var r = v;
    if ((p.flags & 2u) != 0u) { r += bias[row]; }
    if ((p.flags & 1u) != 0u) { r = max(r, 0.0); }
    return r;
}

// Stores v at value i of the output, added to what is there with flags bit2.
fn put(i: u32, v: f32) {
    if ((p.flags & 4u) != 0u) {
        output[i >> 2u][i & 3u] += v;
    } else {
        output[i >> 2u][i & 3u] = v;
    }
}

// The four weights of group g (4 consecutive reduction channels) from the word q that
// holds it: f32s, or with HALF two groups of f16s per word, g's in the low half if g is even.
fn unpack4(q: vec4<u32>, g: u32) -> vec4<f32> {
    if (HALF) {
        let h = select(q.xy, q.zw, (g & 1u) == 1u);
        return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
    }
    return bitcast<vec4<f32>>(q);
}

// a + x.x m[0] + x.y m[1] + x.z m[2] + x.w m[3], one multiply-add after another: four
// outputs' sums (a's lanes) over 4 reduction channels (x), m[k] channel k's weights of the
// four outputs (the GEMM's order of sums for each output).
fn mac_cols(a: vec4<f32>, x: vec4<f32>, m: mat4x4<f32>) -> vec4<f32> {
    var r = fma(vec4<f32>(x.x), m[0], a);
    r = fma(vec4<f32>(x.y), m[1], r);
    r = fma(vec4<f32>(x.z), m[2], r);
    return fma(vec4<f32>(x.w), m[3], r);
}

// Sixteen vec4 sums (which channels and pixels each holds is the kernel's choice).
struct Acc { a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>, a8: vec4<f32>, a9: vec4<f32>, a10: vec4<f32>, a11: vec4<f32>, a12: vec4<f32>, a13: vec4<f32>, a14: vec4<f32>, a15: vec4<f32> }

fn zero() -> Acc {
    let z = vec4<f32>(0.0);
    return Acc(z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z);
}

// An output pixel: batch item, offset in the plane, row, column, and whether it exists.
struct Pixel { b: u32, q: u32, y: u32, x: u32, live: bool }

// Output pixel m of the batch (planes of `plane` pixels, rows of `width`).
fn pixel_at(m: u32, plane: u32, width: u32) -> Pixel {
    let live = m < p.n * plane;
    let mm = select(0u, m, live); // lanes past the end compute pixel 0 and store nothing
    let b = fdiv(mm, plane);
    let q = mm - b * plane;
    let y = fdiv(q, width);
    return Pixel(b, q, y, q - y * width, live);
}

// The input offset of tap (ky, kx) for output pixel px (x plane stack at xb), and whether
// it lies inside the image (else the offset is a valid dummy).
struct Tap { off: u32, ok: bool }

fn forward_tap(px: Pixel, xb: u32, ky: u32, kx: u32) -> Tap {
    let iy = i32(px.y * p.stride_h + ky) - i32(p.pad_h);
    let ix = i32(px.x * p.stride_w + kx) - i32(p.pad_w);
    let ok = iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w);
    return Tap(xb + select(0u, u32(iy) * p.w + u32(ix), ok), ok);
}

// The dY offset that input pixel px receives from through tap (ky, kx), if any. Stride 1:
// a strided conv's input gradient runs a launch per stride phase (ops::backward), whose
// taps and pixels Conv2dParams' phase fields place.
fn backward_tap(px: Pixel, yb: u32, ky: u32, kx: u32) -> Tap {
    let oy = i32(px.y + p.pad_h) - i32(ky);
    let ox = i32(px.x + p.pad_w) - i32(kx);
    let ok = oy >= 0 && ox >= 0 && oy < i32(p.oh) && ox < i32(p.ow);
    return Tap(yb + select(0u, u32(oy) * p.ow + u32(ox), ok), ok);
}

// forward_tap, or backward_tap for an input-gradient launch.
fn tap_of(px: Pixel, base: u32, ky: u32, kx: u32, backward: bool) -> Tap {
    if (backward) { return backward_tap(px, base, ky, kx); }
    return forward_tap(px, base, ky, kx);
}
