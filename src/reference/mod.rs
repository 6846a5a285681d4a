//! Plain-Rust CPU versions of every kernel: the ground truth for kernel tests.
//! Written for clarity, not speed; all NCHW, f32 storage with f64 accumulation.

pub mod extremal;
pub mod net;
pub mod prim;

use crate::ops::{Conv2dGeom, Pool2d};

/// conv2d of x [n, cin, h, w] with w [cout, cin, kh, kw]; returns ([n, cout, oh, ow], oh, ow).
pub fn conv2d(
    x: &[f32],
    dims: [usize; 4],
    w: &[f32],
    b: Option<&[f32]>,
    g: &Conv2dGeom,
    relu: bool,
) -> (Vec<f32>, usize, usize) {
    let [n, cin, h, wd] = dims;
    let (oh, ow) = g.out_hw(h, wd).expect("valid geometry");
    let (kh, kw) = g.kernel;
    let mut y = vec![0f32; n * g.cout * oh * ow];
    for b_ in 0..n {
        for co in 0..g.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b[co] as f64);
                    for ci in 0..cin {
                        for ky in 0..kh {
                            let iy = (oy * g.stride.0 + ky) as isize - g.padding.0 as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (ox * g.stride.1 + kx) as isize - g.padding.1 as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                let xv = x[((b_ * cin + ci) * h + iy as usize) * wd + ix as usize];
                                let wv = w[((co * cin + ci) * kh + ky) * kw + kx];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    let v = if relu { acc.max(0.0) } else { acc };
                    y[((b_ * g.cout + co) * oh + oy) * ow + ox] = v as f32;
                }
            }
        }
    }
    (y, oh, ow)
}

/// y [n, out] = x [n, in] W^T + b.
pub fn linear(
    x: &[f32],
    n: usize,
    w: &[f32],
    b: Option<&[f32]>,
    out: usize,
    relu: bool,
) -> Vec<f32> {
    let k = w.len() / out;
    let mut y = vec![0f32; n * out];
    for r in 0..n {
        for o in 0..out {
            let mut acc = b.map_or(0.0, |b| b[o] as f64);
            for i in 0..k {
                acc += x[r * k + i] as f64 * w[o * k + i] as f64;
            }
            y[r * out + o] = if relu { acc.max(0.0) } else { acc } as f32;
        }
    }
    y
}

/// Max-pool with PyTorch's argmax (first maximum in row-major order; NaN wins).
pub fn max_pool2d(x: &[f32], dims: [usize; 4], p: &Pool2d) -> (Vec<f32>, Vec<u32>, usize, usize) {
    let [n, c, h, w] = dims;
    let (oh, ow) = p.out_hw(h, w).expect("valid pool");
    let mut y = Vec::with_capacity(n * c * oh * ow);
    let mut arg = Vec::with_capacity(n * c * oh * ow);
    for pl in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = f32::NEG_INFINITY;
                let mut best_i = None;
                for ky in 0..p.kernel.0 {
                    let iy = (oy * p.stride.0 + ky) as isize - p.padding.0 as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..p.kernel.1 {
                        let ix = (ox * p.stride.1 + kx) as isize - p.padding.1 as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let flat = iy as usize * w + ix as usize;
                        let v = x[pl * h * w + flat];
                        // PyTorch's test: a NaN replaces anything (the last NaN wins)
                        if best_i.is_none() || v > best || v.is_nan() {
                            best = v;
                            best_i = Some(flat as u32);
                        }
                    }
                }
                y.push(best);
                arg.push(best_i.expect("window has an in-bounds element"));
            }
        }
    }
    (y, arg, oh, ow)
}

/// Average pool with PyTorch's count_include_pad / ceil_mode semantics.
pub fn avg_pool2d(x: &[f32], dims: [usize; 4], p: &Pool2d) -> (Vec<f32>, usize, usize) {
    let [n, c, h, w] = dims;
    let (oh, ow) = p.out_hw(h, w).expect("valid pool");
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for pl in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let ys = (oy * p.stride.0) as isize - p.padding.0 as isize;
                let xs = (ox * p.stride.1) as isize - p.padding.1 as isize;
                let ye = (ys + p.kernel.0 as isize).min((h + p.padding.0) as isize);
                let xe = (xs + p.kernel.1 as isize).min((w + p.padding.1) as isize);
                let padded = (ye - ys) * (xe - xs);
                let (ys, xs) = (ys.max(0), xs.max(0));
                let (ye, xe) = (ye.min(h as isize), xe.min(w as isize));
                let mut sum = 0f64;
                for iy in ys..ye {
                    for ix in xs..xe {
                        sum += x[pl * h * w + iy as usize * w + ix as usize] as f64;
                    }
                }
                let count = if p.count_include_pad {
                    padded
                } else {
                    (ye - ys) * (xe - xs)
                };
                y.push((sum / count.max(1) as f64) as f32);
            }
        }
    }
    (y, oh, ow)
}

/// The input rows (or columns) averaged into adaptive-pool output bin `i`.
pub fn adaptive_bin(i: usize, input: usize, output: usize) -> (usize, usize) {
    (i * input / output, ((i + 1) * input).div_ceil(output))
}

pub fn adaptive_avg_pool2d(x: &[f32], dims: [usize; 4], out: (usize, usize)) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let mut y = Vec::with_capacity(n * c * out.0 * out.1);
    for pl in 0..n * c {
        for oy in 0..out.0 {
            let (ys, ye) = adaptive_bin(oy, h, out.0);
            for ox in 0..out.1 {
                let (xs, xe) = adaptive_bin(ox, w, out.1);
                let mut sum = 0f64;
                for iy in ys..ye {
                    for ix in xs..xe {
                        sum += x[pl * h * w + iy * w + ix] as f64;
                    }
                }
                y.push((sum / ((ye - ys) * (xe - xs)) as f64) as f32);
            }
        }
    }
    y
}

pub fn relu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|v| v.max(0.0)).collect()
}

pub fn softmax(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks(cols)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let e: Vec<f64> = row.iter().map(|v| (*v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / s) as f32)
        })
        .collect()
}

// ---- input-gradients (scatter form: the transpose of each forward, written plainly)

/// dx of conv2d for an input of `dims` = [n, cin, h, w], from dy [n, cout, oh, ow].
pub fn conv2d_backward_input(dy: &[f32], dims: [usize; 4], w: &[f32], g: &Conv2dGeom) -> Vec<f32> {
    let [n, cin, h, wd] = dims;
    let (oh, ow) = g.out_hw(h, wd).expect("valid geometry");
    let (kh, kw) = g.kernel;
    let mut dx = vec![0f64; n * cin * h * wd];
    for b in 0..n {
        for co in 0..g.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let gv = dy[((b * g.cout + co) * oh + oy) * ow + ox] as f64;
                    for ci in 0..cin {
                        for ky in 0..kh {
                            let iy = (oy * g.stride.0 + ky) as isize - g.padding.0 as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (ox * g.stride.1 + kx) as isize - g.padding.1 as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                dx[((b * cin + ci) * h + iy as usize) * wd + ix as usize] +=
                                    gv * w[((co * cin + ci) * kh + ky) * kw + kx] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// dx [n, in] = dy [n, out] W.
pub fn linear_backward_input(dy: &[f32], n: usize, w: &[f32], out: usize) -> Vec<f32> {
    let k = w.len() / out;
    let mut dx = vec![0f32; n * k];
    for r in 0..n {
        for i in 0..k {
            dx[r * k + i] = (0..out)
                .map(|o| dy[r * out + o] as f64 * w[o * k + i] as f64)
                .sum::<f64>() as f32;
        }
    }
    dx
}

/// dx of max-pool: each dy goes to its window's argmax.
pub fn max_pool2d_backward(
    dy: &[f32],
    argmax: &[u32],
    dims: [usize; 4],
    out_plane: usize,
) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let mut dx = vec![0f32; n * c * h * w];
    for (o, (&g, &a)) in dy.iter().zip(argmax).enumerate() {
        dx[(o / out_plane) * h * w + a as usize] += g;
    }
    dx
}

/// dx of avg-pool: each dy spread over its window, divided as in the forward pass.
pub fn avg_pool2d_backward(dy: &[f32], dims: [usize; 4], p: &Pool2d) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let (oh, ow) = p.out_hw(h, w).expect("valid pool");
    let mut dx = vec![0f32; n * c * h * w];
    for pl in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let ys = (oy * p.stride.0) as isize - p.padding.0 as isize;
                let xs = (ox * p.stride.1) as isize - p.padding.1 as isize;
                let ye = (ys + p.kernel.0 as isize).min((h + p.padding.0) as isize);
                let xe = (xs + p.kernel.1 as isize).min((w + p.padding.1) as isize);
                let padded = (ye - ys) * (xe - xs);
                let (ys, xs, ye, xe) =
                    (ys.max(0), xs.max(0), ye.min(h as isize), xe.min(w as isize));
                let count = if p.count_include_pad {
                    padded
                } else {
                    (ye - ys) * (xe - xs)
                };
                let g = dy[(pl * oh + oy) * ow + ox] / count.max(1) as f32;
                for iy in ys..ye {
                    for ix in xs..xe {
                        dx[pl * h * w + iy as usize * w + ix as usize] += g;
                    }
                }
            }
        }
    }
    dx
}

pub fn adaptive_avg_pool2d_backward(dy: &[f32], dims: [usize; 4], out: (usize, usize)) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let mut dx = vec![0f32; n * c * h * w];
    for pl in 0..n * c {
        for oy in 0..out.0 {
            let (ys, ye) = adaptive_bin(oy, h, out.0);
            for ox in 0..out.1 {
                let (xs, xe) = adaptive_bin(ox, w, out.1);
                let g = dy[(pl * out.0 + oy) * out.1 + ox] / ((ye - ys) * (xe - xs)) as f32;
                for iy in ys..ye {
                    for ix in xs..xe {
                        dx[pl * h * w + iy * w + ix] += g;
                    }
                }
            }
        }
    }
    dx
}

/// ReLU backward from the forward output y; `mode` 0 gradient, 1 guided, 2 deconvnet.
pub fn relu_backward(y: &[f32], dy: &[f32], mode: u32) -> Vec<f32> {
    y.iter()
        .zip(dy)
        .map(|(&y, &g)| {
            let g = if mode != 0 { g.max(0.0) } else { g };
            if mode != 2 && y <= 0.0 {
                0.0
            } else {
                g
            }
        })
        .collect()
}
