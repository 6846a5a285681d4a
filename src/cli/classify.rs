//! `netlens classify MODEL INPUT...`: top-k classes, optionally the raw logits as .npy.

use std::path::PathBuf;

use serde_json::json;

use crate::array::Array;
use crate::error::{Error, Result};
use crate::io;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// Images (PNG/JPEG) or .npy float32 [N, C, H, W] batches
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// How many classes to show per input
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON
    #[arg(long)]
    json: bool,
    /// Write the pre-softmax outputs as float32 [N, classes]
    #[arg(long, value_name = "OUT.npy")]
    logits: Option<PathBuf>,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
    /// Items per GPU pass at most (default: as many as fit)
    #[arg(long)]
    batch: Option<usize>,
}

/// A group of consecutive inputs with one item shape, run as one batch.
struct Group {
    sources: Vec<(String, usize)>,
    data: Array,
}

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    if a.top == 0 {
        return Err(Error::input("--top", "must be at least 1"));
    }
    if a.batch == Some(0) {
        return Err(Error::input("--batch", "must be at least 1"));
    }
    if let Some(out) = &a.logits {
        super::refuse_existing([out.as_path()], a.overwrite)?;
    }
    let model = super::load_model(&a.model)?;
    let mut groups: Vec<Group> = Vec::new();
    for path in &a.inputs {
        let arr = io::load_input(path, &model.meta)?;
        let label = path.display().to_string();
        let sources = (0..arr.batch()).map(|i| (label.clone(), i));
        match groups.last_mut() {
            Some(g) if g.data.shape[1..] == arr.shape[1..] => {
                g.sources.extend(sources);
                g.data = Array::concat(&[
                    std::mem::replace(
                        &mut g.data,
                        Array {
                            shape: vec![0],
                            data: vec![],
                        },
                    ),
                    arr,
                ])?;
            }
            _ => groups.push(Group {
                sources: sources.collect(),
                data: arr,
            }),
        }
    }
    let mut net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
    if let Some(b) = a.batch {
        net = net.with_max_batch(b);
    }
    let total: usize = groups.iter().map(|g| g.data.batch()).sum();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} inputs {elapsed}").unwrap(),
    );
    if total < 16 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut all_logits = Vec::new();
    let mut results = Vec::new();
    for g in &groups {
        let out = net.forward(&g.data, &[])?;
        let probs = net.softmax(&out.logits)?;
        let classes = out.logits.shape[1];
        for (i, (src, idx)) in g.sources.iter().enumerate() {
            let row = &probs.data[i * classes..(i + 1) * classes];
            let logit = &out.logits.data[i * classes..(i + 1) * classes];
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|x, y| row[*y].total_cmp(&row[*x]));
            let top: Vec<_> = order
                .iter()
                .take(a.top)
                .map(|&c| json!({"class": c, "name": net.model().class_name(c), "prob": row[c], "logit": logit[c]}))
                .collect();
            results.push(json!({"input": src, "index": idx, "top": top}));
        }
        bar.inc(g.data.batch() as u64);
        all_logits.push(out.logits);
    }
    bar.finish_and_clear();
    if let Some(path) = &a.logits {
        let logits = Array::concat(&all_logits)?;
        io::write_new(path, &io::npy::to_bytes(&logits), a.overwrite)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results).unwrap());
    } else {
        for r in &results {
            let name = if a.inputs.len() == 1 && total == 1 {
                String::new()
            } else {
                format!("[{}]", r["index"])
            };
            println!("{}{name}", r["input"].as_str().unwrap_or(""));
            for t in r["top"].as_array().unwrap() {
                println!(
                    "  {:>6.2}%  {} ({})",
                    t["prob"].as_f64().unwrap_or(0.0) * 100.0,
                    t["name"].as_str().unwrap_or(""),
                    t["class"]
                );
            }
        }
    }
    Ok(())
}
