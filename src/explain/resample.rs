//! Resampling maps to the input size (PyTorch's F.interpolate) and Gaussian blur.

use crate::array::Array;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsample {
    /// F.interpolate(mode='nearest'): source index floor(dst * in / out).
    Nearest,
    /// F.interpolate(mode='bilinear', align_corners=False).
    Bilinear,
}

impl std::str::FromStr for Upsample {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "nearest" => Ok(Upsample::Nearest),
            "bilinear" => Ok(Upsample::Bilinear),
            o => Err(crate::Error::input(
                "--upsample",
                format!("'{o}': use nearest or bilinear"),
            )),
        }
    }
}

/// Resizes every plane of an NCHW array to (oh, ow).
pub fn resize(a: &Array, oh: usize, ow: usize, mode: Upsample) -> Array {
    let [n, c, h, w] = [a.shape[0], a.shape[1], a.shape[2], a.shape[3]];
    let mut out = Vec::with_capacity(n * c * oh * ow);
    let (sy, sx) = (h as f64 / oh as f64, w as f64 / ow as f64);
    for plane in a.data.chunks(h * w) {
        for y in 0..oh {
            for x in 0..ow {
                let v = match mode {
                    Upsample::Nearest => {
                        let iy = ((y as f64 * sy).floor() as usize).min(h - 1);
                        let ix = ((x as f64 * sx).floor() as usize).min(w - 1);
                        plane[iy * w + ix]
                    }
                    Upsample::Bilinear => {
                        let src = |d: usize, s: f64, n: usize| {
                            let f = ((d as f64 + 0.5) * s - 0.5).max(0.0);
                            let i0 = (f.floor() as usize).min(n - 1);
                            let i1 = (i0 + 1).min(n - 1);
                            (i0, i1, f - i0 as f64)
                        };
                        let (y0, y1, fy) = src(y, sy, h);
                        let (x0, x1, fx) = src(x, sx, w);
                        let p = |yy: usize, xx: usize| plane[yy * w + xx] as f64;
                        ((1.0 - fy) * ((1.0 - fx) * p(y0, x0) + fx * p(y0, x1))
                            + fy * ((1.0 - fx) * p(y1, x0) + fx * p(y1, x1)))
                            as f32
                    }
                };
                out.push(v);
            }
        }
    }
    Array {
        shape: vec![n, c, oh, ow],
        data: out,
    }
}

/// Separable Gaussian blur of one h x w plane in place (borders replicate).
pub fn gaussian_blur(plane: &mut [f32], h: usize, w: usize, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f64> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * (sigma as f64).powi(2))).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    let pass = |src: &[f32], dst: &mut [f32], along_x: bool| {
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let d = j as isize - r;
                    let (yy, xx) = if along_x {
                        (y as isize, x as isize + d)
                    } else {
                        (y as isize + d, x as isize)
                    };
                    let yy = yy.clamp(0, h as isize - 1) as usize;
                    let xx = xx.clamp(0, w as isize - 1) as usize;
                    acc += kv * src[yy * w + xx] as f64;
                }
                dst[y * w + x] = (acc / sum) as f32;
            }
        }
    };
    let src = plane.to_vec();
    let mut tmp = vec![0f32; h * w];
    pass(&src, &mut tmp, true);
    pass(&tmp, plane, false);
}
