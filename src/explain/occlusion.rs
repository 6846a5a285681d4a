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
        let fixed = Attribution {
            map: base_logits,
            targets,
        };
        return banded(net, x, fixed, &win, baseline, &b, progress);
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
        let mut sum = vec![0f64; plane];
        let mut count = vec![0u32; plane];
        passes(win.count(), chunk, progress, |r| {
            let (first, m) = (r.start, r.len());
            let mut rec = Recorder::new(ctx, "occlude");
            let copies = ops::occlude(&mut rec, &xt, &bt, b, &win, first, m)?;
            rec.submit()?;
            let logits = net.forward_gpu(&copies, &Keep::Nothing)?.logits.read(ctx)?;
            for j in 0..m {
                let d = (f0 - logits[j * k + targets[b]]) as f64;
                let (y0, y1, x0, x1) = win.rect(first + j, h, w);
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        sum[yy * w + xx] += d;
                        count[yy * w + xx] += 1;
                    }
                }
            }
            Ok(())
        })?;
        for ch in 0..c {
            for i in 0..plane {
                out[(b * c + ch) * plane + i] = (sum[i] / count[i].max(1) as f64) as f32;
            }
        }
    }
    Ok(Attribution {
        map: Array::new(x.shape.clone(), out)?,
        targets,
    })
}

/// `occlusion` for items too large for the device (`Net::bands`): a copy at a time, the
/// bands that read no occluded row left as they ran on the item itself. `base` holds
/// the item's logits and targets.
fn banded(
    net: &Net,
    x: &Array,
    base: Attribution,
    win: &Windows,
    baseline: &Baseline,
    b: &Bands,
    progress: &indicatif::ProgressBar,
) -> Result<Attribution> {
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let (ctx, plane, k) = (net.ctx(), h * w, base.map.shape[1]);
    let mut out = vec![0f32; n * c * plane];
    progress.set_length((n * win.count()) as u64);
    for i in 0..n {
        let item = x.slice_batch(i, i + 1);
        let xt = Tensor::upload(ctx, &item.data, &item.shape)?;
        let fill = baseline.on_device(ctx, &item, &xt)?.read(ctx)?;
        let clean = net.banded_prefix(&item, b)?;
        let (t, f0) = (base.targets[i], base.map.data[i * k + base.targets[i]]);
        let mut sum = vec![0f64; plane];
        let mut count = vec![0u32; plane];
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
            let mut rec = Recorder::new(ctx, "occluded copy");
            let tape = net.record_after_bands(&mut rec, b, &y, &Keep::Nothing)?;
            rec.submit()?;
            let d = (f0 - tape.logits.read(ctx)?[t]) as f64;
            for yy in y0..y1 {
                for xx in x0..x1 {
                    sum[yy * w + xx] += d;
                    count[yy * w + xx] += 1;
                }
            }
            progress.inc(1);
        }
        for ch in 0..c {
            for p in 0..plane {
                out[(i * c + ch) * plane + p] = (sum[p] / count[p].max(1) as f64) as f32;
            }
        }
    }
    Ok(Attribution {
        map: Array::new(x.shape.clone(), out)?,
        targets: base.targets,
    })
}
