//! `netlens embed` (PCA or t-SNE of a layer's features, plotted with thumbnails) and
//! `netlens neighbors` (nearest dataset images of query images in a layer's features).

use std::path::PathBuf;

use serde_json::json;

use crate::array::Array;
use crate::data::folder::ImageSet;
use crate::error::{Error, Result};
use crate::explain::visualize::{features, neighbors, pca, tsne, Metric};
use crate::io;
use crate::io::plot::PALETTE;

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Model file (.safetensors)
    model: PathBuf,
    /// A folder of images (searched recursively) or a Broden-layout dataset
    data: PathBuf,
    /// The layer whose features are embedded
    #[arg(long)]
    layer: String,
    /// pca or tsne (t-SNE runs on the first 50 principal components)
    #[arg(long, default_value = "pca")]
    method: String,
    /// t-SNE perplexity, in [1, (N - 1) / 3)
    #[arg(long, default_value_t = 30.0, allow_negative_numbers = true)]
    perplexity: f64,
    /// t-SNE iterations, 250 to 100000
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// t-SNE seed
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The plot: each image's thumbnail at its point, framed in its class's colour
    #[arg(long, value_name = "FIG.png")]
    out: Option<PathBuf>,
    /// The 2-D points, float32 [N, 2]
    #[arg(long, value_name = "XY.npy")]
    npy: Option<PathBuf>,
    /// Per image: path, class and point
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
}

#[derive(clap::Args)]
pub struct NeighborArgs {
    /// Model file (.safetensors)
    model: PathBuf,
    /// A folder of images (searched recursively) or a Broden-layout dataset
    data: PathBuf,
    /// Query images
    #[arg(required = true)]
    queries: Vec<PathBuf>,
    /// The layer whose features are compared
    #[arg(long)]
    layer: String,
    /// Neighbours per query, 1 to 1000
    #[arg(long, default_value_t = 8)]
    k: usize,
    /// cosine or l2
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Per query: neighbours with paths and distances
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// A grid: each query followed by its neighbours
    #[arg(long, value_name = "FIG.png")]
    png: Option<PathBuf>,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
}

fn thumb(x: &Array, meta: &crate::model::ModelMeta, side: u32) -> image::RgbImage {
    let img = io::heatmap::input_image(x, 0, meta);
    image::imageops::resize(&img, side, side, image::imageops::FilterType::Triangle)
}

/// Thumbnails at their 2-D points, framed by class colour, with a legend.
fn scatter(
    points: &Array,
    thumbs: &[image::RgbImage],
    class: &[usize],
    names: &[String],
    title: &str,
) -> image::RgbImage {
    let (size, pad) = (900u32, 40u32);
    let mut img = image::RgbImage::from_pixel(size + 180, size, image::Rgb([255, 255, 255]));
    let n = points.shape[0];
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for i in 0..n {
        for c in 0..2 {
            lo[c] = lo[c].min(points.data[2 * i + c]);
            hi[c] = hi[c].max(points.data[2 * i + c]);
        }
    }
    for i in 0..n {
        let t = &thumbs[i];
        let at = |c: usize| {
            let span = (hi[c] - lo[c]).max(1e-12);
            pad + ((points.data[2 * i + c] - lo[c]) / span * (size - 2 * pad - t.width()) as f32)
                as u32
        };
        let (x0, y0) = (at(0), size - pad - t.height() - (at(1) - pad));
        let col = image::Rgb(PALETTE[class[i] % PALETTE.len()]);
        for y in 0..t.height() + 4 {
            for x in 0..t.width() + 4 {
                let inner = (2..t.width() + 2).contains(&x) && (2..t.height() + 2).contains(&y);
                let px = if inner {
                    *t.get_pixel(x - 2, y - 2)
                } else {
                    col
                };
                if x0 + x < size && y0 + y < size {
                    img.put_pixel(x0 + x, y0 + y, px);
                }
            }
        }
    }
    io::font::draw(&mut img, title, pad, 10, 2, [20, 20, 20]);
    for (k, name) in names.iter().enumerate() {
        let y = pad + 20 * k as u32;
        for dy in 0..12 {
            for dx in 0..12 {
                img.put_pixel(
                    size + 10 + dx,
                    y + dy,
                    image::Rgb(PALETTE[k % PALETTE.len()]),
                );
            }
        }
        io::font::draw(&mut img, name, size + 28, y + 2, 1, [20, 20, 20]);
    }
    img
}

pub fn embed(a: EmbedArgs, gpu: super::Gpu) -> Result<()> {
    if !(a.perplexity.is_finite() && a.perplexity >= 1.0) {
        return Err(crate::error::Error::input(
            "--perplexity",
            format!("{} must be a number ≥ 1 (below (N - 1) / 3)", a.perplexity),
        ));
    }
    let outputs = [&a.out, &a.npy, &a.json];
    super::refuse_existing(outputs.iter().filter_map(|o| o.as_deref()), a.overwrite)?;
    if outputs.iter().all(|o| o.is_none()) {
        return Err(Error::input(
            "outputs",
            "nothing to write: pass --out, --npy or --json",
        ));
    }
    if !matches!(a.method.as_str(), "pca" | "tsne") {
        return Err(Error::input(
            "--method",
            format!("'{}': use pca or tsne", a.method),
        ));
    }
    let model = super::load_model(&a.model)?;
    let layer = model.find(&a.layer)?;
    let data = ImageSet::open(&a.data)?;
    let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
    let progress = super::progress("features", "images");
    let f = features(&net, &data, layer, &progress)?;
    progress.finish_and_clear();
    let (n, d) = (f.shape[0], f.shape[1]);
    let points = if a.method == "pca" {
        let p = pca(&f, 2)?;
        println!(
            "PCA: variance {:.4} and {:.4} on the first two components",
            p.variance[0], p.variance[1]
        );
        p.projected
    } else {
        let reduced = if d > 50 && n > 50 {
            pca(&f, 50.min(n - 1))?.projected
        } else {
            f.clone()
        };
        tsne(&reduced, a.perplexity, a.steps, a.seed)?
    };
    // classes: the dataset's, else the model's top class
    let m = net.model();
    let names: Vec<String> = match data
        .classes
        .iter()
        .cloned()
        .collect::<Option<Vec<String>>>()
    {
        Some(c) => c,
        None => {
            let mut top = Vec::new();
            for s in (0..n).step_by(64) {
                let x = data.load(s, (s + 64).min(n), &m.meta)?;
                let z = net.forward(&x, &[])?.logits;
                let k = z.shape[1];
                top.extend((0..z.batch()).map(|i| {
                    let row = &z.data[i * k..(i + 1) * k];
                    let best = (0..k).fold(0, |b, j| if row[j] > row[b] { j } else { b });
                    m.class_name(best)
                }));
            }
            top
        }
    };
    let mut legend: Vec<String> = names.clone();
    legend.sort();
    legend.dedup();
    let class: Vec<usize> = names
        .iter()
        .map(|c| legend.binary_search(c).unwrap_or(0))
        .collect();
    if let Some(o) = &a.npy {
        io::write_new(o, &io::npy::to_bytes(&points), a.overwrite)?;
    }
    if let Some(j) = &a.json {
        let rows: Vec<_> = (0..n)
            .map(|i| json!({"image": data.files[i].to_string_lossy(), "class": names[i], "xy": [points.data[2 * i], points.data[2 * i + 1]]}))
            .collect();
        let doc = json!({"layer": a.layer, "method": a.method, "perplexity": (a.method == "tsne").then_some(a.perplexity), "points": rows});
        io::write_new(
            j,
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
            a.overwrite,
        )?;
    }
    if let Some(o) = &a.out {
        let mut thumbs = Vec::with_capacity(n);
        for i in 0..n {
            thumbs.push(thumb(&data.load(i, i + 1, &m.meta)?, &m.meta, 24));
        }
        let title = format!("{} of {} ({n} images)", a.method, a.layer);
        let fig = scatter(&points, &thumbs, &class, &legend, &title);
        io::write_new(o, &io::plot::png(&fig)?, a.overwrite)?;
    }
    println!(
        "{} of {n} images' {} features ({d} each)",
        a.method, a.layer
    );
    Ok(())
}

pub fn neighbors_cmd(a: NeighborArgs, gpu: super::Gpu) -> Result<()> {
    let outputs = [&a.json, &a.png];
    super::refuse_existing(outputs.iter().filter_map(|o| o.as_deref()), a.overwrite)?;
    let metric = match a.metric.as_str() {
        "cosine" => Metric::Cosine,
        "l2" => Metric::L2,
        o => return Err(Error::input("--metric", format!("'{o}': use cosine or l2"))),
    };
    if !(1..=1000).contains(&a.k) {
        return Err(Error::input("--k", format!("{} is outside [1, 1000]", a.k)));
    }
    let model = super::load_model(&a.model)?;
    let layer = model.find(&a.layer)?;
    let data = ImageSet::open(&a.data)?;
    let q = super::load_inputs(&a.queries, &model.meta)?;
    let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
    let progress = super::progress("features", "images");
    let base = features(&net, &data, layer, &progress)?;
    progress.finish_and_clear();
    let name = net.model().output_name(layer).to_string();
    let qf = net.forward(&q, &[name])?.captures.remove(0).1;
    let qf = Array::new(vec![qf.batch(), qf.data.len() / qf.batch()], qf.data)?;
    let nn = neighbors(&qf, &base, a.k.min(data.len()), metric)?;
    let meta = &net.model().meta;
    if let Some(j) = &a.json {
        let rows: Vec<_> = nn
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let list: Vec<_> = v
                    .iter()
                    .map(|(k, d)| json!({"image": data.files[*k].to_string_lossy(), "distance": d}))
                    .collect();
                json!({"query": a.queries[i].to_string_lossy(), "neighbors": list})
            })
            .collect();
        let doc = json!({"layer": a.layer, "metric": a.metric, "queries": rows});
        io::write_new(
            j,
            serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
            a.overwrite,
        )?;
    }
    if let Some(p) = &a.png {
        let mut tiles = Vec::new();
        for (i, v) in nn.iter().enumerate() {
            tiles.push((io::heatmap::input_image(&q, i, meta), "query".to_string()));
            for (k, d) in v {
                tiles.push((
                    io::heatmap::input_image(&data.load(*k, k + 1, meta)?, 0, meta),
                    format!("{d:.3}"),
                ));
            }
        }
        let fig = io::grid::grid(&tiles, nn.first().map_or(1, |v| v.len() + 1), 1);
        io::write_new(p, &io::plot::png(&fig)?, a.overwrite)?;
    }
    for (i, v) in nn.iter().enumerate() {
        let list: Vec<String> = v
            .iter()
            .map(|(k, d)| format!("{} ({d:.3})", data.files[*k].display()))
            .collect();
        println!("{}: {}", a.queries[i].display(), list.join(", "));
    }
    Ok(())
}
