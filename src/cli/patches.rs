//! `netlens top-patches MODEL DATA --layer L`: each unit's maximally activating patches
//! over a dataset, as JSON and an image grid (one row per unit).

use std::path::PathBuf;

use serde_json::json;

use crate::data::folder::ImageSet;
use crate::error::{Error, Result};
use crate::explain::visualize::top_patches;
use crate::io;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// A folder of images (searched recursively) or a Broden-layout dataset
    data: PathBuf,
    /// The layer whose units are ranked (a name from `netlens info`)
    #[arg(long)]
    layer: String,
    /// Units to report, comma-separated (default: every channel of the layer)
    #[arg(long, value_delimiter = ',')]
    units: Vec<usize>,
    /// Patches per unit, 1 to 1024
    #[arg(long, default_value_t = 9)]
    k: usize,
    /// Output directory: top.json and top.png (created if missing)
    #[arg(long)]
    out: PathBuf,
    /// Replace top.json and top.png if they exist
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args, gpu: super::Gpu) -> Result<()> {
    let (json_path, png_path) = (a.out.join("top.json"), a.out.join("top.png"));
    super::refuse_existing_files([json_path.as_path(), png_path.as_path()], a.overwrite)?;
    let model = super::load_model(&a.model)?;
    let layer = model.find(&a.layer)?;
    let data = ImageSet::open(&a.data)?;
    let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
    let progress = super::progress("top patches", "images");
    let units = top_patches(&net, &data, layer, a.k, &progress)?;
    progress.finish_and_clear();
    let chosen: Vec<usize> = if a.units.is_empty() {
        (0..units.len()).collect()
    } else {
        a.units.clone()
    };
    if let Some(bad) = chosen.iter().find(|u| **u >= units.len()) {
        return Err(Error::input(
            "--units",
            format!(
                "unit {bad} does not exist; layer {} has {}",
                a.layer,
                units.len()
            ),
        ));
    }
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let mut doc = serde_json::Map::new();
    for &u in &chosen {
        let rows: Vec<_> = units[u]
            .iter()
            .map(|p| {
                json!({"image": data.files[p.image].to_string_lossy(), "y": p.y, "x": p.x,
                       "value": p.value, "box": p.bbox})
            })
            .collect();
        doc.insert(u.to_string(), json!(rows));
    }
    let doc = json!({"layer": a.layer, "units": doc});
    io::write_new(
        &json_path,
        serde_json::to_string_pretty(&doc).unwrap().as_bytes(),
        a.overwrite,
    )?;
    // the grid: one row of k crops per unit
    let meta = &net.model().meta;
    let mut tiles = Vec::new();
    for &u in &chosen {
        for (j, p) in units[u].iter().enumerate() {
            let x = data.load(p.image, p.image + 1, meta)?;
            let img = io::heatmap::input_image(&x, 0, meta);
            let [y0, x0, y1, x1] = p.bbox;
            let crop = image::imageops::crop_imm(
                &img,
                x0 as u32,
                y0 as u32,
                (x1 - x0) as u32,
                (y1 - y0) as u32,
            )
            .to_image();
            let caption = if j == 0 {
                format!("unit {u}: {:.2}", p.value)
            } else {
                format!("{:.2}", p.value)
            };
            tiles.push((crop, caption));
        }
        for _ in units[u].len()..a.k {
            tiles.push((image::RgbImage::new(1, 1), String::new()));
        }
    }
    let side = tiles
        .iter()
        .map(|t| t.0.width().max(t.0.height()))
        .max()
        .unwrap_or(1);
    let fig = io::grid::grid(&tiles, a.k, (64 / side).max(1));
    io::write_new(&png_path, &io::plot::png(&fig)?, a.overwrite)?;
    println!(
        "{} units of {} over {} images: {}",
        chosen.len(),
        a.layer,
        data.len(),
        json_path.display()
    );
    Ok(())
}
