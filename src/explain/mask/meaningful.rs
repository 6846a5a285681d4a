//! The 2017 loop on the device: per iteration one submission of up-sample, blend, jitter,
//! forward, score, backward, the blend's and the up-sampling's adjoints, the regulariser
//! gradients, Adam and the clamp to [0, 1]. Values per step go to history rows on the
//! device and are read once at the end.

use super::settings::{Game, MaskSettings, Score};
use super::{MaskItem, Masks};
use crate::array::Array;
use crate::data::rng::Rng;
use crate::error::Result;
use crate::gpu::{read_all, Recorder, Tensor};
use crate::graph::{Keep, Net};
use crate::ops::map::{
    adam_step, affine, axpy, clamp_in_place, combine3, keep_best, mix, mix_grad, store_row, Adam,
};
use crate::ops::objective::{objective, Objective, Targets};
use crate::ops::reduce::{reduce, tv, tv_grad, Reduction};
use crate::ops::resample::{bilinear, bilinear_adjoint, roll};
use crate::ops::ReluRule;

/// With jitter on, every this-many-th step (from the first) is not shifted; only those
/// steps can become the best iterate.
pub const UNSHIFTED_EVERY: usize = 4;

/// Per-step values kept on the device: [iterations, n] each.
struct History {
    area: Tensor,
    tv: Tensor,
    score: Tensor,
    prob: Tensor,
}

/// The jitter of step t: a shift (dy, dx) in [-j, j]² per item, drawn from the seed, the
/// step and the item's index in the whole batch, so it does not depend on the passes.
pub(crate) fn jitter_offsets(seed: u64, t: usize, ids: &[usize], j: usize) -> Vec<f32> {
    ids.iter()
        .flat_map(|&id| {
            let mut r = Rng::derive(seed ^ ((t as u64) << 24) ^ 0x6d61_736b, id as u64);
            [0, 1].map(|_| r.below(2 * j + 1) as f32 - j as f32)
        })
        .collect()
}

/// One pass's fixed data on the device: inputs, fillers, targets and the game's constants.
struct Problem<'a> {
    net: &'a Net,
    s: &'a MaskSettings,
    xt: Tensor,
    et: Tensor,
    tg: Targets,
    dims: [usize; 4],
    sign: f32,
    l1_grad: f32,
}

/// What one step records: the gradient of the whole objective with respect to the mask,
/// the score and the target's probability per item.
struct Step {
    grad: Tensor,
    score: Tensor,
    prob: Tensor,
}

impl<'a> Problem<'a> {
    fn new(
        net: &'a Net,
        x0: &Array,
        eta: &Array,
        targets: &[usize],
        s: &'a MaskSettings,
    ) -> Result<Self> {
        let ctx = net.ctx();
        let dims = crate::ops::dims4(&x0.shape, "mask input")?;
        let [_, c, h, w] = dims;
        let shapes = net.model().output_shapes(&[1, c, h, w])?;
        let classes = shapes.last().map_or(0, |o| o[1]);
        let cells = (s.mask_size * s.mask_size) as f32;
        let (sign, l1_grad) = match s.game {
            Game::Deletion => (1.0, -s.l1 / cells),
            Game::Preservation => (-1.0, s.l1 / cells),
        };
        Ok(Problem {
            net,
            s,
            xt: Tensor::upload(ctx, &x0.data, &x0.shape)?,
            et: Tensor::upload(ctx, &eta.data, &eta.shape)?,
            tg: Targets::classes(ctx, targets, &[classes])?,
            dims,
            sign,
            l1_grad,
        })
    }

    /// Records the objective's gradient at mask m [n, 1, side, side], Φ rolled by `offsets`.
    fn record(&self, rec: &mut Recorder, m: &Tensor, offsets: Option<&Tensor>) -> Result<Step> {
        let [_, _, h, w] = self.dims;
        let (net, s) = (self.net, self.s);
        let up = bilinear(rec, m, (h, w))?;
        let phi = mix(rec, &up, &self.xt, &self.et)?;
        let input = match offsets {
            Some(o) => roll(rec, &phi, o, false)?,
            None => phi,
        };
        let tape = net.record_forward_any(rec, &input, &Keep::Gradient(vec![]), None, "")?;
        let (seed, score) = objective(rec, &tape.logits, &self.tg, s.score.objective())?;
        let last = net.model().layers.len() - 1;
        let g = net.record_backward(rec, &tape, last, &seed, ReluRule::Gradient, &[])?;
        let gx = match offsets {
            Some(o) => roll(rec, &g.input, o, true)?,
            None => g.input,
        };
        let g_up = mix_grad(rec, &gx, &self.xt, &self.et)?;
        let g_m = bilinear_adjoint(rec, &g_up, (s.mask_size, s.mask_size))?;
        let grad = affine(rec, &g_m, self.sign, self.l1_grad)?;
        if s.tv > 0.0 {
            let g_tv = tv_grad(rec, m, s.tv_beta)?;
            axpy(rec, s.tv, &g_tv, &grad)?;
        }
        let prob = match s.score {
            Score::Prob => score.clone(),
            _ => objective(rec, &tape.logits, &self.tg, Objective::Prob)?.1,
        };
        Ok(Step { grad, score, prob })
    }

    /// The objective = a + b·mean(m) + c·TV + d·score: [a, b, c, d].
    fn loss_coefficients(&self) -> [f32; 4] {
        let s = self.s;
        match s.game {
            Game::Deletion => [s.l1, -s.l1, s.tv, 1.0],
            Game::Preservation => [0.0, s.l1, s.tv, -1.0],
        }
    }

    /// Each item's objective from its mask mean, TV and score.
    fn loss(&self, area: f32, tv: f32, score: f32) -> f32 {
        let [a, b, c, d] = self.loss_coefficients();
        a + b * area + c * tv + d * score
    }
}

/// The whole objective per item and its gradient with respect to the mask m [n, 1, S, S]
/// (no jitter), for checking the loop's gradient against finite differences.
pub fn objective_gradient(
    net: &Net,
    x0: &Array,
    eta: &Array,
    targets: &[usize],
    m: &Array,
    s: &MaskSettings,
) -> Result<(Vec<f32>, Array)> {
    let ctx = net.ctx();
    let p = Problem::new(net, x0, eta, targets, s)?;
    let n = p.dims[0];
    let side = s.mask_size;
    if m.shape != [n, 1, side, side] {
        return Err(crate::error::Error::Shape(format!(
            "mask {:?} is not [{n}, 1, {side}, {side}]",
            m.shape
        )));
    }
    let mt = Tensor::upload(ctx, &m.data, &m.shape)?;
    let mut rec = Recorder::new(ctx, "mask objective");
    let step = p.record(&mut rec, &mt, None)?;
    let area = reduce(&mut rec, &mt, n, Reduction::Mean)?;
    let tv_m = tv(&mut rec, &mt, s.tv_beta)?;
    rec.submit()?;
    let out = read_all(ctx, &[&step.grad, &area, &tv_m, &step.score])?;
    let loss = (0..n)
        .map(|i| p.loss(out[1][i], out[2][i], out[3][i]))
        .collect();
    Ok((loss, Array::new(m.shape.clone(), out[0].clone())?))
}

/// A running 2017 optimisation of n items: `step` records and submits one iteration;
/// `finish` reads the masks, Φ and the curves back. Drive it yourself for another stopping
/// rule, or let `meaningful_perturbation` run `iterations` steps.
pub struct MaskRun<'a> {
    p: Problem<'a>,
    ids: Vec<usize>,
    targets: Vec<usize>,
    m: Tensor,
    mom: Tensor,
    vel: Tensor,
    hist: History,
    adam: Adam,
    t: usize,
    /// The best iterate so far and its objective per item.
    best_m: Tensor,
    best_loss: Tensor,
}

impl<'a> MaskRun<'a> {
    /// Items x0 [n, C, H, W] with fillers eta and targets; `ids` are the items' indices in
    /// the whole batch (their jitter depends on them).
    pub fn new(
        net: &'a Net,
        x0: &Array,
        eta: &Array,
        targets: &[usize],
        ids: &[usize],
        s: &'a MaskSettings,
    ) -> Result<Self> {
        let ctx = net.ctx();
        let p = Problem::new(net, x0, eta, targets, s)?;
        let n = p.dims[0];
        if eta.shape != x0.shape || targets.len() != n || ids.len() != n {
            return Err(crate::error::Error::Shape(format!(
                "mask run: {n} items need a filler of their shape and {n} targets and ids"
            )));
        }
        let side = s.mask_size;
        let zeros = vec![0.0; n * side * side];
        let shape = [n, 1, side, side];
        let row = || Tensor::upload(ctx, &vec![0.0; s.iterations * n], &[s.iterations, n]);
        let start = vec![s.init; zeros.len()];
        Ok(MaskRun {
            m: Tensor::upload(ctx, &start, &shape)?,
            best_m: Tensor::upload(ctx, &start, &shape)?,
            best_loss: Tensor::upload(ctx, &vec![f32::MAX; n], &[n])?,
            mom: Tensor::upload(ctx, &zeros, &shape)?,
            vel: Tensor::upload(ctx, &zeros, &shape)?,
            hist: History {
                area: row()?,
                tv: row()?,
                score: row()?,
                prob: row()?,
            },
            adam: Adam {
                lr: s.lr,
                ..Default::default()
            },
            t: 0,
            ids: ids.to_vec(),
            targets: targets.to_vec(),
            p,
        })
    }

    /// Records and submits one iteration; nothing is read back.
    pub fn step(&mut self) -> Result<()> {
        let (p, s, t) = (&self.p, self.p.s, self.t);
        if t >= s.iterations {
            return Err(crate::error::Error::Other(format!(
                "the mask run has done its {} iterations",
                s.iterations
            )));
        }
        let ctx = p.net.ctx();
        let n = p.dims[0];
        let mut rec = Recorder::new(ctx, "mask step");
        // Every UNSHIFTED_EVERY-th step is not jittered, and only those steps can become the
        // best iterate: their score is that of the Φ `finish` reports, so a lucky shift
        // cannot select a mask.
        let unshifted = s.jitter == 0 || t % UNSHIFTED_EVERY == 0;
        let offsets = if unshifted {
            None
        } else {
            let o = jitter_offsets(s.seed, t, &self.ids, s.jitter);
            Some(Tensor::upload(ctx, &o, &[n, 2])?)
        };
        let step = p.record(&mut rec, &self.m, offsets.as_ref())?;
        let area = reduce(&mut rec, &self.m, n, Reduction::Mean)?;
        let tv_m = tv(&mut rec, &self.m, s.tv_beta)?;
        let h = &self.hist;
        for (value, row) in [
            (&area, &h.area),
            (&tv_m, &h.tv),
            (&step.score, &h.score),
            (&step.prob, &h.prob),
        ] {
            store_row(&mut rec, value, row, t)?;
        }
        if s.keep_best && unshifted {
            let loss = combine3(&mut rec, [&area, &tv_m, &step.score], p.loss_coefficients())?;
            keep_best(&mut rec, &self.m, &loss, &self.best_m, &self.best_loss)?;
        }
        adam_step(
            &mut rec,
            &self.adam,
            t as u32 + 1,
            &self.m,
            &step.grad,
            &self.mom,
            &self.vel,
        )?;
        clamp_in_place(&mut rec, &self.m, 0.0, 1.0)?;
        rec.submit()?;
        self.t += 1;
        Ok(())
    }

    /// The masks at input resolution, Φ (no jitter), the final probabilities and the
    /// curves of the iterations done.
    pub fn finish(self) -> Result<Masks> {
        let (p, steps) = (&self.p, self.t);
        let ctx = p.net.ctx();
        let [n, _, h, w] = p.dims;
        let mut rec = Recorder::new(ctx, "final masks");
        let m = if p.s.keep_best && steps > 0 {
            &self.best_m
        } else {
            &self.m
        };
        let up = bilinear(&mut rec, m, (h, w))?;
        let phi = mix(&mut rec, &up, &p.xt, &p.et)?;
        let tape = p
            .net
            .record_forward_any(&mut rec, &phi, &Keep::Nothing, None, "")?;
        let (_, prob) = objective(&mut rec, &tape.logits, &p.tg, Objective::Prob)?;
        let kept = reduce(&mut rec, &up, n, Reduction::Mean)?;
        rec.submit()?;
        let hst = &self.hist;
        let out = read_all(
            ctx,
            &[
                &up, &phi, &prob, &kept, &hst.area, &hst.tv, &hst.score, &hst.prob,
            ],
        )?;
        let col = |v: &[f32], i: usize| -> Vec<f32> { (0..steps).map(|t| v[t * n + i]).collect() };
        let items = (0..n)
            .map(|i| {
                let (area, tvv, score) = (col(&out[4], i), col(&out[5], i), col(&out[6], i));
                MaskItem {
                    target: self.targets[i],
                    p_input: f32::NAN,
                    p_baseline: f32::NAN,
                    p_perturbed: out[2][i],
                    kept: out[3][i],
                    area_target: None,
                    area: None,
                    area_above_half: None,
                    explainable: true,
                    loss: (0..steps)
                        .map(|t| p.loss(area[t], tvv[t], score[t]))
                        .collect(),
                    prob: col(&out[7], i),
                }
            })
            .collect();
        Ok(Masks {
            mask: Array::new(vec![n, 1, h, w], out[0].clone())?,
            perturbed: Array::new(p.dims.to_vec(), out[1].clone())?,
            items,
        })
    }
}

/// Optimises one pass of n items (all explainable) and returns their masks.
pub(crate) fn optimise(
    net: &Net,
    x0: &Array,
    eta: &Array,
    targets: &[usize],
    ids: &[usize],
    s: &MaskSettings,
    progress: &indicatif::ProgressBar,
) -> Result<Masks> {
    let mut run = MaskRun::new(net, x0, eta, targets, ids, s)?;
    for _ in 0..s.iterations {
        run.step()?;
        progress.inc(1);
    }
    run.finish()
}
