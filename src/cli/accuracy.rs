//! `netlens accuracy MODEL DIR`: classification accuracy over a generated dataset
//! (its labels.csv), run through netlens itself.

use std::path::PathBuf;

use serde_json::json;

use crate::error::Result;
use crate::eval::accuracy;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// Dataset directory written by `netlens synth` (labels.csv, images/)
    data: PathBuf,
    /// Images per GPU pass
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    let model = super::load_model(&a.model)?;
    let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
    let r = accuracy(&net, &a.data, a.batch, true)?;
    if a.json {
        let doc = json!({"model": a.model.display().to_string(), "data": a.data.display().to_string(),
                         "images": r.total, "correct": r.correct, "accuracy": r.accuracy(), "per_class": r.per_class});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
    } else {
        println!(
            "accuracy: {:.2}% ({} of {} images)",
            100.0 * r.accuracy(),
            r.correct,
            r.total
        );
        for (name, (ok, n)) in &r.per_class {
            println!("  {name:<12} {ok:>5}/{n:<5}");
        }
    }
    Ok(())
}
