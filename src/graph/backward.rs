//! The backward walk over a forward tape: one input-gradient launch per layer, all
//! recorded into one submission; activations never leave the GPU.

use super::{Net, Tape};
use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::model::LayerKind;
use crate::ops::{self, ReluRule};

/// Gradients from a backward walk.
pub struct Grads {
    /// d(seed . output) / d input
    pub input: Tensor,
    /// The gradient with respect to each requested layer's output, by layer index.
    pub layers: Vec<(usize, Tensor)>,
}

impl Net {
    /// Propagates `seed` (the gradient at the logits, [N, classes]) back to the input
    /// through a tape recorded with `Keep::All`. ReLUs follow `relu`.
    pub fn backward_gpu(
        &self,
        tape: &Tape,
        seed: &Tensor,
        relu: ReluRule,
        want: &[usize],
    ) -> Result<Grads> {
        if seed.shape != tape.logits.shape {
            return Err(Error::Shape(format!(
                "seed {:?} does not match the logits {:?}",
                seed.shape, tape.logits.shape
            )));
        }
        let layers = &self.model.layers;
        let mut rec = Recorder::new(&self.ctx, "backward");
        let mut g = seed.clone();
        let mut kept = Vec::new();
        for i in (0..layers.len()).rev() {
            if want.contains(&i) {
                kept.push((i, g.clone()));
            }
            let x = if i == 0 {
                &tape.input
            } else {
                tape.output(i - 1)?
            };
            let y = tape.output(i)?;
            g = match &layers[i].kind {
                LayerKind::Conv2d { geom, .. } => ops::conv2d_backward_input(
                    &mut rec,
                    &g,
                    self.weights(i),
                    geom,
                    (x.shape[2], x.shape[3]),
                )?,
                LayerKind::Linear { .. } => {
                    ops::linear_backward_input(&mut rec, &g, self.weights(i))?
                }
                LayerKind::Relu => ops::relu_backward(&mut rec, y, &g, relu)?,
                LayerKind::MaxPool2d(p) => {
                    let arg = tape.argmax[i]
                        .as_ref()
                        .ok_or_else(|| Error::Other("tape lacks a max-pool argmax".into()))?;
                    ops::max_pool2d_backward(&mut rec, &g, arg, p, &x.shape)?
                }
                LayerKind::AvgPool2d(p) => ops::avg_pool2d_backward(&mut rec, &g, p, &x.shape)?,
                LayerKind::AdaptiveAvgPool2d(_) => {
                    ops::adaptive_avg_pool2d_backward(&mut rec, &g, &x.shape)?
                }
                LayerKind::Flatten => g.reshape(&x.shape)?,
                LayerKind::Dropout => g,
                LayerKind::BatchNorm2d { .. } => unreachable!("folded at load"),
            };
        }
        rec.submit()?;
        Ok(Grads {
            input: g,
            layers: kept,
        })
    }
}

impl Tape {
    /// Layer i's output; the tape must have been recorded with `Keep::All`.
    pub fn output(&self, i: usize) -> Result<&Tensor> {
        self.outputs[i].as_ref().ok_or_else(|| {
            Error::Other(format!(
                "the tape did not keep layer {i}'s output; record it with Keep::All"
            ))
        })
    }
}
