//! `netlens mask MODEL INPUT... --game deletion|preservation`: learned perturbation masks.

use std::path::PathBuf;

use serde_json::json;

use crate::array::Array;
use crate::error::{Error, Result};
use crate::explain::mask::extremal::{extremal_perturbation, ExtremalSettings, Pyramid, Variant};
use crate::explain::mask::{meaningful_perturbation, Game, MaskSettings, Masks, Perturbation};
use crate::explain::Target;
use crate::io;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// Images (PNG/JPEG) or .npy float32 [N, C, H, W]; all must share one size
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// deletion (the smallest region whose removal destroys the score), preservation
    /// (the smallest region that alone keeps it), or extremal (TorchRay's extremal
    /// perturbations: the region of a given area that keeps the score highest)
    #[arg(long, default_value = "deletion")]
    game: String,
    /// extremal: target areas, comma-separated, each in (0, 1); one mask per item and area
    #[arg(long, value_delimiter = ',', default_value = "0.1")]
    area: Vec<f32>,
    /// extremal: preserve, delete or dual
    #[arg(long, default_value = "preserve")]
    variant: String,
    /// extremal: pyramid levels, in 2..=64
    #[arg(long, default_value_t = 8)]
    levels: usize,
    /// extremal: parameter cell every STEP pixels (default 7 · side / 224)
    #[arg(long)]
    step: Option<usize>,
    /// extremal: width σ of each cell's bump in pixels (default 21 · side / 224)
    #[arg(long, allow_negative_numbers = true)]
    sigma: Option<f32>,
    /// extremal: starting weight of the area regulariser, in [0, 1e6] (TorchRay: 300)
    #[arg(long, allow_negative_numbers = true)]
    regul_weight: Option<f32>,
    /// extremal: the area weight's growth per step, in [1, 1.1] (default 1.007; TorchRay:
    /// 1.0035)
    #[arg(long, allow_negative_numbers = true)]
    regul_growth: Option<f32>,
    /// extremal: no horizontal flip every other step
    #[arg(long)]
    no_jitter: bool,
    /// Class to explain (default: each input's top class)
    #[arg(long)]
    target: Option<usize>,
    /// What replaces deleted pixels: blur, constant or noise (extremal: blur or fade)
    #[arg(long, default_value = "blur")]
    perturbation: String,
    /// blur: σ in pixels (default 10 · side / 224), in (0, side]; extremal: the pyramid's
    /// largest σ (default 20 · side / 224)
    #[arg(long, allow_negative_numbers = true)]
    blur_sigma: Option<f32>,
    /// constant: mean (each channel's image mean) or a number in the model's input space
    #[arg(long, default_value = "mean", allow_hyphen_values = true)]
    baseline: String,
    /// noise: σ of the Gaussian noise in the model's input space, in (0, 100]
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    noise_sigma: f32,
    /// The score: prob (softmax probability), logprob or logit (default: deletion prob,
    /// preservation logprob)
    #[arg(long)]
    score: Option<String>,
    /// Mask side in cells (default side / 8, at least 16), in 1..=side
    #[arg(long)]
    mask_size: Option<usize>,
    /// λ₁, weight of the mask's mean, in [0, 1e6] (default: deletion 2.56, preservation 0.3)
    #[arg(long, allow_negative_numbers = true)]
    l1: Option<f32>,
    /// λ₂, weight of TV_β (mean over neighbouring cells of |Δm|^β), in [0, 1e6] (default 4.8)
    #[arg(long, allow_negative_numbers = true)]
    tv: Option<f32>,
    /// β of the total variation, in [1, 10]
    #[arg(long, default_value_t = 3.0, allow_negative_numbers = true)]
    tv_beta: f32,
    /// Learning rate, in (0, 10] (default: Adam 0.03 deletion, 0.05 preservation; extremal: SGD 0.01)
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Iterations, in 1..=100000 (default: deletion 500, preservation 300, extremal 800)
    #[arg(long)]
    iterations: Option<usize>,
    /// Random shift per step in pixels (default 4 · side / 224), at most side / 2
    #[arg(long)]
    jitter: Option<usize>,
    /// The mask's starting value in [0, 1] (default: deletion 0, preservation 1)
    #[arg(long, allow_negative_numbers = true)]
    init: Option<f32>,
    /// Seed of the jitter and the noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// An item is explainable when its target's probability on the fully perturbed input
    /// is below this, in (0, 1]
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    explainable_below: f32,
    /// Return the last iterate, not each item's best (lowest objective seen; with jitter,
    /// among the unshifted steps, every 4th)
    #[arg(long)]
    last_iterate: bool,
    /// The final masks at input resolution, float32 [N, 1, H, W] in [0, 1], 1 = kept
    #[arg(long, value_name = "MASK.npy")]
    out: Option<PathBuf>,
    /// Φ(x₀; m) in the model's input space, float32 [N, C, H, W]
    #[arg(long, value_name = "OUT.npy")]
    perturbed: Option<PathBuf>,
    /// Per item: target, probabilities, kept area, explainability, loss and probability curves
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// A PNG figure: each input and its explanation (deleted region for deletion, kept
    /// region for preservation)
    #[arg(long, value_name = "FIG.png")]
    heatmap: Option<PathBuf>,
    /// Draw the explanation over the (greyed) input
    #[arg(long)]
    overlay: bool,
    /// A PNG of the loss and the target's probability per iteration, one line per item
    #[arg(long, value_name = "FIG.png")]
    curves: Option<PathBuf>,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
}

fn settings(a: &Args, game: Game, hw: (usize, usize)) -> Result<MaskSettings> {
    let mut s = MaskSettings::new(game, hw);
    s.perturbation = match a.perturbation.as_str() {
        "blur" => match (a.blur_sigma, s.perturbation) {
            (Some(v), _) => Perturbation::Blur(v),
            (None, p) => p,
        },
        "constant" => match a.baseline.as_str() {
            "mean" => Perturbation::Constant(None),
            v => Perturbation::Constant(Some(v.parse().map_err(|_| {
                Error::input("--baseline", format!("'{v}': use mean or a number"))
            })?)),
        },
        "noise" => Perturbation::Noise(a.noise_sigma),
        o => {
            return Err(Error::input(
                "--perturbation",
                format!("'{o}': use blur, constant or noise"),
            ))
        }
    };
    if let Some(v) = &a.score {
        s.score = v.parse()?;
    }
    s.mask_size = a.mask_size.unwrap_or(s.mask_size);
    s.l1 = a.l1.unwrap_or(s.l1);
    s.tv = a.tv.unwrap_or(s.tv);
    s.tv_beta = a.tv_beta;
    s.lr = a.lr.unwrap_or(s.lr);
    s.iterations = a.iterations.unwrap_or(s.iterations);
    s.jitter = a.jitter.unwrap_or(s.jitter);
    s.init = a.init.unwrap_or(s.init);
    s.seed = a.seed;
    s.explainable_below = a.explainable_below;
    s.keep_best = !a.last_iterate;
    s.check(hw.0, hw.1)?;
    Ok(s)
}

fn bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template("mask {bar:30} {pos}/{len} steps {elapsed}")
            .unwrap(),
    );
    b
}

fn extremal_settings(a: &Args, hw: (usize, usize)) -> Result<ExtremalSettings> {
    let variant = match a.variant.as_str() {
        "preserve" => Variant::Preserve,
        "delete" => Variant::Delete,
        "dual" => Variant::Dual,
        o => {
            return Err(Error::input(
                "--variant",
                format!("'{o}': use preserve, delete or dual"),
            ))
        }
    };
    let mut s = ExtremalSettings::new(variant, hw);
    s.pyramid = match a.perturbation.as_str() {
        "blur" => Pyramid::Blur,
        "fade" => Pyramid::Fade,
        o => {
            return Err(Error::input(
                "--perturbation",
                format!("'{o}': extremal perturbations use blur or fade"),
            ))
        }
    };
    s.areas = a.area.clone();
    s.levels = a.levels;
    s.max_blur = a.blur_sigma.unwrap_or(s.max_blur);
    s.step = a.step.unwrap_or(s.step);
    s.sigma = a.sigma.unwrap_or(s.sigma);
    s.iterations = a.iterations.unwrap_or(s.iterations);
    s.lr = a.lr.unwrap_or(s.lr);
    s.regul_weight = a.regul_weight.unwrap_or(s.regul_weight);
    s.regul_growth = a.regul_growth.unwrap_or(s.regul_growth);
    s.jitter = !a.no_jitter;
    s.explainable_below = a.explainable_below;
    s.check(hw.0, hw.1)?;
    Ok(s)
}

/// What the outputs need to know about the run.
pub(crate) struct Run {
    deletion: bool,
    extremal: bool,
    settings: String,
}

/// Every numeric flag in its range, whether or not this game reads it, so that a typo
/// never passes silently.
fn check_flags(a: &Args) -> Result<()> {
    use crate::error::check_range;
    for &v in &a.area {
        if !(v.is_finite() && v > 0.0 && v < 1.0) {
            return Err(Error::input("--area", format!("{v} must be in (0, 1)")));
        }
    }
    if !(2..=64).contains(&a.levels) {
        return Err(Error::input(
            "--levels",
            format!("{} must be in 2..=64", a.levels),
        ));
    }
    if a.step == Some(0) {
        return Err(Error::input("--step", "must be at least 1 pixel"));
    }
    if let Some(v) = a.sigma {
        check_range("--sigma", v, 0.0, 1000.0, true)?;
    }
    if let Some(v) = a.blur_sigma {
        check_range("--blur-sigma", v, 0.0, 4096.0, true)?;
    }
    if let Some(v) = a.regul_weight {
        check_range("--regul-weight", v, 0.0, 1e6, false)?;
    }
    if let Some(v) = a.regul_growth {
        check_range("--regul-growth", v, 1.0, 1.1, false)?;
    }
    if a.baseline != "mean" {
        let v: f32 = a.baseline.parse().map_err(|_| {
            Error::input(
                "--baseline",
                format!("'{}': use mean or a number", a.baseline),
            )
        })?;
        check_range("--baseline", v, -1e6, 1e6, false)?;
    }
    check_range("--noise-sigma", a.noise_sigma, 0.0, 100.0, true)
}

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    check_flags(&a)?;
    let extremal = a.game == "extremal";
    let game: Game = if extremal {
        Game::Preservation
    } else {
        a.game.parse()?
    };
    let outputs = [&a.out, &a.perturbed, &a.json, &a.heatmap, &a.curves];
    super::refuse_existing(
        outputs.into_iter().flatten().map(|p| p.as_path()),
        a.overwrite,
    )?;
    let model = super::load_model(&a.model)?;
    let x = super::load_inputs(&a.inputs, &model.meta)?;
    let hw = (x.shape[2], x.shape[3]);
    let target = a.target.map_or(Target::Argmax, Target::Class);
    let progress = bar(0);
    let (net, r, run) = if extremal {
        let s = extremal_settings(&a, hw)?;
        let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
        let r = extremal_perturbation(&net, &x, &target, &s, &progress)?;
        let run = Run {
            deletion: s.variant == Variant::Delete,
            extremal: true,
            settings: format!("{s:?}"),
        };
        (net, r, run)
    } else {
        let s = settings(&a, game, hw)?;
        let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
        let r = meaningful_perturbation(&net, &x, &target, &s, &progress)?;
        let run = Run {
            deletion: game == Game::Deletion,
            extremal: false,
            settings: format!("{s:?}"),
        };
        (net, r, run)
    };
    progress.finish_and_clear();
    write_outputs(&a, &net, &x, &run, &r)
}

fn write_outputs(a: &Args, net: &crate::graph::Net, x: &Array, s: &Run, r: &Masks) -> Result<()> {
    if let Some(o) = &a.out {
        io::write_new(o, &io::npy::to_bytes(&r.mask), a.overwrite)?;
    }
    if let Some(o) = &a.perturbed {
        io::write_new(o, &io::npy::to_bytes(&r.perturbed), a.overwrite)?;
    }
    if let Some(h) = &a.heatmap {
        let explanation = if s.deletion {
            Array {
                shape: r.mask.shape.clone(),
                data: r.mask.data.iter().map(|m| 1.0 - m).collect(),
            }
        } else {
            r.mask.clone()
        };
        let title = if s.deletion {
            "deleted (1-m)"
        } else {
            "kept (m)"
        };
        // extremal: one row per item and area, each beside its item
        let per = r.mask.batch() / x.batch().max(1);
        let rows: Vec<usize> = (0..r.mask.batch()).map(|k| k / per.max(1)).collect();
        let shown = crate::explain::mask::gather(x, &rows);
        let fig = io::heatmap::figure(
            &shown,
            &net.model().meta,
            &[(title.into(), explanation)],
            a.overlay,
        );
        io::write_new(h, &io::plot::png(&fig)?, a.overwrite)?;
    }
    if let Some(c) = &a.curves {
        let panels = [
            io::plot::Panel {
                title: "loss".into(),
                lines: r.items.iter().map(|i| i.loss.clone()).collect(),
            },
            io::plot::Panel {
                title: "target probability".into(),
                lines: r.items.iter().map(|i| i.prob.clone()).collect(),
            },
        ];
        io::write_new(c, &io::plot::png(&io::plot::panels(&panels))?, a.overwrite)?;
    }
    let rows: Vec<_> = r
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let per = r.items.len() / x.batch().max(1);
            json!({"input": i / per.max(1), "target": it.target, "target_name": net.model().class_name(it.target),
                   "explainable": it.explainable, "p_input": it.p_input, "p_baseline": it.p_baseline,
                   "p_perturbed": it.p_perturbed, "kept": it.kept, "area_target": it.area_target, "area": it.area, "area_above_half": it.area_above_half,
                   "iterations": it.loss.len(), "loss": it.loss, "prob": it.prob})
        })
        .collect();
    let game = if s.extremal {
        "extremal".to_string()
    } else if s.deletion {
        "deletion".into()
    } else {
        "preservation".into()
    };
    let doc = json!({"game": game, "settings": s.settings, "items": rows});
    if let Some(j) = &a.json {
        io::write_new(
            j,
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
            a.overwrite,
        )?;
    }
    for (i, it) in r.items.iter().enumerate() {
        let name = net.model().class_name(it.target);
        if it.explainable {
            let area = match (it.area_target, it.area, it.area_above_half) {
                (Some(t), Some(a), Some(h)) => {
                    format!(" (area {t}: reached {a:.3}, {h:.3} at or above 0.5)")
                }
                _ => String::new(),
            };
            println!(
                "{i}: {name}{area}: p {:.4} -> {:.4} with {:.1}% of the image kept",
                it.p_input,
                it.p_perturbed,
                100.0 * it.kept
            );
        } else {
            println!(
                "{i}: {name}: not explainable by this perturbation (p {:.4} on the fully perturbed input)",
                it.p_baseline
            );
        }
    }
    Ok(())
}
