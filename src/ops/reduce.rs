//! Reductions per item on the device (kernels/reduce.wgsl) and total variation with its
//! gradient: the objective and regulariser terms of device-resident loops.

use bytemuck::{Pod, Zeroable};

use super::{dims4, u32s};
use crate::error::{Error, Result};
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ReduceParams {
    rows: u32,
    per: u32,
    mode: u32,
    _pad: u32,
    h: u32,
    w: u32,
    channels: u32,
    beta: f32,
}

/// What `reduce` computes over each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
    /// Σ|x|
    L1,
    /// sqrt(Σx²)
    L2,
    /// Population variance (torch.var(unbiased=False)).
    Variance,
}

impl Reduction {
    fn mode(self) -> u32 {
        match self {
            Reduction::Sum => 0,
            Reduction::Mean => 1,
            Reduction::L1 => 2,
            Reduction::L2 => 3,
            Reduction::Variance => 4,
        }
    }
}

/// x viewed as `rows` rows of equal length, each reduced to one value: [rows]. With
/// rows = N it reduces items; with rows = N·C, channel planes (per-channel statistics).
pub fn reduce(rec: &mut Recorder, x: &Tensor, rows: usize, how: Reduction) -> Result<Tensor> {
    if rows == 0 || x.is_empty() || !x.len().is_multiple_of(rows) {
        return Err(Error::Shape(format!(
            "reduce: {} values do not split into {rows} non-empty rows",
            x.len()
        )));
    }
    let y = Tensor::empty(rec.ctx(), &[rows], "reduction")?;
    let p = ReduceParams {
        rows: u32s(rows, "rows")?,
        per: u32s(x.len() / rows, "row length")?,
        mode: how.mode(),
        ..Default::default()
    };
    rec.launch(
        Kernel::ReduceRows,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        grid(p.rows),
    );
    Ok(y)
}

fn tv_params(x: &Tensor, beta: f32, what: &str) -> Result<ReduceParams> {
    let [n, c, h, w] = dims4(&x.shape, what)?;
    if !(beta.is_finite() && beta > 0.0) || n == 0 || c == 0 || h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "{what} needs beta > 0 and a non-empty [N, C, H, W], got beta {beta}, {:?}",
            x.shape
        )));
    }
    Ok(ReduceParams {
        rows: u32s(n, "batch")?,
        h: u32s(h, "height")?,
        w: u32s(w, "width")?,
        channels: u32s(c, "channels")?,
        beta,
        ..Default::default()
    })
}

/// Total variation of each item of x [N, C, H, W]: the mean over its horizontal and
/// vertical neighbour pairs (all channels) of |difference|^β; [N].
pub fn tv(rec: &mut Recorder, x: &Tensor, beta: f32) -> Result<Tensor> {
    let p = tv_params(x, beta, "total variation")?;
    let y = Tensor::empty(rec.ctx(), &[x.shape[0]], "total variation")?;
    rec.launch(
        Kernel::TvRows,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        grid(p.rows),
    );
    Ok(y)
}

/// d tv(x) / dx, element-wise; [N, C, H, W].
pub fn tv_grad(rec: &mut Recorder, x: &Tensor, beta: f32) -> Result<Tensor> {
    let p = tv_params(x, beta, "total variation gradient")?;
    let y = Tensor::empty(rec.ctx(), &x.shape, "total variation gradient")?;
    rec.launch_1d(
        Kernel::TvGrad,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        x.len(),
    );
    Ok(y)
}

/// Grad-CAM's map from a layer's activations and gradient, both [N, C, H, W]: channel
/// weights = the spatial mean of the gradient, map = Σ_c w_c A_c ([N, 1, H, W]), ReLU
/// when `relu`.
pub fn grad_cam(rec: &mut Recorder, act: &Tensor, grad: &Tensor, relu: bool) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&act.shape, "Grad-CAM")?;
    if grad.shape != act.shape || n * c * h * w == 0 {
        return Err(Error::Shape(format!(
            "Grad-CAM needs a non-empty conv-shaped layer and its gradient, got {:?} and {:?}",
            act.shape, grad.shape
        )));
    }
    let weights = reduce(rec, grad, n * c, Reduction::Mean)?;
    let out = Tensor::empty(rec.ctx(), &[n, 1, h, w], "Grad-CAM map")?;
    let p = ReduceParams {
        rows: u32s(n, "batch")?,
        mode: relu as u32,
        h: u32s(h, "height")?,
        w: u32s(w, "width")?,
        channels: u32s(c, "channels")?,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(act),
        Binding::Tensor(&weights),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::ChannelCombination, &p, &bind, out.len());
    Ok(out)
}
