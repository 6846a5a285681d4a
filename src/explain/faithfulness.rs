//! Faithfulness of attribution maps by perturbation (Samek et al. 2017; Petsiuk et al.
//! 2018): region perturbation with AOPC (MoRF, LeRF, random), and deletion and insertion
//! curves with their AUC. Maps [N, C, H, W] are summed over channels; every perturbed copy
//! of an item is built by a kernel from a per-pixel rank and run in batches (an item too
//! large for one binding: on the host, one copy at a time, in row bands).

use std::ops::Range;

use crate::array::Array;
use crate::data::rng::Rng;
use crate::error::{Error, Result};
use crate::explain::gradient::Baseline;
use crate::gpu::{Recorder, Tensor};
use crate::graph::stream::passes;
use crate::graph::{Bands, Keep, Net};
use crate::ops::ranked_copies;

/// The order in which units are perturbed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Most relevant first (descending map sum).
    Morf,
    /// Least relevant first.
    Lerf,
    /// A seeded random order.
    Random(u64),
}

impl Order {
    pub fn name(&self) -> &'static str {
        match self {
            Order::Morf => "morf",
            Order::Lerf => "lerf",
            Order::Random(_) => "random",
        }
    }
}

/// What replaces perturbed pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Substrate {
    /// A value in the model's input space.
    Constant(f32),
    /// Samek's uniform noise: U[0, 1] in pixel space per pixel and channel, seeded per
    /// item, then normalised by the model's mean and std.
    Uniform(u64),
    /// The input blurred (σ in pixels, replicated border, radius ⌈3σ⌉).
    Blur(f32),
    /// Each channel's mean over the image.
    Mean,
}

/// The score a curve follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    Prob,
    Logit,
}

/// One curve of one item: the scores and the number it reduces to.
#[derive(Clone, Debug)]
pub struct Curve {
    pub input: usize,
    pub metric: &'static str,
    pub order: &'static str,
    pub value: f64,
    pub curve: Vec<f32>,
}

/// The rank of each pixel's unit: units are r × r patches (the last row and column may be
/// partial; r = 1: pixels), ranked by the sum of `v` (one map plane) over the unit, ties
/// by row-major unit index. Returns (rank per pixel, number of units).
pub fn unit_ranks(v: &[f32], h: usize, w: usize, r: usize, order: Order) -> (Vec<u32>, usize) {
    let (ny, nx) = (h.div_ceil(r), w.div_ceil(r));
    let mut sums = vec![0f64; ny * nx];
    for y in 0..h {
        for x in 0..w {
            sums[(y / r) * nx + x / r] += v[y * w + x] as f64;
        }
    }
    let mut units: Vec<usize> = (0..ny * nx).collect();
    match order {
        Order::Morf => units.sort_by(|a, b| sums[*b].total_cmp(&sums[*a])),
        Order::Lerf => units.sort_by(|a, b| sums[*a].total_cmp(&sums[*b])),
        Order::Random(seed) => {
            let mut rng = Rng::new(seed);
            for i in (1..units.len()).rev() {
                units.swap(i, rng.below(i + 1));
            }
        }
    }
    let mut unit_rank = vec![0u32; units.len()];
    for (k, u) in units.iter().enumerate() {
        unit_rank[*u] = k as u32;
    }
    let rank = (0..h * w)
        .map(|i| unit_rank[(i / w / r) * nx + (i % w) / r])
        .collect();
    (rank, units.len())
}

/// The substitute image of each item of x [N, C, H, W], whose first item is item `first`
/// of the whole batch (uniform noise is seeded by that index).
pub fn substrate(net: &Net, x: &Array, xt: &Tensor, s: &Substrate, first: usize) -> Result<Tensor> {
    let ctx = net.ctx();
    match *s {
        Substrate::Constant(v) => Baseline::Value(v).on_device(ctx, x, xt),
        Substrate::Mean => Baseline::Mean.on_device(ctx, x, xt),
        Substrate::Blur(sigma) => Baseline::Blur(sigma).on_device(ctx, x, xt),
        Substrate::Uniform(seed) => {
            let meta = &net.model().meta;
            let per = x.data.len() / x.batch().max(1);
            let plane = x.shape[2] * x.shape[3];
            let mut data = vec![0f32; x.data.len()];
            for (i, item) in data.chunks_mut(per).enumerate() {
                let mut rng = Rng::derive(seed, (first + i) as u64);
                for (j, v) in item.iter_mut().enumerate() {
                    let c = j / plane;
                    let (m, sd) = (
                        meta.mean.get(c).copied().unwrap_or(0.0),
                        meta.std.get(c).copied().unwrap_or(1.0),
                    );
                    *v = (rng.unit() as f32 - m) / sd;
                }
            }
            Tensor::upload(ctx, &data, &x.shape)
        }
    }
}

/// The score of `target` for every copy whose threshold is in `thresholds`.
#[allow(clippy::too_many_arguments)]
fn curve(
    net: &Net,
    item: &Tensor,
    sub: &Tensor,
    rank: &[u32],
    thresholds: &[u32],
    insert: bool,
    target: usize,
    score: Score,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    if let Some(b) = net.bands(&item.shape)? {
        let copies = Copies::new(net, item, sub, rank, insert)?;
        return banded_curve(net, &b, copies, thresholds, target, score, progress);
    }
    let ctx = net.ctx();
    let rank_t = Tensor::upload_u32(ctx, rank, &[rank.len()])?;
    let thr_t = Tensor::upload_u32(ctx, thresholds, &[thresholds.len()])?;
    let chunk = net.max_batch(&item.shape)?;
    let parts = passes(thresholds.len(), chunk, progress, |r| {
        let mut rec = Recorder::new(ctx, "ranked copies");
        let copies = ranked_copies(
            &mut rec,
            item,
            sub,
            &rank_t,
            &thr_t,
            (r.start, r.len()),
            insert,
        )?;
        rec.submit()?;
        let logits = net.forward_gpu(&copies, &Keep::Nothing)?.logits.read(ctx)?;
        let k = logits.len() / r.len();
        Ok((0..r.len())
            .map(|j| score_of(&logits[j * k..(j + 1) * k], target, score))
            .collect::<Vec<f32>>())
    })?;
    Ok(parts.concat())
}

/// `score` of `target` from one row of logits.
fn score_of(row: &[f32], target: usize, score: Score) -> f32 {
    match score {
        Score::Logit => row[target],
        Score::Prob => {
            let mx = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let z: f64 = row.iter().map(|v| (*v as f64 - mx).exp()).sum();
            ((row[target] as f64 - mx).exp() / z) as f32
        }
    }
}

/// One item's ranked copies made on the host, one threshold after another: the pixels
/// whose rank is below the threshold take the substitute (with `insert`, the copies start
/// as the substitute and those pixels take the item's values).
struct Copies<'a> {
    x: Array,
    /// What a ranked pixel becomes.
    to: Vec<f32>,
    rank: &'a [u32],
    /// The threshold `x` now holds.
    at: u32,
}

impl<'a> Copies<'a> {
    fn new(net: &Net, item: &Tensor, sub: &Tensor, rank: &'a [u32], insert: bool) -> Result<Self> {
        let ctx = net.ctx();
        let (item_v, sub_v) = (item.read(ctx)?, sub.read(ctx)?);
        let (from, to) = if insert {
            (sub_v, item_v)
        } else {
            (item_v, sub_v)
        };
        Ok(Copies {
            x: Array::new(item.shape.clone(), from)?,
            to,
            rank,
            at: 0,
        })
    }

    /// Moves to threshold `thr` (not below the last); returns the rows that changed.
    fn advance(&mut self, thr: u32) -> Range<usize> {
        let [c, h, w] = [self.x.shape[1], self.x.shape[2], self.x.shape[3]];
        let plane = h * w;
        let (mut lo, mut hi) = (h, 0);
        for (p, &r) in self.rank.iter().enumerate() {
            if r >= self.at && r < thr {
                for ch in 0..c {
                    self.x.data[ch * plane + p] = self.to[ch * plane + p];
                }
                lo = lo.min(p / w);
                hi = hi.max(p / w + 1);
            }
        }
        self.at = thr;
        lo..hi.max(lo)
    }
}

/// `curve` for an item too large for one binding: its copies one at a time, the first
/// layers in row bands, rerunning only the bands that read the rows each step changed.
fn banded_curve(
    net: &Net,
    b: &Bands,
    mut copies: Copies,
    thresholds: &[u32],
    target: usize,
    score: Score,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(thresholds.len());
    let mut y: Option<Tensor> = None;
    for &thr in thresholds {
        let changed = copies.advance(thr);
        let now = match &y {
            None => net.banded_prefix(&copies.x, b)?,
            Some(_) if changed.is_empty() => {
                out.push(out[out.len() - 1]);
                progress.inc(1);
                continue;
            }
            Some(base) => net.banded_prefix_from(&copies.x, b, base, changed)?,
        };
        out.push(score_of(&net.logits_after_bands(b, &now)?, target, score));
        y = Some(now);
        progress.inc(1);
    }
    Ok(out)
}

/// Each map's plane summed over channels, item i.
fn plane(maps: &Array, i: usize) -> Vec<f32> {
    let (c, hw) = (maps.shape[1], maps.shape[2] * maps.shape[3]);
    let mut v = vec![0f32; hw];
    for ch in 0..c {
        for (p, o) in v.iter_mut().enumerate() {
            *o += maps.data[(i * c + ch) * hw + p];
        }
    }
    v
}

fn check(x: &Array, maps: &Array, targets: &[usize]) -> Result<()> {
    let ok = maps.shape.len() == 4
        && x.shape.len() == 4
        && maps.shape[0] == x.shape[0]
        && maps.shape[2..] == x.shape[2..]
        && (maps.shape[1] == 1 || maps.shape[1] == x.shape[1])
        && targets.len() == x.shape[0];
    if !ok {
        return Err(Error::input(
            "--maps",
            format!(
                "maps {:?} do not fit inputs {:?}: one map [C or 1, H, W] per input",
                maps.shape, x.shape
            ),
        ));
    }
    x.check_finite()?;
    maps.check_finite()
}

/// Region perturbation: AOPC = 1/(K+1) Σ_{k=0..K} (f(x⁰) − f(xᵏ)), xᵏ with the first k
/// units of `region`² pixels replaced (K = min(steps, units)).
#[allow(clippy::too_many_arguments)]
pub fn aopc(
    net: &Net,
    x: &Array,
    maps: &Array,
    targets: &[usize],
    region: usize,
    steps: usize,
    order: Order,
    sub: &Substrate,
    score: Score,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Curve>> {
    check(x, maps, targets)?;
    let [n, _, h, w] = crate::ops::dims4(&x.shape, "input")?;
    if region == 0 || region > h.max(w) || steps == 0 {
        return Err(Error::input(
            "--region/--steps",
            format!(
                "region {region} must be in 1..={} and steps at least 1",
                h.max(w)
            ),
        ));
    }
    (0..n)
        .map(|i| {
            let (rank, units) = unit_ranks(&plane(maps, i), h, w, region, order);
            let k = steps.min(units);
            let thresholds: Vec<u32> = (0..=k as u32).collect();
            let (item, s_item) = item_and_substrate(net, x, i, sub)?;
            let c = curve(
                net,
                &item,
                &s_item,
                &rank,
                &thresholds,
                false,
                targets[i],
                score,
                progress,
            )?;
            let value = c.iter().map(|v| (c[0] - v) as f64).sum::<f64>() / c.len() as f64;
            Ok(Curve {
                input: i,
                metric: "aopc",
                order: order.name(),
                value,
                curve: c,
            })
        })
        .collect()
}

/// Deletion (or insertion): pixels ranked by the map, `step` per step, n = ⌈HW/step⌉
/// steps; AUC = (1/n) Σ_{i<n} (p_i + p_{i+1}) / 2 over the target's probability.
#[allow(clippy::too_many_arguments)]
pub fn deletion_insertion(
    net: &Net,
    x: &Array,
    maps: &Array,
    targets: &[usize],
    step: usize,
    insert: bool,
    sub: &Substrate,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Curve>> {
    check(x, maps, targets)?;
    let [n, _, h, w] = crate::ops::dims4(&x.shape, "input")?;
    let hw = h * w;
    if step == 0 || step > hw {
        return Err(Error::input(
            "--step",
            format!("{step} must be in 1..={hw}"),
        ));
    }
    let steps = hw.div_ceil(step);
    let thresholds: Vec<u32> = (0..=steps).map(|i| (i * step).min(hw) as u32).collect();
    (0..n)
        .map(|i| {
            let (rank, _) = unit_ranks(&plane(maps, i), h, w, 1, Order::Morf);
            let (item, s_item) = item_and_substrate(net, x, i, sub)?;
            let c = curve(
                net,
                &item,
                &s_item,
                &rank,
                &thresholds,
                insert,
                targets[i],
                Score::Prob,
                progress,
            )?;
            let auc = c
                .windows(2)
                .map(|p| (p[0] + p[1]) as f64 / 2.0)
                .sum::<f64>()
                / steps as f64;
            Ok(Curve {
                input: i,
                metric: if insert { "insertion" } else { "deletion" },
                order: "morf",
                value: auc,
                curve: c,
            })
        })
        .collect()
}

/// Item i on the device and its substitute.
fn item_and_substrate(net: &Net, x: &Array, i: usize, sub: &Substrate) -> Result<(Tensor, Tensor)> {
    let xi = x.slice_batch(i, i + 1);
    let t = Tensor::upload(net.ctx(), &xi.data, &xi.shape)?;
    let s = substrate(net, &xi, &t, sub, i)?;
    Ok((t, s))
}

/// The pointing game for one map plane (summed over channels) against an object mask:
/// (hit, energy). A hit when the map's maximum (the first in row-major order) lies within
/// `tolerance` pixels of an object pixel; energy is the share of the map's positive mass
/// on the object (0 when the map has none).
pub fn pointing(map: &[f32], object: &[bool], h: usize, w: usize, tolerance: f32) -> (bool, f64) {
    let mut best = 0;
    for (i, v) in map.iter().enumerate() {
        if *v > map[best] {
            best = i;
        }
    }
    let (by, bx) = ((best / w) as f32, (best % w) as f32);
    let t2 = tolerance * tolerance;
    let hit = (0..h * w).any(|i| {
        object[i] && {
            let (dy, dx) = ((i / w) as f32 - by, (i % w) as f32 - bx);
            dy * dy + dx * dx <= t2
        }
    });
    let pos: f64 = map.iter().map(|v| v.max(0.0) as f64).sum();
    let on: f64 = map
        .iter()
        .zip(object)
        .filter(|(_, o)| **o)
        .map(|(v, _)| v.max(0.0) as f64)
        .sum();
    (hit, if pos > 0.0 { on / pos } else { 0.0 })
}

/// Pointing-game rows for every item: "pointing"/"all", "pointing"/"difficult" (objects
/// under a quarter of the image: TorchRay's subset), and "energy"/"all".
pub fn pointing_game(maps: &Array, objects: &[Vec<bool>], tolerance: f32) -> Result<Vec<Curve>> {
    let [n, _, h, w] = crate::ops::dims4(&maps.shape, "maps")?;
    if objects.len() != n || objects.iter().any(|o| o.len() != h * w) {
        return Err(Error::input(
            "objects",
            format!("{n} object masks of {h}x{w} are needed for the pointing game"),
        ));
    }
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(Error::input(
            "--tolerance",
            format!("{tolerance} must be >= 0"),
        ));
    }
    let mut out = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let (hit, energy) = pointing(&plane(maps, i), object, h, w, tolerance);
        let row = |metric, order, value| Curve {
            input: i,
            metric,
            order,
            value,
            curve: Vec::new(),
        };
        out.push(row("pointing", "all", hit as u8 as f64));
        if (object.iter().filter(|o| **o).count() as f64) < 0.25 * (h * w) as f64 {
            out.push(row("pointing", "difficult", hit as u8 as f64));
        }
        out.push(row("energy", "all", energy));
    }
    Ok(out)
}
