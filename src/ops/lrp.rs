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
    _pad: u32,
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

/// Records `kernel` over `count` elements, or its four-a-thread twin where `count` is a
/// multiple of 4 (`p.count` then counts vec4s).
fn launch(rec: &mut Recorder, kernel: Kernel, mut p: LrpParams, b: &[Binding], count: usize) {
    let (kernel, n) = match (count % 4, kernel) {
        (0, Kernel::LrpRatio) => (Kernel::LrpRatio4, count / 4),
        (0, Kernel::LrpCombine) => (Kernel::LrpCombine4, count / 4),
        (0, Kernel::LrpAxpby) => (Kernel::LrpAxpby4, count / 4),
        (0, Kernel::LrpClamp) => (Kernel::LrpClamp4, count / 4),
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

/// R / s(z) (with s Zennit's stabilizer of `eps`), zero where `keep` rejects z0.
pub fn lrp_ratio(
    rec: &mut Recorder,
    r: &Tensor,
    z: &Tensor,
    z0: &Tensor,
    keep: Keep,
    eps: f32,
) -> Result<Tensor> {
    same(r, z, "lrp ratio")?;
    same(r, z0, "lrp ratio")?;
    let out = Tensor::empty(rec.ctx(), &r.shape, "relevance ratio")?;
    let mode = match keep {
        Keep::All => 0,
        Keep::Positive => 1,
        Keep::Negative => 2,
    };
    let p = LrpParams {
        count: u32s(r.len(), "elements")?,
        mode,
        flags: 0,
        _pad: 0,
        eps,
        c0: 0.0,
        c1: 0.0,
        _pad1: 0.0,
    };
    let b = [
        Binding::Tensor(r),
        Binding::Tensor(z),
        Binding::Tensor(z0),
        Binding::Tensor(&out),
    ];
    launch(rec, Kernel::LrpRatio, p, &b, r.len());
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
        _pad: 0,
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
        _pad: 0,
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
    same(x0, x1, "lrp axpby")?;
    let out = Tensor::empty(rec.ctx(), &x0.shape, "relevance denominator")?;
    let p = LrpParams {
        count: u32s(x0.len(), "elements")?,
        mode: 0,
        flags: 0,
        _pad: 0,
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
