//! Plain-Rust references for the primitive kernels (map, resample, reduce), in f64. The
//! adjoints are written in scatter form, independently of the kernels' gathers.

use crate::ops::map::Adam;
use crate::ops::reduce::Reduction;

/// One Adam step as torch.optim.Adam, in place.
pub fn adam_step(cfg: &Adam, t: u32, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let (b1, b2) = (cfg.beta1 as f64, cfg.beta2 as f64);
    let c1 = 1.0 - b1.powi(t as i32);
    let c2 = 1.0 - b2.powi(t as i32);
    for i in 0..w.len() {
        let mut gi = if cfg.maximize {
            -g[i] as f64
        } else {
            g[i] as f64
        };
        gi += cfg.weight_decay as f64 * w[i] as f64;
        let mi = b1 * m[i] as f64 + (1.0 - b1) * gi;
        let vi = b2 * v[i] as f64 + (1.0 - b2) * gi * gi;
        m[i] = mi as f32;
        v[i] = vi as f32;
        let denom = (vi / c2).sqrt() + cfg.eps as f64;
        w[i] = (w[i] as f64 - cfg.lr as f64 * (mi / c1) / denom) as f32;
    }
}

/// m * a + (1 - m) * b, m [N, mc, H, W] with mc = 1 or C.
pub fn mix(m: &[f32], a: &[f32], b: &[f32], dims: [usize; 4], mc: usize) -> Vec<f32> {
    let [_, c, h, w] = dims;
    (0..a.len())
        .map(|i| {
            let (item, q) = (i / (c * h * w), i % (h * w));
            let mi = if mc == 1 { m[item * h * w + q] } else { m[i] } as f64;
            (mi * a[i] as f64 + (1.0 - mi) * b[i] as f64) as f32
        })
        .collect()
}

/// d mix / d m for a one-channel mask: Σ_c g (a − b), [N, 1, H, W].
pub fn mix_grad(g: &[f32], a: &[f32], b: &[f32], dims: [usize; 4]) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let mut out = vec![0.0f64; n * h * w];
    for (i, gi) in g.iter().enumerate() {
        let (item, q) = (i / (c * h * w), i % (h * w));
        out[item * h * w + q] += *gi as f64 * (a[i] as f64 - b[i] as f64);
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// PyTorch's bilinear taps (align_corners = False) of output d: (i0, i1, weight of i1).
fn taps(d: usize, n_in: usize, n_out: usize) -> (usize, usize, f64) {
    let scale = n_in as f64 / n_out as f64;
    let s = (scale * (d as f64 + 0.5) - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(n_in - 1);
    let i1 = (i0 + 1).min(n_in - 1);
    (i0, i1, s - i0 as f64)
}

/// F.interpolate(mode="bilinear", align_corners=False) of every plane.
pub fn bilinear(x: &[f32], dims: [usize; 4], oh: usize, ow: usize) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let mut out = vec![0f32; n * c * oh * ow];
    for pl in 0..n * c {
        for oy in 0..oh {
            let (y0, y1, ly) = taps(oy, h, oh);
            for ox in 0..ow {
                let (x0, x1, lx) = taps(ox, w, ow);
                let at = |y: usize, xx: usize| x[pl * h * w + y * w + xx] as f64;
                let v = (1.0 - ly) * ((1.0 - lx) * at(y0, x0) + lx * at(y0, x1))
                    + ly * ((1.0 - lx) * at(y1, x0) + lx * at(y1, x1));
                out[pl * oh * ow + oy * ow + ox] = v as f32;
            }
        }
    }
    out
}

/// The transpose of `bilinear`: g [N, C, oh, ow] scattered back onto [N, C, h, w].
pub fn bilinear_adjoint(
    g: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    let mut out = vec![0f64; n * c * h * w];
    for pl in 0..n * c {
        for oy in 0..oh {
            let (y0, y1, ly) = taps(oy, h, oh);
            for ox in 0..ow {
                let (x0, x1, lx) = taps(ox, w, ow);
                let gv = g[pl * oh * ow + oy * ow + ox] as f64;
                for (yy, wy) in [(y0, 1.0 - ly), (y1, ly)] {
                    for (xx, wx) in [(x0, 1.0 - lx), (x1, lx)] {
                        out[pl * h * w + yy * w + xx] += wy * wx * gv;
                    }
                }
            }
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

fn reflect(j: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = j.rem_euclid(period);
    if m < n as isize {
        m as usize
    } else {
        (period - m) as usize
    }
}

fn gauss(sigma: f32, radius: usize) -> Vec<f64> {
    let r = radius as isize;
    let k: Vec<f64> = (-r..=r)
        .map(|d| (-((d * d) as f64) / (2.0 * (sigma as f64).powi(2))).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// One blur pass (or its transpose, scattering) along x (axis 0) or y (axis 1).
fn blur_pass(x: &[f64], dims: [usize; 4], k: &[f64], axis: usize, adjoint: bool) -> Vec<f64> {
    let [n, c, h, w] = dims;
    let r = (k.len() / 2) as isize;
    let mut out = vec![0f64; x.len()];
    for pl in 0..n * c {
        for y in 0..h {
            for xx in 0..w {
                let (pos, len) = if axis == 0 { (xx, w) } else { (y, h) };
                let o = pl * h * w + y * w + xx;
                for (t, kv) in k.iter().enumerate() {
                    let j = reflect(pos as isize + t as isize - r, len);
                    let s = if axis == 0 {
                        pl * h * w + y * w + j
                    } else {
                        pl * h * w + j * w + xx
                    };
                    if adjoint {
                        out[s] += kv * x[o];
                    } else {
                        out[o] += kv * x[s];
                    }
                }
            }
        }
    }
    out
}

/// Separable Gaussian blur with reflect padding (x pass, then y), or its transpose.
pub fn blur(x: &[f32], dims: [usize; 4], sigma: f32, radius: usize, adjoint: bool) -> Vec<f32> {
    let k = gauss(sigma, radius);
    let x: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let (first, second) = if adjoint { (1, 0) } else { (0, 1) };
    let t = blur_pass(&x, dims, &k, first, adjoint);
    blur_pass(&t, dims, &k, second, adjoint)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// torch.roll of each item by (dy, dx) over H and W, or back.
pub fn roll(x: &[f32], dims: [usize; 4], offsets: &[(isize, isize)], adjoint: bool) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let mut out = vec![0f32; x.len()];
    for (item, &(oy, ox)) in offsets.iter().enumerate().take(n) {
        let (mut dy, mut dx) = (oy, ox);
        if adjoint {
            (dy, dx) = (-dy, -dx);
        }
        for ch in 0..c {
            let pl = (item * c + ch) * h * w;
            for y in 0..h {
                for xx in 0..w {
                    let sy = (y as isize - dy).rem_euclid(h as isize) as usize;
                    let sx = (xx as isize - dx).rem_euclid(w as isize) as usize;
                    out[pl + y * w + xx] = x[pl + sy * w + sx];
                }
            }
        }
    }
    out
}

/// Each of `rows` equal rows reduced.
pub fn reduce(x: &[f32], rows: usize, how: Reduction) -> Vec<f32> {
    x.chunks(x.len() / rows)
        .map(|r| {
            let n = r.len() as f64;
            let sum: f64 = r.iter().map(|v| *v as f64).sum();
            (match how {
                Reduction::Sum => sum,
                Reduction::Mean => sum / n,
                Reduction::L1 => r.iter().map(|v| (*v as f64).abs()).sum(),
                Reduction::L2 => r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt(),
                Reduction::Variance => {
                    r.iter().map(|v| (*v as f64 - sum / n).powi(2)).sum::<f64>() / n
                }
            }) as f32
        })
        .collect()
}

/// Neighbour pairs (a, b) of one item, as flat indices.
fn pairs(dims: [usize; 4], item: usize) -> Vec<(usize, usize)> {
    let [_, c, h, w] = dims;
    let mut v = Vec::new();
    for ch in 0..c {
        let pl = (item * c + ch) * h * w;
        for y in 0..h {
            for x in 0..w {
                let i = pl + y * w + x;
                if x + 1 < w {
                    v.push((i, i + 1));
                }
                if y + 1 < h {
                    v.push((i, i + w));
                }
            }
        }
    }
    v
}

/// Total variation per item: mean over neighbour pairs of |difference|^β.
pub fn tv(x: &[f32], dims: [usize; 4], beta: f32) -> Vec<f32> {
    (0..dims[0])
        .map(|item| {
            let p = pairs(dims, item);
            if p.is_empty() {
                return 0.0;
            }
            let s: f64 = p
                .iter()
                .map(|(a, b)| ((x[*b] - x[*a]) as f64).abs().powf(beta as f64))
                .sum();
            (s / p.len() as f64) as f32
        })
        .collect()
}

/// d tv / dx, scattered pair by pair.
pub fn tv_grad(x: &[f32], dims: [usize; 4], beta: f32) -> Vec<f32> {
    let mut g = vec![0f64; x.len()];
    let beta = beta as f64;
    for item in 0..dims[0] {
        let p = pairs(dims, item);
        for (a, b) in &p {
            let d = (x[*b] - x[*a]) as f64;
            if d != 0.0 {
                let t = beta * d.abs().powf(beta - 1.0) * d.signum() / p.len() as f64;
                g[*b] += t;
                g[*a] -= t;
            }
        }
    }
    g.into_iter().map(|v| v as f32).collect()
}

/// Counts per row into `bins` equal bins over [lo, hi) (below lo: the first, at or above
/// hi: the last), as the kernel bins them (f32 arithmetic).
pub fn histogram(x: &[f32], rows: usize, lo: f32, hi: f32, bins: usize) -> Vec<u32> {
    let per = x.len() / rows;
    let mut counts = vec![0u32; rows * bins];
    for (i, v) in x.iter().enumerate() {
        let t = (v - lo) / (hi - lo) * bins as f32;
        let b = t.clamp(0.0, (bins - 1) as f32) as usize;
        counts[(i / per) * bins + b] += 1;
    }
    counts
}

/// Each row's k largest values and their indices, largest first, ties by smaller index.
pub fn top_k(x: &[f32], rows: usize, k: usize) -> (Vec<f32>, Vec<u32>) {
    let per = x.len() / rows;
    let (mut vals, mut idx) = (Vec::new(), Vec::new());
    for r in 0..rows {
        let mut order: Vec<usize> = (0..per).collect();
        let row = &x[r * per..(r + 1) * per];
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &j in &order[..k] {
            vals.push(row[j]);
            idx.push(j as u32);
        }
    }
    (vals, idx)
}

/// F.interpolate(mode="nearest") of every plane: source index min(floor(d · in / out),
/// in − 1), the scale in f32 as PyTorch computes it.
pub fn nearest(x: &[f32], dims: [usize; 4], oh: usize, ow: usize) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let src = |d: usize, n_in: usize, n_out: usize| {
        ((d as f32 * (n_in as f32 / n_out as f32)).floor() as usize).min(n_in - 1)
    };
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for pl in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                out.push(x[pl * h * w + src(oy, h, oh) * w + src(ox, w, ow)]);
            }
        }
    }
    out
}

/// numpy's percentile (linear interpolation) of v.
pub fn percentile(v: &[f32], pct: f32) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let pos = pct as f64 / 100.0 * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    (s[lo] as f64 + (pos - lo as f64) * (s[hi] as f64 - s[lo] as f64)) as f32
}

/// Yosinski et al.'s clipping: pixels of each item whose score (norm over channels, or
/// |Σ_c x g| when g is given) is below the item's percentile are set to 0.
pub fn clip_small(x: &mut [f32], g: Option<&[f32]>, dims: [usize; 4], pct: f32) {
    let [n, c, h, w] = dims;
    let plane = h * w;
    for i in 0..n {
        let at = |ch: usize, v: usize| (i * c + ch) * plane + v;
        let s: Vec<f32> = (0..plane)
            .map(|v| match g {
                None => (0..c).map(|ch| x[at(ch, v)].powi(2)).sum::<f32>().sqrt(),
                Some(g) => (0..c)
                    .map(|ch| x[at(ch, v)] * g[at(ch, v)])
                    .sum::<f32>()
                    .abs(),
            })
            .collect();
        let t = percentile(&s, pct);
        for (v, sv) in s.iter().enumerate() {
            if *sv < t {
                for ch in 0..c {
                    x[at(ch, v)] = 0.0;
                }
            }
        }
    }
}

/// torch.fft.irfftn(scale ⊙ P, s=(h, w), norm="ortho") / 4 for P [planes, h, w/2+1, 2]:
/// a complex inverse DFT along y, then irfft along x (imaginary parts of the DC and, for
/// even w, Nyquist columns ignored), in f64.
pub fn spectrum_image(p: &[f32], scale: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    use std::f64::consts::TAU;
    let w2 = w / 2 + 1;
    let mut out = vec![0f32; planes * h * w];
    for pl in 0..planes {
        for y in 0..h {
            let col: Vec<(f64, f64)> = (0..w2)
                .map(|k| {
                    (0..h).fold((0.0, 0.0), |(re, im), ky| {
                        let s = scale[ky * w2 + k] as f64;
                        let at = 2 * ((pl * h + ky) * w2 + k);
                        let (a, b) = (s * p[at] as f64, s * p[at + 1] as f64);
                        let t = TAU * (ky * y) as f64 / h as f64;
                        (
                            re + a * t.cos() - b * t.sin(),
                            im + a * t.sin() + b * t.cos(),
                        )
                    })
                })
                .collect();
            for j in 0..w {
                let mut acc = col[0].0;
                for (k, c) in col.iter().enumerate().skip(1) {
                    let t = TAU * (k * j) as f64 / w as f64;
                    let v = c.0 * t.cos() - c.1 * t.sin();
                    acc += if 2 * k == w { v } else { 2.0 * v };
                }
                out[(pl * h + y) * w + j] = (acc / (4.0 * ((h * w) as f64).sqrt())) as f32;
            }
        }
    }
    out
}

/// Bilinear warp of planes [planes, h, w] to (oh, ow) at m's sample points, outside taps
/// reading `fill`.
pub fn warp(
    x: &[f32],
    planes: usize,
    hw: (usize, usize),
    out: (usize, usize),
    m: [f32; 6],
    fill: f32,
) -> Vec<f32> {
    let (h, w) = hw;
    let mut y = vec![0f32; planes * out.0 * out.1];
    for pl in 0..planes {
        let tap = |yy: i64, xx: i64| -> f64 {
            if yy < 0 || xx < 0 || yy >= h as i64 || xx >= w as i64 {
                fill as f64
            } else {
                x[(pl * h + yy as usize) * w + xx as usize] as f64
            }
        };
        for oy in 0..out.0 {
            for ox in 0..out.1 {
                let sx = m[0] as f64 * ox as f64 + m[1] as f64 * oy as f64 + m[2] as f64;
                let sy = m[3] as f64 * ox as f64 + m[4] as f64 * oy as f64 + m[5] as f64;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (xi, yi) = (x0 as i64, y0 as i64);
                let v = (1.0 - fy) * ((1.0 - fx) * tap(yi, xi) + fx * tap(yi, xi + 1))
                    + fy * ((1.0 - fx) * tap(yi + 1, xi) + fx * tap(yi + 1, xi + 1));
                y[(pl * out.0 + oy) * out.1 + ox] = v as f32;
            }
        }
    }
    y
}
