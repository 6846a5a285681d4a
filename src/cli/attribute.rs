//! `netlens attribute MODEL INPUT... --method M[,M...]`: attribution maps as .npy, PNG.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::array::Array;
use crate::error::{Error, Result};
use crate::explain::gradient::{Baseline, IgMethod};
use crate::explain::method::{attribute, Settings, METHODS};
use crate::explain::resample::Upsample;
use crate::explain::Target;
use crate::gpu::Backend;
use crate::graph::Net;
use crate::io;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// Images (PNG/JPEG) or .npy float32 [N, C, H, W]; all must share one size
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Method(s), comma-separated: gradient, saliency, input-x-gradient, smoothgrad,
    /// integrated-gradients, guided-backprop, deconvnet, grad-cam, guided-grad-cam, occlusion
    #[arg(long, value_delimiter = ',', required = true)]
    method: Vec<String>,
    /// Class to explain (default: each input's top class)
    #[arg(long)]
    target: Option<usize>,
    /// SmoothGrad: noisy copies per input
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// SmoothGrad: noise σ as a fraction of the input's (max − min)
    #[arg(long, default_value_t = 0.15)]
    noise: f32,
    /// SmoothGrad: random seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Integrated gradients: steps
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Integrated gradients: zero, blur (Gaussian, σ = --blur-sigma px) or mean (per channel)
    #[arg(long, default_value = "zero")]
    baseline: String,
    #[arg(long, default_value_t = 5.0)]
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
    /// Occlusion: value of the occluded pixels
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    occlusion_baseline: f32,
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

pub fn run(a: Args, backend: Backend) -> Result<()> {
    for m in &a.method {
        if !METHODS.contains(&m.as_str()) {
            return Err(Error::input("--method", format!("unknown method '{m}'; methods are: {}", METHODS.join(", "))));
        }
    }
    let several = a.method.len() > 1;
    let mut outputs: Vec<PathBuf> = a.heatmap.iter().cloned().collect();
    if let Some(o) = &a.out {
        outputs.extend(a.method.iter().map(|m| out_path(o, m, several)));
    }
    for o in &outputs {
        if o.exists() && !a.overwrite {
            return Err(Error::Other(format!("{} exists; pass --overwrite to replace it", o.display())));
        }
    }
    let model = super::load_model(&a.model)?;
    let items: Vec<Array> = a.inputs.iter().map(|p| io::load_input(p, &model.meta)).collect::<Result<_>>()?;
    let x = Array::concat(&items).map_err(|_| Error::input("inputs", "all inputs must have the same size; run them separately"))?;
    let settings = Settings {
        samples: a.samples,
        noise: a.noise,
        seed: a.seed,
        steps: a.steps,
        baseline: match a.baseline.as_str() {
            "zero" => Baseline::Zero,
            "blur" => Baseline::Blur(a.blur_sigma),
            "mean" => Baseline::Mean,
            o => return Err(Error::input("--baseline", format!("'{o}': use zero, blur or mean"))),
        },
        ig_method: a.ig_method.parse::<IgMethod>()?,
        layer: a.layer.clone(),
        relu: a.relu,
        upsample: a.upsample.parse::<Upsample>()?,
        window: a.window,
        stride: a.stride,
        occlusion_baseline: a.occlusion_baseline,
    };
    let net = Net::new(super::open_gpu(backend)?, model)?;
    let target = match a.target {
        Some(k) => Target::Class(k),
        None => Target::Argmax,
    };
    let targets = target.resolve(&net, &x)?;
    let mut maps = Vec::new();
    let mut report = Vec::new();
    for m in &a.method {
        let bar = indicatif::ProgressBar::hidden();
        if m == "occlusion" && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_style(indicatif::ProgressStyle::with_template("occlusion {bar:30} {pos}/{len} windows {elapsed}").unwrap());
        }
        let t0 = std::time::Instant::now();
        let r = attribute(&net, m, &x, &Target::Each(targets.clone()), &settings, &bar)?;
        bar.finish_and_clear();
        if let Some(o) = &a.out {
            io::write_new(&out_path(o, m, several), &io::npy::to_bytes(&r.map), a.overwrite)?;
        }
        report.push(json!({"method": m, "shape": r.map.shape, "seconds": t0.elapsed().as_secs_f64(),
                           "out": a.out.as_ref().map(|o| out_path(o, m, several).display().to_string())}));
        maps.push((m.clone(), r.map));
    }
    if let Some(h) = &a.heatmap {
        let fig = io::heatmap::figure(&x, &net.model().meta, &maps, a.overlay);
        let mut bytes = Vec::new();
        fig.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| Error::Other(format!("encoding {}: {e}", h.display())))?;
        io::write_new(h, &bytes, a.overwrite)?;
    }
    let names: Vec<String> = targets.iter().map(|&t| net.model().class_name(t)).collect();
    let doc = json!({"targets": targets, "target_names": names, "maps": report,
                     "heatmap": a.heatmap.as_ref().map(|h| h.display().to_string())});
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
    Ok(())
}
