//! `netlens filters` (a conv layer's RGB filters as a grid) and `netlens activations`
//! (a layer's feature maps for an input as a grid).

use std::path::PathBuf;

use crate::array::Array;
use crate::error::{Error, Result};
use crate::io;
use crate::model::LayerKind;

#[derive(clap::Args)]
pub struct FilterArgs {
    /// Model file (.safetensors)
    model: PathBuf,
    /// A conv layer with 3 input channels (default: the first conv layer)
    #[arg(long)]
    layer: Option<String>,
    /// The grid, each filter scaled to its own largest |weight| (grey = 0)
    #[arg(long, value_name = "FIG.png")]
    out: Option<PathBuf>,
    /// The weights, float32 [Cout, Cin, kh, kw]
    #[arg(long, value_name = "W.npy")]
    npy: Option<PathBuf>,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
}

#[derive(clap::Args)]
pub struct ActivationArgs {
    /// Model file (.safetensors)
    model: PathBuf,
    /// One image (PNG/JPEG) or a .npy float32 [1, C, H, W]
    input: PathBuf,
    /// The layer whose feature maps are shown
    #[arg(long)]
    layer: String,
    /// The grid: each channel's map scaled to its own range (black = its minimum)
    #[arg(long, value_name = "FIG.png")]
    out: Option<PathBuf>,
    /// The activations, float32 [1, C, H, W]
    #[arg(long, value_name = "A.npy")]
    npy: Option<PathBuf>,
    /// Replace output files that exist
    #[arg(long)]
    overwrite: bool,
}

pub fn filters(a: FilterArgs) -> Result<()> {
    let outputs = [&a.out, &a.npy];
    super::refuse_existing(outputs.iter().filter_map(|o| o.as_deref()), a.overwrite)?;
    // conv weights only: the linear ones are checked a piece at a time, not held
    let model = super::load_model(&a.model)?;
    model.check_file_weights()?;
    let i = match &a.layer {
        Some(l) => model.find(l)?,
        None => model
            .layers
            .iter()
            .position(|l| matches!(l.kind, LayerKind::Conv2d { .. }))
            .ok_or_else(|| Error::input("--layer", "the model has no conv layer"))?,
    };
    let LayerKind::Conv2d { geom, weight, .. } = &model.layers[i].kind else {
        return Err(Error::input(
            "--layer",
            format!("{} is not a conv layer", model.layers[i].name),
        ));
    };
    let (kh, kw) = geom.kernel;
    let w = Array::new(vec![geom.cout, geom.cin, kh, kw], weight.clone())?;
    if let Some(o) = &a.npy {
        io::write_new(o, &io::npy::to_bytes(&w), a.overwrite)?;
    }
    if let Some(o) = &a.out {
        if geom.cin != 3 {
            return Err(Error::input(
                "--layer",
                format!(
                    "{} has {} input channels; an RGB grid needs 3 (write --npy instead)",
                    model.layers[i].name, geom.cin
                ),
            ));
        }
        let plane = kh * kw;
        let tiles: Vec<_> = (0..geom.cout)
            .map(|f| {
                let v = &weight[f * 3 * plane..(f + 1) * 3 * plane];
                let m = v.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
                let img = image::RgbImage::from_fn(kw as u32, kh as u32, |x, y| {
                    let at = |c: usize| {
                        let t = 0.5 + 0.5 * v[c * plane + y as usize * kw + x as usize] / m;
                        (t * 255.0).round() as u8
                    };
                    image::Rgb([at(0), at(1), at(2)])
                });
                (img, f.to_string())
            })
            .collect();
        let fig = io::grid::grid(&tiles, 8, (48 / kh.max(kw) as u32).max(1));
        io::write_new(o, &io::plot::png(&fig)?, a.overwrite)?;
    }
    println!(
        "{}: {} filters of {}x{}x{}",
        model.layers[i].name, geom.cout, geom.cin, kh, kw
    );
    Ok(())
}

pub fn activations(a: ActivationArgs, gpu: super::Gpu) -> Result<()> {
    let outputs = [&a.out, &a.npy];
    super::refuse_existing(outputs.iter().filter_map(|o| o.as_deref()), a.overwrite)?;
    if outputs.iter().all(|o| o.is_none()) {
        return Err(Error::input(
            "outputs",
            "nothing to write: pass --out or --npy",
        ));
    }
    let model = super::load_model(&a.model)?;
    let i = model.find(&a.layer)?;
    let x = io::load_input(&a.input, &model.meta)?;
    if x.batch() != 1 {
        return Err(Error::input(
            a.input.display(),
            format!("holds {} items; give one", x.batch()),
        ));
    }
    let net = super::open_net(gpu, model, crate::graph::HostWeights::Release)?;
    let name = net.model().output_name(i).to_string();
    let act = net.forward(&x, &[name])?.captures.remove(0).1;
    if let Some(o) = &a.npy {
        io::write_new(o, &io::npy::to_bytes(&act), a.overwrite)?;
    }
    if let Some(o) = &a.out {
        let (c, h, w) = match act.shape.as_slice() {
            [_, c, h, w] => (*c, *h, *w),
            [_, f] => (1, 1, *f),
            s => return Err(Error::Shape(format!("cannot draw activations {s:?}"))),
        };
        let tiles: Vec<_> = (0..c)
            .map(|k| {
                (
                    io::grid::grey(&act.data[k * h * w..(k + 1) * h * w], h, w),
                    k.to_string(),
                )
            })
            .collect();
        let cols = (c as f64).sqrt().ceil() as usize;
        let fig = io::grid::grid(&tiles, cols, (64 / h.max(1) as u32).max(1));
        io::write_new(o, &io::plot::png(&fig)?, a.overwrite)?;
    }
    println!("{}: {:?}", a.layer, act.shape);
    Ok(())
}
