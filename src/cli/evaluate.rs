//! `netlens evaluate MODEL INPUT... --maps MAP.npy --metric aopc,deletion,insertion`:
//! faithfulness of given attribution maps by perturbation.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::json;

use crate::array::Array;
use crate::error::{Error, Result};
use crate::explain::faithfulness::{aopc, deletion_insertion, Curve, Order, Score, Substrate};
use crate::explain::Target;
use crate::io;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// Images (PNG/JPEG), .npy float32 [N, C, H, W] (all one size), or one dataset
    /// directory in `netlens synth`'s layout (index.csv order; its labels.csv classes are
    /// the targets and its object masks serve the pointing game)
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Maps to score, float32 [N, C or 1, H, W], one per input in order (repeatable; each
    /// file is one method, named by its file stem)
    #[arg(long)]
    maps: Vec<PathBuf>,
    /// Methods whose maps to compute and score (comma-separated): any `attribute` method
    /// (default settings), plus the baselines random (seeded noise) and center (distance to
    /// the centre, nearest first)
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// aopc, deletion, insertion, pointing (comma-separated; pointing needs a dataset)
    #[arg(long, value_delimiter = ',', default_value = "aopc")]
    metric: Vec<String>,
    /// Pointing game: hit distance in pixels (default 15 · side / 224, TorchRay's 15 px)
    #[arg(long)]
    tolerance: Option<f32>,
    /// AOPC orders: morf, lerf, random (comma-separated)
    #[arg(long, value_delimiter = ',', default_value = "morf")]
    order: Vec<String>,
    /// AOPC: patch side in pixels (1 = pixel flipping), in 1..=side
    #[arg(long, default_value_t = 8)]
    region: usize,
    /// AOPC: perturbation steps K (default: every patch, at most 100)
    #[arg(long)]
    steps: Option<usize>,
    /// AOPC: uniform (Samek's noise), constant, blur or mean
    #[arg(long, default_value = "uniform")]
    perturbation: String,
    /// Deletion and insertion: the substrate, constant or blur (default: deletion constant,
    /// insertion blur, as Petsiuk et al.)
    #[arg(long)]
    substrate: Option<String>,
    /// constant: the value in the model's input space
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    baseline: f32,
    /// blur: σ in pixels
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    blur_sigma: f32,
    /// Deletion and insertion: pixels per step (default 1% of the image)
    #[arg(long)]
    step: Option<usize>,
    /// AOPC: the score, prob or logit
    #[arg(long, default_value = "prob")]
    score: String,
    /// Seed of the random order and the uniform noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Class to score (default: each input's top class)
    #[arg(long)]
    target: Option<usize>,
    /// Every curve and the summary as JSON
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// One row per (input, method, metric, order)
    #[arg(long, value_name = "OUT.csv")]
    csv: Option<PathBuf>,
    /// The mean curve of each method, one panel per metric and order
    #[arg(long, value_name = "FIG.png")]
    plot: Option<PathBuf>,
    /// With --methods: write each computed map to DIR/METHOD.npy (float32 [N, C, H, W]),
    /// to score again later with --maps DIR/METHOD.npy without recomputing it
    #[arg(long, value_name = "DIR")]
    save_maps: Option<PathBuf>,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
}

fn substrate(kind: &str, a: &Args, flag: &str) -> Result<Substrate> {
    let sigma_ok = a.blur_sigma.is_finite() && a.blur_sigma > 0.0 && a.blur_sigma <= 256.0;
    match kind {
        "uniform" => Ok(Substrate::Uniform(a.seed)),
        "constant" if a.baseline.is_finite() => Ok(Substrate::Constant(a.baseline)),
        "constant" => Err(Error::input("--baseline", "must be a finite number")),
        "blur" if sigma_ok => Ok(Substrate::Blur(a.blur_sigma)),
        "blur" => Err(Error::input("--blur-sigma", "must be in (0, 256]")),
        "mean" => Ok(Substrate::Mean),
        o => Err(Error::input(
            flag,
            format!("'{o}': use uniform, constant, blur or mean"),
        )),
    }
}

/// Mean and the half-width of its 95% confidence interval (1.96 standard errors).
pub fn mean_ci(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, 1.96 * (var / n).sqrt())
}

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    super::refuse_existing(
        [&a.json, &a.csv, &a.plot]
            .into_iter()
            .flatten()
            .map(|p| p.as_path()),
        a.overwrite,
    )?;
    if let Some(t) = a.tolerance {
        crate::error::check_range("--tolerance", t, 0.0, 1e5, false)?;
    }
    crate::error::check_range("--blur-sigma", a.blur_sigma, 0.0, 256.0, true)?;
    crate::error::check_range("--baseline", a.baseline, -1e6, 1e6, false)?;
    for m in &a.metric {
        if !["aopc", "deletion", "insertion", "pointing"].contains(&m.as_str()) {
            return Err(Error::input(
                "--metric",
                format!("'{m}': use aopc, deletion, insertion or pointing"),
            ));
        }
    }
    if a.maps.is_empty() == a.methods.is_empty() {
        return Err(Error::input(
            "--maps/--methods",
            "give maps to score (--maps FILE.npy) or methods to compute (--methods a,b), not both",
        ));
    }
    for m in &a.methods {
        if m != "random" && m != "center" {
            crate::explain::method::check_name(m)?;
        }
    }
    let saved: Vec<PathBuf> = match &a.save_maps {
        Some(_) if a.methods.is_empty() => {
            return Err(Error::input(
                "--save-maps",
                "saves the maps that --methods computes; with --maps they are already files",
            ))
        }
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| {
                Error::Other(format!("cannot create --save-maps {}: {e}", d.display()))
            })?;
            a.methods
                .iter()
                .map(|m| d.join(format!("{m}.npy")))
                .collect()
        }
        None => Vec::new(),
    };
    super::refuse_existing(saved.iter().map(|p| p.as_path()), a.overwrite)?;
    let orders: Vec<Order> = a
        .order
        .iter()
        .map(|o| match o.as_str() {
            "morf" => Ok(Order::Morf),
            "lerf" => Ok(Order::Lerf),
            "random" => Ok(Order::Random(a.seed)),
            o => Err(Error::input(
                "--order",
                format!("'{o}': use morf, lerf or random"),
            )),
        })
        .collect::<Result<_>>()?;
    let score = match a.score.as_str() {
        "prob" => Score::Prob,
        "logit" => Score::Logit,
        o => return Err(Error::input("--score", format!("'{o}': use prob or logit"))),
    };
    let perturbation = substrate(&a.perturbation, &a, "--perturbation")?;
    let model = super::load_model(&a.model)?;
    let dataset = match a.inputs.as_slice() {
        [d] if d.is_dir() => Some(load_dataset(d, &model.meta)?),
        _ => None,
    };
    let x = match &dataset {
        Some(d) => d.x.clone(),
        None => super::load_inputs(&a.inputs, &model.meta)?,
    };
    if a.metric.iter().any(|m| m == "pointing") && dataset.is_none() {
        return Err(Error::input(
            "--metric pointing",
            "needs object masks: pass a dataset directory (netlens synth) as the input",
        ));
    }
    let (h, w) = (x.shape[2], x.shape[3]);
    let hw = h * w;
    let step = a.step.unwrap_or(hw.div_ceil(100));
    if step == 0 || step > hw {
        return Err(Error::input(
            "--step",
            format!("{step} must be in 1..={hw}"),
        ));
    }
    let tolerance = a.tolerance.unwrap_or(15.0 * h.min(w) as f32 / 224.0);
    let host = crate::explain::method::host_weights(
        &model,
        &a.methods,
        &crate::explain::method::Settings::default(),
    )?;
    let net = super::open_net(gpu, model, host)?;
    let targets = match (&dataset, a.target) {
        (_, Some(k)) => Target::Class(k).resolve(&net, &x)?,
        (Some(d), None) if d.targets.is_some() => d.targets.clone().unwrap_or_default(),
        _ => Target::Argmax.resolve(&net, &x)?,
    };
    let mut maps: Vec<(String, Array)> = a
        .maps
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("map")
                .to_string();
            Ok((name, io::npy::read(p)?))
        })
        .collect::<Result<_>>()?;
    for (i, m) in a.methods.iter().enumerate() {
        let map = method_map(&net, m, &x, &targets, a.seed)?;
        if let Some(p) = saved.get(i) {
            io::write_new(p, &io::npy::to_bytes(&map), a.overwrite)?;
        }
        maps.push((m.clone(), map));
    }
    let bar = indicatif::ProgressBar::hidden();
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    let mut results: Vec<(String, Curve)> = Vec::new();
    for (name, m) in &maps {
        for metric in &a.metric {
            let curves = match metric.as_str() {
                "aopc" => {
                    let mut all = Vec::new();
                    for o in &orders {
                        let steps = a.steps.unwrap_or(100);
                        all.extend(aopc(
                            &net,
                            &x,
                            m,
                            &targets,
                            a.region,
                            steps,
                            *o,
                            &perturbation,
                            score,
                            &bar,
                        )?);
                    }
                    all
                }
                "pointing" => {
                    let objects = &dataset.as_ref().expect("checked above").objects;
                    crate::explain::faithfulness::pointing_game(m, objects, tolerance)?
                }
                d => {
                    let insert = d == "insertion";
                    let default = if insert { "blur" } else { "constant" };
                    let s =
                        substrate(a.substrate.as_deref().unwrap_or(default), &a, "--substrate")?;
                    deletion_insertion(&net, &x, m, &targets, step, insert, &s, &bar)?
                }
            };
            results.extend(curves.into_iter().map(|c| (name.clone(), c)));
        }
    }
    bar.finish_and_clear();
    write(&a, &results)
}

/// A dataset in `netlens synth`'s layout: images in index.csv order, their classes (from
/// labels.csv when present) and object masks.
struct Dataset {
    x: Array,
    targets: Option<Vec<usize>>,
    objects: Vec<Vec<bool>>,
}

fn load_dataset(dir: &std::path::Path, meta: &crate::model::ModelMeta) -> Result<Dataset> {
    let b = crate::data::broden::Broden::open(dir)?;
    let labels = dir.join("labels.csv");
    let classes: Option<std::collections::HashMap<String, usize>> = if labels.exists() {
        Some(
            crate::data::broden::read_csv(&labels)?
                .into_iter()
                .filter_map(|r| Some((r.get("image")?.clone(), r.get("class")?.parse().ok()?)))
                .collect(),
        )
    } else {
        None
    };
    let mut items = Vec::new();
    let mut targets = Vec::new();
    let mut objects = Vec::new();
    for r in &b.records {
        let x = io::image::load(&b.image_path(r), meta)?;
        let (h, w) = (x.shape[2], x.shape[3]);
        if (r.sh, r.sw) != (h, w) {
            return Err(Error::input(
                dir.display(),
                format!(
                    "{}: masks are {}x{} but the input is {h}x{w}",
                    r.image, r.sh, r.sw
                ),
            ));
        }
        let planes = b.masks(r, "object")?;
        objects.push(
            (0..h * w)
                .map(|i| planes.iter().any(|p| p[i] != 0))
                .collect(),
        );
        if let Some(c) = &classes {
            targets.push(*c.get(&r.image).ok_or_else(|| {
                Error::input(labels.display(), format!("no class for {}", r.image))
            })?);
        }
        items.push(x);
    }
    if items.is_empty() {
        return Err(Error::input(dir.display(), "the dataset lists no images"));
    }
    Ok(Dataset {
        x: Array::concat(&items)?,
        targets: classes.map(|_| targets),
        objects,
    })
}

/// The map of a method, or of the baselines random (seeded U[0, 1)) and center (the
/// distance to the farthest pixel minus the distance to the image centre).
fn method_map(
    net: &crate::graph::Net,
    m: &str,
    x: &Array,
    targets: &[usize],
    seed: u64,
) -> Result<Array> {
    let [n, _, h, w] = crate::ops::dims4(&x.shape, "input")?;
    match m {
        "random" => {
            let data = (0..n * h * w)
                .map(|i| {
                    let mut r = crate::data::rng::Rng::derive(seed ^ 0x7261_6e64, i as u64);
                    r.unit() as f32
                })
                .collect();
            Array::new(vec![n, 1, h, w], data)
        }
        "center" => {
            let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
            let far = (cy * cy + cx * cx).sqrt();
            let data = (0..n * h * w)
                .map(|i| {
                    let (y, xx) = (((i / w) % h) as f32, (i % w) as f32);
                    far - ((y - cy).powi(2) + (xx - cx).powi(2)).sqrt()
                })
                .collect();
            Array::new(vec![n, 1, h, w], data)
        }
        _ => Ok(crate::explain::method::attribute(
            net,
            m,
            x,
            &Target::Each(targets.to_vec()),
            &crate::explain::method::Settings::default(),
            &indicatif::ProgressBar::hidden(),
        )?
        .map),
    }
}

fn write(a: &Args, results: &[(String, Curve)]) -> Result<()> {
    let mut keys: Vec<(String, &str, &str)> = Vec::new();
    for (m, c) in results {
        let k = (m.clone(), c.metric, c.order);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut summary = Vec::new();
    let mut panels = Vec::new();
    for (m, metric, order) in &keys {
        let rows: Vec<&Curve> = results
            .iter()
            .filter(|(n, c)| n == m && c.metric == *metric && c.order == *order)
            .map(|(_, c)| c)
            .collect();
        let values: Vec<f64> = rows.iter().map(|c| c.value).collect();
        let (mean, ci) = mean_ci(&values);
        summary.push(
            json!({"method": m, "metric": metric, "order": order, "n": values.len(),
                            "mean": mean, "ci95": ci}),
        );
        println!(
            "{m:<24} {metric:<9} {order:<6} {mean:.4} ± {ci:.4} (n = {})",
            values.len()
        );
        let len = rows.iter().map(|c| c.curve.len()).min().unwrap_or(0);
        let mean_curve: Vec<f32> = (0..len)
            .map(|t| rows.iter().map(|c| c.curve[t]).sum::<f32>() / rows.len() as f32)
            .collect();
        if !mean_curve.is_empty() {
            panels.push((format!("{metric} {order}"), m.clone(), mean_curve));
        }
    }
    if let Some(j) = &a.json {
        let res: Vec<_> = results
            .iter()
            .map(|(m, c)| {
                json!({"input": c.input, "method": m, "metric": c.metric, "order": c.order,
                                 "value": c.value, "curve": c.curve})
            })
            .collect();
        let doc = json!({"results": res, "summary": summary});
        io::write_new(
            j,
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
            a.overwrite,
        )?;
    }
    if let Some(c) = &a.csv {
        let mut s = String::from("input,method,metric,order,value\n");
        for (m, r) in results {
            let _ = writeln!(s, "{},{},{},{},{}", r.input, m, r.metric, r.order, r.value);
        }
        io::write_new(c, s.as_bytes(), a.overwrite)?;
    }
    if let Some(p) = &a.plot {
        let mut titles: Vec<String> = Vec::new();
        for (t, _, _) in &panels {
            if !titles.contains(t) {
                titles.push(t.clone());
            }
        }
        let figs: Vec<io::plot::Panel> = titles
            .iter()
            .map(|t| io::plot::Panel {
                title: t.clone(),
                lines: panels
                    .iter()
                    .filter(|(pt, _, _)| pt == t)
                    .map(|(_, _, c)| c.clone())
                    .collect(),
            })
            .collect();
        io::write_new(p, &io::plot::png(&io::plot::panels(&figs))?, a.overwrite)?;
    }
    Ok(())
}
