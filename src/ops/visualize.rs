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

/// The k best (value, image, position) of each channel seen so far, on the device.
pub struct TopList {
    /// [C, k], best first.
    pub values: Tensor,
    /// [C, k, 2] u32: (image, position in the plane); image 0xffffffff marks an empty slot.
    pub index: Tensor,
    pub k: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct TopParams {
    items: u32,
    channels: u32,
    plane: u32,
    k: u32,
    base: u32,
    _pad: [u32; 3],
}

impl TopList {
    /// An empty list of k (1 to 1024) slots per channel.
    pub fn new(ctx: &crate::gpu::Context, channels: usize, k: usize) -> Result<TopList> {
        if !(1..=1024).contains(&k) {
            return Err(Error::input("--k", format!("{k} is outside [1, 1024]")));
        }
        Ok(TopList {
            values: Tensor::upload(ctx, &vec![0.0; channels * k], &[channels, k])?,
            index: Tensor::upload_u32(ctx, &vec![u32::MAX; channels * k * 2], &[channels, k, 2])?,
            k,
        })
    }

    /// Merges the activations x [B, C, H, W] (or [B, F]) of images base .. base + B.
    pub fn merge(&self, rec: &mut Recorder, x: &Tensor, base: usize) -> Result<TopList> {
        let (b, c) = (x.shape[0], x.shape.get(1).copied().unwrap_or(0));
        let plane: usize = x.shape[2..].iter().product();
        if self.values.shape != [c, self.k] || b == 0 {
            return Err(Error::Shape(format!(
                "top patches: activations {:?} do not fit a list of {:?}",
                x.shape, self.values.shape
            )));
        }
        if c > 65535 || base + b >= u32::MAX as usize {
            return Err(Error::Shape(format!(
                "top patches: {c} channels or {} images are too many",
                base + b
            )));
        }
        let out = TopList {
            values: Tensor::empty(rec.ctx(), &[c, self.k], "top values")?,
            index: Tensor::empty_u32(rec.ctx(), &[c, self.k, 2], "top positions")?,
            k: self.k,
        };
        let p = TopParams {
            items: u32s(b, "batch")?,
            channels: u32s(c, "channels")?,
            plane: u32s(plane.max(1), "plane")?,
            k: self.k as u32,
            base: u32s(base, "image index")?,
            ..Default::default()
        };
        let bind = [
            Binding::Tensor(x),
            Binding::Tensor(&self.values),
            Binding::Tensor(&self.index),
            Binding::Tensor(&out.values),
            Binding::Tensor(&out.index),
        ];
        rec.launch(Kernel::UnitTopK, &p, &bind, grid(p.channels));
        Ok(out)
    }
}

/// y = x · ab[c, 0] + ab[c, 1] per channel of x [N, C, H, W] (the model's normalisation
/// with ab = (1/std, −mean/std), its adjoint with (1/std, 0)).
pub fn channel_affine(rec: &mut Recorder, x: &Tensor, ab: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = dims(x, "channel_affine")?;
    if ab.shape != [c, 2] {
        return Err(Error::Shape(format!(
            "channel_affine: {:?} is not [{c}, 2]",
            ab.shape
        )));
    }
    let y = Tensor::empty(rec.ctx(), &x.shape, "channel affine")?;
    let p = VisParams {
        items: u32s(n, "batch")?,
        channels: u32s(c, "channels")?,
        plane: u32s(h * w, "plane")?,
        ..Default::default()
    };
    rec.launch_1d(
        Kernel::ChannelAffine,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(ab), Binding::Tensor(&y)],
        x.len(),
    );
    Ok(y)
}
