//! `netlens dissect MODEL DATA --layer L... --out DIR`: network dissection over a
//! Broden-layout dataset; `--shard i/n` runs one shard of either pass and
//! `netlens dissect merge PART... --out DIR` combines the shards' states.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::explain::dissect::{
    self, count_pass, load_state, quantile_pass, results, save_state, write_files, write_report,
    Concepts, Header, Layer, LayerResult, Settings, State, Union,
};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    merge: Option<Merge>,
    /// Model file (.safetensors)
    #[arg(required = true)]
    model: Option<PathBuf>,
    /// A Broden-layout dataset (index.csv, label.csv, images/), e.g. from `netlens synth`
    #[arg(required = true)]
    data: Option<PathBuf>,
    /// A layer to dissect (a conv, ReLU or pool output from `netlens info`); repeat for
    /// several layers, all in one pass over the data
    #[arg(long = "layer", required = true)]
    layers: Vec<String>,
    /// Output directory: DIR/<layer>/ results, or a shard's state.safetensors
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    opts: Opts,
    /// Images per device batch, 1 to 256
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Top images per unit kept for the report, 1 to 32
    #[arg(long, default_value_t = 8)]
    top: usize,
    /// Run shard i of n (0 <= i < n) of one pass: without --thresholds the threshold
    /// pass, with it the count pass; each writes a state for `netlens dissect merge`
    #[arg(long, value_name = "i/n")]
    shard: Option<String>,
    /// A merged threshold state (the --out of `dissect merge` over threshold states):
    /// count against these thresholds
    #[arg(long, value_name = "DIR")]
    thresholds: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct Opts {
    /// Each unit's threshold is its (1 − q) quantile over the dataset; q in (0, 0.5]
    #[arg(long, default_value_t = 0.005)]
    quantile: f64,
    /// A unit whose best IoU exceeds this is a detector, in [0, 1]
    #[arg(long, default_value_t = 0.04)]
    iou: f64,
    /// Whose pixels the IoU's union counts per category: lite (NetDissect-Lite: images
    /// where the unit meets the category) or annotated (images labelled in it)
    #[arg(long, default_value = "lite", value_name = "lite|annotated")]
    union: String,
    /// Also write DIR/<layer>/report.html with each unit's top images
    #[arg(long)]
    html: bool,
    /// Replace existing outputs
    #[arg(long)]
    overwrite: bool,
}

#[derive(clap::Subcommand)]
enum Merge {
    /// Combine shard states: threshold states into one threshold state (for
    /// --thresholds), count states into the final results
    Merge(MergeArgs),
}

#[derive(clap::Args)]
struct MergeArgs {
    /// The shards' --out directories
    #[arg(required = true)]
    parts: Vec<PathBuf>,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    opts: Opts,
    /// The model, when it is not where the shards saw it (for the report)
    #[arg(long)]
    model: Option<PathBuf>,
    /// The dataset, when it is not where the shards saw it
    #[arg(long)]
    data: Option<PathBuf>,
}

fn progress(len: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    if let Ok(s) = indicatif::ProgressStyle::with_template(
        "dissect {msg:10} {bar:30} {pos}/{len} images {per_sec} ETA {eta}",
    ) {
        b.set_style(s);
    }
    b
}

fn settings(o: &Opts, batch: usize, top: usize) -> Result<Settings> {
    let s = Settings {
        quantile: o.quantile,
        iou: o.iou,
        batch,
        top,
        union: o.union.parse::<Union>()?,
    };
    s.check()?;
    Ok(s)
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::input("--shard", format!("'{s}' is not i/n (e.g. 0/4)"));
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    Ok((
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    ))
}

fn model_id(path: &Path, net_params: usize) -> String {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    format!("{bytes} bytes, {net_params} parameters")
}

fn data_id(d: &Concepts) -> String {
    format!(
        "{} images, labels below {}, masks {}x{}",
        d.len(),
        d.labels,
        d.mask.0,
        d.mask.1
    )
}

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    if let Some(Merge::Merge(m)) = a.merge {
        return merge(m);
    }
    let (Some(model_path), Some(data_path), Some(out)) = (a.model, a.data, a.out) else {
        return Err(Error::input("dissect", "give MODEL, DATA and --out DIR"));
    };
    let s = settings(&a.opts, a.batch, a.top)?;
    let model = super::load_model(&model_path)?;
    let data = Concepts::open(&data_path)?;
    let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
    let layers = dissect::layers(&net, &a.layers)?;
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let range = match shard {
        Some((i, n)) => dissect::shard_range(data.len(), i, n)?,
        None => (0, data.len()),
    };
    let header =
        |stage: &str, ranges: Vec<(usize, usize)>, keep: Vec<usize>, totals: Vec<u64>| Header {
            version: 1,
            stage: stage.into(),
            model: model_id(&model_path, net.model().param_count()),
            model_path: model_path.display().to_string(),
            dataset: data_id(&data),
            data_path: data_path.display().to_string(),
            images: data.len(),
            layers: layers.clone(),
            quantile: s.quantile,
            top: s.top,
            ranges,
            keep,
            totals,
        };
    // thresholds given: the count pass (of a shard, or of everything)
    if let Some(tdir) = &a.thresholds {
        if shard.is_none() {
            refuse(&out, &layers, &a.opts)?;
        }
        let (h, st) = load_state(tdir)?;
        let State::Thresholds(q) = st else {
            return Err(Error::input(
                "--thresholds",
                format!("{} holds counts, not thresholds", tdir.display()),
            ));
        };
        check_same(
            &h,
            &header("thresholds", vec![], h.keep.clone(), h.totals.clone()),
            tdir,
        )?;
        let covered: usize = q.ranges.iter().map(|r| r.1 - r.0).sum();
        if covered != data.len() {
            return Err(Error::input(
                "--thresholds",
                format!(
                    "covers {covered} of {} images: merge every threshold shard first",
                    data.len()
                ),
            ));
        }
        let thresholds = q.thresholds()?;
        let bar = progress((range.1 - range.0) as u64);
        let c = count_pass(&net, &data, &layers, &thresholds, &s, range, &bar)?;
        bar.finish_and_clear();
        let top: Vec<_> = q.layers.iter().map(|l| l.top.clone()).collect();
        if shard.is_some() {
            let h = header("counts", c.ranges.clone(), h.keep.clone(), h.totals.clone());
            save_state(
                &out,
                &h,
                &State::Counts { counts: c, top },
                a.opts.overwrite,
            )?;
            eprintln!(
                "wrote the count state of images {}..{} to {}",
                range.0,
                range.1,
                out.display()
            );
            return Ok(());
        }
        let r = results(&data, &layers, &top, &c, &s)?;
        return finish(&r, &data, &net.model().meta, &out, &s, &a.opts);
    }
    if shard.is_some() {
        let bar = progress((range.1 - range.0) as u64);
        let q = quantile_pass(&net, &data, &layers, &s, range, &bar)?;
        bar.finish_and_clear();
        let h = header(
            "thresholds",
            q.ranges.clone(),
            q.layers.iter().map(|l| l.keep).collect(),
            q.layers.iter().map(|l| l.total).collect(),
        );
        save_state(&out, &h, &State::Thresholds(q), a.opts.overwrite)?;
        eprintln!(
            "wrote the threshold state of images {}..{} to {}",
            range.0,
            range.1,
            out.display()
        );
        return Ok(());
    }
    refuse(&out, &layers, &a.opts)?;
    let bar = progress(2 * data.len() as u64);
    let r = dissect::dissect(&net, &data, &layers, &s, &bar)?;
    bar.finish_and_clear();
    finish(&r, &data, &net.model().meta, &out, &s, &a.opts)
}

fn refuse(out: &Path, layers: &[Layer], o: &Opts) -> Result<()> {
    let files: Vec<PathBuf> = layers
        .iter()
        .map(|l| out.join(&l.name).join("iou.npy"))
        .collect();
    super::refuse_existing_files(files.iter().map(PathBuf::as_path), o.overwrite)
}

fn check_same(a: &Header, b: &Header, path: &Path) -> Result<()> {
    let differ = |what: &str, x: &str, y: &str| {
        Err(Error::input(
            path.display(),
            format!("was made with {what} {x}, this run has {y}; shards must share model, dataset, layers, --quantile and --top"),
        ))
    };
    if a.model != b.model {
        return differ("a model of", &a.model, &b.model);
    }
    if a.dataset != b.dataset {
        return differ("a dataset of", &a.dataset, &b.dataset);
    }
    if a.layers != b.layers {
        let names = |h: &Header| {
            h.layers
                .iter()
                .map(|l| l.name.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        return differ("layers", &names(a), &names(b));
    }
    if a.quantile != b.quantile || a.top != b.top {
        return differ(
            "--quantile/--top",
            &format!("{}/{}", a.quantile, a.top),
            &format!("{}/{}", b.quantile, b.top),
        );
    }
    Ok(())
}

/// Writes each layer's files (and reports) and prints the detector counts.
fn finish(
    r: &[LayerResult],
    data: &Concepts,
    meta: &crate::model::ModelMeta,
    out: &Path,
    s: &Settings,
    o: &Opts,
) -> Result<()> {
    refuse(
        out,
        &r.iter().map(|x| x.layer.clone()).collect::<Vec<_>>(),
        o,
    )?;
    println!(
        "{:<16} {:>6} {:>10} {:>7}  per category (detectors/unique)",
        "layer", "units", "detectors", "unique"
    );
    for x in r {
        let dir = out.join(&x.layer.name);
        write_files(x, &dir, s)?;
        if o.html {
            write_report(x, data, meta, &dir, s)?;
        }
        let sum = dissect::summary(x, s);
        let cats: Vec<String> = sum["categories"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(c, v)| format!("{c} {}/{}", v["detectors"], v["unique"]))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<16} {:>6} {:>10} {:>7}  {}",
            x.layer.name,
            x.layer.units,
            sum["detectors"].as_u64().unwrap_or(0),
            sum["unique_detectors"].as_u64().unwrap_or(0),
            cats.join(", ")
        );
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn merge(m: MergeArgs) -> Result<()> {
    let mut it = m.parts.iter();
    let first = it
        .next()
        .ok_or_else(|| Error::input("merge", "give the shards' directories"))?;
    let (h0, mut st) = load_state(first)?;
    for p in it {
        let (h, other) = load_state(p)?;
        check_same(&h0, &h, p)?;
        match (&mut st, other) {
            (State::Thresholds(a), State::Thresholds(b)) => a.merge(&b)?,
            (State::Counts { counts: a, top: ta }, State::Counts { counts: b, top: tb }) => {
                if *ta != tb {
                    return Err(Error::input(
                        p.display(),
                        "was counted against other thresholds",
                    ));
                }
                a.merge(&b)?
            }
            _ => {
                return Err(Error::input(
                    p.display(),
                    "mixes threshold and count states; merge each stage on its own",
                ))
            }
        }
    }
    let data_path = m
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(&h0.data_path));
    match st {
        State::Thresholds(q) => {
            let covered: usize = q.ranges.iter().map(|r| r.1 - r.0).sum();
            let thresholds = q.thresholds();
            let mut h = h0.clone();
            h.ranges = q.ranges.clone();
            save_state(&m.out, &h, &State::Thresholds(q), m.opts.overwrite)?;
            match thresholds {
                Ok(t) => {
                    for (l, t) in h.layers.iter().zip(t) {
                        let dir = m.out.join(&l.name);
                        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                        let p = dir.join("thresholds.npy");
                        let a = crate::array::Array::new(vec![t.len()], t)?;
                        crate::io::write_new(&p, &crate::io::npy::to_bytes(&a), m.opts.overwrite)?;
                    }
                    eprintln!(
                        "merged thresholds of {covered}/{} images into {}; now run each shard with --thresholds {}",
                        h.images,
                        m.out.display(),
                        m.out.display()
                    );
                }
                Err(_) => eprintln!(
                    "merged {covered}/{} images into {} (a partial threshold state)",
                    h.images,
                    m.out.display()
                ),
            }
            Ok(())
        }
        State::Counts { counts, top } => {
            let data = Concepts::open(&data_path)?;
            let s = settings(&m.opts, 32, h0.top.max(1))?;
            let s = Settings {
                quantile: h0.quantile,
                ..s
            };
            if data_id(&data) != h0.dataset {
                return Err(Error::input(
                    data_path.display(),
                    format!(
                        "holds {}, the shards saw {}; pass --data",
                        data_id(&data),
                        h0.dataset
                    ),
                ));
            }
            let r = results(&data, &h0.layers, &top, &counts, &s)?;
            let meta = if m.opts.html {
                let mp = m
                    .model
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(&h0.model_path));
                // the metadata only: linear weights stay in the file
                crate::model::load_deferred(&mp)?.meta
            } else {
                crate::model::ModelMeta::default()
            };
            finish(&r, &data, &meta, &m.out, &s, &m.opts)
        }
    }
}
