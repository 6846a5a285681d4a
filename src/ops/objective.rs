//! Objectives on the device (kernels/objective.wgsl): from a layer's output and each
//! item's target, the seed of the backward walk and the objective's value, with no
//! readback. Targets are checked on the host when they are made, so the kernel only ever
//! reads inside its item.

use bytemuck::{Pod, Zeroable};

use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::{Context, Kernel, Recorder, Tensor};

/// What a loop maximises (or a walk starts from), per item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// The target class's logit: seed one-hot (Simonyan's S_c).
    Logit,
    /// One-hot times the logit (LRP's start); value: the logit.
    LogitTimesOnehot,
    /// The target's softmax probability: seed p_t (onehot - p).
    Prob,
    /// The target's log-probability: seed onehot - p.
    LogProb,
    /// One unit of a layer's output, [channel, y, x] per item.
    Unit,
    /// The mean of one channel of a layer's output.
    ChannelMean,
    /// Each row's argmax logit (first maximum): seed one-hot there; the value is the
    /// argmax index. Takes no targets.
    ArgmaxLogit,
    /// As `ArgmaxLogit`, the seed one-hot times the logit (LRP's start at the top class).
    ArgmaxLogitTimesOnehot,
}

impl Objective {
    fn mode(self) -> u32 {
        match self {
            Objective::Logit => 0,
            Objective::LogitTimesOnehot => 1,
            Objective::Prob => 2,
            Objective::LogProb => 3,
            Objective::Unit => 4,
            Objective::ChannelMean => 5,
            Objective::ArgmaxLogit => 6,
            Objective::ArgmaxLogitTimesOnehot => 7,
        }
    }
}

/// Each item's target on the device, checked against the output it will index.
pub struct Targets {
    tensor: Tensor,
    /// [N] classes or channels, or [N, 3] units.
    units: bool,
    /// The output shape per item they were checked against.
    item_shape: Vec<usize>,
}

impl Targets {
    /// One class (or channel) per item, each below `count`; `item_shape` is the output
    /// shape per item ([classes], or [C, H, W]).
    pub fn classes(ctx: &Context, t: &[usize], item_shape: &[usize]) -> Result<Targets> {
        let count = item_shape.first().copied().unwrap_or(0);
        if let Some(bad) = t.iter().find(|c| **c >= count) {
            return Err(Error::input(
                "--target",
                format!("class {bad} does not exist; the output has {count}"),
            ));
        }
        let v: Vec<f32> = t.iter().map(|c| *c as f32).collect();
        Ok(Targets {
            tensor: Tensor::upload(ctx, &v, &[t.len()])?,
            units: false,
            item_shape: item_shape.to_vec(),
        })
    }

    /// One unit (channel, y, x) per item of a [C, H, W] output.
    pub fn units(
        ctx: &Context,
        t: &[(usize, usize, usize)],
        item_shape: &[usize],
    ) -> Result<Targets> {
        let [c, h, w] = match item_shape {
            [c, h, w] => [*c, *h, *w],
            [f] => [*f, 1, 1],
            s => {
                return Err(Error::Shape(format!(
                    "a unit objective needs a [C, H, W] output, got {s:?}"
                )))
            }
        };
        if let Some(bad) = t.iter().find(|(k, y, x)| *k >= c || *y >= h || *x >= w) {
            return Err(Error::input(
                "unit",
                format!("{bad:?} is outside the layer's [{c}, {h}, {w}] output"),
            ));
        }
        let v: Vec<f32> = t
            .iter()
            .flat_map(|(k, y, x)| [*k as f32, *y as f32, *x as f32])
            .collect();
        Ok(Targets {
            tensor: Tensor::upload(ctx, &v, &[t.len(), 3])?,
            units: true,
            item_shape: item_shape.to_vec(),
        })
    }

    pub fn len(&self) -> usize {
        self.tensor.shape[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ObjectiveParams {
    rows: u32,
    per: u32,
    plane: u32,
    mode: u32,
    width: u32,
    _pad: [u32; 3],
}

/// The seed and the argmax index per row of class scores z [N, classes], for a pass
/// whose targets are each item's top class.
pub fn argmax_objective(rec: &mut Recorder, z: &Tensor) -> Result<(Tensor, Tensor)> {
    argmax_seed(rec, z, Objective::ArgmaxLogit)
}

/// `argmax_objective` with the seed one-hot times the top logit (an LRP walk's start).
pub fn argmax_times_logit_objective(rec: &mut Recorder, z: &Tensor) -> Result<(Tensor, Tensor)> {
    argmax_seed(rec, z, Objective::ArgmaxLogitTimesOnehot)
}

fn argmax_seed(rec: &mut Recorder, z: &Tensor, kind: Objective) -> Result<(Tensor, Tensor)> {
    let (n, k) = match z.shape.as_slice() {
        [n, k] if *n > 0 && *k > 0 => (*n, *k),
        s => {
            return Err(Error::Shape(format!(
                "argmax objective needs [N, classes], got {s:?}"
            )))
        }
    };
    let none = Tensor::empty(rec.ctx(), &[n], "no targets")?;
    let seed = Tensor::empty(rec.ctx(), &z.shape, "objective seed")?;
    let value = Tensor::empty(rec.ctx(), &[n], "argmax")?;
    let p = ObjectiveParams {
        rows: u32s(n, "batch")?,
        per: u32s(k, "classes")?,
        plane: 1,
        mode: kind.mode(),
        width: 1,
        _pad: [0; 3],
    };
    let bind = [
        Binding::Tensor(z),
        Binding::Tensor(&none),
        Binding::Tensor(&seed),
        Binding::Tensor(&value),
    ];
    rec.launch(Kernel::Objective, &p, &bind, grid(p.rows));
    Ok((seed, value))
}

/// The seed d objective / d z (shaped like z) and the objective's value per item ([N]),
/// for z a layer's output [N, classes] or [N, C, H, W].
pub fn objective(
    rec: &mut Recorder,
    z: &Tensor,
    targets: &Targets,
    kind: Objective,
) -> Result<(Tensor, Tensor)> {
    let n = z.shape.first().copied().unwrap_or(0);
    if n == 0 || targets.len() != n || z.shape[1..] != targets.item_shape[..] {
        return Err(Error::Shape(format!(
            "objective: {} targets checked for items {:?} do not fit the output {:?}",
            targets.len(),
            targets.item_shape,
            z.shape
        )));
    }
    if matches!(
        kind,
        Objective::ArgmaxLogit | Objective::ArgmaxLogitTimesOnehot
    ) {
        return argmax_seed(rec, z, kind);
    }
    if targets.units != (kind == Objective::Unit) {
        return Err(Error::Shape(format!(
            "objective {kind:?} needs {} targets",
            if kind == Objective::Unit {
                "unit"
            } else {
                "class or channel"
            }
        )));
    }
    let (plane, width) = match z.shape.as_slice() {
        [_, _, h, w] => (h * w, *w),
        [_, _] => (1, 1),
        s => {
            return Err(Error::Shape(format!(
                "objective: output {s:?} is neither [N, F] nor [N, C, H, W]"
            )))
        }
    };
    if matches!(
        kind,
        Objective::Prob | Objective::LogProb | Objective::Logit | Objective::LogitTimesOnehot
    ) && z.shape.len() != 2
    {
        return Err(Error::Shape(format!(
            "objective {kind:?} reads class scores [N, classes], got {:?}",
            z.shape
        )));
    }
    let seed = Tensor::empty(rec.ctx(), &z.shape, "objective seed")?;
    let value = Tensor::empty(rec.ctx(), &[n], "objective value")?;
    let p = ObjectiveParams {
        rows: u32s(n, "batch")?,
        per: u32s(z.len() / n, "values per item")?,
        plane: u32s(plane, "plane")?,
        mode: kind.mode(),
        width: u32s(width, "width")?,
        _pad: [0; 3],
    };
    let bind = [
        Binding::Tensor(z),
        Binding::Tensor(&targets.tensor),
        Binding::Tensor(&seed),
        Binding::Tensor(&value),
    ];
    rec.launch(Kernel::Objective, &p, &bind, grid(p.rows));
    Ok((seed, value))
}
