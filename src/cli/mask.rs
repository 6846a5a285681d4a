//! `netlens mask MODEL INPUT... --game deletion|preservation`: learned perturbation masks.

use std::path::PathBuf;

use serde_json::json;

use crate::array::Array;
use crate::error::{Error, Result};
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
    /// deletion (the smallest region whose removal destroys the score) or preservation
    /// (the smallest region that alone keeps it)
    #[arg(long, default_value = "deletion")]
    game: String,
    /// Class to explain (default: each input's top class)
    #[arg(long)]
    target: Option<usize>,
    /// What replaces deleted pixels: blur, constant or noise
    #[arg(long, default_value = "blur")]
    perturbation: String,
    /// blur: σ in pixels (default 10 · side / 224), in (0, side]
    #[arg(long)]
    blur_sigma: Option<f32>,
    /// constant: mean (each channel's image mean) or a number in the model's input space
    #[arg(long, default_value = "mean", allow_hyphen_values = true)]
    baseline: String,
    /// noise: σ of the Gaussian noise in the model's input space, in (0, 100]
    #[arg(long, default_value_t = 1.0)]
    noise_sigma: f32,
    /// The score: prob (softmax probability), logprob or logit (default: deletion prob,
    /// preservation logprob)
    #[arg(long)]
    score: Option<String>,
    /// Mask side in cells (default side / 8, at least 16), in 1..=side
    #[arg(long)]
    mask_size: Option<usize>,
    /// λ₁, weight of the mask's mean, in [0, 1e6] (default: deletion 2.56, preservation 1)
    #[arg(long)]
    l1: Option<f32>,
    /// λ₂, weight of TV_β (mean over neighbouring cells of |Δm|^β), in [0, 1e6] (default 4.8)
    #[arg(long)]
    tv: Option<f32>,
    /// β of the total variation, in [1, 10]
    #[arg(long, default_value_t = 3.0)]
    tv_beta: f32,
    /// Adam's learning rate, in (0, 10]
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Iterations, in 1..=100000
    #[arg(long, default_value_t = 300)]
    iterations: usize,
    /// Random shift per step in pixels (default 4 · side / 224), at most side / 2
    #[arg(long)]
    jitter: Option<usize>,
    /// The mask's starting value in [0, 1] (default: deletion 0, preservation 1)
    #[arg(long)]
    init: Option<f32>,
    /// Seed of the jitter and the noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// An item is explainable when its target's probability on the fully perturbed input
    /// is below this, in (0, 1]
    #[arg(long, default_value_t = 0.5)]
    explainable_below: f32,
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
    s.lr = a.lr;
    s.iterations = a.iterations;
    s.jitter = a.jitter.unwrap_or(s.jitter);
    s.init = a.init.unwrap_or(s.init);
    s.seed = a.seed;
    s.explainable_below = a.explainable_below;
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

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    let game: Game = a.game.parse()?;
    let outputs = [&a.out, &a.perturbed, &a.json, &a.heatmap, &a.curves];
    for o in outputs.into_iter().flatten() {
        if o.exists() && !a.overwrite {
            return Err(Error::Other(format!(
                "{} exists; pass --overwrite to replace it",
                o.display()
            )));
        }
    }
    let model = super::load_model(&a.model)?;
    let items: Vec<Array> = a
        .inputs
        .iter()
        .map(|p| io::load_input(p, &model.meta))
        .collect::<Result<_>>()?;
    let x = Array::concat(&items).map_err(|_| {
        Error::input(
            "inputs",
            "all inputs must have the same size; run them separately",
        )
    })?;
    let s = settings(&a, game, (x.shape[2], x.shape[3]))?;
    let net = super::open_net(gpu, model)?;
    let target = a.target.map_or(Target::Argmax, Target::Class);
    let progress = bar(0);
    let r = meaningful_perturbation(&net, &x, &target, &s, &progress)?;
    progress.finish_and_clear();
    write_outputs(&a, &net, &x, &s, &r)
}

fn write_outputs(
    a: &Args,
    net: &crate::graph::Net,
    x: &Array,
    s: &MaskSettings,
    r: &Masks,
) -> Result<()> {
    if let Some(o) = &a.out {
        io::write_new(o, &io::npy::to_bytes(&r.mask), a.overwrite)?;
    }
    if let Some(o) = &a.perturbed {
        io::write_new(o, &io::npy::to_bytes(&r.perturbed), a.overwrite)?;
    }
    if let Some(h) = &a.heatmap {
        let explanation = match s.game {
            Game::Deletion => Array {
                shape: r.mask.shape.clone(),
                data: r.mask.data.iter().map(|m| 1.0 - m).collect(),
            },
            Game::Preservation => r.mask.clone(),
        };
        let title = match s.game {
            Game::Deletion => "deleted (1-m)",
            Game::Preservation => "kept (m)",
        };
        let fig = io::heatmap::figure(
            x,
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
            json!({"input": i, "target": it.target, "target_name": net.model().class_name(it.target),
                   "explainable": it.explainable, "p_input": it.p_input, "p_baseline": it.p_baseline,
                   "p_perturbed": it.p_perturbed, "kept": it.kept, "iterations": it.loss.len(),
                   "loss": it.loss, "prob": it.prob})
        })
        .collect();
    let doc = json!({"game": format!("{:?}", s.game).to_lowercase(), "settings": format!("{s:?}"), "items": rows});
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
            println!(
                "{i}: {name}: p {:.4} -> {:.4} with {:.1}% of the image kept",
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
