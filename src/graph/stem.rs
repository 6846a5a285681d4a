//! A network's linear stem: a first conv layer that alone reads the input. Over
//! many copies of one input, its output and input gradient are linear in the copies, so
//! integrated gradients and SmoothGrad run it once per input instead of once per copy
//! (`explain::engine::copies_gradient`).

use super::Net;
use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::model::{LayerKind, Src};
use crate::ops;

impl Net {
    /// Layer 0, where it is a conv layer and the only reader of the input: the input
    /// gradient is then W^T g for every item alike, so a sum of gradients over items
    /// (copies of one input) can be taken at its output and carried through it once
    /// (`record_input_gradient`). (A linear layer cannot read the 4-D input.)
    pub fn linear_stem(&self) -> Option<usize> {
        let layers = &self.model.layers;
        let stem = matches!(
            layers.first().map(|l| &l.kind),
            Some(LayerKind::Conv2d { .. })
        ) && layers[0].inputs == [Src::Input];
        let alone = layers
            .iter()
            .skip(1)
            .all(|l| !l.inputs.contains(&Src::Input));
        (stem && alone).then_some(0)
    }

    /// Layer i + 1, where it is a ReLU that alone reads layer i's output.
    pub fn relu_after(&self, i: usize) -> Option<usize> {
        let j = i + 1;
        let l = self.model.layers.get(j)?;
        let alone = self.consumers.get(i)? == &[j] && l.inputs == [Src::Layer(i)];
        (alone && matches!(l.kind, LayerKind::Relu)).then_some(j)
    }

    /// Layer j + 1 and its pool, where it is a max-pool that alone reads ReLU j's output,
    /// which no other layer reads, and that `ops::copies::lerp_pool_copies` can run over an
    /// output of shape `item` (integrated gradients' and SmoothGrad's copies of a linear
    /// stem).
    pub fn pool_after_relu(&self, j: usize, item: &[usize]) -> Option<(usize, &ops::Pool2d)> {
        let at = j + 1;
        let l = self.model.layers.get(at)?;
        let LayerKind::MaxPool2d(pool) = &l.kind else {
            return None;
        };
        let alone = self.consumers.get(j)? == &[at] && l.inputs == [Src::Layer(j)];
        (alone && ops::copies::stem_pool_fits(item, pool)).then_some((at, pool))
    }

    /// Records conv or linear layer i on `x`: its output with the bias, and the ReLU
    /// fused in with `relu`.
    pub fn record_linear(
        &self,
        rec: &mut Recorder,
        i: usize,
        x: &Tensor,
        relu: bool,
    ) -> Result<Tensor> {
        match self.model.layers.get(i).map(|l| &l.kind) {
            Some(LayerKind::Conv2d { geom, .. }) => {
                ops::conv2d(rec, x, self.weights(i), geom, relu)
            }
            Some(LayerKind::Linear { .. }) => ops::linear(rec, x, self.weights(i), relu),
            k => Err(not_linear(i, k)),
        }
    }

    /// Records conv or linear layer i's input gradient of `g` (the gradient at its
    /// output), its input of shape `input`.
    pub fn record_input_gradient(
        &self,
        rec: &mut Recorder,
        i: usize,
        g: &Tensor,
        input: &[usize],
    ) -> Result<Tensor> {
        match self.model.layers.get(i).map(|l| &l.kind) {
            Some(LayerKind::Conv2d { geom, .. }) if input.len() == 4 => {
                ops::conv2d_backward_input(rec, g, self.weights(i), geom, (input[2], input[3]))
            }
            Some(LayerKind::Linear { .. }) => ops::linear_backward_input(rec, g, self.weights(i)),
            k => Err(not_linear(i, k)),
        }
    }
}

fn not_linear(i: usize, k: Option<&LayerKind>) -> Error {
    match k {
        Some(k) => Error::Other(format!(
            "layer {i} ({}) is not a conv or linear layer",
            k.type_name()
        )),
        None => Error::Other(format!("layer {i} does not exist")),
    }
}
