//! The up-sampling modes (the kernels are ops::resample) and the host Gaussian blur of
//! the `blur` baseline.

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
