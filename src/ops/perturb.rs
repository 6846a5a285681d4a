//! Perturbed copies of inputs, built on the GPU.

use bytemuck::{Pod, Zeroable};

use super::{dims4, u32s};
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct OccludeParams {
    count: u32,
    c: u32,
    h: u32,
    w: u32,
    win_h: u32,
    win_w: u32,
    stride_h: u32,
    stride_w: u32,
    nx: u32,
    first: u32,
    item: u32,
    _pad: u32,
}

/// Sliding occlusion windows as Captum's Occlusion places them: starts 0, s, 2s, ...,
/// ceil((H - W) / s) + 1 per axis, clipped at the border.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Windows {
    pub size: (usize, usize),
    pub stride: (usize, usize),
    pub ny: usize,
    pub nx: usize,
}

impl Windows {
    pub fn new(
        h: usize,
        w: usize,
        size: (usize, usize),
        stride: (usize, usize),
    ) -> Result<Windows> {
        if size.0 == 0 || size.1 == 0 || size.0 > h || size.1 > w {
            return Err(Error::input(
                "--window",
                format!("window {size:?} must be 1..= the input {h}x{w}"),
            ));
        }
        if stride.0 == 0
            || stride.1 == 0
            || (stride.0 > size.0 && size.0 < h)
            || (stride.1 > size.1 && size.1 < w)
        {
            return Err(Error::input(
                "--stride",
                format!("stride {stride:?} must be 1..= the window {size:?}"),
            ));
        }
        Ok(Windows {
            size,
            stride,
            ny: (h - size.0).div_ceil(stride.0) + 1,
            nx: (w - size.1).div_ceil(stride.1) + 1,
        })
    }

    pub fn count(&self) -> usize {
        self.ny * self.nx
    }

    /// (y0, y1, x0, x1) of window j, clipped to h x w.
    pub fn rect(&self, j: usize, h: usize, w: usize) -> (usize, usize, usize, usize) {
        let y0 = (j / self.nx) * self.stride.0;
        let x0 = (j % self.nx) * self.stride.1;
        (y0, (y0 + self.size.0).min(h), x0, (x0 + self.size.1).min(w))
    }
}

/// Copies `first..first + count` of item `item` of `x`, each with its window replaced by
/// the same pixels of `baseline` (shaped like `x`).
#[allow(clippy::too_many_arguments)]
pub fn occlude(
    rec: &mut Recorder,
    x: &Tensor,
    baseline: &Tensor,
    item: usize,
    win: &Windows,
    first: usize,
    count: usize,
) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&x.shape, "occlude")?;
    if item >= n || first + count > win.count() {
        return Err(Error::Shape("occlusion window out of range".into()));
    }
    if baseline.shape != x.shape {
        return Err(Error::Shape(format!(
            "occlusion baseline {:?} does not match the input {:?}",
            baseline.shape, x.shape
        )));
    }
    let y = Tensor::empty(rec.ctx(), &[count, c, h, w], "occluded copies")?;
    let p = OccludeParams {
        count: u32s(y.len(), "elements")?,
        c: c as u32,
        h: h as u32,
        w: w as u32,
        win_h: win.size.0 as u32,
        win_w: win.size.1 as u32,
        stride_h: win.stride.0 as u32,
        stride_w: win.stride.1 as u32,
        nx: win.nx as u32,
        first: first as u32,
        item: item as u32,
        _pad: 0,
    };
    rec.launch_1d(
        Kernel::Occlude,
        &p,
        &[
            Binding::Tensor(x),
            Binding::Tensor(&y),
            Binding::Tensor(baseline),
        ],
        y.len(),
    );
    Ok(y)
}
