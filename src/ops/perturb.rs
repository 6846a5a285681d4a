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

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct RankedParams {
    count: u32,
    per: u32,
    plane: u32,
    first: u32,
    insert: u32,
    _pad: [u32; 3],
}

/// Copies first..first+m of one item x [1, C, H, W]: copy j has every pixel whose unit rank
/// (`rank`, u32 [H·W]) is below `thresholds[first + j]` (u32) replaced by the substitute
/// `sub` (like x); with `insert`, the substitute with those pixels restored from x.
pub fn ranked_copies(
    rec: &mut Recorder,
    x: &Tensor,
    sub: &Tensor,
    rank: &Tensor,
    thresholds: &Tensor,
    (first, m): (usize, usize),
    insert: bool,
) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&x.shape, "ranked copies")?;
    let plane = h * w;
    if n != 1 || sub.shape != x.shape || rank.shape != [plane] || m == 0 {
        return Err(Error::Shape(format!(
            "ranked copies need one item, a substitute like it and a rank per pixel; got {:?}, {:?}, {:?}",
            x.shape, sub.shape, rank.shape
        )));
    }
    if thresholds.shape.len() != 1 || first + m > thresholds.len() {
        return Err(Error::Shape(format!(
            "copies {first}..{} need as many thresholds, got {:?}",
            first + m,
            thresholds.shape
        )));
    }
    let out = Tensor::empty(rec.ctx(), &[m, c, h, w], "ranked copies")?;
    let p = RankedParams {
        count: u32s(out.len(), "copy elements")?,
        per: u32s(c * plane, "item")?,
        plane: u32s(plane, "plane")?,
        first: first as u32,
        insert: insert as u32,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(x),
        Binding::Tensor(sub),
        Binding::Tensor(rank),
        Binding::Tensor(thresholds),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::Ranked, &p, &bind, out.len());
    Ok(out)
}
