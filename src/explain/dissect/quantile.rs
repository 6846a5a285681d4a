//! The threshold pass: each unit's largest activations (exactly as many as its (1 − q)
//! quantile needs) and its top images, streamed batch by batch; states of disjoint
//! shards merge into the state of their union.

use super::{Concepts, Layer, Settings};
use crate::error::{Error, Result};
use crate::gpu::{read_all, Recorder, Tensor};
use crate::graph::{Keep, Net};

/// One of a unit's top images: its largest activation, the image's index in the dataset
/// and the unit's map [h, w] on it.
#[derive(Clone, Debug, PartialEq)]
pub struct TopImage {
    pub value: f32,
    pub image: usize,
    pub map: Vec<f32>,
}

/// One layer's threshold state over some images.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerQuantile {
    pub layer: Layer,
    /// Per unit: its largest activations, at most `keep`, in descending order once
    /// `finish`ed.
    pub largest: Vec<Vec<f32>>,
    /// Values per unit over the whole dataset (all shards): images × h × w.
    pub total: u64,
    /// How many largest values the quantile needs.
    pub keep: usize,
    /// Per unit: top images, best first (ties: smaller image).
    pub top: Vec<Vec<TopImage>>,
    /// The lower bound below which nothing can enter `largest` (per unit).
    bound: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Quantiles {
    pub layers: Vec<LayerQuantile>,
    pub quantile: f64,
    /// Images [start, end) this state covers, as disjoint ranges.
    pub ranges: Vec<(usize, usize)>,
    pub top: usize,
}

/// numpy's linear interpolation position of quantile `level` among `total` sorted values:
/// (index below, fraction).
fn position(level: f64, total: u64) -> (u64, f64) {
    let p = level * (total - 1) as f64;
    let lo = (p.floor() as u64).min(total - 1);
    (lo, p - lo as f64)
}

/// numpy's `_lerp`, exact at both ends.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

impl LayerQuantile {
    pub fn new(layer: &Layer, images: usize, quantile: f64) -> Result<LayerQuantile> {
        let total = (images * layer.h * layer.w) as u64;
        if total == 0 {
            return Err(Error::input("dataset", "has no images to dissect"));
        }
        let (lo, _) = position(1.0 - quantile, total);
        let keep = (total - lo) as usize;
        if keep.saturating_mul(layer.units) > 1 << 30 {
            return Err(Error::input(
                "--quantile",
                format!(
                    "{} needs the top {keep} activations of each of {}'s {} units, over 2^30 in all; use a smaller quantile or fewer images per run",
                    quantile, layer.name, layer.units
                ),
            ));
        }
        Ok(LayerQuantile {
            layer: layer.clone(),
            largest: vec![Vec::new(); layer.units],
            total,
            keep,
            top: vec![Vec::new(); layer.units],
            bound: vec![f32::NEG_INFINITY; layer.units],
        })
    }

    /// Takes unit u's values; keeps at most 2 × keep before cutting back to keep.
    fn push(&mut self, u: usize, values: &[f32]) {
        let bound = self.bound[u];
        let l = &mut self.largest[u];
        l.extend(values.iter().copied().filter(|v| *v > bound));
        if l.len() >= 2 * self.keep.max(1024) {
            self.cut(u);
        }
    }

    /// Cuts unit u's list to its `keep` largest values. A value equal to the new bound
    /// cannot change the multiset of the `keep` largest, so later ones are skipped.
    fn cut(&mut self, u: usize) {
        let keep = self.keep;
        let l = &mut self.largest[u];
        if l.len() > keep {
            l.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
            l.truncate(keep);
            self.bound[u] = l.iter().copied().fold(f32::INFINITY, f32::min);
        }
    }

    fn offer(&mut self, u: usize, image: usize, map: &[f32], top: usize) {
        let value = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let list = &mut self.top[u];
        let at = list.partition_point(|t| t.value > value || (t.value == value && t.image < image));
        if at < top {
            list.insert(
                at,
                TopImage {
                    value,
                    image,
                    map: map.to_vec(),
                },
            );
            list.truncate(top);
        }
    }

    /// Sorts every list; call before reading `largest` or saving.
    pub fn finish(&mut self) {
        for u in 0..self.layer.units {
            self.cut(u);
            self.largest[u].sort_by(|a, b| b.total_cmp(a));
        }
    }

    /// Merges another shard's state of the same layer.
    pub fn merge(&mut self, other: &LayerQuantile, top: usize) -> Result<()> {
        if other.layer != self.layer || other.total != self.total || other.keep != self.keep {
            return Err(Error::input(
                "dissect merge",
                format!(
                    "states of {} disagree on the layer or the dataset's size",
                    self.layer.name
                ),
            ));
        }
        for u in 0..self.layer.units {
            let v = other.largest[u].clone();
            self.largest[u].extend(v);
            self.cut(u);
            for t in &other.top[u] {
                self.offer(u, t.image, &t.map, top);
            }
        }
        self.finish();
        Ok(())
    }

    /// The (1 − q) quantile of each unit (numpy's linear interpolation), exact once every
    /// shard is merged.
    pub fn thresholds(&self, quantile: f64) -> Result<Vec<f32>> {
        let (lo, frac) = position(1.0 - quantile, self.total);
        // descending rank of the value at ascending index i is total − 1 − i
        let r_lo = (self.total - 1 - lo) as usize;
        self.largest
            .iter()
            .enumerate()
            .map(|(u, l)| {
                if l.len() < self.keep {
                    return Err(Error::input(
                        "dissect",
                        format!(
                            "unit {u} of {} has {} of the {} values its threshold needs: merge every shard first",
                            self.layer.name,
                            l.len(),
                            self.keep
                        ),
                    ));
                }
                let a = l[r_lo] as f64;
                let b = if r_lo == 0 { a } else { l[r_lo - 1] as f64 };
                Ok(lerp(a, b, frac) as f32)
            })
            .collect()
    }
}

impl Quantiles {
    pub fn thresholds(&self) -> Result<Vec<Vec<f32>>> {
        let covered: u64 = self.ranges.iter().map(|r| (r.1 - r.0) as u64).sum();
        if let Some(l) = self.layers.first() {
            if covered * (l.layer.h * l.layer.w) as u64 != l.total {
                return Err(Error::input(
                    "dissect",
                    format!(
                        "this threshold state covers {covered} of {} images: merge every shard first",
                        l.total / (l.layer.h * l.layer.w) as u64
                    ),
                ));
            }
        }
        self.layers
            .iter()
            .map(|l| l.thresholds(self.quantile))
            .collect()
    }

    /// Merges the state of a disjoint set of images.
    pub fn merge(&mut self, other: &Quantiles) -> Result<()> {
        if other.quantile != self.quantile || other.layers.len() != self.layers.len() {
            return Err(Error::input(
                "dissect merge",
                "the states were made with different --quantile or --layer settings",
            ));
        }
        super::check_disjoint(&self.ranges, &other.ranges)?;
        for (a, b) in self.layers.iter_mut().zip(&other.layers) {
            a.merge(b, self.top)?;
        }
        self.ranges.extend(other.ranges.iter().copied());
        self.ranges.sort();
        Ok(())
    }
}

/// Streams images [range.0, range.1) through the network to the deepest layer and keeps
/// each unit's largest activations and top images.
pub fn quantile_pass(
    net: &Net,
    data: &Concepts,
    layers: &[Layer],
    settings: &Settings,
    range: (usize, usize),
    progress: &indicatif::ProgressBar,
) -> Result<Quantiles> {
    settings.check()?;
    let ctx = net.ctx();
    let model = net.model();
    let mut state: Vec<LayerQuantile> = layers
        .iter()
        .map(|l| LayerQuantile::new(l, data.len(), settings.quantile))
        .collect::<Result<_>>()?;
    let keep = Keep::Layers(layers.iter().map(|l| l.index).collect());
    let until = layers.iter().map(|l| l.index).max();
    let (ih, iw) = model.meta.input_size;
    let chunk = net
        .forward_batch(&[1, model.in_channels, ih, iw])?
        .min(settings.batch);
    progress.set_message("thresholds");
    let mut start = range.0;
    while start < range.1 {
        let end = (start + chunk).min(range.1);
        let x = data.load(start, end, &model.meta)?;
        x.check_finite()?;
        let xt = Tensor::upload(ctx, &x.data, &x.shape)?;
        let mut rec = Recorder::new(ctx, "dissect thresholds");
        let tape = net.record_forward_any(&mut rec, &xt, &keep, until, "--layer")?;
        rec.submit()?;
        let outs: Vec<&Tensor> = layers
            .iter()
            .map(|l| tape.outputs[l.index].as_ref().unwrap_or(&tape.logits))
            .collect();
        let host = read_all(ctx, &outs)?;
        for (s, v) in state.iter_mut().zip(&host) {
            let (u_n, hw) = (s.layer.units, s.layer.h * s.layer.w);
            if v.len() != (end - start) * u_n * hw {
                return Err(Error::Shape(format!(
                    "{} gave {} values for {} images",
                    s.layer.name,
                    v.len(),
                    end - start
                )));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::Other(format!(
                    "{} is not finite on image {} ({}); check the model and the input",
                    s.layer.name,
                    start + i / (u_n * hw),
                    v[i]
                )));
            }
            for b in 0..end - start {
                for u in 0..u_n {
                    let map = &v[(b * u_n + u) * hw..(b * u_n + u + 1) * hw];
                    s.push(u, map);
                    s.offer(u, start + b, map, settings.top);
                }
            }
        }
        progress.inc((end - start) as u64);
        start = end;
    }
    for s in &mut state {
        s.finish();
    }
    Ok(Quantiles {
        layers: state,
        quantile: settings.quantile,
        ranges: vec![range],
        top: settings.top,
    })
}

impl LayerQuantile {
    /// A state read back from disk (lists already in descending order).
    pub(crate) fn from_parts(
        layer: Layer,
        largest: Vec<Vec<f32>>,
        total: u64,
        keep: usize,
        top: Vec<Vec<TopImage>>,
    ) -> LayerQuantile {
        let bound = largest
            .iter()
            .map(|l| {
                if l.len() >= keep {
                    l.last().copied().unwrap_or(f32::NEG_INFINITY)
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        LayerQuantile {
            layer,
            largest,
            total,
            keep,
            top,
            bound,
        }
    }
}
