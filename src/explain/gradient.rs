//! Gradient-based attributions: gradient, saliency, input x gradient, SmoothGrad,
//! integrated gradients, guided backprop and deconvnet (Captum's semantics).

use super::engine::{copies_gradient, Copies};
use super::{run_gradients, Attribution, Target};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::gpu::Context;
use crate::gpu::{read_all, Recorder, Tensor};
use crate::graph::Net;
use crate::ops::map::{affine, axpy, multiply};
use crate::ops::resample::{blur_radius, blur_replicate};
use crate::ops::ReluRule;

fn hidden() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}

/// d logit_target / d input, signed (Captum `Saliency(abs=False)`); with `Guided` or
/// `Deconv` ReLUs, guided backprop and deconvnet.
pub fn gradient(net: &Net, x: &Array, target: &Target, relu: ReluRule) -> Result<Attribution> {
    let r = run_gradients(
        net,
        x,
        target.fixed(x.batch()).as_deref(),
        relu,
        None,
        &hidden(),
    )?;
    Ok(Attribution {
        map: r.grad,
        targets: r.targets,
    })
}

/// Simonyan's saliency map: max over channels of |gradient|, [N, 1, H, W].
pub fn saliency(net: &Net, x: &Array, target: &Target) -> Result<Attribution> {
    let a = gradient(net, x, target, ReluRule::Gradient)?;
    Ok(Attribution {
        map: channel_max_abs(&a.map),
        targets: a.targets,
    })
}

pub fn channel_max_abs(g: &Array) -> Array {
    let [n, c, h, w] = [g.shape[0], g.shape[1], g.shape[2], g.shape[3]];
    let plane = h * w;
    let mut out = vec![0f32; n * plane];
    for b in 0..n {
        for ch in 0..c {
            for i in 0..plane {
                let v = g.data[(b * c + ch) * plane + i].abs();
                let o = &mut out[b * plane + i];
                *o = o.max(v);
            }
        }
    }
    Array {
        shape: vec![n, 1, h, w],
        data: out,
    }
}

/// input ⊙ gradient
pub fn input_x_gradient(net: &Net, x: &Array, target: &Target) -> Result<Attribution> {
    let mut a = gradient(net, x, target, ReluRule::Gradient)?;
    a.map
        .data
        .iter_mut()
        .zip(&x.data)
        .for_each(|(g, v)| *g *= v);
    Ok(a)
}

/// SmoothGrad: the mean gradient over `samples` copies with Gaussian noise of
/// σ = noise · (max − min) of each input. The noisy copies are drawn on the device
/// (seeded; an item's draws depend only on the seed, so its map is the same in any
/// batch) and their gradients averaged there.
pub fn smoothgrad(
    net: &Net,
    x: &Array,
    target: &Target,
    samples: usize,
    noise: f32,
    seed: u64,
) -> Result<Attribution> {
    if samples == 0 {
        return Err(Error::input("--samples", "must be at least 1"));
    }
    x.check_finite()?;
    let ctx = net.ctx();
    let per: usize = x.shape[1..].iter().product();
    let targets = target.resolve(net, x)?;
    let weights = Tensor::upload(ctx, &vec![1.0 / samples as f32; samples], &[samples])?;
    let bar = progress(x.batch() * samples);
    let mut item_shape = x.shape.clone();
    item_shape[0] = 1;
    let mut maps = Vec::with_capacity(x.batch());
    for (b, &t) in targets.iter().enumerate() {
        let item = &x.data[b * per..(b + 1) * per];
        let (lo, hi) = item
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        let sigma = noise * (hi - lo);
        let xi = Tensor::upload(ctx, item, &item_shape)?;
        maps.push(copies_gradient(
            net,
            &item_shape,
            samples,
            t,
            &weights,
            &bar,
            Copies::Noisy {
                x: &xi,
                sigma,
                seed,
            },
        )?);
    }
    let refs: Vec<&Tensor> = maps.iter().collect();
    let data = read_all(ctx, &refs)?.concat();
    Ok(Attribution {
        map: Array::new(x.shape.clone(), data)?,
        targets,
    })
}

/// SmoothGrad with given noise [N * samples, C, H, W] (copies of item i at i * samples + s).
pub fn smoothgrad_with_noise(
    net: &Net,
    x: &Array,
    target: &Target,
    noise: &Array,
) -> Result<Attribution> {
    let n = x.batch();
    if !noise.batch().is_multiple_of(n.max(1)) || noise.shape[1..] != x.shape[1..] {
        return Err(Error::Shape(format!(
            "noise {:?} does not fit inputs {:?}",
            noise.shape, x.shape
        )));
    }
    let s = noise.batch() / n;
    let per: usize = x.shape[1..].iter().product();
    let targets = target.resolve(net, x)?;
    let mut noisy = noise.clone();
    for (i, v) in noisy.data.iter_mut().enumerate() {
        *v += x.data[(i / (per * s)) * per + i % per];
    }
    let reps: Vec<usize> = targets
        .iter()
        .flat_map(|&t| std::iter::repeat_n(t, s))
        .collect();
    let r = run_gradients(
        net,
        &noisy,
        Some(&reps),
        ReluRule::Gradient,
        None,
        &progress(noisy.batch()),
    )?;
    let mut out = vec![0f32; n * per];
    for (i, g) in r.grad.data.iter().enumerate() {
        out[(i / (per * s)) * per + i % per] += g / s as f32;
    }
    Ok(Attribution {
        map: Array::new(x.shape.clone(), out)?,
        targets,
    })
}

/// Captum's integral approximations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgMethod {
    GaussLegendre,
    RiemannLeft,
    RiemannRight,
    RiemannMiddle,
    RiemannTrapezoid,
}

impl std::str::FromStr for IgMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "gausslegendre" => IgMethod::GaussLegendre,
            "riemann_left" => IgMethod::RiemannLeft,
            "riemann_right" => IgMethod::RiemannRight,
            "riemann_middle" => IgMethod::RiemannMiddle,
            "riemann_trapezoid" => IgMethod::RiemannTrapezoid,
            o => {
                return Err(Error::input(
                    "--ig-method",
                    format!("'{o}': use gausslegendre, riemann_left, riemann_right, riemann_middle or riemann_trapezoid"),
                ))
            }
        })
    }
}

/// (alphas, step sizes) of `n` steps, as Captum's `approximation_parameters`.
pub fn ig_steps(method: IgMethod, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if n == 0 || (n < 2 && method != IgMethod::GaussLegendre) {
        return Err(Error::input(
            "--steps",
            "needs at least 2 steps (1 for gausslegendre)",
        ));
    }
    let nf = n as f64;
    let lin = |a: f64, b: f64| {
        (0..n).map(move |i| {
            if n == 1 {
                a
            } else {
                a + (b - a) * i as f64 / (nf - 1.0)
            }
        })
    };
    Ok(match method {
        IgMethod::GaussLegendre => {
            let (x, w) = gauss_legendre(n);
            (
                x.iter().map(|v| 0.5 * (1.0 + v)).collect(),
                w.iter().map(|v| 0.5 * v).collect(),
            )
        }
        IgMethod::RiemannLeft => (lin(0.0, 1.0 - 1.0 / nf).collect(), vec![1.0 / nf; n]),
        IgMethod::RiemannRight => (lin(1.0 / nf, 1.0).collect(), vec![1.0 / nf; n]),
        IgMethod::RiemannMiddle => (lin(0.5 / nf, 1.0 - 0.5 / nf).collect(), vec![1.0 / nf; n]),
        IgMethod::RiemannTrapezoid => {
            let mut w = vec![1.0 / nf; n];
            w[0] /= 2.0;
            w[n - 1] /= 2.0;
            (lin(0.0, 1.0).collect(), w)
        }
    })
}

/// Gauss–Legendre nodes (ascending) and weights on [-1, 1], by Newton's method.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, z);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * z * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (z * p1 - p0) / (z * z - 1.0);
            let dz = p1 / dp;
            z -= dz;
            if dz.abs() < 1e-15 {
                break;
            }
        }
        x[i] = -z;
        x[n - 1 - i] = z;
        w[i] = 2.0 / ((1.0 - z * z) * dp * dp);
        w[n - 1 - i] = w[i];
    }
    (x, w)
}

/// IG baselines.
#[derive(Clone, Debug)]
pub enum Baseline {
    Zero,
    /// Gaussian blur of the input with this σ in pixels.
    Blur(f32),
    /// Each channel's mean over the input item.
    Mean,
    /// This value everywhere (in the model's input space, after normalisation).
    Value(f32),
    Given(Array),
}

impl std::str::FromStr for Baseline {
    type Err = Error;
    /// `zero`, `mean`, `blur` (σ 5 px; `Baseline::Blur` for another σ) or a number.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "zero" => Ok(Baseline::Zero),
            "mean" => Ok(Baseline::Mean),
            "blur" => Ok(Baseline::Blur(5.0)),
            o => match o.parse::<f32>() {
                Ok(v) if v.is_finite() => Ok(Baseline::Value(v)),
                _ => Err(Error::input(
                    "--baseline",
                    format!("'{o}': use zero, blur, mean or a number"),
                )),
            },
        }
    }
}

impl Baseline {
    /// The baseline of item i alone (a given baseline's item i; the others as they are).
    pub fn item(&self, i: usize) -> Baseline {
        match self {
            Baseline::Given(b) if b.batch() > i => Baseline::Given(b.slice_batch(i, i + 1)),
            other => other.clone(),
        }
    }

    /// The baseline of `x` on the device, `xt` being `x` there: the blur runs as a kernel
    /// (replicated border, radius ceil(3σ)); the others are made on the host.
    pub fn on_device(&self, ctx: &Context, x: &Array, xt: &Tensor) -> Result<Tensor> {
        match self {
            Baseline::Blur(sigma) if *sigma > 0.0 => {
                let mut rec = Recorder::new(ctx, "blur baseline");
                let b = blur_replicate(&mut rec, xt, *sigma, blur_radius(*sigma))?;
                rec.submit()?;
                Ok(b)
            }
            _ => {
                let b = self.build(x)?;
                Tensor::upload(ctx, &b.data, &b.shape)
            }
        }
    }

    pub fn build(&self, x: &Array) -> Result<Array> {
        let (h, w) = (x.shape[2], x.shape[3]);
        Ok(match self {
            Baseline::Zero => Array {
                shape: x.shape.clone(),
                data: vec![0.0; x.data.len()],
            },
            Baseline::Value(v) => Array {
                shape: x.shape.clone(),
                data: vec![*v; x.data.len()],
            },
            Baseline::Given(b) if b.shape == x.shape => b.clone(),
            Baseline::Given(b) => {
                return Err(Error::Shape(format!(
                    "baseline {:?} vs input {:?}",
                    b.shape, x.shape
                )))
            }
            Baseline::Mean => {
                let mut out = x.clone();
                for plane in out.data.chunks_mut(h * w) {
                    let m = plane.iter().map(|v| *v as f64).sum::<f64>() / (h * w) as f64;
                    plane.iter_mut().for_each(|v| *v = m as f32);
                }
                out
            }
            Baseline::Blur(sigma) => {
                let mut out = x.clone();
                for plane in out.data.chunks_mut(h * w) {
                    super::resample::gaussian_blur(plane, h, w, *sigma);
                }
                out
            }
        })
    }
}

/// Integrated gradients: (x − b) ⊙ Σ_k w_k ∇f(b + α_k (x − b)). The interpolated copies
/// are made on the device, streamed through forward and backward in chunks that fit, and
/// their weighted gradients summed there; one read per call.
pub fn integrated_gradients(
    net: &Net,
    x: &Array,
    target: &Target,
    baseline: &Baseline,
    steps: usize,
    method: IgMethod,
) -> Result<Attribution> {
    x.check_finite()?;
    let (alphas, weights) = ig_steps(method, steps)?;
    let targets = target.resolve(net, x)?;
    let ctx = net.ctx();
    let f32s = |v: &[f64]| v.iter().map(|a| *a as f32).collect::<Vec<f32>>();
    let alphas = Tensor::upload(ctx, &f32s(&alphas), &[steps])?;
    let weights = Tensor::upload(ctx, &f32s(&weights), &[steps])?;
    let bar = progress(x.batch() * steps);
    let mut item_shape = x.shape.clone();
    item_shape[0] = 1;
    let mut maps = Vec::with_capacity(x.batch());
    for (i, &t) in targets.iter().enumerate() {
        let xv = x.slice_batch(i, i + 1);
        let xi = Tensor::upload(ctx, &xv.data, &item_shape)?;
        let bi = baseline.item(i).on_device(ctx, &xv, &xi)?;
        let sum = copies_gradient(
            net,
            &item_shape,
            steps,
            t,
            &weights,
            &bar,
            Copies::Lerp {
                x: &xi,
                b: &bi,
                alphas: &alphas,
            },
        )?;
        let mut rec = Recorder::new(ctx, "integrated gradients");
        let diff = affine(&mut rec, &xi, 1.0, 0.0)?;
        axpy(&mut rec, -1.0, &bi, &diff)?;
        maps.push(multiply(&mut rec, &sum, &diff)?);
        rec.submit()?;
    }
    let refs: Vec<&Tensor> = maps.iter().collect();
    let data = read_all(ctx, &refs)?.concat();
    Ok(Attribution {
        map: Array::new(x.shape.clone(), data)?,
        targets,
    })
}

fn progress(n: usize) -> indicatif::ProgressBar {
    if n < 64 || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return hidden();
    }
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} passes {elapsed}")
            .unwrap(),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_parse_names_and_numbers() {
        assert!(matches!("zero".parse::<Baseline>(), Ok(Baseline::Zero)));
        assert!(matches!("mean".parse::<Baseline>(), Ok(Baseline::Mean)));
        assert!(matches!("blur".parse::<Baseline>(), Ok(Baseline::Blur(_))));
        assert!(matches!("-0.5".parse::<Baseline>(), Ok(Baseline::Value(v)) if v == -0.5));
        assert!("nan".parse::<Baseline>().is_err());
        assert!("inf".parse::<Baseline>().is_err());
        assert!("nope".parse::<Baseline>().is_err());
        let x = Array::new(vec![1, 1, 1, 2], vec![1.0, 3.0]).unwrap();
        assert_eq!(
            Baseline::Value(0.25).build(&x).unwrap().data,
            vec![0.25, 0.25]
        );
    }

    #[test]
    fn gauss_legendre_matches_numpy() {
        // numpy.polynomial.legendre.leggauss(3)
        let (x, w) = gauss_legendre(3);
        let s = (0.6f64).sqrt();
        for (a, b) in x.iter().zip([-s, 0.0, s]) {
            assert!((a - b).abs() < 1e-12, "{x:?}");
        }
        for (a, b) in w.iter().zip([5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0]) {
            assert!((a - b).abs() < 1e-12, "{w:?}");
        }
        let (x, w) = gauss_legendre(50);
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-12);
        assert!(x.windows(2).all(|p| p[0] < p[1]));
        // integrates x^6 exactly: 2/7
        let i: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(6)).sum();
        assert!((i - 2.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn riemann_rules_match_captum() {
        let (a, w) = ig_steps(IgMethod::RiemannTrapezoid, 5).unwrap();
        assert_eq!(a, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(w, vec![0.1, 0.2, 0.2, 0.2, 0.1]);
        let (a, _) = ig_steps(IgMethod::RiemannMiddle, 4).unwrap();
        assert_eq!(a, vec![0.125, 0.375, 0.625, 0.875]);
    }
}
