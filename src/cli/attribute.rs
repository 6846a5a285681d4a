//! `netlens attribute MODEL INPUT... --method M[,M...]`: attribution maps as .npy, PNG.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::{Error, Result};
use crate::explain::gradient::{Baseline, IgMethod};
use crate::explain::lrp::{describe, Rule, RuleParams, Start};
use crate::explain::method::{attribute, check_name, lrp_rules, relevance, Settings};
use crate::explain::resample::Upsample;
use crate::explain::Target;
use crate::io;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// Images (PNG/JPEG) or .npy float32 [N, C, H, W]; all must share one size
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Method(s), comma-separated: gradient, saliency, input-x-gradient, smoothgrad,
    /// integrated-gradients, guided-backprop, deconvnet, grad-cam, guided-grad-cam, occlusion,
    /// lrp-epsilon, lrp-zplus, lrp-alpha-beta, lrp-gamma, lrp-flat, lrp-wsquare, lrp-epsilon-plus,
    /// lrp-epsilon-plus-flat, lrp-epsilon-gamma-box, lrp-epsilon-alpha2-beta1, lrp-epsilon-alpha2-beta1-flat
    #[arg(long, value_delimiter = ',', required = true)]
    method: Vec<String>,
    /// Class to explain (default: each input's top class)
    #[arg(long)]
    target: Option<usize>,
    /// SmoothGrad: noisy copies per input
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// SmoothGrad: noise σ as a fraction of the input's (max − min)
    #[arg(long, default_value_t = 0.15, allow_negative_numbers = true)]
    noise: f32,
    /// SmoothGrad: random seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Integrated gradients: steps
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Integrated gradients and occlusion: zero, blur (Gaussian, σ = --blur-sigma px), mean
    /// (per channel) or a number (in the model's input space, after normalisation)
    #[arg(long, default_value = "zero", allow_hyphen_values = true)]
    baseline: String,
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    blur_sigma: f32,
    /// Integrated gradients: gausslegendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid
    #[arg(long, default_value = "gausslegendre")]
    ig_method: String,
    /// Grad-CAM: layer name (default: the ReLU after the last conv)
    #[arg(long)]
    layer: Option<String>,
    /// Grad-CAM: ReLU on the map
    #[arg(long)]
    relu: bool,
    /// Grad-CAM: nearest (Captum's default) or bilinear
    #[arg(long, default_value = "nearest")]
    upsample: String,
    /// Occlusion: window side in pixels
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Occlusion: stride in pixels
    #[arg(long, default_value_t = 8)]
    stride: usize,
    /// Occlusion: value of the occluded pixels (an alias of --baseline NUMBER for occlusion)
    #[arg(long, allow_negative_numbers = true)]
    occlusion_baseline: Option<f32>,
    /// LRP: ε of the epsilon rule (composites: on linear layers)
    #[arg(long, default_value_t = 1e-6, allow_negative_numbers = true)]
    epsilon: f32,
    /// LRP: α of alpha-beta (α − β = 1)
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    alpha: f32,
    /// LRP: β of alpha-beta
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    beta: f32,
    /// LRP: γ of the gamma rule
    #[arg(long, default_value_t = 0.25, allow_negative_numbers = true)]
    gamma: f32,
    /// LRP: lowest input value for z^B (epsilon-gamma-box's first layer)
    #[arg(long, default_value_t = -3.0, allow_negative_numbers = true)]
    low: f32,
    /// LRP: highest input value for z^B
    #[arg(long, default_value_t = 3.0, allow_negative_numbers = true)]
    high: f32,
    /// LRP: start from logit (one-hot(target) ⊙ logits; a conserving rule's input relevance
    /// then sums to the target logit) or onehot (Zennit's plain one-hot)
    #[arg(long, default_value = "logit")]
    start: String,
    /// LRP: override one layer's rule, LAYER=RULE (name or index; repeatable), e.g. features.0=flat
    #[arg(long = "rule", value_name = "LAYER=RULE")]
    rules: Vec<String>,
    /// LRP: print which rule each layer gets
    #[arg(long)]
    print_rules: bool,
    /// LRP: save the relevance arriving at every layer as DIR/<method>.<layer>.npy
    #[arg(long, value_name = "DIR")]
    layer_relevance: Option<PathBuf>,
    /// Write the map(s) as float32 .npy (several methods: OUT.<method>.npy)
    #[arg(long, value_name = "MAP.npy")]
    out: Option<PathBuf>,
    /// Write a PNG figure: inputs and each method's map side by side
    #[arg(long, value_name = "MAP.png")]
    heatmap: Option<PathBuf>,
    /// Draw the maps over the (greyed) input
    #[arg(long)]
    overlay: bool,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
}

fn out_path(base: &Path, method: &str, several: bool) -> PathBuf {
    if !several {
        return base.to_path_buf();
    }
    let stem = base.file_stem().and_then(|s| s.to_str()).unwrap_or("map");
    base.with_file_name(format!("{stem}.{method}.npy"))
}

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    crate::error::check_range("--blur-sigma", a.blur_sigma, 0.0, 256.0, true)?;
    for m in &a.method {
        check_name(m)?;
    }
    let several = a.method.len() > 1;
    let mut outputs: Vec<PathBuf> = a.heatmap.iter().cloned().collect();
    if let Some(o) = &a.out {
        outputs.extend(a.method.iter().map(|m| out_path(o, m, several)));
    }
    super::refuse_existing(outputs.iter().map(|p| p.as_path()), a.overwrite)?;
    let settings = Settings {
        samples: a.samples,
        noise: a.noise,
        seed: a.seed,
        steps: a.steps,
        baseline: match a.baseline.parse::<Baseline>()? {
            Baseline::Blur(_) => Baseline::Blur(a.blur_sigma),
            b => b,
        },
        ig_method: a.ig_method.parse::<IgMethod>()?,
        layer: a.layer.clone(),
        relu: a.relu,
        upsample: a.upsample.parse::<Upsample>()?,
        window: a.window,
        stride: a.stride,
        occlusion_baseline: a.occlusion_baseline,
        rule: RuleParams {
            epsilon: a.epsilon,
            alpha: a.alpha,
            beta: a.beta,
            gamma: a.gamma,
            low: a.low,
            high: a.high,
        },
        start: match a.start.as_str() {
            "logit" => Start::Logit,
            "onehot" => Start::OneHot,
            o => {
                return Err(Error::input(
                    "--start",
                    format!("'{o}': use logit or onehot"),
                ))
            }
        },
        rule_overrides: Vec::new(),
        layer_relevance: a.layer_relevance.is_some(),
    };
    let mut settings = settings;
    settings.check()?;
    for r in &a.rules {
        let (layer, rule) = r.split_once('=').ok_or_else(|| {
            Error::input(
                "--rule",
                format!("'{r}': write LAYER=RULE, e.g. features.0=flat"),
            )
        })?;
        settings
            .rule_overrides
            .push((layer.to_string(), Rule::parse(rule, &settings.rule)?));
    }
    let model = super::load_model(&a.model)?;
    let x = super::load_inputs(&a.inputs, &model.meta)?;
    let host = crate::explain::method::host_weights(&model, &a.method, &settings)?;
    let net = super::open_net(gpu, model, host)?;
    // with no --target, the first method finds each input's top class in its own forward
    // (every method runs the inputs as they are at least once) and the rest reuse it
    let mut targets = match a.target {
        Some(k) => Some(Target::Class(k).resolve(&net, &x)?),
        None => None,
    };
    let mut maps = Vec::new();
    let mut report = Vec::new();
    for m in &a.method {
        let bar = indicatif::ProgressBar::hidden();
        if m == "occlusion" && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "occlusion {bar:30} {pos}/{len} windows {elapsed}",
                )
                .unwrap(),
            );
        }
        let t0 = std::time::Instant::now();
        let tg = targets.clone().map_or(Target::Argmax, Target::Each);
        if m.starts_with("lrp-") && a.print_rules {
            eprintln!(
                "{m}:\n{}",
                describe(net.model(), &lrp_rules(&net, m, &settings)?)
            );
        }
        let r = match (&a.layer_relevance, m.starts_with("lrp-")) {
            (Some(dir), true) => {
                let rel = relevance(&net, m, &x, &tg, &settings)?;
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                for (name, arr) in &rel.layers {
                    io::write_new(
                        &dir.join(format!("{m}.{name}.npy")),
                        &io::npy::to_bytes(arr),
                        a.overwrite,
                    )?;
                }
                crate::explain::Attribution {
                    map: rel.input,
                    targets: rel.targets,
                }
            }
            _ => attribute(&net, m, &x, &tg, &settings, &bar)?,
        };
        bar.finish_and_clear();
        targets.get_or_insert_with(|| r.targets.clone());
        if let Some(o) = &a.out {
            io::write_new(
                &out_path(o, m, several),
                &io::npy::to_bytes(&r.map),
                a.overwrite,
            )?;
        }
        report.push(json!({"method": m, "shape": r.map.shape, "seconds": t0.elapsed().as_secs_f64(),
                           "out": a.out.as_ref().map(|o| out_path(o, m, several).display().to_string())}));
        maps.push((m.clone(), r.map));
    }
    if let Some(h) = &a.heatmap {
        let fig = io::heatmap::figure(&x, &net.model().meta, &maps, a.overlay);
        let mut bytes = Vec::new();
        fig.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::Other(format!("encoding {}: {e}", h.display())))?;
        io::write_new(h, &bytes, a.overwrite)?;
    }
    let targets = targets.unwrap_or_default();
    let names: Vec<String> = targets.iter().map(|&t| net.model().class_name(t)).collect();
    let doc = json!({"targets": targets, "target_names": names, "maps": report,
                     "heatmap": a.heatmap.as_ref().map(|h| h.display().to_string())});
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
    Ok(())
}
