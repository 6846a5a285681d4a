//! Learned perturbation masks: Fong & Vedaldi's meaningful perturbations (ICCV 2017,
//! deletion and preservation games) as device-resident loops. A mask m ∈ [0, 1] (1 = the
//! pixel is kept) blends the input with a perturbed copy: Φ(x₀; m) = m ⊙ x₀ + (1 − m) ⊙ η.

pub mod extremal;
pub(crate) mod meaningful;
mod settings;

pub use meaningful::{objective_gradient, MaskRun, UNSHIFTED_EVERY};
pub use settings::{Game, MaskSettings, Perturbation, Score};

use crate::array::Array;
use crate::error::Result;
use crate::explain::gradient::Baseline;
use crate::explain::Target;
use crate::gpu::{Recorder, Tensor};
use crate::graph::Net;
use crate::ops::copies::noisy_copies;

/// One item's outcome.
#[derive(Clone, Debug)]
pub struct MaskItem {
    pub target: usize,
    /// The target's softmax probability on the input x₀.
    pub p_input: f32,
    /// ... on the fully perturbed input η (m = 0).
    pub p_baseline: f32,
    /// ... on Φ(x₀; m) with the final mask (no jitter).
    pub p_perturbed: f32,
    /// The mean of the final mask at input resolution (the kept share of the image).
    pub kept: f32,
    /// Extremal perturbations: the area this row was optimised for, and the area reached,
    /// both as TorchRay measures them: the mean of its mask over the input and the margin
    /// around it (its mask is the kept region for preserve and dual, the deleted one for
    /// delete).
    pub area_target: Option<f32>,
    pub area: Option<f32>,
    /// Extremal perturbations: the share of the same mask at or above 0.5 (its area read as
    /// a hard mask).
    pub area_above_half: Option<f32>,
    /// False when η alone already keeps the prediction (p_baseline at or above
    /// `explainable_below`): no mask of this perturbation can explain the item, so none
    /// is learned; its mask is all ones and its Φ is x₀.
    pub explainable: bool,
    /// The objective per iteration (before each step).
    pub loss: Vec<f32>,
    /// The target's probability per iteration (on the jittered Φ the step saw).
    pub prob: Vec<f32>,
}

/// Masks for a batch: `mask` [N, 1, H, W] at input resolution, `perturbed` = Φ(x₀; m)
/// [N, C, H, W] in the model's input space.
pub struct Masks {
    pub mask: Array,
    pub perturbed: Array,
    pub items: Vec<MaskItem>,
}

/// The perturbed input η for every item of x, on the device.
pub fn filler(net: &Net, x: &Array, xt: &Tensor, p: &Perturbation, seed: u64) -> Result<Tensor> {
    let ctx = net.ctx();
    match *p {
        Perturbation::Blur(sigma) => Baseline::Blur(sigma).on_device(ctx, x, xt),
        Perturbation::Constant(None) => Baseline::Mean.on_device(ctx, x, xt),
        Perturbation::Constant(Some(v)) => Baseline::Value(v).on_device(ctx, x, xt),
        Perturbation::Noise(sigma) => {
            let zero = Tensor::upload(ctx, &vec![0.0; x.data.len() / x.batch()], &{
                let mut s = x.shape.clone();
                s[0] = 1;
                s
            })?;
            let mut rec = Recorder::new(ctx, "noise filler");
            let eta = noisy_copies(&mut rec, &zero, sigma, seed, 0, x.batch())?;
            rec.submit()?;
            Ok(eta)
        }
    }
}

/// Learns a deletion or preservation mask per item of x (Fong & Vedaldi 2017). Items whose
/// fully perturbed input still scores `explainable_below` or more are reported, not
/// optimised. `progress` advances once per iteration of each pass.
pub fn meaningful_perturbation(
    net: &Net,
    x: &Array,
    target: &Target,
    s: &MaskSettings,
    progress: &indicatif::ProgressBar,
) -> Result<Masks> {
    let [n, c, h, w] = crate::ops::dims4(&x.shape, "mask input")?;
    s.check(h, w)?;
    x.check_finite()?;
    let targets = target.resolve(net, x)?;
    let ctx = net.ctx();
    let xt = Tensor::upload(ctx, &x.data, &x.shape)?;
    let eta_t = filler(net, x, &xt, &s.perturbation, s.seed)?;
    let eta = Array::new(x.shape.clone(), eta_t.read(ctx)?)?;
    let p_input = probabilities(net, x, &targets)?;
    let p_baseline = probabilities(net, &eta, &targets)?;
    let keep: Vec<usize> = (0..n)
        .filter(|&i| p_baseline[i] < s.explainable_below)
        .collect();
    let plane = h * w;
    let mut mask = vec![1.0f32; n * plane];
    let mut perturbed = x.data.clone();
    let mut items: Vec<MaskItem> = (0..n)
        .map(|i| MaskItem {
            target: targets[i],
            p_input: p_input[i],
            p_baseline: p_baseline[i],
            p_perturbed: p_input[i],
            kept: 1.0,
            area_target: None,
            area: None,
            area_above_half: None,
            explainable: false,
            loss: Vec::new(),
            prob: Vec::new(),
        })
        .collect();
    let chunk = net.walk_batch(&[keep.len().max(1), c, h, w])?;
    progress.set_length((keep.len().div_ceil(chunk) * s.iterations) as u64);
    for group in keep.chunks(chunk) {
        let x0 = gather(x, group);
        let e0 = gather(&eta, group);
        let t: Vec<usize> = group.iter().map(|&i| targets[i]).collect();
        let out = meaningful::optimise(net, &x0, &e0, &t, group, s, progress)?;
        for (k, &i) in group.iter().enumerate() {
            mask[i * plane..(i + 1) * plane]
                .copy_from_slice(&out.mask.data[k * plane..(k + 1) * plane]);
            let per = c * plane;
            perturbed[i * per..(i + 1) * per]
                .copy_from_slice(&out.perturbed.data[k * per..(k + 1) * per]);
            items[i] = MaskItem {
                explainable: true,
                ..out.items[k].clone()
            };
            items[i].p_input = p_input[i];
            items[i].p_baseline = p_baseline[i];
        }
    }
    let mask = Array::new(vec![n, 1, h, w], mask)?;
    let perturbed = Array::new(x.shape.clone(), perturbed)?;
    mask.check_finite()?;
    perturbed.check_finite()?;
    Ok(Masks {
        mask,
        perturbed,
        items,
    })
}

/// Items `idx` of a batch, in that order.
pub fn gather(x: &Array, idx: &[usize]) -> Array {
    let per = x.data.len() / x.batch().max(1);
    let mut shape = x.shape.clone();
    shape[0] = idx.len();
    let data = idx
        .iter()
        .flat_map(|&i| x.data[i * per..(i + 1) * per].iter().copied())
        .collect();
    Array { shape, data }
}

/// Each item's softmax probability of its target.
pub(crate) fn probabilities(net: &Net, x: &Array, targets: &[usize]) -> Result<Vec<f32>> {
    let f = net.forward(x, &[])?;
    let p = net.softmax(&f.logits)?;
    let k = p.shape[1];
    Ok(targets
        .iter()
        .enumerate()
        .map(|(i, &t)| p.data[i * k + t])
        .collect())
}
