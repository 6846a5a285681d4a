//! The shared engine: forward with a tape, seed one-hot(target), walk back; in chunks
//! that fit the device, for any batch size.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::gpu::{read_all, Recorder, Tensor};
use crate::graph::stream::passes;
use crate::graph::{Bands, Keep, Net, Tape};
use crate::ops::copies::{
    lerp_copies, lerp_pool_copies, noisy_copies, weighted_pool_grad_sum, weighted_sum,
};
use crate::ops::objective::{
    argmax_objective, argmax_times_logit_objective, objective, Objective, Targets,
};
use crate::ops::ReluRule;

pub struct GradRun {
    /// d logit_target / d input, shaped like the input.
    pub grad: Array,
    pub logits: Array,
    pub targets: Vec<usize>,
    /// The requested layer's output and its gradient.
    pub layer: Option<(Array, Array)>,
}

/// What `run_gradients` gathers pass by pass.
#[derive(Default)]
struct Gathered {
    grads: Vec<Array>,
    logits: Vec<Array>,
    acts: Vec<Array>,
    lgrads: Vec<Array>,
    targets: Vec<usize>,
}

impl Gathered {
    fn finish(self, layer: bool) -> Result<GradRun> {
        let layer = match layer {
            true => Some((Array::concat(&self.acts)?, Array::concat(&self.lgrads)?)),
            false => None,
        };
        Ok(GradRun {
            grad: Array::concat(&self.grads)?,
            logits: Array::concat(&self.logits)?,
            targets: self.targets,
            layer,
        })
    }
}

/// Gradients of each item's target logit (argmax where `targets` is None).
pub fn run_gradients(
    net: &Net,
    x: &Array,
    targets: Option<&[usize]>,
    relu: ReluRule,
    layer: Option<usize>,
    progress: &indicatif::ProgressBar,
) -> Result<GradRun> {
    x.check_finite()?;
    if targets.is_some_and(|t| t.len() != x.batch()) {
        return Err(Error::input(
            "--target",
            "one target per input item is needed",
        ));
    }
    if let Some(b) = net.bands(&x.shape)? {
        return banded_gradients(net, x, targets, relu, layer, &b, progress);
    }
    let chunk = net.tape_batch(&x.shape)?;
    let ctx = net.ctx();
    let mut got = Gathered::default();
    let last = net.model().layers.len() - 1;
    // forward, seed (the given targets, or each item's argmax found on the device) and
    // backward in one submission per pass; one read per pass
    passes(x.batch(), chunk, progress, |r| {
        let part = x.slice_batch(r.start, r.end);
        let xt = Tensor::upload(ctx, &part.data, &part.shape)?;
        let mut rec = Recorder::new(ctx, "gradients");
        let tape = net.record_forward(
            &mut rec,
            &xt,
            &Keep::Gradient(layer.into_iter().collect()),
            None,
        )?;
        let (seed, value) = match targets {
            Some(t) => {
                let t = Targets::classes(ctx, &t[r.clone()], &tape.logits.shape[1..])?;
                objective(&mut rec, &tape.logits, &t, Objective::Logit)?
            }
            None => argmax_objective(&mut rec, &tape.logits)?,
        };
        let want: Vec<usize> = layer.into_iter().collect();
        let g = net.record_backward(&mut rec, &tape, last, &seed, relu, &want)?;
        rec.submit()?;
        let mut reads = vec![&g.input, &tape.logits, &value];
        let kept = match layer {
            Some(li) => Some((tape.output(li)?, &g.layers[0].1)),
            None => None,
        };
        if let Some((a, d)) = kept {
            reads.extend([a, d]);
        }
        let mut values = read_all(ctx, &reads)?.into_iter();
        let mut next =
            |t: &Tensor| Array::new(t.shape.clone(), values.next().expect("one read per tensor"));
        got.grads.push(next(&g.input)?);
        got.logits.push(next(&tape.logits)?);
        let v = next(&value)?;
        got.targets.extend(match targets {
            Some(t) => t[r.clone()].to_vec(),
            None => v.data.iter().map(|c| *c as usize).collect(),
        });
        if let Some((a, d)) = kept {
            got.acts.push(next(a)?);
            got.lgrads.push(next(d)?);
        }
        Ok(())
    })?;
    got.finish(layer.is_some())
}

/// `run_gradients` for items too large for the device, one at a time: the first layers
/// in row bands (`Net::bands`), the rest as usual.
fn banded_gradients(
    net: &Net,
    x: &Array,
    targets: Option<&[usize]>,
    relu: ReluRule,
    layer: Option<usize>,
    b: &Bands,
    progress: &indicatif::ProgressBar,
) -> Result<GradRun> {
    let want: Vec<usize> = layer.into_iter().collect();
    net.check_after_bands(b, &x.shape, &want, "--layer")?;
    let ctx = net.ctx();
    let last = net.model().layers.len() - 1;
    let mut got = Gathered::default();
    passes(x.batch(), 1, progress, |r| {
        let item = x.slice_batch(r.start, r.end);
        let mut rec = Recorder::new(ctx, "gradients after bands");
        let keep = Keep::Gradient(want.clone());
        let tape = net.record_forward_host(&mut rec, &item, Some(b), &keep)?;
        let (s, arg) = seed(&mut rec, &tape, targets.map(|t| &t[r.clone()]), false)?;
        let g = net.record_backward_range(&mut rec, &tape, last, b.last + 1, &s, relu, &want)?;
        rec.submit()?;
        let read = |t: &Tensor| Array::new(t.shape.clone(), t.read(ctx)?);
        got.logits.push(read(&tape.logits)?);
        got.targets.extend(match (targets, arg) {
            (Some(t), _) => t[r.clone()].to_vec(),
            (None, Some(a)) => a.read(ctx)?.iter().map(|c| *c as usize).collect(),
            (None, None) => return Err(Error::Other("the seed found no top class".into())),
        });
        if let Some(li) = layer {
            got.acts.push(read(tape.output(li)?)?);
            got.lgrads.push(read(&g.layers[0].1)?);
        }
        got.grads
            .push(net.banded_input_gradient(&item, b, &g.input, relu)?);
        Ok(())
    })?;
    got.finish(layer.is_some())
}

/// Records the seed of a backward walk from a tape's logits into `rec`: one-hot(target),
/// times the target logit when `times_logit`, the target each item's given one or, where
/// `targets` is None, its top class found on the device. Returns the seed and, for top
/// classes, their indices per item (as f32, to read with the walk's results): nothing is
/// read between the forward pass and the walk.
pub(crate) fn seed(
    rec: &mut Recorder,
    tape: &Tape,
    targets: Option<&[usize]>,
    times_logit: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let z = &tape.logits;
    Ok(match targets {
        Some(t) => {
            let t = Targets::classes(rec.ctx(), t, &z.shape[1..])?;
            let kind = if times_logit {
                Objective::LogitTimesOnehot
            } else {
                Objective::Logit
            };
            (objective(rec, z, &t, kind)?.0, None)
        }
        None if times_logit => {
            let (s, arg) = argmax_times_logit_objective(rec, z)?;
            (s, Some(arg))
        }
        None => {
            let (s, arg) = argmax_objective(rec, z)?;
            (s, Some(arg))
        }
    })
}

/// The copies of one item [1, C, H, W] whose gradients `copies_gradient` sums.
pub(crate) enum Copies<'a> {
    /// b + α_k (x − b) for α [count] (integrated gradients)
    Lerp {
        x: &'a Tensor,
        b: &'a Tensor,
        alphas: &'a Tensor,
    },
    /// x + σ N(0, 1), seeded (SmoothGrad)
    Noisy {
        x: &'a Tensor,
        sigma: f32,
        seed: u64,
    },
}

/// Σ_k w[k] · ∇ logit_target(copy k) over `count` copies, streamed through forward and
/// backward in chunks that fit the device and summed there: one submission per chunk,
/// nothing read back. Where the first layer is a conv one
/// (`Net::linear_stem`), the gradients are summed at its output and carried through it
/// once (Σ w_k W^T g_k = W^T Σ w_k g_k), and for interpolated copies its output is
/// interpolated too (W(b + α(x − b)) = Wb + α(Wx − Wb)), with the ReLU after it: it runs
/// on x and b only. Returns the sum, one item on the device.
pub(crate) fn copies_gradient(
    net: &Net,
    item_shape: &[usize],
    count: usize,
    target: usize,
    weights: &Tensor,
    progress: &indicatif::ProgressBar,
    copies: Copies,
) -> Result<Tensor> {
    if let Some(b) = net.bands(item_shape)? {
        let sum = banded_copies_gradient(net, count, target, weights, progress, copies, &b)?;
        return Tensor::upload(net.ctx(), &sum, item_shape);
    }
    let mut shape = item_shape.to_vec();
    shape[0] = count.max(1);
    let chunk = net.tape_batch(&shape)?;
    let ctx = net.ctx();
    let stem = net.linear_stem();
    let sum_shape = match stem {
        Some(s) => net.model().output_shapes(item_shape)?.swap_remove(s),
        None => item_shape.to_vec(),
    };
    let acc = Tensor::upload(ctx, &vec![0.0; sum_shape.iter().product()], &sum_shape)?;
    let last = net.model().layers.len() - 1;
    let down_to = stem.map_or(0, |s| s + 1);
    // interpolated copies over a linear stem: its outputs of x and b, the layer the
    // forward starts after (the stem, or the ReLU that alone reads it) and whether the
    // copies take that ReLU
    let lerped = match (&copies, stem) {
        (Copies::Lerp { x, b, .. }, Some(s)) => {
            let mut rec = Recorder::new(ctx, "copies' first layer");
            let zx = net.record_linear(&mut rec, s, x, false)?;
            let zb = net.record_linear(&mut rec, s, b, false)?;
            rec.submit()?;
            let relu = net.relu_after(s);
            Some((zx, zb, relu.unwrap_or(s), relu.is_some()))
        }
        _ => None,
    };
    // a max-pool after the stem's ReLU: its backward runs with the weighted sum, and for
    // interpolated copies with their making too, so the copies' full-size stem gradients
    // (and interpolated outputs) are never stored
    let pooled = stem
        .and_then(|s| net.relu_after(s))
        .and_then(|j| net.pool_after_relu(j, &sum_shape));
    passes(count, chunk, progress, |r| {
        let (first, m) = (r.start, r.len());
        let mut rec = Recorder::new(ctx, "copies gradient");
        let keep = Keep::Gradient(vec![]);
        let mut pool_pass = None;
        let tape = match (&copies, &lerped, pooled) {
            (Copies::Lerp { alphas, .. }, Some((zx, zb, _, _)), Some((at, pool))) => {
                let (y, arg) = lerp_pool_copies(&mut rec, zx, zb, alphas, pool, (first, m))?;
                shape[0] = m;
                let tape = net.record_forward_after(&mut rec, &shape, at, &y, &keep, None)?;
                pool_pass = Some((at, y, arg));
                tape
            }
            (Copies::Lerp { alphas, .. }, Some((zx, zb, after, relu)), None) => {
                let y = lerp_copies(&mut rec, zx, zb, alphas, first, m, *relu)?;
                shape[0] = m;
                net.record_forward_after(&mut rec, &shape, *after, &y, &keep, None)?
            }
            (Copies::Lerp { x, b, alphas }, None, _) => {
                let c = lerp_copies(&mut rec, x, b, alphas, first, m, false)?;
                net.record_forward(&mut rec, &c, &keep, None)?
            }
            (Copies::Noisy { x, sigma, seed }, _, _) => {
                let c = noisy_copies(&mut rec, x, *sigma, *seed, first, m)?;
                let tape = net.record_forward(&mut rec, &c, &keep, None)?;
                if let Some((at, _)) = pooled {
                    let kept = (tape.outputs[at].clone(), tape.argmax[at].clone());
                    if let (Some(y), Some(arg)) = kept {
                        pool_pass = Some((at, y, arg));
                    }
                }
                tape
            }
        };
        let targets = Targets::classes(ctx, &vec![target; m], &tape.logits.shape[1..])?;
        let (seed, _) = objective(&mut rec, &tape.logits, &targets, Objective::Logit)?;
        let down_to = pool_pass.as_ref().map_or(down_to, |(at, _, _)| at + 1);
        let g = net.record_backward_range(
            &mut rec,
            &tape,
            last,
            down_to,
            &seed,
            ReluRule::Gradient,
            &[],
        )?;
        match &pool_pass {
            Some((_, y, arg)) => {
                weighted_pool_grad_sum(&mut rec, &g.input, arg, y, weights, first, &acc)?
            }
            None => weighted_sum(&mut rec, &g.input, weights, first, &acc)?,
        }
        rec.submit()
    })?;
    let Some(s) = stem else {
        return Ok(acc);
    };
    let mut rec = Recorder::new(ctx, "copies gradient");
    let g = net.record_input_gradient(&mut rec, s, &acc, item_shape)?;
    rec.submit()?;
    Ok(g)
}

/// `copies_gradient` for an item too large for the device: each copy is made on the
/// device, read back and run with its first layers in row bands (`Net::bands`); the
/// weighted sum is taken on the host, and returned.
fn banded_copies_gradient(
    net: &Net,
    count: usize,
    target: usize,
    weights: &Tensor,
    progress: &indicatif::ProgressBar,
    copies: Copies,
    b: &Bands,
) -> Result<Vec<f32>> {
    let ctx = net.ctx();
    let hidden = indicatif::ProgressBar::hidden();
    let mut sum = Vec::new();
    for (k, w) in weights.read(ctx)?.into_iter().enumerate().take(count) {
        let mut rec = Recorder::new(ctx, "copy");
        let c = match &copies {
            Copies::Lerp { x, b, alphas } => lerp_copies(&mut rec, x, b, alphas, k, 1, false)?,
            Copies::Noisy { x, sigma, seed } => noisy_copies(&mut rec, x, *sigma, *seed, k, 1)?,
        };
        rec.submit()?;
        let item = Array::new(c.shape.clone(), c.read(ctx)?)?;
        let one = Some(&[target][..]);
        let g = banded_gradients(net, &item, one, ReluRule::Gradient, None, b, &hidden)?.grad;
        sum.resize(g.data.len(), 0.0);
        sum.iter_mut().zip(&g.data).for_each(|(s, g)| *s += w * g);
        progress.inc(1);
    }
    Ok(sum)
}
