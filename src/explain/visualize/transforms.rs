//! Lucid's transformation robustness as device warps: Lucent's `standard_transforms` (pad
//! 12 px with grey, jitter by up to 7 px, scale by 0.9 to 1.1, rotate by −10° to 10°, jitter
//! by up to 3 px), each an affine warp whose adjoint the backward pass runs in reverse.

use crate::data::rng::Rng;
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::ops::fourier::{warp, warp_adjoint, Affine};

/// Lucent's random scales: 1 + (i − 5) / 50 for i in 0..11.
pub fn scale_of(index: usize) -> f64 {
    1.0 + (index as f64 - 5.0) / 50.0
}

/// Lucent's angles: −10..=10 degrees, and 0 five more times.
const ANGLES: usize = 26;

/// One draw of the standard transforms (one per step, shared by the batch, as in Lucent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    /// The first jitter's shift (x, y), each in 0..8.
    pub jitter8: (usize, usize),
    /// Index into the scales.
    pub scale: usize,
    /// Degrees, counter-clockwise.
    pub angle: i32,
    /// The second jitter's shift (x, y), each in 0..4.
    pub jitter4: (usize, usize),
}

impl Draw {
    pub fn sample(rng: &mut Rng) -> Draw {
        let jitter8 = (rng.below(8), rng.below(8));
        let scale = rng.below(11);
        let a = rng.below(ANGLES) as i32;
        let angle = if a <= 20 { a - 10 } else { 0 };
        let jitter4 = (rng.below(4), rng.below(4));
        Draw {
            jitter8,
            scale,
            angle,
            jitter4,
        }
    }

    /// The warps, in order: (map, output size, fill) from an input of size `hw`.
    pub fn warps(&self, hw: (usize, usize)) -> Vec<(Affine, (usize, usize), f32)> {
        let (h, w) = (hw.0 + 24, hw.1 + 24);
        let mut v = vec![(Affine::shift(-12.0, -12.0), (h, w), 0.5)];
        // kornia's translate: the content moves by (dx, dy), zeros come in
        let (dx, dy) = self.jitter8;
        v.push((Affine::shift(-(dx as f32), -(dy as f32)), (h, w), 0.0));
        // bilinear resize (align_corners) to ceil(s · size), then zero padding as Lucent
        // pads: [pad_y, pad_x] * 2, i.e. left and top pad_y, right and bottom pad_x
        let s = scale_of(self.scale);
        let (sh, sw) = (
            (s * h as f64).ceil() as usize,
            (s * w as f64).ceil() as usize,
        );
        let pad_x = ((w as f64 - sw as f64) / 2.0).ceil().max(0.0) as usize;
        let pad_y = ((h as f64 - sh as f64) / 2.0).ceil().max(0.0) as usize;
        let (rx, ry) = (
            (w - 1) as f64 / (sw - 1) as f64,
            (h - 1) as f64 / (sh - 1) as f64,
        );
        let out = (sh + pad_y + pad_x, sw + pad_y + pad_x);
        v.push((
            Affine([
                rx as f32,
                0.0,
                (-(pad_y as f64) * rx) as f32,
                0.0,
                ry as f32,
                (-(pad_y as f64) * ry) as f32,
            ]),
            out,
            0.0,
        ));
        // kornia's rotate about the centre: dst = M src with M = [[c, s, tx], [-s, c, ty]]
        let (oh, ow) = out;
        let (cx, cy) = ((ow as f64 - 1.0) / 2.0, (oh as f64 - 1.0) / 2.0);
        let t = (self.angle as f64).to_radians();
        let (c, sn) = (t.cos(), t.sin());
        let (tx, ty) = ((1.0 - c) * cx - sn * cy, sn * cx + (1.0 - c) * cy);
        // src = M⁻¹ (dst − t), M⁻¹ = [[c, −s], [s, c]]
        v.push((
            Affine([
                c as f32,
                -sn as f32,
                (-(c * tx) + sn * ty) as f32,
                sn as f32,
                c as f32,
                (-(sn * tx) - c * ty) as f32,
            ]),
            out,
            0.0,
        ));
        let (dx, dy) = self.jitter4;
        v.push((Affine::shift(-(dx as f32), -(dy as f32)), out, 0.0));
        v
    }
}

/// The warped images and what their adjoint needs.
pub struct Applied {
    pub output: Tensor,
    steps: Vec<(Affine, (usize, usize))>,
}

/// Applies a draw's warps to pixel images x [N, C, H, W].
pub fn apply(rec: &mut Recorder, x: &Tensor, draw: &Draw) -> Result<Applied> {
    let mut cur = x.clone();
    let mut steps = Vec::new();
    for (a, out, fill) in draw.warps((x.shape[2], x.shape[3])) {
        steps.push((a, (cur.shape[2], cur.shape[3])));
        cur = warp(rec, &cur, &a, out, fill)?;
    }
    Ok(Applied { output: cur, steps })
}

impl Applied {
    /// The gradient at the untransformed images from the gradient at the output.
    pub fn adjoint(&self, rec: &mut Recorder, g: &Tensor) -> Result<Tensor> {
        let mut g = g.clone();
        for (a, input) in self.steps.iter().rev() {
            g = warp_adjoint(rec, &g, a, *input)?;
        }
        Ok(g)
    }
}
