//! Pooling launchers: max (with argmax), average and adaptive average.

use bytemuck::{Pod, Zeroable};

use super::{dims4, u32s};
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PoolParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    /// avg-pool: bit0 count_include_pad; the fused max-pool/ReLU backward: the ReLU rule
    pub(crate) flags: u32,
}

/// A max- or avg-pool window (PyTorch's MaxPool2d / AvgPool2d arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub ceil_mode: bool,
    /// avg-pool only: divide by the window size including padding (PyTorch's default).
    pub count_include_pad: bool,
}

impl Pool2d {
    pub fn square(k: usize, s: usize) -> Self {
        Pool2d {
            kernel: (k, k),
            stride: (s, s),
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    pub fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        for (k, p) in [
            (self.kernel.0, self.padding.0),
            (self.kernel.1, self.padding.1),
        ] {
            if k == 0 || p * 2 > k {
                return Err(Error::Shape(format!(
                    "pool padding {p} must be at most half the kernel {k}"
                )));
            }
        }
        Ok((
            pool_out(
                h,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.ceil_mode,
            )?,
            pool_out(
                w,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.ceil_mode,
            )?,
        ))
    }
}

/// Output size of a pool along one axis, PyTorch's formula (ceil_mode drops a last
/// window that would start in the right padding).
pub fn pool_out(input: usize, k: usize, s: usize, p: usize, ceil_mode: bool) -> Result<usize> {
    if s == 0 {
        return Err(Error::Shape("pool stride must be positive".into()));
    }
    let span = (input + 2 * p) as i64 - k as i64;
    if span < 0 {
        return Err(Error::Shape(format!(
            "input size {input} (padding {p}) is smaller than the pool window {k}"
        )));
    }
    let s = s as i64;
    let mut out = if ceil_mode {
        (span + s - 1) / s + 1
    } else {
        span / s + 1
    };
    if ceil_mode && (out - 1) * s >= (input + p) as i64 {
        out -= 1;
    }
    Ok(out as usize)
}

pub(crate) fn params(
    x: &[usize; 4],
    oh: usize,
    ow: usize,
    pool: Option<&Pool2d>,
) -> Result<PoolParams> {
    let [n, c, h, w] = *x;
    let d = pool.copied().unwrap_or(Pool2d::square(1, 1));
    Ok(PoolParams {
        planes: u32s(n * c, "planes")?,
        h: h as u32,
        w: w as u32,
        oh: oh as u32,
        ow: ow as u32,
        kh: d.kernel.0 as u32,
        kw: d.kernel.1 as u32,
        stride_h: d.stride.0 as u32,
        stride_w: d.stride.1 as u32,
        pad_h: d.padding.0 as u32,
        pad_w: d.padding.1 as u32,
        flags: d.count_include_pad as u32,
    })
}

/// Whether a max-pool from `input` to `out` runs two windows an invocation
/// (pool_pairs.wgsl): 2x2 windows at stride 2 without padding over rows of a multiple of
/// 4 inputs (VGG's), every row of windows within the input, fewer than 2^24 pairs (the
/// kernel's index arithmetic). Shapes are NCHW.
pub(crate) fn runs_in_pairs(pool: &Pool2d, input: &[usize], out: &[usize]) -> bool {
    input.len() == 4
        && out.len() == 4
        && pool.kernel == (2, 2)
        && pool.stride == (2, 2)
        && pool.padding == (0, 0)
        && input[3].is_multiple_of(4)
        && 2 * out[3] == input[3]
        && 2 * out[2] <= input[2]
        && out.iter().product::<usize>() / 2 < 1 << 24
}

/// Max-pool; returns the output and, per output element, the flat index (y * W + x) of
/// the winning input within its plane.
pub fn max_pool2d(rec: &mut Recorder, x: &Tensor, pool: &Pool2d) -> Result<(Tensor, Tensor)> {
    let d = dims4(&x.shape, "max_pool2d")?;
    let (oh, ow) = pool.out_hw(d[2], d[3])?;
    let shape = [d[0], d[1], oh, ow];
    let y = Tensor::empty(rec.ctx(), &shape, "max_pool2d output")?;
    let arg = Tensor::empty_u32(rec.ctx(), &shape, "max_pool2d argmax")?;
    let p = params(&d, oh, ow, Some(pool))?;
    let (kernel, count) = if runs_in_pairs(pool, &d, &shape) {
        (Kernel::MaxPool2dForwardPairs, y.len() / 2)
    } else {
        (Kernel::MaxPool2dForward, y.len())
    };
    rec.launch_1d(
        kernel,
        &p,
        &[
            Binding::Tensor(x),
            Binding::Tensor(&y),
            Binding::Tensor(&arg),
        ],
        count,
    );
    Ok((y, arg))
}

pub fn avg_pool2d(rec: &mut Recorder, x: &Tensor, pool: &Pool2d) -> Result<Tensor> {
    let d = dims4(&x.shape, "avg_pool2d")?;
    let (oh, ow) = pool.out_hw(d[2], d[3])?;
    let y = Tensor::empty(rec.ctx(), &[d[0], d[1], oh, ow], "avg_pool2d output")?;
    let p = params(&d, oh, ow, Some(pool))?;
    // binding 3 is unused by this entry point but shares the layout: bind the output.
    rec.launch_1d(
        Kernel::AvgPool2dForward,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        y.len(),
    );
    Ok(y)
}

/// PyTorch's AdaptiveAvgPool2d: any input size to (oh, ow), larger outputs included.
pub fn adaptive_avg_pool2d(rec: &mut Recorder, x: &Tensor, out: (usize, usize)) -> Result<Tensor> {
    let d = dims4(&x.shape, "adaptive_avg_pool2d")?;
    if out.0 == 0 || out.1 == 0 || d[2] == 0 || d[3] == 0 {
        return Err(Error::Shape(format!(
            "adaptive_avg_pool2d from {:?} to {out:?}",
            x.shape
        )));
    }
    let y = Tensor::empty(
        rec.ctx(),
        &[d[0], d[1], out.0, out.1],
        "adaptive_avg_pool2d output",
    )?;
    let p = params(&d, out.0, out.1, None)?;
    rec.launch_1d(
        Kernel::AdaptiveAvgPool2dForward,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        y.len(),
    );
    Ok(y)
}
