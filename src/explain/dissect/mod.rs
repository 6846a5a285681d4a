//! Network dissection (Bau et al. 2017; NetDissect-Lite's semantics): each unit's
//! threshold is the (1 − q) quantile of its activations over the dataset; each unit's
//! map, up-sampled to the label masks and thresholded, is scored against every concept
//! by IoU. Two passes over the data (thresholds, then counts), both streamed through the
//! device; either pass can be split into shards whose states merge exactly.

mod counts;
mod data;
mod quantile;
mod report;
mod result;
mod state;

pub use counts::{count_pass, Counts};
pub use data::{Concepts, Planes};
pub use quantile::{quantile_pass, LayerQuantile, Quantiles, TopImage};
pub use report::write_report;
pub use result::{summary, write_files, LayerResult, UnitLabel};
pub use state::{load_state, save_state, Header, State};

use crate::error::{Error, Result};
use crate::graph::Net;
use crate::model::LayerKind;

/// Which images the IoU's union counts a unit's pixels over, per category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Union {
    /// NetDissect-Lite: the images where the unit's mask meets a label of the category.
    Lite,
    /// Bau et al.'s formula: the images annotated in the category.
    Annotated,
}

impl std::str::FromStr for Union {
    type Err = Error;
    fn from_str(s: &str) -> Result<Union> {
        match s {
            "lite" => Ok(Union::Lite),
            "annotated" => Ok(Union::Annotated),
            _ => Err(Error::input(
                "--union",
                format!("'{s}' is not one of lite, annotated"),
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// The threshold is the (1 − quantile) quantile: (0, 0.5].
    pub quantile: f64,
    /// A unit whose best IoU exceeds this is a detector: [0, 1].
    pub iou: f64,
    /// Images per device batch (1..=256; capped by the adapter's memory).
    pub batch: usize,
    /// Top images per unit kept for the report (1..=32).
    pub top: usize,
    pub union: Union,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quantile: 0.005,
            iou: 0.04,
            batch: 32,
            top: 8,
            union: Union::Lite,
        }
    }
}

impl Settings {
    pub fn check(&self) -> Result<()> {
        if !(self.quantile > 0.0 && self.quantile <= 0.5) {
            return Err(Error::input(
                "--quantile",
                format!("{} is outside (0, 0.5]", self.quantile),
            ));
        }
        if !(0.0..=1.0).contains(&self.iou) {
            return Err(Error::input(
                "--iou",
                format!("{} is outside [0, 1]", self.iou),
            ));
        }
        if !(1..=256).contains(&self.batch) {
            return Err(Error::input(
                "--batch",
                format!("{} is outside 1..=256", self.batch),
            ));
        }
        if !(1..=32).contains(&self.top) {
            return Err(Error::input(
                "--top",
                format!("{} is outside 1..=32", self.top),
            ));
        }
        Ok(())
    }
}

/// A layer being dissected: its index in the model and its output [units, h, w].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    pub name: String,
    pub index: usize,
    pub units: usize,
    pub h: usize,
    pub w: usize,
}

/// Resolves layer names to spatial layers of the model (conv, ReLU, pool outputs).
pub fn layers(net: &Net, names: &[String]) -> Result<Vec<Layer>> {
    let model = net.model();
    let (ih, iw) = model.meta.input_size;
    let shapes = model.output_shapes(&[1, model.in_channels, ih, iw])?;
    if names.is_empty() {
        return Err(Error::input(
            "--layer",
            "name at least one layer to dissect",
        ));
    }
    let mut out: Vec<Layer> = Vec::new();
    for name in names {
        let index = model.find(name)?;
        let s = &shapes[index];
        if s.len() != 4
            || matches!(
                model.layers[index].kind,
                LayerKind::Linear { .. } | LayerKind::Flatten
            )
        {
            return Err(Error::input(
                "--layer",
                format!(
                    "{name} outputs {s:?}, not spatial maps; dissect a conv, ReLU or pool layer"
                ),
            ));
        }
        if out.iter().any(|l| l.index == index) {
            return Err(Error::input("--layer", format!("{name} is named twice")));
        }
        out.push(Layer {
            name: model.output_name(index).to_string(),
            index,
            units: s[1],
            h: s[2],
            w: s[3],
        });
    }
    Ok(out)
}

/// Refuses to merge states whose image ranges overlap (an image counted twice).
pub(crate) fn check_disjoint(mine: &[(usize, usize)], other: &[(usize, usize)]) -> Result<()> {
    for r in other {
        if mine.iter().any(|s| s.0 < r.1 && r.0 < s.1) {
            return Err(Error::input(
                "dissect merge",
                format!("images {}..{} appear in two states", r.0, r.1),
            ));
        }
    }
    Ok(())
}

/// Images [start, end) of shard i (0-based) of n over `count` images.
pub fn shard_range(count: usize, i: usize, n: usize) -> Result<(usize, usize)> {
    if n == 0 || i >= n {
        return Err(Error::input(
            "--shard",
            format!("{i}/{n}: give i/n with 0 <= i < n"),
        ));
    }
    if n > count {
        return Err(Error::input(
            "--shard",
            format!("{n} shards for {count} images; use at most one shard per image"),
        ));
    }
    Ok((i * count / n, (i + 1) * count / n))
}

/// The whole dissection in one process: thresholds over every image, then counts, then
/// IoUs. The same as merging every shard's states.
pub fn dissect(
    net: &Net,
    data: &Concepts,
    layers: &[Layer],
    settings: &Settings,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<LayerResult>> {
    settings.check()?;
    let q = quantile_pass(net, data, layers, settings, (0, data.len()), progress)?;
    let thresholds = q.thresholds()?;
    let c = count_pass(
        net,
        data,
        layers,
        &thresholds,
        settings,
        (0, data.len()),
        progress,
    )?;
    let top: Vec<_> = q.layers.iter().map(|l| l.top.clone()).collect();
    result::results(data, layers, &top, &c, settings)
}

pub use result::results;
