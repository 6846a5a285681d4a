//! Extremal-perturbation kernels (kernels/extremal.wgsl): TorchRay's smooth-mask
//! generator, the blur-pyramid blend and the area-ranking regulariser, with gradients.

use bytemuck::{Pod, Zeroable};

use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ExParams {
    rows: u32,
    hin: u32,
    win: u32,
    oh: u32,
    ow: u32,
    step: u32,
    pad: u32,
    radius: u32,
    sigma: f32,
    margin: f32,
    coldness: f32,
    levels: u32,
    h: u32,
    w: u32,
    channels: u32,
    crop: u32,
    areas: u32,
    items: u32,
    invert: u32,
    weight: f32,
    row0: u32,
    mid_h: u32,
    mid_w: u32,
    _pad: u32,
}

/// TorchRay's `MaskGenerator` shapes for an h × w input, a parameter cell every `step`
/// pixels and bumps of width σ: parameters [hin, win], the full mask [oh, ow] (the input
/// plus a margin of σ), the input's offset `crop` = round(σ) in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskGeometry {
    pub h: usize,
    pub w: usize,
    pub step: usize,
    pub sigma: f32,
    pub coldness: f32,
    pub hin: usize,
    pub win: usize,
    pub pad: usize,
    pub radius: usize,
    pub mid: (usize, usize),
    pub oh: usize,
    pub ow: usize,
    pub crop: usize,
}

impl MaskGeometry {
    pub fn new(h: usize, w: usize, step: usize, sigma: f32) -> Result<MaskGeometry> {
        if step == 0 || step > h.min(w) || !(sigma.is_finite() && sigma > 0.0 && sigma <= 1e4) {
            return Err(Error::input(
                "--step/--sigma",
                format!(
                    "step {step} must be in 1..={} and σ {sigma} in (0, 1e4]",
                    h.min(w)
                ),
            ));
        }
        let margin = sigma;
        let pad = 1 + ((margin + sigma) / step as f32).ceil() as usize;
        let radius = 1 + (sigma / step as f32).ceil() as usize;
        if radius > 16 {
            return Err(Error::input(
                "--sigma",
                format!("σ {sigma} spans {radius} cells of {step} px; at most 16 (raise the step)"),
            ));
        }
        let (hin, win) = (h.div_ceil(step), w.div_ceil(step));
        let mid = (hin + 2 * pad - 2 * radius, win + 2 * pad - 2 * radius);
        let (oh, ow) = (step * mid.0 - step + 1, step * mid.1 - step + 1);
        let crop = margin.round() as usize;
        if crop + h > oh || crop + w > ow {
            return Err(Error::Shape(format!(
                "mask geometry: the input {h}x{w} at offset {crop} does not fit {oh}x{ow}"
            )));
        }
        Ok(MaskGeometry {
            h,
            w,
            step,
            sigma,
            coldness: 20.0,
            hin,
            win,
            pad,
            radius,
            mid,
            oh,
            ow,
            crop,
        })
    }

    fn params(&self, rows: usize) -> Result<ExParams> {
        Ok(ExParams {
            rows: u32s(rows, "masks")?,
            hin: self.hin as u32,
            win: self.win as u32,
            oh: self.oh as u32,
            ow: self.ow as u32,
            step: self.step as u32,
            pad: self.pad as u32,
            radius: self.radius as u32,
            sigma: self.sigma,
            margin: self.sigma,
            coldness: self.coldness,
            h: self.h as u32,
            w: self.w as u32,
            crop: self.crop as u32,
            mid_h: self.mid.0 as u32,
            mid_w: self.mid.1 as u32,
            ..Default::default()
        })
    }

    fn rows(&self, t: &Tensor, plane: (usize, usize), what: &str) -> Result<usize> {
        match t.shape.as_slice() {
            [k, 1, a, b] if (*a, *b) == plane && *k > 0 => Ok(*k),
            s => Err(Error::Shape(format!(
                "{what}: {s:?} is not [K, 1, {}, {}]",
                plane.0, plane.1
            ))),
        }
    }
}

/// The full masks [K, 1, oh, ow] of parameters pm [K, 1, hin, win], and the statistics
/// their gradient needs.
pub fn smooth_mask(rec: &mut Recorder, g: &MaskGeometry, pm: &Tensor) -> Result<(Tensor, Tensor)> {
    let k = g.rows(pm, (g.hin, g.win), "smooth mask parameters")?;
    let full = Tensor::empty(rec.ctx(), &[k, 1, g.oh, g.ow], "smooth mask")?;
    // per pixel (value, max, normaliser, 0): one vec4 load in the gradient
    let stats = Tensor::empty(rec.ctx(), &[k, g.oh, g.ow, 4], "smooth mask statistics")?;
    let p = g.params(k)?;
    let bind = [
        Binding::Tensor(pm),
        Binding::Tensor(&full),
        Binding::Tensor(&stats),
    ];
    rec.launch_1d(Kernel::SmoothMask, &p, &bind, k * g.oh * g.ow);
    Ok((full, stats))
}

/// d loss / d pm from d loss / d full (the clamp's and the pooling's derivatives).
pub fn smooth_mask_grad(
    rec: &mut Recorder,
    g: &MaskGeometry,
    pm: &Tensor,
    stats: &Tensor,
    g_full: &Tensor,
) -> Result<Tensor> {
    let k = g.rows(pm, (g.hin, g.win), "smooth mask parameters")?;
    if g.rows(g_full, (g.oh, g.ow), "smooth mask gradient")? != k
        || stats.shape != [k, g.oh, g.ow, 4]
    {
        return Err(Error::Shape("smooth mask gradient: shapes differ".into()));
    }
    let out = Tensor::empty(rec.ctx(), &pm.shape, "smooth mask parameter gradient")?;
    let p = g.params(k)?;
    let bind = [
        Binding::Tensor(pm),
        Binding::Tensor(stats),
        Binding::Tensor(g_full),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::SmoothMaskGrad, &p, &bind, pm.len());
    Ok(out)
}

/// How the blend reads the mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blend {
    /// Level m (TorchRay's preserve variant).
    Preserve,
    /// Level 1 − m (delete).
    Delete,
    /// Both: rows [0, K) preserve, [K, 2K) delete.
    Dual,
}

/// The perturbation pyramid [levels, N, C, h, w] blended by the full masks [K, 1, oh, ow]
/// (K = N · areas, mask k on item k / areas): [K or 2K (dual), C, h, w].
pub fn pyramid_mix(
    rec: &mut Recorder,
    g: &MaskGeometry,
    full: &Tensor,
    pyramid: &Tensor,
    areas: usize,
    blend: Blend,
) -> Result<Tensor> {
    let (k, p0) = pyramid_check(g, full, pyramid, areas)?;
    let [levels, _, c, h, w] = p0;
    let rows = if blend == Blend::Dual { 2 * k } else { k };
    let out = Tensor::empty(rec.ctx(), &[rows, c, h, w], "blended pyramid")?;
    let launches: &[(u32, usize)] = match blend {
        Blend::Preserve => &[(0, 0)],
        Blend::Delete => &[(1, 0)],
        Blend::Dual => &[(0, 0), (1, k)],
    };
    for &(invert, row0) in launches {
        let p = ExParams {
            levels: levels as u32,
            channels: c as u32,
            areas: areas as u32,
            items: (k / areas) as u32,
            invert,
            row0: row0 as u32,
            ..g.params(k)?
        };
        let bind = [
            Binding::Tensor(full),
            Binding::Tensor(pyramid),
            Binding::Tensor(&out),
        ];
        rec.launch_1d(Kernel::PyramidMix, &p, &bind, k * c * h * w);
    }
    Ok(out)
}

fn pyramid_check(
    g: &MaskGeometry,
    full: &Tensor,
    pyramid: &Tensor,
    areas: usize,
) -> Result<(usize, [usize; 5])> {
    let k = g.rows(full, (g.oh, g.ow), "full masks")?;
    match pyramid.shape.as_slice() {
        [l, n, c, h, w] if *l >= 2 && *h == g.h && *w == g.w && areas > 0 && n * areas == k => {
            Ok((k, [*l, *n, *c, *h, *w]))
        }
        s => Err(Error::Shape(format!(
            "pyramid {s:?} does not fit {k} masks of {areas} areas on {}x{} inputs",
            g.h, g.w
        ))),
    }
}

/// d loss / d full mask from the blend's gradient g_blend (zero in the margin).
pub fn pyramid_mix_grad(
    rec: &mut Recorder,
    g: &MaskGeometry,
    full: &Tensor,
    pyramid: &Tensor,
    areas: usize,
    blend: Blend,
    g_blend: &Tensor,
) -> Result<Tensor> {
    let (k, [levels, _, c, h, w]) = pyramid_check(g, full, pyramid, areas)?;
    let rows = if blend == Blend::Dual { 2 * k } else { k };
    if g_blend.shape != [rows, c, h, w] {
        return Err(Error::Shape(format!(
            "blend gradient {:?} is not [{rows}, {c}, {h}, {w}]",
            g_blend.shape
        )));
    }
    let out = Tensor::empty(rec.ctx(), &full.shape, "full mask gradient")?;
    let p = ExParams {
        levels: levels as u32,
        channels: c as u32,
        areas: areas as u32,
        items: (k / areas) as u32,
        invert: match blend {
            Blend::Preserve => 0,
            Blend::Delete => 1,
            Blend::Dual => 2,
        },
        ..g.params(k)?
    };
    let bind = [
        Binding::Tensor(full),
        Binding::Tensor(pyramid),
        Binding::Tensor(g_blend),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::PyramidMixGrad, &p, &bind, out.len());
    Ok(out)
}

/// The area regulariser's zero counts ⌊n(1 − a)⌋ for each area (computed in f64, as
/// TorchRay's Python does), [areas], for `area_regulariser`.
pub fn area_zeros(ctx: &crate::gpu::Context, g: &MaskGeometry, areas: &[f32]) -> Result<Tensor> {
    if areas.is_empty()
        || areas
            .iter()
            .any(|a| !(a.is_finite() && *a > 0.0 && *a < 1.0))
    {
        return Err(Error::input("--area", format!("{areas:?}: each in (0, 1)")));
    }
    let n = (g.oh * g.ow) as f64;
    let q: Vec<f32> = areas
        .iter()
        .map(|a| (n * (1.0 - *a as f64)).floor() as f32)
        .collect();
    Tensor::upload(ctx, &q, &[areas.len()])
}

/// TorchRay's area regulariser of each full mask [K, 1, oh, ow] (values in [0, 1]):
/// weight · mean((sort(m) − ref)²), ref = q zeros then ones, q = zeros[k % areas] (from
/// `area_zeros`), ties ranked by index; its gradient is added to `g_full`; returns the
/// value per mask [K].
pub fn area_regulariser(
    rec: &mut Recorder,
    g: &MaskGeometry,
    full: &Tensor,
    zeros: &Tensor,
    weight: f32,
    g_full: &Tensor,
) -> Result<Tensor> {
    let k = g.rows(full, (g.oh, g.ow), "full masks")?;
    if g_full.shape != full.shape || zeros.shape.len() != 1 || zeros.is_empty() || k > 65535 {
        return Err(Error::Shape(
            "area regulariser: a gradient like the masks, at least one area, at most 65535 masks"
                .into(),
        ));
    }
    if !(weight.is_finite() && weight >= 0.0) {
        return Err(Error::Shape(format!(
            "area regulariser weight {weight} must be >= 0"
        )));
    }
    let loss = Tensor::empty(rec.ctx(), &[k], "area regulariser")?;
    let p = ExParams {
        areas: zeros.len() as u32,
        weight,
        ..g.params(k)?
    };
    let bind = [
        Binding::Tensor(full),
        Binding::Tensor(zeros),
        Binding::Tensor(g_full),
        Binding::Tensor(&loss),
    ];
    rec.launch(Kernel::AreaRegulariser, &p, &bind, [k as u32, 1, 1]);
    Ok(loss)
}
