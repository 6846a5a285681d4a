//! Occlusion (Captum's `Occlusion`, window over all channels): the attribution of a pixel
//! is the mean, over the windows covering it, of f(x) − f(x with the window replaced).
//! The occluded copies are made on the GPU and run as batches; the window takes the
//! baseline's pixels (a constant, a blurred copy, channel means).

use super::gradient::Baseline;
use super::{Attribution, Target};
use crate::array::Array;
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::graph::stream::passes;
use crate::graph::{Bands, Keep, Net};
use crate::ops::{self, Windows};

pub fn occlusion(
    net: &Net,
    x: &Array,
    target: &Target,
    window: (usize, usize),
    stride: (usize, usize),
    baseline: &Baseline,
    progress: &indicatif::ProgressBar,
) -> Result<Attribution> {
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let win = Windows::new(h, w, window, stride)?;
    let ctx = net.ctx();
    let base_logits = net.forward(x, &[])?.logits;
    let targets = target.from_logits(&base_logits)?;
    if let Some(b) = net.bands(&x.shape)? {
        let map = banded(
            net,
            x,
            (&base_logits, &targets),
            &win,
            baseline,
            &b,
            progress,
        )?;
        return Ok(Attribution { map, targets });
    }
    let k = base_logits.shape[1];
    let chunk = net.max_batch(&x.shape)?;
    let xt = Tensor::upload(ctx, &x.data, &x.shape)?;
    let bt = baseline.on_device(ctx, x, &xt)?;
    let plane = h * w;
    let mut out = vec![0f32; n * c * plane];
    progress.set_length((n * win.count()) as u64);
    for b in 0..n {
        let f0 = base_logits.data[b * k + targets[b]];
        let mut means = Means::new(h, w);
        passes(win.count(), chunk, progress, |r| {
            let (first, m) = (r.start, r.len());
            let mut rec = Recorder::new(ctx, "occlude");
            let copies = ops::occlude(&mut rec, &xt, &bt, b, &win, first, m)?;
            rec.submit()?;
            let logits = net.forward_gpu(&copies, &Keep::Nothing)?.logits.read(ctx)?;
            for j in 0..m {
                let d = f0 - logits[j * k + targets[b]];
                means.add(win.rect(first + j, h, w), d);
            }
            Ok(())
        })?;
        means.write(&mut out[b * c * plane..(b + 1) * c * plane]);
    }
    Ok(Attribution {
        map: Array::new(x.shape.clone(), out)?,
        targets,
    })
}

/// Each pixel's mean, over the windows that cover it, of the score drops they gave.
struct Means {
    sum: Vec<f64>,
    count: Vec<u32>,
    w: usize,
}

impl Means {
    fn new(h: usize, w: usize) -> Self {
        Means {
            sum: vec![0.0; h * w],
            count: vec![0; h * w],
            w,
        }
    }

    /// Window (y0, y1, x0, x1) dropped the score by `d`.
    fn add(&mut self, (y0, y1, x0, x1): (usize, usize, usize, usize), d: f32) {
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.sum[yy * self.w + xx] += d as f64;
                self.count[yy * self.w + xx] += 1;
            }
        }
    }

    /// The means into every channel of one item's map `out` [C, H, W].
    fn write(&self, out: &mut [f32]) {
        for plane in out.chunks_mut(self.sum.len()) {
            for (o, (s, c)) in plane.iter_mut().zip(self.sum.iter().zip(&self.count)) {
                *o = (s / (*c).max(1) as f64) as f32;
            }
        }
    }
}

/// `occlusion` for items too large for the device (`Net::bands`): a copy at a time, the
/// bands that read no occluded row left as they ran on the item itself. `base` holds
/// the items' logits and targets; returns the map.
fn banded(
    net: &Net,
    x: &Array,
    (logits, targets): (&Array, &[usize]),
    win: &Windows,
    baseline: &Baseline,
    b: &Bands,
    progress: &indicatif::ProgressBar,
) -> Result<Array> {
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let (ctx, plane, k) = (net.ctx(), h * w, logits.shape[1]);
    let mut out = vec![0f32; n * c * plane];
    progress.set_length((n * win.count()) as u64);
    for i in 0..n {
        let item = x.slice_batch(i, i + 1);
        let xt = Tensor::upload(ctx, &item.data, &item.shape)?;
        let fill = baseline.on_device(ctx, &item, &xt)?.read(ctx)?;
        let clean = net.banded_prefix(&item, b)?;
        let (t, f0) = (targets[i], logits.data[i * k + targets[i]]);
        let mut means = Means::new(h, w);
        for j in 0..win.count() {
            let (y0, y1, x0, x1) = win.rect(j, h, w);
            let mut copy = item.clone();
            for ch in 0..c {
                for yy in y0..y1 {
                    let at = ch * plane + yy * w;
                    copy.data[at + x0..at + x1].copy_from_slice(&fill[at + x0..at + x1]);
                }
            }
            let y = net.banded_prefix_from(&copy, b, &clean, y0..y1)?;
            means.add((y0, y1, x0, x1), f0 - net.logits_after_bands(b, &y)?[t]);
            progress.inc(1);
        }
        means.write(&mut out[i * c * plane..(i + 1) * c * plane]);
    }
    Array::new(x.shape.clone(), out)
}
