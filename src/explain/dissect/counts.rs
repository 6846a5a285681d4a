//! The counting pass: per batch, each layer's maps are up-sampled to the masks,
//! thresholded and counted against the label planes on the device; counters come back
//! to 64-bit host sums before a u32 could overflow, and once at the end.

use super::{Concepts, Layer, Settings};
use crate::error::{Error, Result};
use crate::gpu::{read_all, Recorder, Tensor};
use crate::graph::{Keep, Net};
use crate::ops::dissect::Tally;

/// Integer sums over some images: per layer `both` [units, labels] and `hit` /
/// `annotated` [units, categories]; `pixels` [labels] is each label's pixel count.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    pub both: Vec<Vec<u64>>,
    pub hit: Vec<Vec<u64>>,
    pub annotated: Vec<Vec<u64>>,
    pub pixels: Vec<u64>,
    pub thresholds: Vec<Vec<f32>>,
    pub ranges: Vec<(usize, usize)>,
}

impl Counts {
    pub fn merge(&mut self, other: &Counts) -> Result<()> {
        let bits = |t: &[Vec<f32>]| -> Vec<Vec<u32>> {
            t.iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        if bits(&other.thresholds) != bits(&self.thresholds) {
            return Err(Error::input(
                "dissect merge",
                "the count states were made with different thresholds; give every shard the same --thresholds",
            ));
        }
        if other.both.len() != self.both.len() || other.pixels.len() != self.pixels.len() {
            return Err(Error::input(
                "dissect merge",
                "the states dissect different layers or datasets",
            ));
        }
        super::check_disjoint(&self.ranges, &other.ranges)?;
        let add = |a: &mut Vec<Vec<u64>>, b: &Vec<Vec<u64>>| {
            for (x, y) in a.iter_mut().zip(b) {
                x.iter_mut().zip(y).for_each(|(p, q)| *p += q);
            }
        };
        add(&mut self.both, &other.both);
        add(&mut self.hit, &other.hit);
        add(&mut self.annotated, &other.annotated);
        self.pixels
            .iter_mut()
            .zip(&other.pixels)
            .for_each(|(p, q)| *p += q);
        self.ranges.extend(other.ranges.iter().copied());
        self.ranges.sort();
        Ok(())
    }
}

/// Counts images [range.0, range.1) against `thresholds` (one list per layer).
pub fn count_pass(
    net: &Net,
    data: &Concepts,
    layers: &[Layer],
    thresholds: &[Vec<f32>],
    settings: &Settings,
    range: (usize, usize),
    progress: &indicatif::ProgressBar,
) -> Result<Counts> {
    settings.check()?;
    let ctx = net.ctx();
    let model = net.model();
    if thresholds.len() != layers.len()
        || thresholds
            .iter()
            .zip(layers)
            .any(|(t, l)| t.len() != l.units)
    {
        return Err(Error::input(
            "--thresholds",
            "do not match the layers' units; make them with the same model and --layer list",
        ));
    }
    if let Some(t) = thresholds.iter().flatten().find(|t| !t.is_finite()) {
        return Err(Error::input(
            "--thresholds",
            format!("hold {t}, not a finite value"),
        ));
    }
    let cats = data.broden.categories.len();
    let rec0 = Recorder::new(ctx, "dissect counters");
    let thr: Vec<Tensor> = thresholds
        .iter()
        .map(|t| Tensor::upload(ctx, t, &[t.len()]))
        .collect::<Result<_>>()?;
    let label_cats = Tensor::upload_u32(ctx, &data.label_cats, &[data.labels])?;
    let fresh = |rec: &Recorder| -> Result<Vec<Tally>> {
        layers
            .iter()
            .map(|l| Tally::new(rec, l.units, data.labels, cats.max(1)))
            .collect()
    };
    let mut tallies = fresh(&rec0)?;
    rec0.submit()?;
    let mut out = Counts {
        both: layers
            .iter()
            .map(|l| vec![0; l.units * data.labels])
            .collect(),
        hit: layers
            .iter()
            .map(|l| vec![0; l.units * cats.max(1)])
            .collect(),
        annotated: layers
            .iter()
            .map(|l| vec![0; l.units * cats.max(1)])
            .collect(),
        pixels: vec![0; data.labels],
        thresholds: thresholds.to_vec(),
        ranges: vec![range],
    };
    let flush = |tallies: &[Tally], out: &mut Counts| -> Result<()> {
        let mut ts: Vec<&Tensor> = Vec::new();
        for t in tallies {
            ts.push(&t.both);
            ts.push(&t.cats);
        }
        let host = read_all(ctx, &ts)?;
        for (i, _) in tallies.iter().enumerate() {
            let both = &host[2 * i];
            let c = &host[2 * i + 1];
            let half = c.len() / 2;
            out.both[i]
                .iter_mut()
                .zip(both)
                .for_each(|(a, b)| *a += b.to_bits() as u64);
            out.hit[i]
                .iter_mut()
                .zip(&c[..half])
                .for_each(|(a, b)| *a += b.to_bits() as u64);
            out.annotated[i]
                .iter_mut()
                .zip(&c[half..])
                .for_each(|(a, b)| *a += b.to_bits() as u64);
        }
        Ok(())
    };
    let keep = Keep::Layers(layers.iter().map(|l| l.index).collect());
    let until = layers.iter().map(|l| l.index).max();
    let (ih, iw) = model.meta.input_size;
    let chunk = net
        .forward_batch(&[1, model.in_channels, ih, iw])?
        .min(settings.batch);
    let (sh, sw) = data.mask;
    // the most any counter can grow per image is planes × sh × sw
    let mut pending: u64 = 0;
    progress.set_message("counts");
    let mut start = range.0;
    while start < range.1 {
        let end = (start + chunk).min(range.1);
        let super::data::Planes {
            labels: planes_data,
            planes,
            annotated,
            pixels,
        } = data.planes(start, end)?;
        let growth = ((end - start) * planes * sh * sw) as u64;
        if pending + growth > u32::MAX as u64 {
            flush(&tallies, &mut out)?;
            let rec = Recorder::new(ctx, "dissect counters");
            tallies = fresh(&rec)?;
            rec.submit()?;
            pending = 0;
        }
        pending += growth;
        out.pixels
            .iter_mut()
            .zip(&pixels)
            .for_each(|(a, b)| *a += b);
        let x = data.load(start, end, &model.meta)?;
        x.check_finite()?;
        let xt = Tensor::upload(ctx, &x.data, &x.shape)?;
        let lab = Tensor::upload_u32(ctx, &planes_data, &[end - start, planes, sh, sw])?;
        let ann = Tensor::upload_u32(ctx, &annotated, &[end - start])?;
        let mut rec = Recorder::new(ctx, "dissect counts");
        let tape = net.record_forward_any(&mut rec, &xt, &keep, until, "--layer")?;
        for ((l, t), th) in layers.iter().zip(&tallies).zip(&thr) {
            let act = tape.outputs[l.index].as_ref().unwrap_or(&tape.logits);
            t.add(&mut rec, act, th, &lab, &label_cats, &ann)?;
        }
        rec.submit()?;
        progress.inc((end - start) as u64);
        start = end;
    }
    flush(&tallies, &mut out)?;
    Ok(out)
}
