//! Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019) as TorchRay defines them:
//! smooth masks from a coarse parameter grid, a perturbation pyramid read at the mask's
//! level, the area-ranking regulariser with a growing weight, SGD with momentum, and a
//! horizontal flip every other step. Every item × area is one row of one batch.

use super::{gather, probabilities, MaskItem, Masks};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::explain::Target;
use crate::gpu::{read_all, Recorder, Tensor};
use crate::graph::{Keep, Net};
use crate::ops::extremal::{
    area_regulariser, area_zeros, pyramid_mix, pyramid_mix_grad, smooth_mask, smooth_mask_grad,
    Blend, MaskGeometry,
};
use crate::ops::map::{clamp_in_place, multiply, sgd_step, store_row, Sgd};
use crate::ops::objective::{objective, Objective, Targets};
use crate::ops::resample::{blur_zero, flip_x};
use crate::ops::ReluRule;

/// TorchRay's variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The smallest region that keeps the target's logit high.
    Preserve,
    /// The region whose deletion lowers it most.
    Delete,
    /// Both at once: preserve(m) − delete(1 − m).
    Dual,
}

/// The perturbation pyramid's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pyramid {
    /// Level l: Gaussian blur with σ = (1 − l/(L−1)) · max_blur, zero padding.
    Blur,
    /// Level l: x · l/(L−1) (fade to zero).
    Fade,
}

/// Everything an extremal run needs. `ExtremalSettings::torchray` gives TorchRay's
/// defaults, its pixel sizes scaled with the side s = min(h, w) from 224;
/// `ExtremalSettings::new` the same but for the area weight's growth (`DEFAULT_GROWTH`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExtremalSettings {
    pub variant: Variant,
    pub areas: Vec<f32>,
    pub pyramid: Pyramid,
    pub levels: usize,
    pub max_blur: f32,
    pub step: usize,
    pub sigma: f32,
    pub iterations: usize,
    pub jitter: bool,
    pub lr: f32,
    pub momentum: f32,
    pub regul_weight: f32,
    pub regul_growth: f32,
    pub explainable_below: f32,
}

/// The area weight's growth per step of `ExtremalSettings::new`: 300 · 1.007^800 ≈ 80,000 by
/// the last of 800 steps, where TorchRay's 1.0035 reaches ≈ 4,900. With TorchRay's growth the
/// demo model's masks ran up to 0.053 over their area; with this one all 45 measured land
/// within 0.02 (README, Masks).
pub const DEFAULT_GROWTH: f32 = 1.007;

impl ExtremalSettings {
    /// TorchRay's defaults with the area weight growing by `DEFAULT_GROWTH` per step.
    pub fn new(variant: Variant, hw: (usize, usize)) -> ExtremalSettings {
        ExtremalSettings {
            regul_growth: DEFAULT_GROWTH,
            ..ExtremalSettings::torchray(variant, hw)
        }
    }

    /// TorchRay's defaults exactly (`extremal_perturbation` in torchray 1.0).
    pub fn torchray(variant: Variant, (h, w): (usize, usize)) -> ExtremalSettings {
        let s = h.min(w) as f32 / 224.0;
        ExtremalSettings {
            variant,
            areas: vec![0.1],
            pyramid: Pyramid::Blur,
            levels: 8,
            max_blur: 20.0 * s,
            step: ((7.0 * s).round() as usize).max(1),
            sigma: 21.0 * s,
            iterations: 800,
            jitter: true,
            lr: 0.01,
            momentum: 0.9,
            regul_weight: 300.0,
            regul_growth: 1.0035,
            explainable_below: 0.5,
        }
    }

    pub fn check(&self, h: usize, w: usize) -> Result<MaskGeometry> {
        let bad = |flag: &str, msg: String| Err(Error::input(flag, msg));
        if self.areas.is_empty()
            || self.areas.len() > 64
            || self
                .areas
                .iter()
                .any(|a| !(a.is_finite() && *a > 0.0 && *a < 1.0))
        {
            return bad(
                "--area",
                format!("{:?}: 1 to 64 areas, each in (0, 1)", self.areas),
            );
        }
        if !(2..=64).contains(&self.levels) {
            return bad("--levels", format!("{} must be in 2..=64", self.levels));
        }
        if !(self.max_blur.is_finite() && self.max_blur > 0.0 && self.max_blur <= 256.0) {
            return bad(
                "--blur-sigma",
                format!("{} must be in (0, 256]", self.max_blur),
            );
        }
        if self.iterations == 0 || self.iterations > 100_000 {
            return bad(
                "--iterations",
                format!("{} must be in 1..=100000", self.iterations),
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0) {
            return bad("--lr", format!("{} must be in (0, 10]", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("--momentum", format!("{} must be in [0, 1)", self.momentum));
        }
        if !(self.regul_weight.is_finite() && (0.0..=1e6).contains(&self.regul_weight)) {
            return bad(
                "--regul-weight",
                format!("{} must be in [0, 1e6]", self.regul_weight),
            );
        }
        let last = f64::from(self.regul_growth).powi(self.iterations as i32)
            * f64::from(self.regul_weight);
        if !(self.regul_growth.is_finite()
            && (1.0..=1.1).contains(&self.regul_growth)
            && last < 1e30)
        {
            return bad(
                "--regul-growth",
                format!(
                    "{} must be in [1, 1.1], with the weight {} growing to under 1e30 in {} steps",
                    self.regul_growth, self.regul_weight, self.iterations
                ),
            );
        }
        if !(self.explainable_below > 0.0 && self.explainable_below <= 1.0) {
            return bad(
                "--explainable-below",
                format!("{} must be in (0, 1]", self.explainable_below),
            );
        }
        MaskGeometry::new(h, w, self.step, self.sigma)
    }
}

/// Pyramid level l of x (0: the most perturbed, levels − 1: x itself), recorded.
fn level(rec: &mut Recorder, xt: &Tensor, s: &ExtremalSettings, l: usize) -> Result<Tensor> {
    let t = l as f32 / (s.levels - 1) as f32;
    let flat = [xt.len()];
    match s.pyramid {
        Pyramid::Fade => crate::ops::map::affine(rec, xt, t, 0.0)?.reshape(&flat),
        Pyramid::Blur => {
            let sigma = (1.0 - t) * s.max_blur;
            if sigma > 0.0 {
                blur_zero(rec, xt, sigma, (4.0 * sigma).ceil() as usize)?.reshape(&flat)
            } else {
                xt.reshape(&flat)
            }
        }
    }
}

/// How many items' pyramids (`per` values a level) fit one binding: at least one, or an
/// error naming the `--levels` that would fit.
fn pyramid_items(net: &Net, s: &ExtremalSettings, per: usize) -> Result<usize> {
    let (one, limit) = (s.levels as u64 * per as u64 * 4, net.ctx().max_binding());
    if one > limit {
        let fit = limit / (per as u64 * 4);
        return Err(crate::Error::TooLarge {
            what: format!("the perturbation pyramid of {} levels", s.levels),
            bytes: one,
            limit,
            hint: match fit {
                0 | 1 => "use a smaller input: two levels of this one do not fit".into(),
                f => format!("use --levels {f} or fewer, or a smaller input"),
            },
        });
    }
    Ok((limit / one) as usize)
}

/// The pyramid [levels, N, C, h, w] of x on the device.
fn build_pyramid(net: &Net, xt: &Tensor, s: &ExtremalSettings) -> Result<Tensor> {
    let ctx = net.ctx();
    let pyr = Tensor::empty(ctx, &[s.levels, xt.len()], "perturbation pyramid")?;
    let mut rec = Recorder::new(ctx, "pyramid");
    for l in 0..s.levels {
        let v = level(&mut rec, xt, s, l)?;
        store_row(&mut rec, &v, &pyr, l)?;
    }
    rec.submit()?;
    let mut shape = vec![s.levels];
    shape.extend_from_slice(&xt.shape);
    pyr.reshape(&shape)
}

/// Extremal masks for every item of x and every area of `s.areas`: rows item-major
/// (item i, area a at i · areas + a). Mask 1 = kept (for Delete, 1 − TorchRay's mask).
pub fn extremal_perturbation(
    net: &Net,
    x: &Array,
    target: &Target,
    s: &ExtremalSettings,
    progress: &indicatif::ProgressBar,
) -> Result<Masks> {
    let [n, c, h, w] = crate::ops::dims4(&x.shape, "mask input")?;
    let geo = s.check(h, w)?;
    x.check_finite()?;
    let pyramids = pyramid_items(net, s, c * h * w)?;
    let targets = target.resolve(net, x)?;
    let a = s.areas.len();
    let xt = Tensor::upload(net.ctx(), &x.data, &x.shape)?;
    // the fully perturbed input alone (pyramid level 0) decides who is explainable; each
    // pass builds its own items' pyramid
    let mut rec = Recorder::new(net.ctx(), "pyramid level 0");
    let bottom_t = level(&mut rec, &xt, s, 0)?;
    rec.submit()?;
    let bottom = Array::new(x.shape.clone(), bottom_t.read(net.ctx())?)?;
    let p_input = probabilities(net, x, &targets)?;
    let p_baseline = probabilities(net, &bottom, &targets)?;
    let keep: Vec<usize> = (0..n)
        .filter(|&i| p_baseline[i] < s.explainable_below)
        .collect();
    let plane = h * w;
    let mut mask = vec![1.0f32; n * a * plane];
    let mut perturbed: Vec<f32> = (0..n * a)
        .flat_map(|r| {
            x.data[(r / a) * c * plane..(r / a + 1) * c * plane]
                .iter()
                .copied()
        })
        .collect();
    let mut items: Vec<MaskItem> = (0..n * a)
        .map(|r| MaskItem {
            target: targets[r / a],
            p_input: p_input[r / a],
            p_baseline: p_baseline[r / a],
            p_perturbed: p_input[r / a],
            kept: 1.0,
            area_target: Some(s.areas[r % a]),
            area: None,
            area_above_half: None,
            explainable: false,
            loss: Vec::new(),
            prob: Vec::new(),
        })
        .collect();
    let rows_per_item = a * if s.variant == Variant::Dual { 2 } else { 1 };
    let chunk = (net.walk_batch(&[rows_per_item, c, h, w])? / rows_per_item).max(1);
    let chunk = chunk.min(pyramids);
    progress.set_length((keep.len().div_ceil(chunk) * s.iterations) as u64);
    for group in keep.chunks(chunk) {
        let x0 = gather(x, group);
        let t: Vec<usize> = group.iter().map(|&i| targets[i]).collect();
        let out = optimise(net, &geo, &x0, &t, s, progress)?;
        for (k, &i) in group.iter().enumerate() {
            for ar in 0..a {
                let (src, dst) = (k * a + ar, i * a + ar);
                mask[dst * plane..(dst + 1) * plane]
                    .copy_from_slice(&out.mask.data[src * plane..(src + 1) * plane]);
                perturbed[dst * c * plane..(dst + 1) * c * plane]
                    .copy_from_slice(&out.perturbed.data[src * c * plane..(src + 1) * c * plane]);
                let keep_p = (items[dst].p_input, items[dst].p_baseline);
                items[dst] = out.items[src].clone();
                (items[dst].p_input, items[dst].p_baseline) = keep_p;
            }
        }
    }
    let mask = Array::new(vec![n * a, 1, h, w], mask)?;
    let perturbed = Array::new(vec![n * a, c, h, w], perturbed)?;
    mask.check_finite()?;
    perturbed.check_finite()?;
    Ok(Masks {
        mask,
        perturbed,
        items,
    })
}

/// One pass: n items × areas rows optimised together.
fn optimise(
    net: &Net,
    geo: &MaskGeometry,
    x0: &Array,
    targets: &[usize],
    s: &ExtremalSettings,
    progress: &indicatif::ProgressBar,
) -> Result<Masks> {
    let ctx = net.ctx();
    let [n, c, h, w] = crate::ops::dims4(&x0.shape, "mask input")?;
    let a = s.areas.len();
    let k = n * a;
    let blend = match s.variant {
        Variant::Preserve => Blend::Preserve,
        Variant::Delete => Blend::Delete,
        Variant::Dual => Blend::Dual,
    };
    let rows = if blend == Blend::Dual { 2 * k } else { k };
    let classes = net.model().output_shapes(&[1, c, h, w])?;
    let classes = classes.last().map_or(0, |o| o[1]);
    let row_targets: Vec<usize> = (0..rows).map(|r| targets[(r % k) / a]).collect();
    let tg = Targets::classes(ctx, &row_targets, &[classes])?;
    let tg_k = Targets::classes(ctx, &row_targets[..k], &[classes])?;
    // d(−energy)/d logit: −1 on preserved rows, +1 on deleted ones
    let signs: Vec<f32> = (0..rows)
        .flat_map(|r| {
            let sign = match blend {
                Blend::Preserve => -1.0,
                Blend::Delete => 1.0,
                Blend::Dual if r < k => -1.0,
                Blend::Dual => 1.0,
            };
            std::iter::repeat_n(sign, classes)
        })
        .collect();
    let signs = Tensor::upload(ctx, &signs, &[rows, classes])?;
    let xt = Tensor::upload(ctx, &x0.data, &x0.shape)?;
    let pyr = build_pyramid(net, &xt, s)?;
    let areas = area_zeros(ctx, geo, &s.areas)?;
    let cells = k * geo.hin * geo.win;
    let pm = Tensor::upload(ctx, &vec![1.0; cells], &[k, 1, geo.hin, geo.win])?;
    let buf = Tensor::upload(ctx, &vec![0.0; cells], &pm.shape)?;
    let steps = s.iterations;
    let hist_logit = Tensor::upload(ctx, &vec![0.0; steps * rows], &[steps, rows])?;
    let hist_regul = Tensor::upload(ctx, &vec![0.0; steps * k], &[steps, k])?;
    let hist_prob = Tensor::upload(ctx, &vec![0.0; steps * rows], &[steps, rows])?;
    let sgd = Sgd {
        lr: s.lr,
        momentum: s.momentum,
        dampening: s.momentum,
    };
    let last = net.model().layers.len() - 1;
    let mut weight = s.regul_weight as f64;
    for t in 0..steps {
        let mut rec = Recorder::new(ctx, "extremal step");
        let (full, stats) = smooth_mask(&mut rec, geo, &pm)?;
        let blended = pyramid_mix(&mut rec, geo, &full, &pyr, a, blend)?;
        let flip = s.jitter && t % 2 == 0;
        let input = if flip {
            flip_x(&mut rec, &blended)?
        } else {
            blended
        };
        let tape = net.record_forward_any(&mut rec, &input, &Keep::Gradient(vec![]), None, "")?;
        let (onehot, logit) = objective(&mut rec, &tape.logits, &tg, Objective::Logit)?;
        let seed = multiply(&mut rec, &onehot, &signs)?;
        let g = net.record_backward(&mut rec, &tape, last, &seed, ReluRule::Gradient, &[])?;
        let g_in = if flip {
            flip_x(&mut rec, &g.input)?
        } else {
            g.input
        };
        let g_full = pyramid_mix_grad(&mut rec, geo, &full, &pyr, a, blend, &g_in)?;
        let regul = area_regulariser(&mut rec, geo, &full, &areas, weight as f32, &g_full)?;
        let g_pm = smooth_mask_grad(&mut rec, geo, &pm, &stats, &g_full)?;
        // as TorchRay, the result is the mask the last step evaluated: no update after it
        if t + 1 < steps {
            sgd_step(&mut rec, &sgd, t == 0, &pm, &g_pm, &buf)?;
            clamp_in_place(&mut rec, &pm, 0.0, 1.0)?;
        }
        let (_, prob) = objective(&mut rec, &tape.logits, &tg, Objective::Prob)?;
        store_row(&mut rec, &logit, &hist_logit, t)?;
        store_row(&mut rec, &regul, &hist_regul, t)?;
        store_row(&mut rec, &prob, &hist_prob, t)?;
        rec.submit()?;
        weight *= s.regul_growth as f64;
        progress.inc(1);
    }
    // the final masks, Φ without the flip, and its probability
    let mut rec = Recorder::new(ctx, "extremal result");
    let (full, _) = smooth_mask(&mut rec, geo, &pm)?;
    let view = match blend {
        Blend::Delete => Blend::Delete,
        _ => Blend::Preserve,
    };
    let phi = pyramid_mix(&mut rec, geo, &full, &pyr, a, view)?;
    let tape = net.record_forward_any(&mut rec, &phi, &Keep::Nothing, None, "")?;
    let (_, p) = objective(&mut rec, &tape.logits, &tg_k, Objective::Prob)?;
    rec.submit()?;
    let out = read_all(
        ctx,
        &[&full, &phi, &p, &hist_logit, &hist_regul, &hist_prob],
    )?;
    let plane = h * w;
    let mut mask = vec![0.0f32; k * plane];
    for r in 0..k {
        for y in 0..h {
            for xx in 0..w {
                let v = out[0][(r * geo.oh + y + geo.crop) * geo.ow + xx + geo.crop];
                mask[r * plane + y * w + xx] = if blend == Blend::Delete { 1.0 - v } else { v };
            }
        }
    }
    let full_plane = |r: usize| &out[0][r * geo.oh * geo.ow..(r + 1) * geo.oh * geo.ow];
    let items = (0..k)
        .map(|r| {
            let kept = mask[r * plane..(r + 1) * plane].iter().sum::<f32>() / plane as f32;
            let loss = (0..steps)
                .map(|t| {
                    let lg = &out[3][t * rows..(t + 1) * rows];
                    let reward = match blend {
                        Blend::Preserve => lg[r],
                        Blend::Delete => -lg[r],
                        Blend::Dual => lg[r] - lg[k + r],
                    };
                    out[4][t * k + r] - reward
                })
                .collect();
            MaskItem {
                target: row_targets[r],
                p_input: f32::NAN,
                p_baseline: f32::NAN,
                p_perturbed: out[2][r],
                kept,
                area_target: Some(s.areas[r % a]),
                area: Some(full_plane(r).iter().sum::<f32>() / full_plane(r).len() as f32),
                area_above_half: Some(
                    full_plane(r).iter().filter(|v| **v >= 0.5).count() as f32
                        / full_plane(r).len() as f32,
                ),
                explainable: true,
                loss,
                prob: (0..steps).map(|t| out[5][t * rows + r]).collect(),
            }
        })
        .collect();
    Ok(Masks {
        mask: Array::new(vec![k, 1, h, w], mask)?,
        perturbed: Array::new(vec![k, c, h, w], out[1].clone())?,
        items,
    })
}
