//! The shared engine: forward with a tape, seed one-hot(target), walk back; in chunks
//! that fit the device, for any batch size.

use crate::array::Array;
use crate::error::{Error, Result};
use crate::gpu::Tensor;
use crate::graph::{Keep, Net};
use crate::ops::ReluRule;

use super::argmax_rows;

pub struct GradRun {
    /// d logit_target / d input, shaped like the input.
    pub grad: Array,
    pub logits: Array,
    pub targets: Vec<usize>,
    /// The requested layer's output and its gradient.
    pub layer: Option<(Array, Array)>,
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
    if let Some(i) = x.first_non_finite() {
        return Err(Error::input("tensor", format!("value {} at flat index {i} is not finite", x.data[i])));
    }
    if targets.is_some_and(|t| t.len() != x.batch()) {
        return Err(Error::input("--target", "one target per input item is needed"));
    }
    let chunk = net.tape_batch(&x.shape)?;
    let ctx = net.ctx();
    let (mut grads, mut logits, mut acts, mut lgrads, mut all_t) = (vec![], vec![], vec![], vec![], vec![]);
    let mut start = 0;
    while start < x.batch() {
        let end = (start + chunk).min(x.batch());
        let part = x.slice_batch(start, end);
        let xt = Tensor::upload(ctx, &part.data, &part.shape)?;
        let tape = net.forward_gpu(&xt, &Keep::All)?;
        let k = tape.logits.shape[1];
        // with given targets the backward pass is encoded without waiting for the logits
        let (t, lg) = match targets {
            Some(t) => (t[start..end].to_vec(), None),
            None => {
                let lg = Array::new(tape.logits.shape.clone(), tape.logits.read(ctx)?)?;
                (argmax_rows(&lg), Some(lg))
            }
        };
        let mut seed = vec![0f32; (end - start) * k];
        for (i, &c) in t.iter().enumerate() {
            if c >= k {
                return Err(Error::input("--target", format!("class {c} does not exist; the model has {k} classes")));
            }
            seed[i * k + c] = 1.0;
        }
        let seed = Tensor::upload(ctx, &seed, &tape.logits.shape)?;
        let want: Vec<usize> = layer.into_iter().collect();
        let g = net.backward_gpu(&tape, &seed, relu, &want)?;
        grads.push(Array::new(g.input.shape.clone(), g.input.read(ctx)?)?);
        if let Some(li) = layer {
            let a = tape.output(li)?;
            acts.push(Array::new(a.shape.clone(), a.read(ctx)?)?);
            let d = &g.layers[0].1;
            lgrads.push(Array::new(d.shape.clone(), d.read(ctx)?)?);
        }
        logits.push(match lg {
            Some(lg) => lg,
            None => Array::new(tape.logits.shape.clone(), tape.logits.read(ctx)?)?,
        });
        all_t.extend(t);
        progress.inc((end - start) as u64);
        start = end;
    }
    let layer = if layer.is_some() { Some((Array::concat(&acts)?, Array::concat(&lgrads)?)) } else { None };
    Ok(GradRun { grad: Array::concat(&grads)?, logits: Array::concat(&logits)?, targets: all_t, layer })
}
