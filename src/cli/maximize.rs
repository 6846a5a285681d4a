//! `netlens maximize MODEL --objective logprob:3,channel:features.8:5`: images that
//! maximise class scores or units (Simonyan et al. 2014; Yosinski et al. 2015).

use std::path::PathBuf;

use serde_json::json;

use crate::error::{Error, Result};
use crate::explain::visualize::{
    maximize, Goal, MaximizeSettings, Optimizer, Param, Preset, Transforms,
};
use crate::io;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// Comma-separated: class:K (the logit S_K), logprob:K, prob:K, channel:LAYER:C (a
    /// channel's mean) or unit:LAYER:C:Y:X; one image per objective
    #[arg(long, required = true)]
    objective: String,
    /// simonyan (Adam 0.05, λ 1e-4, 500 steps from the mean image), yosinski (gradient
    /// ascent, blur σ 0.5 every 4 steps, pixels under the 50th norm percentile clipped) or
    /// lucid (Fourier-space image, decorrelated colour, Lucent's standard transforms,
    /// Adam 0.05, 512 steps)
    #[arg(long, default_value = "simonyan")]
    preset: String,
    /// pixel (the image itself) or fft (Lucid's Fourier-space image)
    #[arg(long)]
    param: Option<String>,
    /// none, or standard (Lucent's: pad 12, jitter 8, scale 0.9-1.1, rotate ±10°, jitter 4)
    #[arg(long)]
    transforms: Option<String>,
    /// fft: the spectrum's decay power, in [0, 4] (default 1)
    #[arg(long, allow_negative_numbers = true)]
    decay: Option<f32>,
    /// fft: σ of the spectrum's Gaussian start, in [1e-6, 10] (default 0.01)
    #[arg(long, allow_negative_numbers = true)]
    init_sd: Option<f32>,
    /// fft: no colour decorrelation
    #[arg(long)]
    no_decorrelate: bool,
    /// Image size HxW (default: the model's input size), each side 8 to 2048
    #[arg(long)]
    size: Option<String>,
    /// Steps, 1 to 100000
    #[arg(long)]
    steps: Option<usize>,
    /// adam or sgd (plain gradient ascent)
    #[arg(long)]
    optimizer: Option<String>,
    /// Learning rate, in [1e-8, 1e4]
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// λ of the penalty λ‖x‖² on the (normalised) image, in [0, 10]
    #[arg(long, allow_negative_numbers = true)]
    l2: Option<f32>,
    /// Blur the image every N steps (0: never)
    #[arg(long)]
    blur_every: Option<usize>,
    /// The blur's σ in pixels, in [0, 20]
    #[arg(long, allow_negative_numbers = true)]
    blur_sigma: Option<f32>,
    /// Zero the pixels whose norm is under this percentile, in [0, 99.9] (0: off)
    #[arg(long, allow_negative_numbers = true)]
    clip_norm_pct: Option<f32>,
    /// Zero the pixels whose |x · gradient| is under this percentile, in [0, 99.9]
    #[arg(long, allow_negative_numbers = true)]
    clip_contrib_pct: Option<f32>,
    /// Random shift per step in pixels, below half the image side (0: off)
    #[arg(long)]
    jitter: Option<usize>,
    /// σ of a Gaussian start in input space, in [0, 10] (0: the mean image)
    #[arg(long, allow_negative_numbers = true)]
    init_noise: Option<f32>,
    /// Seed of the start noise and the jitter
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The images, float32 [N, C, H, W] in the model's input space (normalised)
    #[arg(long, value_name = "IMG.npy")]
    out: Option<PathBuf>,
    /// A PNG grid of the images, each captioned with its objective and top class
    #[arg(long, value_name = "FIG.png")]
    png: Option<PathBuf>,
    /// Per objective: final value, top class and probabilities, value per step
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
}

pub(crate) fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::input("--size", format!("'{s}': use HxW, e.g. 64x64"));
    let (h, w) = s.split_once('x').ok_or_else(bad)?;
    Ok((
        h.trim().parse().map_err(|_| bad())?,
        w.trim().parse().map_err(|_| bad())?,
    ))
}

fn settings(a: &Args, size: (usize, usize)) -> Result<MaximizeSettings> {
    let mut s = MaximizeSettings::preset(a.preset.parse::<Preset>()?, size);
    if let Some(v) = a.steps {
        s.steps = v;
    }
    let lr = match s.optimizer {
        Optimizer::Adam { lr } | Optimizer::Sgd { lr } => a.lr.unwrap_or(lr),
    };
    s.optimizer = match (a.optimizer.as_deref(), s.optimizer) {
        (Some("adam"), _) | (None, Optimizer::Adam { .. }) => Optimizer::Adam { lr },
        (Some("sgd"), _) | (None, Optimizer::Sgd { .. }) => Optimizer::Sgd { lr },
        (Some(o), _) => {
            return Err(Error::input(
                "--optimizer",
                format!("'{o}': use adam or sgd"),
            ))
        }
    };
    s.param = match (a.param.as_deref(), s.param) {
        (None, p) => p,
        (Some("pixel"), _) => Param::Pixel,
        (Some("fft"), p) => p,
        (Some(o), _) => return Err(Error::input("--param", format!("'{o}': use pixel or fft"))),
    };
    if let Some(v) = a.decay {
        crate::error::check_range("--decay", v, 0.0, 4.0, false)?;
    }
    if let Some(v) = a.init_sd {
        crate::error::check_range("--init-sd", v, 1e-6, 10.0, false)?;
    }
    if a.param.as_deref() == Some("fft") || matches!(s.param, Param::Fourier { .. }) {
        let (d, sd, dec) = match s.param {
            Param::Fourier {
                decay,
                sd,
                decorrelate,
            } => (decay, sd, decorrelate),
            Param::Pixel => (1.0, 0.01, true),
        };
        s.param = Param::Fourier {
            decay: a.decay.unwrap_or(d),
            sd: a.init_sd.unwrap_or(sd),
            decorrelate: dec && !a.no_decorrelate,
        };
    }
    s.transforms = match a.transforms.as_deref() {
        None => s.transforms,
        Some("none") => Transforms::None,
        Some("standard") => Transforms::Standard,
        Some(o) => {
            return Err(Error::input(
                "--transforms",
                format!("'{o}': use none or standard"),
            ))
        }
    };
    s.l2 = a.l2.unwrap_or(s.l2);
    s.blur_every = a.blur_every.unwrap_or(s.blur_every);
    s.blur_sigma = a.blur_sigma.unwrap_or(s.blur_sigma);
    s.clip_norm_pct = a.clip_norm_pct.unwrap_or(s.clip_norm_pct);
    s.clip_contrib_pct = a.clip_contrib_pct.unwrap_or(s.clip_contrib_pct);
    s.jitter = a.jitter.unwrap_or(s.jitter);
    s.init_noise = a.init_noise.unwrap_or(s.init_noise);
    s.seed = a.seed;
    s.check()?;
    Ok(s)
}

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    let outputs = [&a.out, &a.png, &a.json];
    super::refuse_existing(outputs.iter().filter_map(|o| o.as_deref()), a.overwrite)?;
    if outputs.iter().all(|o| o.is_none()) {
        return Err(Error::input(
            "outputs",
            "nothing to write: pass --out, --png or --json",
        ));
    }
    let model = super::load_model(&a.model)?;
    let size = match &a.size {
        Some(s) => parse_size(s)?,
        None => model.meta.input_size,
    };
    let s = settings(&a, size)?;
    let goals = Goal::parse_list(
        &a.objective,
        &model,
        &[1, model.in_channels, size.0, size.1],
    )?;
    let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
    let progress = super::progress("maximize", "item-steps");
    let r = maximize(&net, &goals, &s, &progress)?;
    progress.finish_and_clear();
    let m = net.model();
    let top = |i: usize| -> (usize, f32) {
        let row = &r.probs.data[i * m.num_classes()..(i + 1) * m.num_classes()];
        row.iter().enumerate().fold(
            (0, f32::MIN),
            |b, (k, p)| if *p > b.1 { (k, *p) } else { b },
        )
    };
    if let Some(o) = &a.out {
        io::write_new(o, &io::npy::to_bytes(&r.images), a.overwrite)?;
    }
    if let Some(p) = &a.png {
        let tiles: Vec<_> = (0..goals.len())
            .map(|i| {
                let (k, pk) = top(i);
                let img = io::heatmap::input_image(&r.images, i, &m.meta);
                (
                    img,
                    format!("{}: {} {:.2}", goals[i].text, m.class_name(k), pk),
                )
            })
            .collect();
        let scale = (128 / size.0.max(size.1) as u32).max(1);
        let fig = io::grid::grid(&tiles, 8, scale);
        io::write_new(p, &io::plot::png(&fig)?, a.overwrite)?;
    }
    let n = goals.len();
    let items: Vec<_> = (0..n)
        .map(|i| {
            let (k, pk) = top(i);
            let probs = &r.probs.data[i * m.num_classes()..(i + 1) * m.num_classes()];
            let curve: Vec<f32> = (0..s.steps).map(|t| r.history.data[t * n + i]).collect();
            let target_p = goals[i].is_class().then(|| probs[goals[i].target]);
            json!({"objective": goals[i].text, "layer": m.output_name(goals[i].layer),
                   "value": r.values[i], "top_class": k, "top_name": m.class_name(k), "top_p": pk,
                   "target_p": target_p, "probs": probs, "values": curve})
        })
        .collect();
    if let Some(j) = &a.json {
        let doc = json!({"settings": format!("{s:?}"), "items": items});
        io::write_new(
            j,
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
            a.overwrite,
        )?;
    }
    for (i, g) in goals.iter().enumerate() {
        let (k, pk) = top(i);
        let target = if g.is_class() {
            format!(
                ", p({}) = {:.4}",
                m.class_name(g.target),
                r.probs.data[i * m.num_classes() + g.target]
            )
        } else {
            String::new()
        };
        println!(
            "{}: value {:.4}{target}; top class {} ({pk:.4})",
            g.text,
            r.values[i],
            m.class_name(k)
        );
    }
    Ok(())
}
