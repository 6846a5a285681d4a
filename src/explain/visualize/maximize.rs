//! Activation maximisation on the device: each step (jitter, forward to the objective's
//! layer, objective, backward, update, pixel range, blur, clipping) is one submission;
//! nothing is read back until the end. Objectives of one kind at one layer run as a batch.

use crate::array::Array;
use crate::data::rng::Rng;
use crate::error::{Error, Result};
use crate::explain::mask::meaningful::jitter_offsets;
use crate::gpu::{read_all, Recorder, Tensor};
use crate::graph::{Keep, Net};
use crate::ops::fourier::{
    color_matrix, color_sigmoid, color_sigmoid_adjoint, spectrum_image, spectrum_image_adjoint,
    spectrum_scale,
};
use crate::ops::map::{adam_step, affine, axpy, store_row, Adam};
use crate::ops::objective::{objective, Objective, Targets};
use crate::ops::resample::{blur, blur_radius, roll};
use crate::ops::visualize::{channel_affine, clamp_channels, clip_small, pixel_bounds, Clip};
use crate::ops::{self, ReluRule};

use super::transforms::{apply, Draw};
use super::{Goal, MaximizeSettings, Optimizer, Param, Transforms};

/// Images that maximise their objectives, with how they got there.
pub struct Maximized {
    pub goals: Vec<Goal>,
    /// [N, C, H, W] in the model's input space (normalised); every pixel maps into [0, 1].
    pub images: Array,
    /// Each objective's value at its final image.
    pub values: Vec<f32>,
    /// [steps, N]: the objective's value at each step's (jittered) input.
    pub history: Array,
    /// [N, classes]: the model's softmax at each final image.
    pub probs: Array,
}

/// Maximises each goal from its own start image; `progress` advances one per item-step.
pub fn maximize(
    net: &Net,
    goals: &[Goal],
    s: &MaximizeSettings,
    progress: &indicatif::ProgressBar,
) -> Result<Maximized> {
    s.check()?;
    if goals.is_empty() {
        return Err(Error::input("--objective", "no objective given"));
    }
    let model = net.model();
    let c = model.in_channels;
    let (h, w) = s.size;
    let one = [1, c, h, w];
    let classes = model.num_classes();
    let n = goals.len();
    let mut images = vec![0f32; n * c * h * w];
    let mut values = vec![0f32; n];
    let mut history = vec![0f32; s.steps * n];
    let mut probs = vec![0f32; n * classes];
    // groups: one objective kind at one layer
    let mut groups: Vec<(Objective, usize, Vec<usize>)> = Vec::new();
    for (i, g) in goals.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(k, l, _)| *k == g.kind && *l == g.layer)
        {
            Some(grp) => grp.2.push(i),
            None => groups.push((g.kind, g.layer, vec![i])),
        }
    }
    let chunk = net.walk_batch(&one)?;
    progress.set_length((n * s.steps) as u64);
    for (_, _, ids) in groups {
        for part in ids.chunks(chunk) {
            let r = run_pass(net, goals, part, s, progress)?;
            let per = c * h * w;
            for (j, &id) in part.iter().enumerate() {
                images[id * per..(id + 1) * per].copy_from_slice(&r.images[j * per..(j + 1) * per]);
                values[id] = r.values[j];
                probs[id * classes..(id + 1) * classes]
                    .copy_from_slice(&r.probs[j * classes..(j + 1) * classes]);
                for t in 0..s.steps {
                    history[t * n + id] = r.history[t * part.len() + j];
                }
            }
        }
    }
    let images = Array::new(vec![n, c, h, w], images)?;
    images.check_finite().map_err(|_| {
        Error::Other("maximisation diverged (non-finite pixels); lower --lr".into())
    })?;
    Ok(Maximized {
        goals: goals.to_vec(),
        images,
        values,
        history: Array::new(vec![s.steps, n], history)?,
        probs: Array::new(vec![n, classes], probs)?,
    })
}

struct Pass {
    images: Vec<f32>,
    values: Vec<f32>,
    history: Vec<f32>,
    probs: Vec<f32>,
}

/// Each item's target for a layer output of shape `shape` ([N, ...]); unit positions
/// given for `base` ([N, C, H, W]) scale with the output when transforms resize it.
fn targets(
    net: &Net,
    goals: &[Goal],
    ids: &[usize],
    kind: Objective,
    shape: &[usize],
    base: &[usize],
) -> Result<Targets> {
    let ctx = net.ctx();
    if kind == Objective::Unit {
        let at = |v: usize, axis: usize| match (shape.get(axis), base.get(axis)) {
            (Some(&now), Some(&was)) if was > 0 => (v * now / was).min(now.saturating_sub(1)),
            _ => v,
        };
        let u: Vec<(usize, usize, usize)> = ids
            .iter()
            .map(|&i| {
                let (y, x) = goals[i].at.unwrap_or((0, 0));
                (goals[i].target, at(y, 2), at(x, 3))
            })
            .collect();
        Targets::units(ctx, &u, &shape[1..])
    } else {
        let t: Vec<usize> = ids.iter().map(|&i| goals[i].target).collect();
        Targets::classes(ctx, &t, &shape[1..])
    }
}

fn run_pass(
    net: &Net,
    goals: &[Goal],
    ids: &[usize],
    s: &MaximizeSettings,
    progress: &indicatif::ProgressBar,
) -> Result<Pass> {
    let mut run = MaximizeRun::with_ids(net, goals, ids, s)?;
    for _ in 0..s.steps {
        run.step()?;
        progress.inc(ids.len() as u64);
    }
    run.finish()
}

/// One batch of objectives of one kind at one layer, stepped on the device: each `step`
/// records and submits one iteration and reads nothing back.
pub struct MaximizeRun<'a> {
    net: &'a Net,
    s: MaximizeSettings,
    ids: Vec<usize>,
    goals: Vec<Goal>,
    kind: Objective,
    layer: usize,
    tg: Targets,
    out_shape: Vec<usize>,
    bounds: Tensor,
    /// The parameters: the image in input space (pixel), or the half spectra (fft).
    x: Tensor,
    fourier: Option<Fourier>,
    /// Per channel (a, b) of: pixels to input (1/std, −mean/std), input gradients to
    /// pixel gradients (1/std, 0), pixel gradients to input-space ones (std, 0).
    to_input: Tensor,
    grad_to_pixel: Tensor,
    grad_to_input: Tensor,
    m: Tensor,
    v: Tensor,
    history: Tensor,
    radius: usize,
    t: usize,
}

impl<'a> MaximizeRun<'a> {
    /// A run over `goals`, which must share one objective kind and layer (as
    /// `maximize` groups them); history rows beyond `s.steps` are not kept.
    pub fn new(net: &'a Net, goals: &[Goal], s: &MaximizeSettings) -> Result<MaximizeRun<'a>> {
        let ids: Vec<usize> = (0..goals.len()).collect();
        Self::with_ids(net, goals, &ids, s)
    }

    fn with_ids(
        net: &'a Net,
        goals: &[Goal],
        ids: &[usize],
        s: &MaximizeSettings,
    ) -> Result<MaximizeRun<'a>> {
        s.check()?;
        let first = goals
            .get(ids[0])
            .ok_or_else(|| Error::input("--objective", "no objective given"))?;
        let (kind, layer) = (first.kind, first.layer);
        if ids
            .iter()
            .any(|&i| goals[i].kind != kind || goals[i].layer != layer)
        {
            return Err(Error::Shape(
                "a maximisation run needs one objective kind at one layer".into(),
            ));
        }
        let ctx = net.ctx();
        let model = net.model();
        let (b, c, (h, w)) = (ids.len(), model.in_channels, s.size);
        let shape = [b, c, h, w];
        let out_shape = model.output_shapes(&shape)?[layer].clone();
        let tg = targets(net, goals, ids, kind, &out_shape, &out_shape)?;
        let bounds = Tensor::upload(
            ctx,
            &pixel_bounds(&model.meta.mean, &model.meta.std)?,
            &[c, 2],
        )?;
        let (mean, std) = (&model.meta.mean, &model.meta.std);
        let pairs = |f: &dyn Fn(f32, f32) -> [f32; 2]| -> Result<Tensor> {
            let v: Vec<f32> = (0..c).flat_map(|k| f(mean[k], std[k])).collect();
            Tensor::upload(ctx, &v, &[c, 2])
        };
        let to_input = pairs(&|m, s| [1.0 / s, -m / s])?;
        let grad_to_pixel = pairs(&|_, s| [1.0 / s, 0.0])?;
        let grad_to_input = pairs(&|_, s| [s, 0.0])?;
        if let Param::Fourier {
            decorrelate: true, ..
        } = s.param
        {
            if c != 3 {
                return Err(Error::input(
                    "--param",
                    format!("decorrelated colour needs 3 input channels; the model has {c}"),
                ));
            }
        }
        // the start: the mean image, plus seeded noise per item
        let per = c * h * w;
        let mut x0 = vec![0f32; b * per];
        if s.init_noise > 0.0 {
            for (j, &id) in ids.iter().enumerate() {
                let mut r = Rng::derive(s.seed ^ 0x7669_7a00, id as u64);
                for v in &mut x0[j * per..(j + 1) * per] {
                    let (u1, u2) = (r.unit().max(1e-12), r.unit());
                    *v = s.init_noise
                        * ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
                }
            }
        }
        let (x, fourier) = match s.param {
            Param::Pixel => (Tensor::upload(ctx, &x0, &shape)?, None),
            Param::Fourier {
                decay,
                sd,
                decorrelate,
            } => {
                let f = Fourier::new(net, (h, w), decay, decorrelate)?;
                let per = c * h * (w / 2 + 1) * 2;
                let mut p0 = vec![0f32; b * per];
                for (j, &id) in ids.iter().enumerate() {
                    let mut r = Rng::derive(s.seed ^ 0x6666_7400, id as u64);
                    for v in &mut p0[j * per..(j + 1) * per] {
                        let (u1, u2) = (r.unit().max(1e-12), r.unit());
                        *v = sd
                            * ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
                    }
                }
                (Tensor::upload(ctx, &p0, &[b, c, h, w / 2 + 1, 2])?, Some(f))
            }
        };
        let zeros = vec![0f32; x.len()];
        let (m, v) = (
            Tensor::upload(ctx, &zeros, &x.shape)?,
            Tensor::upload(ctx, &zeros, &x.shape)?,
        );
        let history = Tensor::empty(ctx, &[s.steps, b], "objective history")?;
        if fourier.is_none() {
            let mut rec = Recorder::new(ctx, "start");
            clamp_channels(&mut rec, &x, &bounds)?;
            rec.submit()?;
        }
        Ok(MaximizeRun {
            net,
            s: s.clone(),
            ids: ids.to_vec(),
            goals: goals.to_vec(),
            kind,
            layer,
            tg,
            out_shape,
            bounds,
            x,
            fourier,
            to_input,
            grad_to_pixel,
            grad_to_input,
            m,
            v,
            history,
            radius: blur_radius(s.blur_sigma),
            t: 0,
        })
    }

    /// Records and submits one step.
    pub fn step(&mut self) -> Result<()> {
        let (net, s) = (self.net, &self.s);
        let ctx = net.ctx();
        let b = self.ids.len();
        self.t += 1;
        let t = self.t;
        let mut rec = Recorder::new(ctx, "maximize step");
        let draw = (s.transforms == Transforms::Standard)
            .then(|| Draw::sample(&mut Rng::derive(s.seed ^ 0x6c75_6369, t as u64)));
        let plain = self.fourier.is_none() && draw.is_none();
        let offsets = match s.jitter {
            0 => None,
            j => Some(Tensor::upload(
                ctx,
                &jitter_offsets(s.seed, t, &self.ids, j),
                &[b, 2],
            )?),
        };
        // the model's input: the image jittered, or the pixels transformed and normalised
        let (input, pix, applied) = if plain {
            let input = match &offsets {
                Some(o) => roll(&mut rec, &self.x, o, false)?,
                None => self.x.clone(),
            };
            (input, None, None)
        } else {
            let pix = self.pixels(&mut rec)?;
            let applied = match &draw {
                Some(d) => Some(apply(&mut rec, &pix, d)?),
                None => None,
            };
            let shown = applied.as_ref().map_or(&pix, |a| &a.output);
            (
                channel_affine(&mut rec, shown, &self.to_input)?,
                Some(pix),
                applied,
            )
        };
        let keep = Keep::Gradient(vec![self.layer]);
        let tape =
            net.record_forward_any(&mut rec, &input, &keep, Some(self.layer), "--objective")?;
        let fresh;
        let tg = if tape.logits.shape == self.out_shape {
            &self.tg
        } else {
            fresh = targets(
                net,
                &self.goals,
                &self.ids,
                self.kind,
                &tape.logits.shape,
                &self.out_shape,
            )?;
            &fresh
        };
        let (seed, value) = objective(&mut rec, &tape.logits, tg, self.kind)?;
        let g = net.record_backward(&mut rec, &tape, self.layer, &seed, ReluRule::Gradient, &[])?;
        let gx = if plain {
            match &offsets {
                Some(o) => roll(&mut rec, &g.input, o, true)?,
                None => g.input,
            }
        } else {
            let gp = channel_affine(&mut rec, &g.input, &self.grad_to_pixel)?;
            let gp = match &applied {
                Some(a) => a.adjoint(&mut rec, &gp)?,
                None => gp,
            };
            match (&self.fourier, &pix) {
                (Some(f), Some(pix)) => f.adjoint(&mut rec, &gp, pix)?,
                _ => channel_affine(&mut rec, &gp, &self.grad_to_input)?,
            }
        };
        if t <= s.steps {
            store_row(&mut rec, &value, &self.history, t - 1)?;
        }
        match s.optimizer {
            Optimizer::Adam { lr } => {
                let cfg = Adam {
                    lr,
                    maximize: true,
                    weight_decay: 2.0 * s.l2,
                    ..Default::default()
                };
                adam_step(&mut rec, &cfg, t as u32, &self.x, &gx, &self.m, &self.v)?;
            }
            Optimizer::Sgd { lr } => {
                axpy(&mut rec, lr, &gx, &self.x)?;
                if s.l2 > 0.0 {
                    self.x = affine(&mut rec, &self.x, 1.0 - 2.0 * lr * s.l2, 0.0)?;
                }
            }
        }
        if self.fourier.is_none() {
            clamp_channels(&mut rec, &self.x, &self.bounds)?;
        }
        if s.blur_every > 0 && t.is_multiple_of(s.blur_every) {
            self.x = blur(&mut rec, &self.x, s.blur_sigma, self.radius)?;
        }
        if s.clip_norm_pct > 0.0 {
            clip_small(&mut rec, &self.x, Clip::Norm, None, s.clip_norm_pct)?;
        }
        if s.clip_contrib_pct > 0.0 {
            clip_small(
                &mut rec,
                &self.x,
                Clip::Contribution,
                Some(&gx),
                s.clip_contrib_pct,
            )?;
        }
        rec.submit()
    }

    /// The images in pixel space ([0, 1]) before any transform.
    fn pixels(&self, rec: &mut Recorder) -> Result<Tensor> {
        match &self.fourier {
            Some(f) => f.pixels(rec, &self.x),
            None => {
                let (mean, std) = (&self.net.model().meta.mean, &self.net.model().meta.std);
                let v: Vec<f32> = mean.iter().zip(std).flat_map(|(m, s)| [*s, *m]).collect();
                let to_pixel = Tensor::upload(rec.ctx(), &v, &[v.len() / 2, 2])?;
                channel_affine(rec, &self.x, &to_pixel)
            }
        }
    }

    /// The final images, unjittered, with their objective values and class probabilities.
    fn finish(self) -> Result<Pass> {
        let ctx = self.net.ctx();
        let mut rec = Recorder::new(ctx, "maximize result");
        let image = match &self.fourier {
            Some(_) => {
                let pix = self.pixels(&mut rec)?;
                channel_affine(&mut rec, &pix, &self.to_input)?
            }
            None => self.x.clone(),
        };
        let tape = self.net.record_forward_any(
            &mut rec,
            &image,
            &Keep::Layers(vec![self.layer]),
            None,
            "--objective",
        )?;
        let z = tape.output(self.layer)?;
        let (_, value) = objective(&mut rec, z, &self.tg, self.kind)?;
        let p = ops::softmax(&mut rec, &tape.logits)?;
        rec.submit()?;
        let mut out = read_all(ctx, &[&image, &value, &self.history, &p])?.into_iter();
        let mut next = || out.next().expect("four tensors read");
        Ok(Pass {
            images: next(),
            values: next(),
            history: next(),
            probs: next(),
        })
    }
}

/// Lucid's Fourier-space image: spectrum scale and colour matrix on the device.
struct Fourier {
    hw: (usize, usize),
    scale: Tensor,
    color: Tensor,
}

impl Fourier {
    fn new(net: &Net, hw: (usize, usize), decay: f32, decorrelate: bool) -> Result<Fourier> {
        let ctx = net.ctx();
        let m = if decorrelate {
            color_matrix()
        } else {
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        };
        Ok(Fourier {
            hw,
            scale: Tensor::upload(
                ctx,
                &spectrum_scale(hw.0, hw.1, decay),
                &[hw.0, hw.1 / 2 + 1],
            )?,
            color: Tensor::upload(ctx, &m, &[3, 3])?,
        })
    }

    /// Pixels in [0, 1] from the half spectra p.
    fn pixels(&self, rec: &mut Recorder, p: &Tensor) -> Result<Tensor> {
        let v = spectrum_image(rec, p, &self.scale, self.hw)?;
        color_sigmoid(rec, &v, &self.color)
    }

    /// The gradient at the spectra from the gradient g at the pixels `pix`.
    fn adjoint(&self, rec: &mut Recorder, g: &Tensor, pix: &Tensor) -> Result<Tensor> {
        let gv = color_sigmoid_adjoint(rec, g, pix, &self.color)?;
        spectrum_image_adjoint(rec, &gv, &self.scale)
    }
}
