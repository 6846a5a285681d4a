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
use crate::graph::{Keep, Net};
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
