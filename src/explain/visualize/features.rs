//! Feature space: a layer's features over a dataset (streamed through the device), k
//! nearest neighbours by cosine or L2, PCA, and exact t-SNE.

use crate::array::Array;
use crate::data::folder::ImageSet;
use crate::data::rng::Rng;
use crate::error::{Error, Result};
use crate::graph::Net;

/// Layer `layer`'s output for every image of the dataset, flattened: [N, D].
pub fn features(
    net: &Net,
    data: &ImageSet,
    layer: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Array> {
    let model = net.model();
    let name = model.output_name(layer).to_string();
    let chunk = 64;
    progress.set_length(data.len() as u64);
    let mut parts = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = (start + chunk).min(data.len());
        let x = data.load(start, end, &model.meta)?;
        let f = net.forward(&x, std::slice::from_ref(&name))?;
        let a = &f.captures[0].1;
        let d = a.data.len() / a.batch();
        parts.push(Array::new(vec![a.batch(), d], a.data.clone())?);
        progress.inc((end - start) as u64);
        start = end;
    }
    let all = Array::concat(&parts)?;
    all.check_finite()?;
    Ok(all)
}

/// How neighbours are ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// 1 − cosine similarity (a zero vector is at distance 1 from everything).
    Cosine,
    /// Euclidean distance.
    L2,
}

/// For each query row [Q, D], the k nearest rows of `base` [N, D]: (index, distance),
/// nearest first (ties: smaller index).
pub fn neighbors(
    query: &Array,
    base: &Array,
    k: usize,
    metric: Metric,
) -> Result<Vec<Vec<(usize, f32)>>> {
    let d = base.shape.get(1).copied().unwrap_or(0);
    if query.shape.len() != 2 || base.shape.len() != 2 || query.shape[1] != d {
        return Err(Error::Shape(format!(
            "neighbours: query {:?} and base {:?} are not [*, D] with one D",
            query.shape, base.shape
        )));
    }
    let n = base.shape[0];
    let row = |a: &Array, i: usize| a.data[i * d..(i + 1) * d].to_vec();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let mut out = Vec::new();
    for q in 0..query.shape[0] {
        let a = row(query, q);
        let na = norm(&a);
        let mut dist: Vec<(usize, f32)> = (0..n)
            .map(|i| {
                let b = &base.data[i * d..(i + 1) * d];
                let v = match metric {
                    Metric::L2 => a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| ((x - y) as f64).powi(2))
                        .sum::<f64>()
                        .sqrt(),
                    Metric::Cosine => {
                        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
                        let nb = norm(b);
                        if na == 0.0 || nb == 0.0 {
                            1.0
                        } else {
                            1.0 - dot / (na * nb)
                        }
                    }
                };
                (i, v as f32)
            })
            .collect();
        dist.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
        dist.truncate(k);
        out.push(dist);
    }
    Ok(out)
}

/// A principal component analysis.
pub struct Pca {
    /// [N, k]: each row projected on the components.
    pub projected: Array,
    /// [k, D]: unit components, largest variance first.
    pub components: Array,
    /// The variance along each component (eigenvalue / (N − 1)).
    pub variance: Vec<f64>,
}

fn matvec_sym(m: &[f64], n: usize, q: &[Vec<f64>]) -> Vec<Vec<f64>> {
    q.iter()
        .map(|v| {
            (0..n)
                .map(|i| (0..n).map(|j| m[i * n + j] * v[j]).sum())
                .collect()
        })
        .collect()
}

fn orthonormalise(q: &mut [Vec<f64>]) {
    for i in 0..q.len() {
        for j in 0..i {
            let d: f64 = q[i].iter().zip(&q[j]).map(|(a, b)| a * b).sum();
            let qj = q[j].clone();
            q[i].iter_mut().zip(&qj).for_each(|(a, b)| *a -= d * b);
        }
        let n = q[i].iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-300);
        q[i].iter_mut().for_each(|a| *a /= n);
    }
}

/// The top k eigenpairs of a symmetric n×n matrix by subspace iteration with a
/// Rayleigh-Ritz step (Jacobi on the small projected matrix), largest first.
fn top_eigen(m: &[f64], n: usize, k: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let p = (k + 6).min(n);
    let mut rng = Rng::new(0x9ca);
    let mut q: Vec<Vec<f64>> = (0..p)
        .map(|_| (0..n).map(|_| rng.unit() - 0.5).collect())
        .collect();
    orthonormalise(&mut q);
    for _ in 0..300 {
        q = matvec_sym(m, n, &q);
        orthonormalise(&mut q);
    }
    // Rayleigh-Ritz: T = Qᵀ M Q, then Jacobi
    let mq = matvec_sym(m, n, &q);
    let mut t: Vec<f64> = (0..p * p)
        .map(|ij| q[ij / p].iter().zip(&mq[ij % p]).map(|(a, b)| a * b).sum())
        .collect();
    let mut v: Vec<f64> = (0..p * p)
        .map(|ij| if ij / p == ij % p { 1.0 } else { 0.0 })
        .collect();
    for _ in 0..100 {
        let off: f64 = (0..p * p)
            .filter(|ij| ij / p != ij % p)
            .map(|ij| t[ij] * t[ij])
            .sum();
        if off < 1e-30 {
            break;
        }
        for a in 0..p {
            for b in a + 1..p {
                if t[a * p + b].abs() < 1e-300 {
                    continue;
                }
                let theta = (t[b * p + b] - t[a * p + a]) / (2.0 * t[a * p + b]);
                let tt = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let tt = if theta == 0.0 { 1.0 } else { tt };
                let c = 1.0 / (tt * tt + 1.0).sqrt();
                let s = tt * c;
                for r in 0..p {
                    let (x, y) = (t[r * p + a], t[r * p + b]);
                    t[r * p + a] = c * x - s * y;
                    t[r * p + b] = s * x + c * y;
                }
                for r in 0..p {
                    let (x, y) = (t[a * p + r], t[b * p + r]);
                    t[a * p + r] = c * x - s * y;
                    t[b * p + r] = s * x + c * y;
                }
                for r in 0..p {
                    let (x, y) = (v[r * p + a], v[r * p + b]);
                    v[r * p + a] = c * x - s * y;
                    v[r * p + b] = s * x + c * y;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|a, b| t[b * p + b].total_cmp(&t[a * p + a]));
    let vals = order.iter().take(k).map(|&i| t[i * p + i]).collect();
    let vecs = order
        .iter()
        .take(k)
        .map(|&i| {
            (0..n)
                .map(|r| (0..p).map(|j| q[j][r] * v[j * p + i]).sum())
                .collect()
        })
        .collect();
    (vals, vecs)
}

/// PCA of the rows of x [N, D] (centred) onto k components, via the smaller of the Gram
/// and covariance matrices. Signs follow sklearn: each projection's largest-|·| entry is
/// positive.
pub fn pca(x: &Array, k: usize) -> Result<Pca> {
    let (n, d) = match x.shape.as_slice() {
        [n, d] if *n >= 2 && *d >= 1 => (*n, *d),
        s => {
            return Err(Error::Shape(format!(
                "PCA needs [N >= 2, D] rows, got {s:?}"
            )))
        }
    };
    if k == 0 || k > n.min(d) {
        return Err(Error::input(
            "components",
            format!("{k} is outside [1, {}]", n.min(d)),
        ));
    }
    if n.min(d) > 4096 {
        return Err(Error::input(
            "PCA",
            format!("{n} rows of {d} features: at most 4096 of one of them"),
        ));
    }
    x.check_finite()?;
    let mut mean = vec![0f64; d];
    for row in x.data.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n as f64;
        }
    }
    let xc: Vec<f64> = (0..n * d)
        .map(|ij| x.data[ij] as f64 - mean[ij % d])
        .collect();
    let (proj, comps, vals) = if n <= d {
        let g: Vec<f64> = (0..n * n)
            .map(|ij| {
                (0..d)
                    .map(|t| xc[(ij / n) * d + t] * xc[(ij % n) * d + t])
                    .sum()
            })
            .collect();
        let (vals, us) = top_eigen(&g, n, k);
        let comps: Vec<Vec<f64>> = us
            .iter()
            .zip(&vals)
            .map(|(u, l)| {
                let s = l.max(1e-300).sqrt();
                (0..d)
                    .map(|t| (0..n).map(|i| xc[i * d + t] * u[i]).sum::<f64>() / s)
                    .collect()
            })
            .collect();
        let proj: Vec<Vec<f64>> = us
            .iter()
            .zip(&vals)
            .map(|(u, l)| u.iter().map(|v| v * l.max(0.0).sqrt()).collect())
            .collect();
        (proj, comps, vals)
    } else {
        let c: Vec<f64> = (0..d * d)
            .map(|ab| {
                (0..n)
                    .map(|i| xc[i * d + ab / d] * xc[i * d + ab % d])
                    .sum()
            })
            .collect();
        let (vals, vs) = top_eigen(&c, d, k);
        let proj: Vec<Vec<f64>> = vs
            .iter()
            .map(|v| {
                (0..n)
                    .map(|i| (0..d).map(|t| xc[i * d + t] * v[t]).sum())
                    .collect()
            })
            .collect();
        (proj, vs, vals)
    };
    let mut projected = vec![0f32; n * k];
    let mut components = vec![0f32; k * d];
    for c in 0..k {
        let big = proj[c]
            .iter()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { *v } else { m });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            projected[i * k + c] = (sign * proj[c][i]) as f32;
        }
        for t in 0..d {
            components[c * d + t] = (sign * comps[c][t]) as f32;
        }
    }
    Ok(Pca {
        projected: Array::new(vec![n, k], projected)?,
        components: Array::new(vec![k, d], components)?,
        variance: vals.iter().map(|l| l / (n - 1) as f64).collect(),
    })
}

/// Exact t-SNE (van der Maaten & Hinton 2008) of the rows of x [N, D] to 2-D: perplexity
/// by bisection per row, early exaggeration 12 for the first 250 of `steps` iterations,
/// learning rate max(N / 48, 50) (sklearn's "auto"), momentum 0.5 then 0.8, gains;
/// seeded N(0, 1e-4²) start.
pub fn tsne(x: &Array, perplexity: f64, steps: usize, seed: u64) -> Result<Array> {
    let (n, d) = match x.shape.as_slice() {
        [n, d] => (*n, *d),
        s => return Err(Error::Shape(format!("t-SNE needs [N, D] rows, got {s:?}"))),
    };
    if !(4..=5000).contains(&n) {
        return Err(Error::input(
            "t-SNE",
            format!("{n} points: use 4 to 5000 (PCA has no limit)"),
        ));
    }
    if !(perplexity.is_finite() && perplexity >= 1.0 && perplexity < (n - 1) as f64 / 3.0) {
        return Err(Error::input(
            "--perplexity",
            format!(
                "{perplexity} is outside [1, (N - 1) / 3) = [1, {:.1}) for {n} points",
                (n - 1) as f64 / 3.0
            ),
        ));
    }
    if !(250..=100_000).contains(&steps) {
        return Err(Error::input(
            "--steps",
            format!("{steps} is outside [250, 100000]"),
        ));
    }
    x.check_finite()?;
    let d2: Vec<f64> = (0..n * n)
        .map(|ij| {
            let (i, j) = (ij / n, ij % n);
            (0..d)
                .map(|t| ((x.data[i * d + t] - x.data[j * d + t]) as f64).powi(2))
                .sum()
        })
        .collect();
    // conditional P by bisection on the precision β
    let target = perplexity.ln();
    let mut p = vec![0f64; n * n];
    for i in 0..n {
        let (mut lo, mut hi, mut beta) = (0.0f64, f64::INFINITY, 1.0f64);
        let row = &d2[i * n..(i + 1) * n];
        let min = (0..n)
            .filter(|j| *j != i)
            .map(|j| row[j])
            .fold(f64::INFINITY, f64::min);
        for _ in 0..100 {
            let w: Vec<f64> = (0..n)
                .map(|j| {
                    if j == i {
                        0.0
                    } else {
                        (-(row[j] - min) * beta).exp()
                    }
                })
                .collect();
            let sum: f64 = w.iter().sum::<f64>().max(1e-300);
            let h = sum.ln() + beta * (0..n).map(|j| w[j] * (row[j] - min)).sum::<f64>() / sum;
            for j in 0..n {
                p[i * n + j] = w[j] / sum;
            }
            if (h - target).abs() < 1e-5 {
                break;
            }
            if h > target {
                lo = beta;
                beta = if hi.is_finite() {
                    (beta + hi) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
    }
    let sym: Vec<f64> = (0..n * n)
        .map(|ij| ((p[ij] + p[(ij % n) * n + ij / n]) / (2.0 * n as f64)).max(1e-12))
        .collect();
    let mut rng = Rng::new(seed ^ 0x75_6e65);
    let mut y: Vec<f64> = (0..2 * n)
        .map(|_| {
            let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
            1e-4 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    let mut upd = vec![0f64; 2 * n];
    let mut gains = vec![1f64; 2 * n];
    let mut num = vec![0f64; n * n];
    let lr = (n as f64 / 48.0).max(50.0);
    for t in 0..steps {
        let exag = if t < 250 { 12.0 } else { 1.0 };
        let mom = if t < 250 { 0.5 } else { 0.8 };
        let mut sum = 0.0;
        for i in 0..n {
            for j in 0..n {
                let v = if i == j {
                    0.0
                } else {
                    1.0 / (1.0
                        + (y[2 * i] - y[2 * j]).powi(2)
                        + (y[2 * i + 1] - y[2 * j + 1]).powi(2))
                };
                num[i * n + j] = v;
                sum += v;
            }
        }
        for i in 0..n {
            let (mut gx, mut gy) = (0.0, 0.0);
            for j in 0..n {
                let m = (exag * sym[i * n + j] - num[i * n + j] / sum) * num[i * n + j];
                gx += 4.0 * m * (y[2 * i] - y[2 * j]);
                gy += 4.0 * m * (y[2 * i + 1] - y[2 * j + 1]);
            }
            for (a, g) in [(2 * i, gx), (2 * i + 1, gy)] {
                gains[a] = if (g > 0.0) != (upd[a] > 0.0) {
                    gains[a] + 0.2
                } else {
                    gains[a] * 0.8
                };
                gains[a] = gains[a].max(0.01);
                upd[a] = mom * upd[a] - lr * gains[a] * g;
            }
        }
        for a in 0..2 * n {
            y[a] += upd[a];
        }
        for c in 0..2 {
            let m = (0..n).map(|i| y[2 * i + c]).sum::<f64>() / n as f64;
            (0..n).for_each(|i| y[2 * i + c] -= m);
        }
    }
    let out = Array::new(vec![n, 2], y.iter().map(|v| *v as f32).collect())?;
    out.check_finite()
        .map_err(|_| Error::Other("t-SNE diverged; try another perplexity".into()))?;
    Ok(out)
}
