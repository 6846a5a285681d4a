//! The backward walk over a forward tape: one input-gradient launch per layer, all
//! recorded into one submission; activations never leave the GPU.

use super::{Net, Tape};
use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::model::{LayerKind, Src};
use crate::ops::{self, ReluRule};

/// Gradients from a backward walk.
pub struct Grads {
    /// d(seed . output) / d input (of the lowest layer walked: the network's input for a
    /// whole walk)
    pub input: Tensor,
    /// The gradient with respect to each requested layer's output, by layer index.
    pub layers: Vec<(usize, Tensor)>,
}

impl Net {
    /// Propagates `seed` (the gradient at the logits, [N, classes]) back to the input
    /// through a tape recorded with `Keep::Gradient` or `Keep::All`. ReLUs follow `relu`.
    pub fn backward_gpu(
        &self,
        tape: &Tape,
        seed: &Tensor,
        relu: ReluRule,
        want: &[usize],
    ) -> Result<Grads> {
        let mut rec = Recorder::new(&self.ctx, "backward");
        let last = self.model.layers.len() - 1;
        let g = self.record_backward(&mut rec, tape, last, seed, relu, want)?;
        rec.submit()?;
        Ok(g)
    }

    /// Records the walk from layer `from` (whose output `seed` is the gradient of, e.g.
    /// the last layer of a `record_forward(.., Some(from))`) back to the input into `rec`.
    pub fn record_backward(
        &self,
        rec: &mut Recorder,
        tape: &Tape,
        from: usize,
        seed: &Tensor,
        relu: ReluRule,
        want: &[usize],
    ) -> Result<Grads> {
        let Some(bi) = &tape.banded else {
            return self.record_backward_range(rec, tape, from, 0, seed, relu, want);
        };
        // the layers after the bands as usual; through the bands now, band by band
        let b = &bi.bands;
        let mut g = self.record_backward_range(rec, tape, from, b.last + 1, seed, relu, want)?;
        super::bands::flush(rec)?;
        g.input = self.banded_items_gradient(bi, &g.input, relu)?;
        Ok(g)
    }

    /// As `record_backward`, walking layers `from` down to `down_to` only: `Grads::input`
    /// is then the gradient at layer `down_to`'s input (the output of layer
    /// `down_to - 1`), and nothing below is computed (Grad-CAM needs no more).
    #[allow(clippy::too_many_arguments)]
    pub fn record_backward_range(
        &self,
        rec: &mut Recorder,
        tape: &Tape,
        from: usize,
        down_to: usize,
        seed: &Tensor,
        relu: ReluRule,
        want: &[usize],
    ) -> Result<Grads> {
        let layers = &self.model.layers;
        // a tape that starts after a layer cannot walk below it; a ReLU it starts after
        // can be walked (its backward reads only its output, which the tape holds)
        let lowest = match tape.first.checked_sub(1) {
            Some(a) if matches!(layers[a].kind, LayerKind::Relu) => a,
            _ => tape.first,
        };
        if from >= layers.len() || down_to > from + 1 || down_to < lowest {
            return Err(Error::Shape(format!(
                "cannot walk from layer {from} down to layer {down_to}; the model has {} \
                 layers and the tape's forward started at layer {}",
                layers.len(),
                tape.first
            )));
        }
        let out = match &tape.outputs[from] {
            Some(t) => t,
            None if from == tape.last => &tape.logits,
            None => {
                return Err(Error::Other(format!(
                    "cannot walk back from layer {from}: the tape (its forward ran through \
                     layer {}) did not keep that layer's output; record it with Keep::All, or \
                     name layer {from} in Keep::Gradient (which otherwise runs a conv or linear \
                     layer fused with its ReLU)",
                    tape.last
                )))
            }
        };
        if seed.shape != out.shape {
            return Err(Error::Shape(format!(
                "seed {:?} does not match layer {from}'s output {:?}",
                seed.shape, out.shape
            )));
        }
        // gradients at each layer's output, summed over its readers as they are walked
        let mut gs: Vec<Option<Tensor>> = vec![None; layers.len()];
        let mut g_input: Option<Tensor> = None;
        gs[from] = Some(seed.clone());
        let mut kept = Vec::new();
        // convs whose input-gradient GEMM applies the ReLU after them (`relu_into_conv`),
        // or makes its output gradient from the max-pool after that ReLU (`conv_under_relu`:
        // the walk leaves the pool's output gradient at the conv)
        let mut masked: Vec<Option<usize>> = vec![None; layers.len()];
        let mut pool_fed: Vec<Option<usize>> = vec![None; layers.len()];
        for i in (down_to..=from).rev() {
            let Some(g) = gs[i].take() else {
                continue; // nothing walked so far reads this layer
            };
            if want.contains(&i) {
                kept.push((i, g.clone()));
            }
            let srcs = &layers[i].inputs;
            // the input's shape (a ReLU's input may be a fused conv's, not kept)
            let x = || tape.src_shape(srcs[0]);
            let gx = match &layers[i].kind {
                LayerKind::Conv2d { geom, .. } => {
                    let (s, w) = (x()?, self.weights(i));
                    match (masked[i], pool_fed[i]) {
                        // made from the pool's gradient g as it is packed for the GEMM
                        (_, Some(k)) => {
                            let LayerKind::MaxPool2d(pool) = &layers[k].kind else {
                                unreachable!("pool_fed holds max-pools")
                            };
                            let pg = ops::PoolGrad {
                                dy: &g,
                                argmax: tape.argmax[k]
                                    .as_ref()
                                    .expect("checked when the pool was walked"),
                                pooled: tape.output(k)?,
                                pool,
                                rule: relu,
                            };
                            ops::conv2d_backward_pooled(rec, &pg, w, geom, (s[2], s[3]))?
                        }
                        // g ⊙ [z > 0] as g / 1, made as g is packed for the GEMM
                        (Some(j), None) => {
                            let z = tape.output(j)?;
                            let q = ops::LrpRatio::new(&g, z, z, ops::LrpKeep::Positive, 1.0)
                                .mixed(0.0, z, 0.0);
                            ops::conv2d_backward_ratio(rec, &q, w, geom, (s[2], s[3]))?
                        }
                        (None, None) => ops::conv2d_backward_input(rec, &g, w, geom, (s[2], s[3]))?,
                    }
                }
                LayerKind::Linear { .. } => ops::linear_backward_input(rec, &g, self.weights(i))?,
                LayerKind::Relu => {
                    if let Some(c) = self.relu_into_conv(i, down_to, want, relu) {
                        masked[c] = Some(i);
                        accumulate(rec, &mut gs, &mut g_input, Src::Layer(c), g)?;
                        continue;
                    }
                    ops::relu_backward(rec, tape.output(i)?, &g, relu)?
                }
                LayerKind::MaxPool2d(p) => {
                    let arg = tape.argmax[i]
                        .as_ref()
                        .ok_or_else(|| Error::Other("tape lacks a max-pool argmax".into()))?;
                    let s = x()?;
                    if let Some(j) = self.relu_before_pool(i, down_to, (&g.shape, &s)) {
                        if want.contains(&j) {
                            // the gradient at the ReLU's output, which the tape may not
                            // hold (a conv + pool pass): the pool's backward alone
                            kept.push((j, ops::max_pool2d_backward(rec, &g, arg, p, &s)?));
                        }
                        // the conv under the ReLU makes its output gradient itself
                        if let Some(c) = self.conv_under_relu(j, down_to, want) {
                            let pg = ops::PoolGrad {
                                dy: &g,
                                argmax: arg,
                                pooled: tape.output(i)?,
                                pool: p,
                                rule: relu,
                            };
                            if pg.packs(&s) {
                                pool_fed[c] = Some(i);
                                accumulate(rec, &mut gs, &mut g_input, Src::Layer(c), g)?;
                                continue;
                            }
                        }
                        // the ReLU's backward too: its gradient goes to its input
                        let gx = ops::max_pool2d_relu_backward(
                            rec,
                            &g,
                            arg,
                            tape.output(i)?,
                            p,
                            &s,
                            relu,
                        )?;
                        for src in &layers[j].inputs {
                            accumulate(rec, &mut gs, &mut g_input, *src, gx.clone())?;
                        }
                        continue;
                    }
                    ops::max_pool2d_backward(rec, &g, arg, p, &s)?
                }
                LayerKind::AvgPool2d(p) => ops::avg_pool2d_backward(rec, &g, p, &x()?)?,
                LayerKind::AdaptiveAvgPool2d(_) => {
                    ops::adaptive_avg_pool2d_backward(rec, &g, &x()?)?
                }
                LayerKind::Flatten => g.reshape(&x()?)?,
                LayerKind::Dropout | LayerKind::Add => g, // a sum passes g to every input
                LayerKind::BatchNorm2d { .. } => unreachable!("folded at load"),
            };
            for s in srcs {
                accumulate(rec, &mut gs, &mut g_input, *s, gx.clone())?;
            }
        }
        let input = if down_to == 0 {
            g_input
        } else {
            gs[down_to - 1].take()
        };
        let input = match input {
            Some(t) => t,
            None => {
                // no path from the seed reaches there: the gradient is zero
                let shape = &tape.src_shape(Src::before(down_to))?;
                Tensor::upload(&self.ctx, &vec![0.0; shape.iter().product()], shape)?
            }
        };
        Ok(Grads {
            input,
            layers: kept,
        })
    }
}

impl Net {
    /// The conv c whose input-gradient GEMM can apply ReLU j's backward (`ReluRule::Gradient`)
    /// as it packs its input (`conv_under_relu`; lavapipe's element-wise passes cost a load
    /// and a store a word).
    fn relu_into_conv(
        &self,
        j: usize,
        down_to: usize,
        want: &[usize],
        relu: ReluRule,
    ) -> Option<usize> {
        (relu == ReluRule::Gradient)
            .then(|| self.conv_under_relu(j, down_to, want))
            .flatten()
    }

    /// The conv c under ReLU j whose input-gradient GEMM can make its output gradient as it
    /// packs its input, on the GEMM variants that pack one (`cpu-tex`, `cpu-fetch`): from
    /// the gradient at j (`relu_into_conv`) or from the max-pool over j
    /// (`ops::conv2d_backward_pooled`). j reads only c, c has no other reader, is walked and
    /// its output gradient not wanted.
    fn conv_under_relu(&self, j: usize, down_to: usize, want: &[usize]) -> Option<usize> {
        let [Src::Layer(c)] = self.model.layers[j].inputs[..] else {
            return None;
        };
        let fits = self.ctx.gemm().reads_textures()
            && matches!(self.model.layers[c].kind, LayerKind::Conv2d { .. })
            && self.consumers[c] == [j]
            && c >= down_to
            && !want.contains(&c);
        fits.then_some(c)
    }

    /// The ReLU j whose backward the walk can fuse into max-pool i's: i reads only j, j
    /// has no other reader, is walked (j >= `down_to`), and the pool's windows tile j's
    /// output (`input`; `out` the pool's).
    fn relu_before_pool(
        &self,
        i: usize,
        down_to: usize,
        (out, input): (&[usize], &[usize]),
    ) -> Option<usize> {
        let layers = &self.model.layers;
        let LayerKind::MaxPool2d(p) = &layers[i].kind else {
            return None;
        };
        let [Src::Layer(j)] = layers[i].inputs[..] else {
            return None;
        };
        let fits = matches!(layers[j].kind, LayerKind::Relu)
            && self.consumers[j] == [i]
            && j >= down_to
            && ops::tiles_input(p, out, input);
        fits.then_some(j)
    }
}

/// Adds `t` into the gradient (or relevance) at `src`, one of the layers' outputs or the
/// network input: set when empty, summed when another reader already left one there.
pub(crate) fn accumulate(
    rec: &mut Recorder,
    layers: &mut [Option<Tensor>],
    input: &mut Option<Tensor>,
    src: Src,
    t: Tensor,
) -> Result<()> {
    let slot = match src {
        Src::Input => input,
        Src::Layer(j) => &mut layers[j],
    };
    *slot = Some(match slot.take() {
        None => t,
        Some(prev) => ops::add(rec, &prev, &t)?,
    });
    Ok(())
}

impl Tape {
    /// What `src` holds: the input, or a layer's output (kept with `Keep::All`, or
    /// `Keep::Gradient` where not fused).
    pub fn src(&self, src: Src) -> Result<&Tensor> {
        match src {
            Src::Input if self.first == 0 => Ok(&self.input),
            Src::Input => Err(Error::Other(format!(
                "the tape's forward started at layer {}, after the input",
                self.first
            ))),
            Src::Layer(j) => self.output(j),
        }
    }

    /// The shape of what `src` holds, kept or made inside a conv + max-pool pass.
    pub fn src_shape(&self, src: Src) -> Result<Vec<usize>> {
        match (src, self.src(src)) {
            (_, Ok(t)) => Ok(t.shape.clone()),
            (Src::Layer(j), Err(e)) => self.shapes[j].clone().ok_or(e),
            (Src::Input, Err(e)) => Err(e),
        }
    }

    /// Layer i's output, where the tape kept it.
    pub fn output(&self, i: usize) -> Result<&Tensor> {
        self.outputs[i].as_ref().ok_or_else(|| {
            Error::Other(format!(
                "the tape did not keep layer {i}'s output; record it with Keep::All, or name it in Keep::Gradient"
            ))
        })
    }
}
