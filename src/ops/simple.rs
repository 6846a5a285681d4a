//! Element-wise and row-wise launchers.

use bytemuck::{Pod, Zeroable};

use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct ElementParams {
    pub count: u32,
    pub cols: u32,
    pub _pad: [u32; 2],
}

pub fn relu(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let y = Tensor::empty(rec.ctx(), &x.shape, "relu output")?;
    let (kernel, p) = relu_launch(Kernel::ReluForward, x.len(), 0)?;
    rec.launch_1d(
        kernel,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        p.count as usize,
    );
    Ok(y)
}

/// A ReLU kernel over `count` elements (`cols`: its rule) and its parameters: the
/// four-a-thread twin (elementwise4.wgsl) where `count` is a multiple of 4.
pub(crate) fn relu_launch(
    kernel: Kernel,
    count: usize,
    cols: u32,
) -> Result<(Kernel, ElementParams)> {
    let (kernel, count) = match (kernel, count % 4) {
        (Kernel::ReluForward, 0) => (Kernel::ReluForward4, count / 4),
        (Kernel::ReluBackward, 0) => (Kernel::ReluBackward4, count / 4),
        _ => (kernel, count),
    };
    let p = ElementParams {
        count: u32s(count, "elements")?,
        cols,
        _pad: [0; 2],
    };
    Ok((kernel, p))
}

/// a + b, element-wise (tensors of one shape): a residual sum's forward, and gradients
/// and relevances meeting where a layer's output has several readers.
pub fn add(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    add_relu(rec, a, b, false)
}

/// `add`, then a ReLU with `relu` in the same pass (a residual sum and the ReLU that alone
/// reads it): the same bits as `add` then `relu`.
pub fn add_relu(rec: &mut Recorder, a: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    if a.shape != b.shape {
        return Err(Error::Shape(format!(
            "cannot add tensors of shapes {:?} and {:?}",
            a.shape, b.shape
        )));
    }
    super::lrp::axpby(rec, 1.0, a, 1.0, b, relu)
}

/// Softmax over the last axis of [N, classes].
pub fn softmax(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let (rows, cols) = match x.shape.as_slice() {
        [r, c] if *c > 0 => (*r, *c),
        s => {
            return Err(Error::Shape(format!(
                "softmax expects [N, classes], got {s:?}"
            )))
        }
    };
    let y = Tensor::empty(rec.ctx(), &x.shape, "softmax output")?;
    let p = ElementParams {
        count: u32s(rows, "rows")?,
        cols: cols as u32,
        _pad: [0; 2],
    };
    rec.launch(
        Kernel::SoftmaxForward,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        grid(rows as u32),
    );
    Ok(y)
}
