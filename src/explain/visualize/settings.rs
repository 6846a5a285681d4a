//! Settings of activation maximisation, with each source's published defaults as presets.

use crate::error::{check_range, Error, Result};

/// How the image is updated each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// torch.optim.Adam(lr), ascending.
    Adam { lr: f32 },
    /// Plain gradient ascent x += lr · g (Simonyan's and Yosinski's update).
    Sgd { lr: f32 },
}

/// How the image is parametrised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Param {
    /// The image itself, in the model's input space, clamped to the pixel range.
    Pixel,
    /// Lucid's Fourier-space image: a half spectrum scaled by 1 / |f|^decay, inverse
    /// transformed (÷ 4), colour decorrelated (optionally) and squashed by a sigmoid.
    Fourier {
        /// The spectrum's decay power: 0 to 4 (Lucid: 1).
        decay: f32,
        /// σ of the spectrum's Gaussian start: (0, 10] (Lucid: 0.01).
        sd: f32,
        decorrelate: bool,
    },
}

/// Random transformations applied before each step's forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transforms {
    None,
    /// Lucent's standard_transforms: pad 12 with grey, jitter 8, scale 0.9–1.1, rotate
    /// −10°–10°, jitter 4 (one draw per step, shared by the batch).
    Standard,
}

/// A preset: where the defaults come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Simonyan et al. 2014: argmax S(I) − λ‖I‖² from the zero (mean) image; the paper
    /// names no optimiser or λ value, so: Adam, lr 0.05, λ 1e-4, 500 steps.
    Simonyan,
    /// Yosinski et al. 2015, the first row of the paper's table of regularisers: no decay,
    /// blur σ 0.5 every 4 steps, pixels under the 50th norm percentile clipped; gradient
    /// ascent.
    Yosinski,
    /// Lucid / Lucent's render_vis: Fourier-space image with decorrelated colour, the
    /// standard transforms, Adam 0.05, 512 steps, no L2.
    Lucid,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Preset> {
        match s {
            "simonyan" => Ok(Preset::Simonyan),
            "yosinski" => Ok(Preset::Yosinski),
            "lucid" => Ok(Preset::Lucid),
            _ => Err(Error::input(
                "--preset",
                format!("'{s}': use simonyan, yosinski or lucid"),
            )),
        }
    }
}

/// Everything a maximisation run needs besides the model and the objectives.
#[derive(Clone, Debug, PartialEq)]
pub struct MaximizeSettings {
    /// Image size (h, w) in pixels: 8 to 2048 each.
    pub size: (usize, usize),
    /// Steps: 1 to 100 000.
    pub steps: usize,
    pub optimizer: Optimizer,
    pub param: Param,
    pub transforms: Transforms,
    /// λ of the penalty λ‖x‖² on the input-space image: 0 to 10.
    pub l2: f32,
    /// Blur the image every this many steps (0: never).
    pub blur_every: usize,
    /// The blur's σ in pixels: 0 to 20 (0 with blur_every > 0 is refused).
    pub blur_sigma: f32,
    /// Clip pixels whose norm is under this percentile of the image's (0: off; < 100).
    pub clip_norm_pct: f32,
    /// Clip pixels whose |contribution| is under this percentile (0: off; < 100).
    pub clip_contrib_pct: f32,
    /// Random shift of the image each step, up to this many pixels (0: off).
    pub jitter: usize,
    /// σ of the Gaussian start in input space (0: the mean image).
    pub init_noise: f32,
    pub seed: u64,
}

impl MaximizeSettings {
    /// A preset's settings at an image size.
    pub fn preset(p: Preset, size: (usize, usize)) -> MaximizeSettings {
        let base = MaximizeSettings {
            size,
            steps: 500,
            optimizer: Optimizer::Adam { lr: 0.05 },
            param: Param::Pixel,
            transforms: Transforms::None,
            l2: 1e-4,
            blur_every: 0,
            blur_sigma: 0.0,
            clip_norm_pct: 0.0,
            clip_contrib_pct: 0.0,
            jitter: 0,
            init_noise: 0.0,
            seed: 0,
        };
        match p {
            Preset::Simonyan => base,
            Preset::Yosinski => MaximizeSettings {
                optimizer: Optimizer::Sgd { lr: 1.0 },
                l2: 0.0,
                blur_every: 4,
                blur_sigma: 0.5,
                clip_norm_pct: 50.0,
                ..base
            },
            Preset::Lucid => MaximizeSettings {
                steps: 512,
                param: Param::Fourier {
                    decay: 1.0,
                    sd: 0.01,
                    decorrelate: true,
                },
                transforms: Transforms::Standard,
                l2: 0.0,
                ..base
            },
        }
    }

    /// Refuses settings outside their stated ranges.
    pub fn check(&self) -> Result<()> {
        let range = |what: &str, v: f32, lo: f32, hi: f32| check_range(what, v, lo, hi, false);
        let (h, w) = self.size;
        if !(8..=2048).contains(&h) || !(8..=2048).contains(&w) {
            return Err(Error::input(
                "--size",
                format!("{h}x{w}: each side must be 8 to 2048"),
            ));
        }
        if !(1..=100_000).contains(&self.steps) {
            return Err(Error::input(
                "--steps",
                format!("{} is outside [1, 100000]", self.steps),
            ));
        }
        match self.optimizer {
            Optimizer::Adam { lr } | Optimizer::Sgd { lr } => range("--lr", lr, 1e-8, 1e4)?,
        }
        range("--l2", self.l2, 0.0, 10.0)?;
        range("--blur-sigma", self.blur_sigma, 0.0, 20.0)?;
        if self.blur_every > 0 && self.blur_sigma == 0.0 {
            return Err(Error::input(
                "--blur-sigma",
                "blurring every few steps needs σ > 0",
            ));
        }
        range("--clip-norm-pct", self.clip_norm_pct, 0.0, 99.9)?;
        range("--clip-contrib-pct", self.clip_contrib_pct, 0.0, 99.9)?;
        range("--init-noise", self.init_noise, 0.0, 10.0)?;
        if let Param::Fourier { decay, sd, .. } = self.param {
            range("--decay", decay, 0.0, 4.0)?;
            range("--init-sd", sd, 1e-6, 10.0)?;
            let pixel_only = self.blur_every > 0
                || self.clip_norm_pct > 0.0
                || self.clip_contrib_pct > 0.0
                || self.jitter > 0
                || self.init_noise > 0.0;
            if pixel_only {
                return Err(Error::input(
                    "--param",
                    "blur, clipping, --jitter and --init-noise act on pixel images; with fft use --transforms standard",
                ));
            }
        }
        if 2 * self.jitter >= h.min(w) {
            return Err(Error::input(
                "--jitter",
                format!("{} px is not below half the {h}x{w} image", self.jitter),
            ));
        }
        Ok(())
    }
}
