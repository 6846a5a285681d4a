//! Element-wise maps on the device (kernels/map.wgsl): the update steps of device-resident
//! loops. Each checks shapes and scalars before recording anything.

use bytemuck::{Pod, Zeroable};

use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct MapParams {
    count: u32,
    plane: u32,
    channels: u32,
    m_channels: u32,
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    e: f32,
    f: f32,
    g: f32,
    flags: u32,
}

fn finite(what: &str, v: f32) -> Result<f32> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::Shape(format!(
            "{what} must be a finite number, got {v}"
        )))
    }
}

fn same_shape(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape != b.shape {
        return Err(Error::Shape(format!(
            "{what}: shapes {:?} and {:?} differ",
            a.shape, b.shape
        )));
    }
    Ok(())
}

/// A kernel reading one buffer and writing another needs two buffers.
pub(crate) fn distinct(what: &str, tensors: &[&Tensor]) -> Result<()> {
    for (i, a) in tensors.iter().enumerate() {
        if tensors[i + 1..].iter().any(|b| a.shares_buffer(b)) {
            return Err(Error::Shape(format!(
                "{what}: the same buffer is read and written; pass distinct tensors"
            )));
        }
    }
    Ok(())
}

fn unary(rec: &mut Recorder, kernel: Kernel, x: &Tensor, a: f32, b: f32) -> Result<Tensor> {
    let y = Tensor::empty(rec.ctx(), &x.shape, "map output")?;
    let p = MapParams {
        count: u32s(x.len(), "elements")?,
        a,
        b,
        ..Default::default()
    };
    rec.launch_1d(
        kernel,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        x.len(),
    );
    Ok(y)
}

/// y += a * x, in place.
pub fn axpy(rec: &mut Recorder, a: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    same_shape("axpy", x, y)?;
    distinct("axpy", &[x, y])?;
    let p = MapParams {
        count: u32s(x.len(), "elements")?,
        a: finite("axpy's a", a)?,
        ..Default::default()
    };
    rec.launch_1d(
        Kernel::Axpy,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(y)],
        x.len(),
    );
    Ok(())
}

/// a * x + b (scale: b = 0).
pub fn affine(rec: &mut Recorder, x: &Tensor, a: f32, b: f32) -> Result<Tensor> {
    unary(
        rec,
        Kernel::Affine,
        x,
        finite("scale", a)?,
        finite("offset", b)?,
    )
}

/// x clamped to [lo, hi].
pub fn clamp(rec: &mut Recorder, x: &Tensor, lo: f32, hi: f32) -> Result<Tensor> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(Error::Shape(format!(
            "clamp needs lo <= hi, got [{lo}, {hi}]"
        )));
    }
    unary(rec, Kernel::Clamp, x, lo, hi)
}

/// 1 / (1 + exp(-x)).
pub fn sigmoid(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    unary(rec, Kernel::Sigmoid, x, 0.0, 0.0)
}

/// m * a + (1 - m) * b for a, b [N, C, H, W] and m [N, 1, H, W] (broadcast over
/// channels) or [N, C, H, W].
pub fn mix(rec: &mut Recorder, m: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape("mix", a, b)?;
    let [n, c, h, w] = super::dims4(&a.shape, "mix")?;
    let mc = match m.shape.as_slice() {
        [mn, mc, mh, mw] if *mn == n && (*mc == 1 || *mc == c) && *mh == h && *mw == w => *mc,
        s => {
            return Err(Error::Shape(format!(
                "mix: mask {s:?} does not fit [{n}, 1 or {c}, {h}, {w}]"
            )))
        }
    };
    let out = Tensor::empty(rec.ctx(), &a.shape, "mix output")?;
    let p = MapParams {
        count: u32s(a.len(), "elements")?,
        plane: u32s(h * w, "plane")?,
        channels: c as u32,
        m_channels: mc as u32,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(m),
        Binding::Tensor(a),
        Binding::Tensor(b),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::Mix, &p, &bind, a.len());
    Ok(out)
}

/// torch.optim.Adam's settings (amsgrad off).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Ascend the objective instead of descending it.
    pub maximize: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl Adam {
    pub fn check(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps.is_finite()
            && self.eps > 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0;
        if !ok {
            return Err(Error::Shape(format!(
                "Adam needs lr >= 0, betas in [0, 1), eps > 0, weight decay >= 0; got {self:?}"
            )));
        }
        Ok(())
    }
}

/// Step `t` (from 1) of Adam on parameters `w` with gradient `g` and moments `m`, `v`
/// (zeros before step 1), all updated in place.
pub fn adam_step(
    rec: &mut Recorder,
    cfg: &Adam,
    t: u32,
    w: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
) -> Result<()> {
    cfg.check()?;
    if t == 0 {
        return Err(Error::Shape("Adam steps count from 1".into()));
    }
    for (what, x) in [("gradient", g), ("first moment", m), ("second moment", v)] {
        same_shape(&format!("adam {what}"), w, x)?;
    }
    distinct("adam", &[w, g, m, v])?;
    let p = MapParams {
        count: u32s(w.len(), "elements")?,
        a: cfg.lr,
        b: cfg.beta1,
        c: cfg.beta2,
        d: cfg.eps,
        e: 1.0 - cfg.beta1.powi(t as i32),
        f: 1.0 - cfg.beta2.powi(t as i32),
        g: cfg.weight_decay,
        flags: cfg.maximize as u32,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(g),
        Binding::Tensor(w),
        Binding::Tensor(m),
        Binding::Tensor(v),
    ];
    rec.launch_1d(Kernel::Adam, &p, &bind, w.len());
    Ok(())
}

/// a ⊙ b.
pub fn multiply(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape("multiply", a, b)?;
    let out = Tensor::empty(rec.ctx(), &a.shape, "product")?;
    let p = MapParams {
        count: u32s(a.len(), "elements")?,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(a),
        Binding::Tensor(b),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::Multiply, &p, &bind, a.len());
    Ok(out)
}

/// x clamped to [lo, hi] in place (a projected step's projection).
pub fn clamp_in_place(rec: &mut Recorder, x: &Tensor, lo: f32, hi: f32) -> Result<()> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(Error::Shape(format!(
            "clamp needs lo <= hi, got [{lo}, {hi}]"
        )));
    }
    let p = MapParams {
        count: u32s(x.len(), "elements")?,
        a: lo,
        b: hi,
        ..Default::default()
    };
    rec.launch_1d(Kernel::ClampOwn, &p, &[Binding::Tensor(x)], x.len());
    Ok(())
}

/// The gradient of `mix(m, a, b)` with respect to a one-channel mask m [N, 1, H, W]:
/// Σ_c g ⊙ (a − b) for g, a, b [N, C, H, W].
pub fn mix_grad(rec: &mut Recorder, g: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape("mix gradient", a, b)?;
    same_shape("mix gradient", g, a)?;
    let [n, c, h, w] = super::dims4(&a.shape, "mix gradient")?;
    let out = Tensor::empty(rec.ctx(), &[n, 1, h, w], "mask gradient")?;
    let p = MapParams {
        count: u32s(n * h * w, "mask elements")?,
        plane: u32s(h * w, "plane")?,
        channels: u32s(c, "channels")?,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(g),
        Binding::Tensor(a),
        Binding::Tensor(b),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::MixGrad, &p, &bind, n * h * w);
    Ok(out)
}

/// Copies x (all of it) into row `row` of `history` [rows, x.len()]: a value per step kept
/// on the device and read once at the end.
pub fn store_row(rec: &mut Recorder, x: &Tensor, history: &Tensor, row: usize) -> Result<()> {
    let per = x.len();
    if history.shape.len() != 2 || history.shape[1] != per || row >= history.shape[0] {
        return Err(Error::Shape(format!(
            "store_row: row {row} of {} values does not fit a history {:?}",
            per, history.shape
        )));
    }
    distinct("store_row", &[x, history])?;
    let p = MapParams {
        count: u32s(per, "elements")?,
        plane: u32s(row * per, "history offset")?,
        ..Default::default()
    };
    rec.launch_1d(
        Kernel::StoreRow,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(history)],
        per,
    );
    Ok(())
}

/// torch.optim.SGD's settings with momentum (no Nesterov, no weight decay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
}

/// One SGD step in place on w with gradient g and momentum buffer buf; `first` starts the
/// buffer at g, as torch does.
pub fn sgd_step(
    rec: &mut Recorder,
    cfg: &Sgd,
    first: bool,
    w: &Tensor,
    g: &Tensor,
    buf: &Tensor,
) -> Result<()> {
    let ok = cfg.lr.is_finite()
        && cfg.lr >= 0.0
        && (0.0..1.0).contains(&cfg.momentum)
        && (0.0..=1.0).contains(&cfg.dampening);
    if !ok {
        return Err(Error::Shape(format!(
            "SGD needs lr >= 0, momentum in [0, 1), dampening in [0, 1]; got {cfg:?}"
        )));
    }
    same_shape("sgd gradient", w, g)?;
    same_shape("sgd momentum", w, buf)?;
    distinct("sgd", &[w, g, buf])?;
    let p = MapParams {
        count: u32s(w.len(), "elements")?,
        a: cfg.lr,
        b: cfg.momentum,
        c: cfg.dampening,
        flags: first as u32,
        ..Default::default()
    };
    let bind = [Binding::Tensor(g), Binding::Tensor(w), Binding::Tensor(buf)];
    rec.launch_1d(Kernel::Sgd, &p, &bind, w.len());
    Ok(())
}

/// a + b·x + c·y + d·z element-wise (a loss from its per-item terms).
pub fn combine3(
    rec: &mut Recorder,
    [x, y, z]: [&Tensor; 3],
    [a, b, c, d]: [f32; 4],
) -> Result<Tensor> {
    same_shape("combine3", x, y)?;
    same_shape("combine3", x, z)?;
    for (what, v) in [("a", a), ("b", b), ("c", c), ("d", d)] {
        finite(&format!("combine3's {what}"), v)?;
    }
    let out = Tensor::empty(rec.ctx(), &x.shape, "combination")?;
    let p = MapParams {
        count: u32s(x.len(), "elements")?,
        a,
        b,
        c,
        d,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(x),
        Binding::Tensor(y),
        Binding::Tensor(z),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::Combine3, &p, &bind, x.len());
    Ok(out)
}

/// Keeps the best iterate per row: where loss[r] < best[r], row r of x [R, ...] is copied
/// into best_x, and best = min(best, loss). Rows are x's first dimension.
pub fn keep_best(
    rec: &mut Recorder,
    x: &Tensor,
    loss: &Tensor,
    best_x: &Tensor,
    best: &Tensor,
) -> Result<()> {
    let rows = x.shape.first().copied().unwrap_or(0);
    same_shape("keep_best", x, best_x)?;
    if rows == 0 || loss.shape != [rows] || best.shape != [rows] {
        return Err(Error::Shape(format!(
            "keep_best: losses {:?} and best {:?} need one value per row of {:?}",
            loss.shape, best.shape, x.shape
        )));
    }
    distinct("keep_best", &[x, loss, best_x, best])?;
    let p = MapParams {
        count: u32s(x.len(), "elements")?,
        plane: u32s(x.len() / rows, "row length")?,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(x),
        Binding::Tensor(loss),
        Binding::Tensor(best),
        Binding::Tensor(best_x),
    ];
    rec.launch_1d(Kernel::CopyIfBetter, &p, &bind, x.len());
    let p = MapParams {
        count: rows as u32,
        ..Default::default()
    };
    rec.launch_1d(
        Kernel::MinInto,
        &p,
        &[Binding::Tensor(loss), Binding::Tensor(best)],
        rows,
    );
    Ok(())
}
