//! Times each layer of a model's forward pass (the faster of two runs: the first builds
//! the pipelines): cargo run --release --example layer_times MODEL N H W
use std::sync::Arc;
use std::time::Instant;

use netlens::gpu::{Context, Recorder, Tensor};
use netlens::model::LayerKind;
use netlens::ops;

fn main() -> netlens::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let model = netlens::model::load(std::path::Path::new(&a[1]))?;
    let dims: Vec<usize> = a[2..5].iter().map(|s| s.parse().unwrap()).collect();
    let ctx = Arc::new(Context::from_env()?);
    let net = netlens::graph::Net::new(ctx.clone(), model.clone())?;
    let _ = net;
    let mut x = Tensor::upload(
        &ctx,
        &vec![0.1; dims[0] * 3 * dims[1] * dims[2]],
        &[dims[0], 3, dims[1], dims[2]],
    )?;
    for (i, l) in model.layers.iter().enumerate() {
        let wb = match &l.kind {
            LayerKind::Conv2d { geom, weight, bias } => {
                Some(netlens::gpu::WeightBuffer::upload_conv(
                    &ctx,
                    "w",
                    weight,
                    geom.cout,
                    geom.kernel.0 * geom.kernel.1,
                    bias.as_deref(),
                )?)
            }
            LayerKind::Linear {
                in_features,
                out_features,
                weight,
                bias,
            } => Some(netlens::gpu::WeightBuffer::upload(
                &ctx,
                "w",
                weight,
                *out_features,
                *in_features,
                bias.as_deref(),
            )?),
            _ => None,
        };
        ctx.wait()?;
        // the first run builds the layer's pipelines: time the second
        let mut best = f64::MAX;
        let mut y = x.clone();
        for _ in 0..2 {
            let t = Instant::now();
            let mut rec = Recorder::new(&ctx, "t");
            y = match &l.kind {
                LayerKind::Conv2d { geom, .. } => {
                    ops::conv2d(&mut rec, &x, wb.as_ref().unwrap(), geom, false)?
                }
                LayerKind::Linear { .. } => ops::linear(&mut rec, &x, wb.as_ref().unwrap(), false)?,
                LayerKind::Relu => ops::relu(&mut rec, &x)?,
                LayerKind::MaxPool2d(p) => ops::max_pool2d(&mut rec, &x, p)?.0,
                LayerKind::AdaptiveAvgPool2d(o) => ops::adaptive_avg_pool2d(&mut rec, &x, *o)?,
                LayerKind::Flatten => x.reshape(&[x.shape[0], x.shape[1..].iter().product()])?,
                _ => x.clone(),
            };
            rec.submit()?;
            ctx.wait()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        x = y;
        println!("{i:>3} {:<14} {:>8.1} ms {:?}", l.name, best * 1e3, x.shape);
    }
    Ok(())
}
