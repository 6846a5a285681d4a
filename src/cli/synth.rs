//! `netlens synth`: the procedural concept dataset in Broden's layout.

use std::path::PathBuf;

use crate::data::synth::{generate, Options};
use crate::error::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Output directory (created; must be empty unless --overwrite)
    #[arg(long)]
    out: PathBuf,
    /// Number of images
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Image side in pixels
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Random seed: the same seed gives byte-identical files
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Value of index.csv's split column
    #[arg(long, default_value = "train")]
    split: String,
    /// Write into a non-empty directory, replacing files of the same names
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> Result<()> {
    if !(1..=10_000_000).contains(&a.count) {
        return Err(Error::input(
            "--count",
            format!("{} must be in 1..=10000000", a.count),
        ));
    }
    if a.out.exists() && !a.overwrite {
        let non_empty = std::fs::read_dir(&a.out)
            .map_err(|e| Error::io(&a.out, e))?
            .next()
            .is_some();
        if non_empty {
            return Err(Error::Other(format!(
                "{} is not empty; pass --overwrite to write into it",
                a.out.display()
            )));
        }
    }
    let bar = indicatif::ProgressBar::new(a.count as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("synth {bar:30} {pos}/{len} {elapsed}").unwrap(),
    );
    let opts = Options {
        count: a.count,
        size: a.size,
        seed: a.seed,
        split: a.split,
    };
    generate(&a.out, &opts, &bar)?;
    bar.finish_and_clear();
    eprintln!("wrote {} images to {}", a.count, a.out.display());
    Ok(())
}
