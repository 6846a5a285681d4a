//! Resampling on the device (kernels/resample.wgsl) and the adjoints backward passes need:
//! bilinear resize as F.interpolate(mode="bilinear", align_corners=False), separable
//! Gaussian blur with reflect padding, and per-item roll (translation jitter).

use bytemuck::{Pod, Zeroable};

use super::{dims4, u32s};
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ResampleParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    radius: u32,
    axis: u32,
    adjoint: u32,
    sigma: f32,
    channels: u32,
    replicate: u32,
    _pad: u32,
}

impl ResampleParams {
    /// N·C planes of h x w mapped to oh x ow (equal for the same-size maps).
    fn planes(planes: usize, hw: (usize, usize), out: (usize, usize)) -> Result<Self> {
        Ok(ResampleParams {
            planes: u32s(planes, "planes")?,
            h: u32s(hw.0, "height")?,
            w: u32s(hw.1, "width")?,
            oh: u32s(out.0, "height")?,
            ow: u32s(out.1, "width")?,
            ..Default::default()
        })
    }
}

/// The most taps a blur takes on each side.
pub const MAX_BLUR_RADIUS: usize = 1024;

fn bilinear_launch(
    rec: &mut Recorder,
    x: &Tensor,
    small: (usize, usize),
    big: (usize, usize),
    adjoint: bool,
) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&x.shape, "bilinear resize")?;
    let (from, to) = if adjoint { (big, small) } else { (small, big) };
    if (h, w) != from || to.0 == 0 || to.1 == 0 {
        return Err(Error::Shape(format!(
            "bilinear resize: cannot map {h}x{w} to {}x{}",
            to.0, to.1
        )));
    }
    let y = Tensor::empty(rec.ctx(), &[n, c, to.0, to.1], "resized planes")?;
    let p = ResampleParams {
        adjoint: adjoint as u32,
        ..ResampleParams::planes(n * c, small, big)?
    };
    rec.launch_1d(
        Kernel::Bilinear,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        y.len(),
    );
    Ok(y)
}

/// Every plane of x [N, C, h, w] resized to `size` (up or down), as
/// `F.interpolate(x, size, mode="bilinear", align_corners=False)`.
pub fn bilinear(rec: &mut Recorder, x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    let [_, _, h, w] = dims4(&x.shape, "bilinear resize")?;
    bilinear_launch(rec, x, (h, w), size, false)
}

/// The adjoint (transpose) of `bilinear` from `input_hw`: maps a gradient at the resized
/// size back to the input size.
pub fn bilinear_adjoint(
    rec: &mut Recorder,
    g: &Tensor,
    input_hw: (usize, usize),
) -> Result<Tensor> {
    let [_, _, h, w] = dims4(&g.shape, "bilinear adjoint")?;
    bilinear_launch(rec, g, input_hw, (h, w), true)
}

/// The blur radius netlens uses for a σ: ceil(3σ), at least 1.
pub fn blur_radius(sigma: f32) -> usize {
    ((3.0 * sigma).ceil() as usize).max(1)
}

/// How a blur pass reads past the plane's edge (the kernel's `replicate` field).
#[derive(Clone, Copy)]
enum Border {
    Reflect = 0,
    Replicate = 1,
    /// Taps outside add nothing (forward only).
    Zero = 2,
}

/// One separable pass along `axis` (0: x, 1: y); the adjoint reflects.
fn blur_pass(
    rec: &mut Recorder,
    x: &Tensor,
    (sigma, radius): (f32, usize),
    axis: u32,
    adjoint: bool,
    border: Border,
) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&x.shape, "blur")?;
    let y = Tensor::empty(rec.ctx(), &x.shape, "blurred planes")?;
    let p = ResampleParams {
        radius: radius as u32,
        axis,
        adjoint: adjoint as u32,
        sigma,
        replicate: border as u32,
        ..ResampleParams::planes(n * c, (h, w), (h, w))?
    };
    // the forward four outputs a thread (its taps read once for all four)
    let (kernel, threads) = match (adjoint, axis) {
        (true, _) => (Kernel::BlurAdjoint, y.len()),
        (false, 0) => (Kernel::Blur4, n * c * h * w.div_ceil(4)),
        (false, _) => (Kernel::Blur4, n * c * h.div_ceil(4) * w),
    };
    rec.launch_1d(
        kernel,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        threads,
    );
    Ok(y)
}

/// Both forward passes (x, then y) after checking σ and the radius.
fn blur_2d(
    rec: &mut Recorder,
    x: &Tensor,
    sigma: f32,
    radius: usize,
    border: Border,
) -> Result<Tensor> {
    blur_check(x, sigma, radius)?;
    let t = blur_pass(rec, x, (sigma, radius), 0, false, border)?;
    blur_pass(rec, &t, (sigma, radius), 1, false, border)
}

fn blur_check(x: &Tensor, sigma: f32, radius: usize) -> Result<()> {
    let [_, _, h, w] = dims4(&x.shape, "blur")?;
    if !(sigma.is_finite() && sigma > 0.0)
        || radius == 0
        || radius > MAX_BLUR_RADIUS
        || h == 0
        || w == 0
    {
        return Err(Error::Shape(format!(
            "blur needs sigma > 0 and 1 <= radius <= {MAX_BLUR_RADIUS}, got sigma {sigma}, radius {radius}"
        )));
    }
    Ok(())
}

/// Separable Gaussian blur of every plane: weights exp(-d²/2σ²) for d in -radius..=radius,
/// normalised, reflect padding (as torch's "reflect", repeated where the radius passes a
/// plane's size).
pub fn blur(rec: &mut Recorder, x: &Tensor, sigma: f32, radius: usize) -> Result<Tensor> {
    blur_2d(rec, x, sigma, radius, Border::Reflect)
}

/// As `blur` with the border replicated instead of reflected (the integrated-gradients and
/// occlusion `blur` baseline, as netlens has always made it).
pub fn blur_replicate(rec: &mut Recorder, x: &Tensor, sigma: f32, radius: usize) -> Result<Tensor> {
    blur_2d(rec, x, sigma, radius, Border::Replicate)
}

/// As `blur` with zeros outside the plane (TorchRay's `imsmooth`, padding "constant").
pub fn blur_zero(rec: &mut Recorder, x: &Tensor, sigma: f32, radius: usize) -> Result<Tensor> {
    blur_2d(rec, x, sigma, radius, Border::Zero)
}

/// Every plane mirrored left to right (torch.flip over W); its own adjoint.
pub fn flip_x(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&x.shape, "flip")?;
    let y = Tensor::empty(rec.ctx(), &x.shape, "flipped planes")?;
    let p = ResampleParams::planes(n * c, (h, w), (h, w))?;
    rec.launch_1d(
        Kernel::FlipX,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        y.len(),
    );
    Ok(y)
}

/// The adjoint (transpose) of `blur` with the same σ and radius.
pub fn blur_adjoint(rec: &mut Recorder, g: &Tensor, sigma: f32, radius: usize) -> Result<Tensor> {
    blur_check(g, sigma, radius)?;
    let t = blur_pass(rec, g, (sigma, radius), 1, true, Border::Reflect)?;
    blur_pass(rec, &t, (sigma, radius), 0, true, Border::Reflect)
}

/// Rolls item i of x [N, C, H, W] by offsets[i] = (dy, dx) (whole numbers, as torch.roll
/// over H and W); `adjoint` rolls back.
pub fn roll(rec: &mut Recorder, x: &Tensor, offsets: &Tensor, adjoint: bool) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&x.shape, "roll")?;
    if offsets.shape != [n, 2] {
        return Err(Error::Shape(format!(
            "roll: offsets {:?} are not [{n}, 2] (dy, dx per item)",
            offsets.shape
        )));
    }
    let y = Tensor::empty(rec.ctx(), &x.shape, "rolled planes")?;
    let p = ResampleParams {
        adjoint: adjoint as u32,
        channels: u32s(c.max(1), "channels")?,
        ..ResampleParams::planes(n * c, (h, w), (h, w))?
    };
    let bind = [
        Binding::Tensor(x),
        Binding::Tensor(&y),
        Binding::Tensor(offsets),
    ];
    rec.launch_1d(Kernel::Roll, &p, &bind, y.len());
    Ok(y)
}

/// Every plane of x [N, C, h, w] resized to `size` by nearest neighbour, as
/// `F.interpolate(x, size, mode="nearest")`.
pub fn nearest(rec: &mut Recorder, x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&x.shape, "nearest resize")?;
    if size.0 == 0 || size.1 == 0 || h == 0 || w == 0 {
        return Err(Error::Shape(format!(
            "nearest resize: cannot map {h}x{w} to {}x{}",
            size.0, size.1
        )));
    }
    let y = Tensor::empty(rec.ctx(), &[n, c, size.0, size.1], "resized planes")?;
    let p = ResampleParams::planes(n * c, (h, w), size)?;
    rec.launch_1d(
        Kernel::Nearest,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        y.len(),
    );
    Ok(y)
}
