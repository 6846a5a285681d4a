//! A class-model image on the device (the README's loop): Adam ascent of a class's
//! log-probability from a grey image, one submission per step, one read at the end.
//! cargo run --release --example class_model [CLASS] [STEPS]
use std::sync::Arc;

use netlens::gpu::{read_all, Context, Recorder, Tensor};
use netlens::graph::{Keep, Net};
use netlens::ops::map::{adam_step, Adam};
use netlens::ops::objective::{objective, Objective, Targets};
use netlens::ops::ReluRule;

fn main() -> netlens::Result<()> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("a number"))
        .collect();
    let (class, steps) = (
        a.first().copied().unwrap_or(3),
        a.get(1).copied().unwrap_or(300) as u32,
    );
    let ctx = Arc::new(Context::from_env()?);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    let net = Net::new(ctx.clone(), netlens::model::load(path.as_ref())?)?;
    let x = Tensor::upload(&ctx, &vec![0.0; 3 * 64 * 64], &[1, 3, 64, 64])?;
    let (m, v) = (
        Tensor::upload(&ctx, &vec![0.0; 3 * 64 * 64], &x.shape)?,
        Tensor::upload(&ctx, &vec![0.0; 3 * 64 * 64], &x.shape)?,
    );
    let targets = Targets::classes(&ctx, &[class], &[8])?; // checked here, used on the device
    let cfg = Adam {
        lr: 0.05,
        maximize: true,
        ..Default::default()
    };
    let last = net.model().layers.len() - 1;
    let mut value = None;
    for t in 1..=steps {
        let mut rec = Recorder::new(&ctx, "step");
        let tape = net.record_forward(&mut rec, &x, &Keep::All, None)?;
        let (seed, v_t) = objective(&mut rec, &tape.logits, &targets, Objective::LogProb)?;
        let g = net.record_backward(&mut rec, &tape, last, &seed, ReluRule::Gradient, &[])?;
        adam_step(&mut rec, &cfg, t, &x, &g.input, &m, &v)?;
        rec.submit()?;
        value = Some(v_t);
    }
    let out = read_all(&ctx, &[value.as_ref().expect("at least one step"), &x])?;
    let name = &net
        .model()
        .meta
        .classes
        .as_ref()
        .map_or("?".into(), |c| c[class].clone());
    println!(
        "class {class} ({name}) after {steps} steps: p = {:.4}",
        out[0][0].exp()
    );
    Ok(())
}
