//! Lucid's Fourier-space image (kernels/fourier.wgsl) and affine warps
//! (kernels/warp.wgsl), each with the adjoint a backward pass needs.

use bytemuck::{Pod, Zeroable};

use super::{dims4, u32s};
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use crate::gpu::{Kernel, Recorder, Tensor};

/// Lucid's colour correlation (the square root of ImageNet's colour covariance).
pub const COLOR_CORRELATION_SVD_SQRT: [[f32; 3]; 3] =
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// The matrix Lucid decorrelates with: the correlation divided by its largest column norm.
pub fn color_matrix() -> [f32; 9] {
    let m = COLOR_CORRELATION_SVD_SQRT;
    let max = (0..3)
        .map(|k| (0..3).map(|c| (m[c][k] as f64).powi(2)).sum::<f64>().sqrt())
        .fold(0.0, f64::max);
    let mut out = [0f32; 9];
    for c in 0..3 {
        for k in 0..3 {
            out[3 * c + k] = (m[c][k] as f64 / max) as f32;
        }
    }
    out
}

/// Lucid's per-frequency scale [h, w / 2 + 1]: 1 / max(|f|, 1 / max(h, w))^decay, f from
/// numpy's fftfreq.
pub fn spectrum_scale(h: usize, w: usize, decay: f32) -> Vec<f32> {
    let freq = |k: usize, n: usize| {
        let k = k as f64;
        let n = n as f64;
        if k < (n / 2.0).ceil() {
            k / n
        } else {
            (k - n) / n
        }
    };
    let w2 = w / 2 + 1;
    let floor = 1.0 / h.max(w) as f64;
    (0..h * w2)
        .map(|i| {
            let (fy, fx) = (freq(i / w2, h), freq(i % w2, w));
            (1.0 / (fx * fx + fy * fy).sqrt().max(floor).powf(decay as f64)) as f32
        })
        .collect()
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct FourierParams {
    planes: u32,
    h: u32,
    w: u32,
    w2: u32,
    a: f32,
    _pad: [u32; 3],
}

fn spectrum_dims(p: &Tensor, hw: (usize, usize), scale: &Tensor) -> Result<(usize, FourierParams)> {
    let (h, w) = hw;
    let w2 = w / 2 + 1;
    let planes = match p.shape.as_slice() {
        [n, c, sh, sw, 2] if (*sh, *sw) == (h, w2) && n * c > 0 => n * c,
        s => {
            return Err(Error::Shape(format!(
                "a {h}x{w} image's half spectrum is [N, C, {h}, {w2}, 2], got {s:?}"
            )))
        }
    };
    if scale.shape != [h, w2] {
        return Err(Error::Shape(format!(
            "spectrum scale {:?} is not [{h}, {w2}]",
            scale.shape
        )));
    }
    let params = FourierParams {
        planes: u32s(planes, "planes")?,
        h: u32s(h, "height")?,
        w: u32s(w, "width")?,
        w2: w2 as u32,
        a: 1.0 / (4.0 * ((h * w) as f32).sqrt()),
        ..Default::default()
    };
    Ok((planes, params))
}

/// irfftn(scale ⊙ P, s=(h, w), norm="ortho") / 4 of a half spectrum P [N, C, h, w/2+1, 2].
pub fn spectrum_image(
    rec: &mut Recorder,
    p: &Tensor,
    scale: &Tensor,
    hw: (usize, usize),
) -> Result<Tensor> {
    let (_, params) = spectrum_dims(p, hw, scale)?;
    let t = Tensor::empty(rec.ctx(), &p.shape, "column transform")?;
    let bind = [
        Binding::Tensor(p),
        Binding::Tensor(scale),
        Binding::Tensor(&t),
    ];
    rec.launch_1d(Kernel::FftCols, &params, &bind, t.len() / 2);
    let (n, c) = (p.shape[0], p.shape[1]);
    let x = Tensor::empty(rec.ctx(), &[n, c, hw.0, hw.1], "spectrum image")?;
    rec.launch_1d(
        Kernel::FftRows,
        &params,
        &[Binding::Tensor(&t), Binding::Tensor(&x)],
        x.len(),
    );
    Ok(x)
}

/// The adjoint of `spectrum_image`: the gradient at P from the gradient g [N, C, h, w].
pub fn spectrum_image_adjoint(rec: &mut Recorder, g: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&g.shape, "spectrum adjoint")?;
    let shape = [n, c, h, w / 2 + 1, 2];
    let gt = Tensor::empty(rec.ctx(), &shape, "column gradient")?;
    let (_, params) = spectrum_dims(&gt, (h, w), scale)?;
    rec.launch_1d(
        Kernel::FftRowsAdjoint,
        &params,
        &[Binding::Tensor(g), Binding::Tensor(&gt)],
        gt.len() / 2,
    );
    let gp = Tensor::empty(rec.ctx(), &shape, "spectrum gradient")?;
    let bind = [
        Binding::Tensor(&gt),
        Binding::Tensor(scale),
        Binding::Tensor(&gp),
    ];
    rec.launch_1d(Kernel::FftColsAdjoint, &params, &bind, gp.len() / 2);
    Ok(gp)
}

fn color_params(v: &Tensor, m: &Tensor) -> Result<FourierParams> {
    let [n, c, h, w] = dims4(&v.shape, "colour")?;
    if c != 3 || m.shape != [3, 3] {
        return Err(Error::Shape(format!(
            "decorrelated colour needs [N, 3, H, W] and a 3x3 matrix, got {:?} and {:?}",
            v.shape, m.shape
        )));
    }
    Ok(FourierParams {
        planes: u32s(n, "batch")?,
        h: u32s(h, "height")?,
        w: u32s(w, "width")?,
        ..Default::default()
    })
}

/// sigmoid(M v) per pixel of v [N, 3, H, W]: pixels in [0, 1].
pub fn color_sigmoid(rec: &mut Recorder, v: &Tensor, m: &Tensor) -> Result<Tensor> {
    let params = color_params(v, m)?;
    let out = Tensor::empty(rec.ctx(), &v.shape, "pixels")?;
    let bind = [
        Binding::Tensor(v),
        Binding::Tensor(m),
        Binding::Tensor(&out),
    ];
    rec.launch_1d(Kernel::ColorSigmoid, &params, &bind, v.len() / 3);
    Ok(out)
}

/// The adjoint of `color_sigmoid` at its output `pix`: the gradient at v from g at pix.
pub fn color_sigmoid_adjoint(
    rec: &mut Recorder,
    g: &Tensor,
    pix: &Tensor,
    m: &Tensor,
) -> Result<Tensor> {
    let params = color_params(g, m)?;
    if pix.shape != g.shape {
        return Err(Error::Shape(
            "colour adjoint: pixels and gradient differ in shape".into(),
        ));
    }
    let out = Tensor::empty(rec.ctx(), &g.shape, "colour gradient")?;
    let bind = [
        Binding::Tensor(g),
        Binding::Tensor(m),
        Binding::Tensor(&out),
        Binding::Tensor(pix),
    ];
    rec.launch_1d(Kernel::ColorSigmoidAdjoint, &params, &bind, g.len() / 3);
    Ok(out)
}

/// An affine map from output pixel (x, y) to the input point it samples:
/// (sx, sy) = (m[0] x + m[1] y + m[2], m[3] x + m[4] y + m[5]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine(pub [f32; 6]);

impl Affine {
    /// A shift: output (x, y) samples input (x + dx, y + dy).
    pub fn shift(dx: f32, dy: f32) -> Affine {
        Affine([1.0, 0.0, dx, 0.0, 1.0, dy])
    }

    fn inverse_linear(&self) -> Result<[f32; 4]> {
        let m = self.0;
        let det = m[0] as f64 * m[4] as f64 - m[1] as f64 * m[3] as f64;
        if !(det.abs() > 1e-12 && m.iter().all(|v| v.is_finite())) {
            return Err(Error::Shape(format!(
                "warp: {m:?} is not an invertible affine map"
            )));
        }
        Ok([
            (m[4] as f64 / det) as f32,
            (-m[1] as f64 / det) as f32,
            (-m[3] as f64 / det) as f32,
            (m[0] as f64 / det) as f32,
        ])
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct WarpParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    _pad: [u32; 3],
    m: [f32; 4],
    n: [f32; 4],
    inv: [f32; 4],
}

fn warp_params(
    planes: usize,
    hw: (usize, usize),
    out: (usize, usize),
    a: &Affine,
    fill: f32,
) -> Result<WarpParams> {
    if hw.0 * hw.1 * out.0 * out.1 == 0 || !fill.is_finite() {
        return Err(Error::Shape(format!(
            "warp: cannot map {hw:?} to {out:?} (fill {fill})"
        )));
    }
    let inv = a.inverse_linear()?;
    let m = a.0;
    Ok(WarpParams {
        planes: u32s(planes, "planes")?,
        h: u32s(hw.0, "height")?,
        w: u32s(hw.1, "width")?,
        oh: u32s(out.0, "height")?,
        ow: u32s(out.1, "width")?,
        m: [m[0], m[1], m[2], m[3]],
        n: [m[4], m[5], fill, 0.0],
        inv,
        ..Default::default()
    })
}

/// Every plane of x [N, C, h, w] warped to `out` (oh, ow): bilinear samples at `a`'s
/// points, taps outside the input reading `fill`.
pub fn warp(
    rec: &mut Recorder,
    x: &Tensor,
    a: &Affine,
    out: (usize, usize),
    fill: f32,
) -> Result<Tensor> {
    let [n, c, h, w] = dims4(&x.shape, "warp")?;
    let p = warp_params(n * c, (h, w), out, a, fill)?;
    let y = Tensor::empty(rec.ctx(), &[n, c, out.0, out.1], "warped planes")?;
    rec.launch_1d(
        Kernel::Warp,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&y)],
        y.len(),
    );
    Ok(y)
}

/// The adjoint of `warp` (the fill is a constant: no gradient): g [N, C, oh, ow] to the
/// input size `input` (h, w).
pub fn warp_adjoint(
    rec: &mut Recorder,
    g: &Tensor,
    a: &Affine,
    input: (usize, usize),
) -> Result<Tensor> {
    let [n, c, oh, ow] = dims4(&g.shape, "warp adjoint")?;
    let p = warp_params(n * c, input, (oh, ow), a, 0.0)?;
    let y = Tensor::empty(rec.ctx(), &[n, c, input.0, input.1], "warp gradient")?;
    rec.launch_1d(
        Kernel::WarpAdjoint,
        &p,
        &[Binding::Tensor(g), Binding::Tensor(&y)],
        y.len(),
    );
    Ok(y)
}
