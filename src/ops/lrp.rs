//! Element-wise LRP steps (kernels/lrp.wgsl; four elements a thread, lrp4.wgsl, where the
//! length is a multiple of 4).

use bytemuck::{Pod, Zeroable};

use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LrpParams {
    count: u32,
    mode: u32,
    flags: u32,
    /// lrp_ratio's stacking: values an item (0: none; flags bit1 the half)
    item: u32,
    eps: f32,
    c0: f32,
    c1: f32,
    _pad1: f32,
}

/// Which units a ratio keeps, by the sign of the layer's original output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    All,
    Positive,
    Negative,
}

/// Records `kernel` over `count` elements, or its four-a-thread twin where `count` (and
/// a stacked ratio's item) is a multiple of 4 (`p.count` and `p.item` then count vec4s).
fn launch(rec: &mut Recorder, kernel: Kernel, mut p: LrpParams, b: &[Binding], count: usize) {
    let (kernel, n) = match (count % 4, kernel) {
        (0, Kernel::LrpRatio) if p.item.is_multiple_of(4) => {
            p.item /= 4;
            (Kernel::LrpRatio4, count / 4)
        }
        (_, Kernel::LrpRatio) => (kernel, count),
        (0, Kernel::LrpCombine) => (Kernel::LrpCombine4, count / 4),
        (0, Kernel::LrpAxpby) => (Kernel::LrpAxpby4, count / 4),
        (0, Kernel::LrpClamp) => (Kernel::LrpClamp4, count / 4),
        (0, Kernel::LrpSum) => (Kernel::LrpSum4, count / 4),
        _ => (kernel, count),
    };
    p.count = n as u32;
    rec.launch_1d(kernel, &p, b, n);
}

fn same(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::Shape(format!(
            "{what}: {:?} vs {:?}",
            a.shape, b.shape
        )));
    }
    Ok(())
}

/// An LRP ratio R / s(c0 za + c1 zb), s Zennit's stabilizer of `eps`, zero where `keep`
/// rejects the layer's original output z0: computed by [`lrp_ratio_of`], or packed
/// straight into a GEMM's input by [`conv2d_backward_ratio`](super::conv2d_backward_ratio).
#[derive(Clone, Copy)]
pub struct Ratio<'a> {
    pub r: &'a Tensor,
    pub za: &'a Tensor,
    pub c0: f32,
    /// zb and c1 (none: z = c0 za)
    pub zb: Option<(&'a Tensor, f32)>,
    pub z0: &'a Tensor,
    pub keep: Keep,
    pub eps: f32,
}

impl<'a> Ratio<'a> {
    /// R / s(z).
    pub fn new(r: &'a Tensor, z: &'a Tensor, z0: &'a Tensor, keep: Keep, eps: f32) -> Self {
        Ratio {
            r,
            za: z,
            c0: 1.0,
            zb: None,
            z0,
            keep,
            eps,
        }
    }

    /// R / s(c0 za + c1 zb).
    pub fn mixed(self, c0: f32, zb: &'a Tensor, c1: f32) -> Self {
        Ratio {
            c0,
            zb: Some((zb, c1)),
            ..self
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        for t in [self.za, self.z0, self.zb.map_or(self.za, |z| z.0)] {
            same(self.r, t, "lrp ratio")?;
        }
        Ok(())
    }

    pub(crate) fn mode(&self) -> u32 {
        match self.keep {
            Keep::All => 0,
            Keep::Positive => 1,
            Keep::Negative => 2,
        }
    }

    pub(crate) fn c1(&self) -> f32 {
        self.zb.map_or(0.0, |z| z.1)
    }

    /// R, za, z0, zb (za again where there is none), as the kernels bind them.
    pub(crate) fn bindings(&self) -> [Binding<'a>; 4] {
        [
            Binding::Tensor(self.r),
            Binding::Tensor(self.za),
            Binding::Tensor(self.z0),
            Binding::Tensor(self.zb.map_or(self.za, |z| z.0)),
        ]
    }
}

/// R / s(z) (with s Zennit's stabilizer of `eps`), zero where `keep` rejects z0.
pub fn lrp_ratio(
    rec: &mut Recorder,
    r: &Tensor,
    z: &Tensor,
    z0: &Tensor,
    keep: Keep,
    eps: f32,
) -> Result<Tensor> {
    lrp_ratio_of(rec, &Ratio::new(r, z, z0, keep, eps))
}

/// The ratio `q` as a tensor.
pub fn lrp_ratio_of(rec: &mut Recorder, q: &Ratio) -> Result<Tensor> {
    q.check()?;
    let out = Tensor::empty(rec.ctx(), &q.r.shape, "relevance ratio")?;
    ratio_into(rec, q, &out, 0, 0)?;
    Ok(out)
}

/// Ratios `q1` and `q2` (of one shape [n, c, ...]) stacked an item: [n, 2c, ...], item b
/// holding q1's channels, then q2's.
pub fn lrp_ratios_stacked(rec: &mut Recorder, q1: &Ratio, q2: &Ratio) -> Result<Tensor> {
    q1.check()?;
    q2.check()?;
    if q1.r.shape != q2.r.shape {
        return Err(Error::Shape(format!(
            "stacked lrp ratios: {:?} vs {:?}",
            q1.r.shape, q2.r.shape
        )));
    }
    let shape = stacked_shape(&q1.r.shape)?;
    let out = Tensor::empty(rec.ctx(), &shape, "stacked relevance ratios")?;
    let item = u32s(q1.r.len() / shape[0].max(1), "values an item")?;
    ratio_into(rec, q1, &out, item, 0)?;
    ratio_into(rec, q2, &out, item, 2)?;
    Ok(out)
}

/// [n, 2c, ...] for ratios of `shape` [n, c, ...].
pub(crate) fn stacked_shape(shape: &[usize]) -> Result<Vec<usize>> {
    match shape {
        [n, c, rest @ ..] => Ok([&[*n, 2 * c][..], rest].concat()),
        s => Err(Error::Shape(format!("cannot stack ratios of shape {s:?}"))),
    }
}

/// Records ratio `q` into `out` (stacked as `lrp_ratios_stacked` says where `item` > 0,
/// in the half of flags bit1).
fn ratio_into(rec: &mut Recorder, q: &Ratio, out: &Tensor, item: u32, flags: u32) -> Result<()> {
    let p = LrpParams {
        count: u32s(q.r.len(), "elements")?,
        mode: q.mode(),
        flags,
        item,
        eps: q.eps,
        c0: q.c0,
        c1: q.c1(),
        _pad1: 0.0,
    };
    let [r, za, z0, zb] = q.bindings();
    let b = [r, za, z0, zb, Binding::Tensor(out)];
    launch(rec, Kernel::LrpRatio, p, &b, q.r.len());
    Ok(())
}

/// Relevance at the two inputs of a sum x1 + x2 = z from `r` at its output: x_k ⊙ r / s(z),
/// s the stabilizer of `eps` (Zennit's `Norm` with ε its stabilizer, or `Epsilon`), in one
/// pass: the same bits as `lrp_ratio` then `lrp_combine` for each input.
pub fn lrp_sum_rule(
    rec: &mut Recorder,
    r: &Tensor,
    z: &Tensor,
    [x1, x2]: [&Tensor; 2],
    eps: f32,
) -> Result<[Tensor; 2]> {
    for t in [z, x1, x2] {
        same(r, t, "lrp sum rule")?;
    }
    let out = [
        Tensor::empty(rec.ctx(), &x1.shape, "relevance")?,
        Tensor::empty(rec.ctx(), &x2.shape, "relevance")?,
    ];
    let p = LrpParams {
        count: u32s(r.len(), "elements")?,
        mode: 0,
        flags: 0,
        item: 0,
        eps,
        c0: 1.0,
        c1: 0.0,
        _pad1: 0.0,
    };
    let b = [
        Binding::Tensor(r),
        Binding::Tensor(z),
        Binding::Tensor(x1),
        Binding::Tensor(x2),
        Binding::Tensor(&out[0]),
        Binding::Tensor(&out[1]),
    ];
    launch(rec, Kernel::LrpSum, p, &b, r.len());
    Ok(out)
}

/// c0 x0 y0 + c1 x1 y1, added into `acc` when given; with c1 = 0 the kernel reads neither
/// x1 nor y1.
#[allow(clippy::too_many_arguments)]
pub fn lrp_combine(
    rec: &mut Recorder,
    c0: f32,
    x0: &Tensor,
    y0: &Tensor,
    c1: f32,
    x1: &Tensor,
    y1: &Tensor,
    acc: Option<&Tensor>,
) -> Result<Tensor> {
    for t in [y0, x1, y1] {
        same(x0, t, "lrp combine")?;
    }
    let out = match acc {
        Some(a) => {
            same(x0, a, "lrp combine")?;
            a.clone()
        }
        None => Tensor::empty(rec.ctx(), &x0.shape, "relevance")?,
    };
    let p = LrpParams {
        count: u32s(x0.len(), "elements")?,
        mode: 0,
        flags: acc.is_some() as u32,
        item: 0,
        eps: 0.0,
        c0,
        c1,
        _pad1: 0.0,
    };
    let b = [
        Binding::Tensor(x0),
        Binding::Tensor(y0),
        Binding::Tensor(x1),
        Binding::Tensor(y1),
        Binding::Tensor(&out),
    ];
    launch(rec, Kernel::LrpCombine, p, &b, x0.len());
    Ok(out)
}

/// max(x, 0), or min(x, 0) when `negative`.
pub fn lrp_clamp(rec: &mut Recorder, x: &Tensor, negative: bool) -> Result<Tensor> {
    let out = Tensor::empty(rec.ctx(), &x.shape, "clamped input")?;
    let p = LrpParams {
        count: u32s(x.len(), "elements")?,
        mode: negative as u32,
        flags: 0,
        item: 0,
        eps: 0.0,
        c0: 0.0,
        c1: 0.0,
        _pad1: 0.0,
    };
    let b = [Binding::Tensor(x), Binding::Tensor(&out)];
    launch(rec, Kernel::LrpClamp, p, &b, x.len());
    Ok(out)
}

/// c0 x0 + c1 x1.
pub fn lrp_axpby(rec: &mut Recorder, c0: f32, x0: &Tensor, c1: f32, x1: &Tensor) -> Result<Tensor> {
    axpby(rec, c0, x0, c1, x1, false)
}

/// c0·x0 + c1·x1, then a ReLU with `relu` (the same bits as `ops::relu` after it).
pub(crate) fn axpby(
    rec: &mut Recorder,
    c0: f32,
    x0: &Tensor,
    c1: f32,
    x1: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    same(x0, x1, "lrp axpby")?;
    let out = Tensor::empty(rec.ctx(), &x0.shape, "relevance denominator")?;
    let p = LrpParams {
        count: u32s(x0.len(), "elements")?,
        mode: 0,
        flags: relu as u32,
        item: 0,
        eps: 0.0,
        c0,
        c1,
        _pad1: 0.0,
    };
    let b = [
        Binding::Tensor(x0),
        Binding::Tensor(x1),
        Binding::Tensor(&out),
    ];
    launch(rec, Kernel::LrpAxpby, p, &b, x0.len());
    Ok(out)
}
