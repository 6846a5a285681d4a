//! Steps of class-model and unit visualisation (kernels/visualize.wgsl): the pixel range
//! per channel and Yosinski et al.'s clipping of small-norm or small-contribution pixels.

use bytemuck::{Pod, Zeroable};

use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct VisParams {
    items: u32,
    channels: u32,
    plane: u32,
    mode: u32,
    pct: f32,
    _pad: [u32; 3],
}

fn dims(x: &Tensor, what: &str) -> Result<[usize; 4]> {
    match x.shape.as_slice() {
        [n, c, h, w] if n * c * h * w > 0 => Ok([*n, *c, *h, *w]),
        s => Err(Error::Shape(format!(
            "{what}: x {s:?} is not a non-empty [N, C, H, W]"
        ))),
    }
}

/// The bounds [C, 2] (lo, hi per channel) of the pixel range [0, 1] after the model's
/// normalisation (x − mean) / std.
pub fn pixel_bounds(mean: &[f32], std: &[f32]) -> Result<Vec<f32>> {
    if mean.len() != std.len() || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::Shape(format!(
            "normalisation needs one positive std per mean, got mean {mean:?} std {std:?}"
        )));
    }
    Ok(mean
        .iter()
        .zip(std)
        .flat_map(|(m, s)| [(0.0 - m) / s, (1.0 - m) / s])
        .collect())
}

/// x [N, C, H, W] clamped in place, channel c to [bounds[2c], bounds[2c + 1]].
pub fn clamp_channels(rec: &mut Recorder, x: &Tensor, bounds: &Tensor) -> Result<()> {
    let [n, c, h, w] = dims(x, "clamp_channels")?;
    if bounds.shape != [c, 2] {
        return Err(Error::Shape(format!(
            "clamp_channels: bounds {:?} are not [{c}, 2]",
            bounds.shape
        )));
    }
    let p = VisParams {
        items: u32s(n, "batch")?,
        channels: u32s(c, "channels")?,
        plane: u32s(h * w, "plane")?,
        ..Default::default()
    };
    rec.launch_1d(
        Kernel::ClampChannels,
        &p,
        &[Binding::Tensor(bounds), Binding::Tensor(x)],
        x.len(),
    );
    Ok(())
}

/// Which pixels Yosinski et al.'s clipping scores low.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clip {
    /// The pixel's norm over channels.
    Norm,
    /// |Σ_c x ∂a/∂x|: how much the objective would change were the pixel set to zero.
    Contribution,
}

/// Sets to 0 (every channel) the pixels of each item of x [N, C, H, W] whose score is
/// below the item's `pct`-th percentile (numpy's linear interpolation), in place. The
/// contribution needs the objective's gradient g (shaped like x).
pub fn clip_small(
    rec: &mut Recorder,
    x: &Tensor,
    how: Clip,
    g: Option<&Tensor>,
    pct: f32,
) -> Result<()> {
    let [n, c, h, w] = dims(x, "clip_small")?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(Error::input(
            "percentile",
            format!("{pct} is outside [0, 100]"),
        ));
    }
    let none;
    let g = match (how, g) {
        (Clip::Contribution, Some(g)) if g.shape == x.shape => g,
        (Clip::Contribution, _) => {
            return Err(Error::Shape(
                "clip_small: the contribution needs a gradient shaped like x".into(),
            ))
        }
        (Clip::Norm, _) => {
            none = Tensor::empty(rec.ctx(), &[1], "no gradient")?;
            &none
        }
    };
    if n > 65535 {
        return Err(Error::Shape(format!(
            "clip_small: {n} items exceed one launch's 65535"
        )));
    }
    super::map::distinct("clip_small", &[x, g])?;
    let scratch = Tensor::empty(rec.ctx(), &[n, h * w], "pixel scores")?;
    let p = VisParams {
        items: u32s(n, "batch")?,
        channels: u32s(c, "channels")?,
        plane: u32s(h * w, "plane")?,
        mode: (how == Clip::Contribution) as u32,
        pct,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(g),
        Binding::Tensor(x),
        Binding::Tensor(&scratch),
    ];
    rec.launch(Kernel::ClipSmall, &p, &bind, grid(p.items));
    Ok(())
}
