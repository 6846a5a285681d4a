//! The mask games' settings, their defaults and their checked ranges.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::ops::objective::Objective;

/// Which region the mask looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Game {
    /// The smallest region whose deletion destroys the score: minimise
    /// λ₁·mean(1 − m) + λ₂·TV_β(m) + score(Φ).
    Deletion,
    /// The smallest region whose preservation alone keeps the score: minimise
    /// λ₁·mean(m) + λ₂·TV_β(m) − score(Φ).
    Preservation,
}

impl FromStr for Game {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "deletion" | "delete" => Ok(Game::Deletion),
            "preservation" | "preserve" => Ok(Game::Preservation),
            o => Err(Error::input(
                "--game",
                format!("'{o}': use deletion, preservation or extremal"),
            )),
        }
    }
}

/// What replaces the deleted pixels (η).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Perturbation {
    /// The input blurred by a Gaussian of this σ in pixels (border replicated, radius ⌈3σ⌉).
    Blur(f32),
    /// A constant in the model's input space; None: each item's channel means.
    Constant(Option<f32>),
    /// Gaussian noise N(0, σ²) in the model's input space, drawn once per run from the seed.
    Noise(f32),
}

/// The score the game drives down (deletion) or keeps up (preservation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// The target's softmax probability (the paper's).
    Prob,
    LogProb,
    Logit,
}

impl FromStr for Score {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "prob" => Ok(Score::Prob),
            "logprob" => Ok(Score::LogProb),
            "logit" => Ok(Score::Logit),
            o => Err(Error::input(
                "--score",
                format!("'{o}': use prob, logprob or logit"),
            )),
        }
    }
}

impl Score {
    pub(crate) fn objective(self) -> Objective {
        match self {
            Score::Prob => Objective::Prob,
            Score::LogProb => Objective::LogProb,
            Score::Logit => Objective::Logit,
        }
    }
}

/// Everything a meaningful-perturbation run needs. `MaskSettings::new` gives the defaults
/// for an input size; `check` states each range.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskSettings {
    pub game: Game,
    pub perturbation: Perturbation,
    pub score: Score,
    /// The mask is mask_size × mask_size cells, up-sampled bilinearly to the input.
    pub mask_size: usize,
    /// λ₁: weight of the mask's mean (deleted share for deletion, kept for preservation).
    pub l1: f32,
    /// λ₂: weight of TV_β, the mean over neighbouring cell pairs of |Δm|^β.
    pub tv: f32,
    pub tv_beta: f32,
    /// Adam's learning rate.
    pub lr: f32,
    pub iterations: usize,
    /// Each step rolls Φ by a random shift of up to this many pixels in y and x.
    pub jitter: usize,
    /// The mask's starting value.
    pub init: f32,
    pub seed: u64,
    /// An item is explainable when the target's probability on η is below this.
    pub explainable_below: f32,
    /// Return each item's best iterate (lowest objective seen) rather than the last one:
    /// a guard against masks that overshoot into a saturated region and drift. With
    /// jitter, only the unshifted steps (every `UNSHIFTED_EVERY`-th) count.
    pub keep_best: bool,
}

impl MaskSettings {
    /// The defaults for an h × w input. The paper's sizes scale with the side s = min(h, w):
    /// blur σ 10·s/224, jitter 4·s/224, mask s/8 cells but at least 16 (coarser masks
    /// cannot outline a shape: 28 at 224², 16 for the 64² demo model). The rest reproduce
    /// the paper's behaviour on the demo model (README, "Masks"): its softmax is saturated
    /// (p ≈ 1), which has no gradient at m = 1, so deletion starts from everything deleted
    /// (m = 0) and preservation from everything kept (m = 1); Adam's rate is 0.05 for
    /// preservation (300 steps) and 0.03 for deletion (500 steps), as faster masks overshoot
    /// into the saturated region and the L1 term then carries them to all kept (deletion)
    /// or all deleted (preservation); preservation scores the log-probability, whose
    /// gradient does not vanish as p falls.
    pub fn new(game: Game, (h, w): (usize, usize)) -> MaskSettings {
        let side = h.min(w);
        let (l1, score, init, lr, iterations) = match game {
            Game::Deletion => (2.56, Score::Prob, 0.0, 0.03, 500),
            Game::Preservation => (0.3, Score::LogProb, 1.0, 0.05, 300),
        };
        let sf = side as f32;
        MaskSettings {
            game,
            perturbation: Perturbation::Blur(10.0 * sf / 224.0),
            score,
            mask_size: (side / 8).max(16).min(side),
            l1,
            tv: 4.8,
            tv_beta: 3.0,
            lr,
            iterations,
            jitter: (4.0 * sf / 224.0).round() as usize,
            init,
            seed: 0,
            explainable_below: 0.5,
            keep_best: true,
        }
    }

    /// Every field's range, checked before any work starts.
    pub fn check(&self, h: usize, w: usize) -> Result<()> {
        let side = h.min(w);
        let bad = |flag: &str, msg: String| Err(Error::input(flag, msg));
        let weight = |v: f32| v.is_finite() && (0.0..=1e6).contains(&v);
        if self.mask_size == 0 || self.mask_size > side {
            return bad(
                "--mask-size",
                format!(
                    "{} must be in 1..={side} (the input's shorter side)",
                    self.mask_size
                ),
            );
        }
        if !weight(self.l1) || !weight(self.tv) {
            return bad(
                "--l1/--tv",
                format!("weights {} and {} must be in [0, 1e6]", self.l1, self.tv),
            );
        }
        if !(self.tv_beta.is_finite() && (1.0..=10.0).contains(&self.tv_beta)) {
            return bad("--tv-beta", format!("{} must be in [1, 10]", self.tv_beta));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0) {
            return bad("--lr", format!("{} must be in (0, 10]", self.lr));
        }
        if self.iterations == 0 || self.iterations > 100_000 {
            return bad(
                "--iterations",
                format!("{} must be in 1..=100000", self.iterations),
            );
        }
        if self.jitter > side / 2 {
            return bad(
                "--jitter",
                format!(
                    "{} px must be at most half the shorter side ({})",
                    self.jitter,
                    side / 2
                ),
            );
        }
        if !(self.init.is_finite() && (0.0..=1.0).contains(&self.init)) {
            return bad("--init", format!("{} must be in [0, 1]", self.init));
        }
        if !(self.explainable_below > 0.0 && self.explainable_below <= 1.0) {
            return bad(
                "--explainable-below",
                format!("{} must be in (0, 1]", self.explainable_below),
            );
        }
        match self.perturbation {
            Perturbation::Blur(s) if !(s.is_finite() && s > 0.0 && s <= side as f32) => {
                bad("--blur-sigma", format!("{s} must be in (0, {side}] pixels"))
            }
            Perturbation::Noise(s) if !(s.is_finite() && s > 0.0 && s <= 100.0) => {
                bad("--noise-sigma", format!("{s} must be in (0, 100]"))
            }
            Perturbation::Constant(Some(v)) if !v.is_finite() || v.abs() > 1e6 => bad(
                "--baseline",
                format!("{v} must be a finite number within ±1e6"),
            ),
            _ => Ok(()),
        }
    }
}
