//! The README's library example: cargo run --release --example explain
use std::sync::Arc;

use netlens::explain::{method, Target};
use netlens::{gpu::Context, graph::Net};

fn main() -> netlens::Result<()> {
    let ctx = Arc::new(Context::from_env()?); // or Context::from_device(device, queue)?
    let net = Net::new(
        ctx,
        netlens::model::load("models/shapes-vgg.safetensors".as_ref())?,
    )?;
    let x = netlens::io::image::load("models/samples/star.png".as_ref(), &net.model().meta)?;
    let out = net.forward(&x, &["features.14".into()])?; // logits + captured activations
    let ig = method::attribute(
        &net,
        "integrated-gradients",
        &x,
        &Target::Argmax,
        &method::Settings::default(),
        &indicatif::ProgressBar::hidden(),
    )?;
    println!(
        "logits {:?}, features.14 {:?}, IG map {:?} for class {}",
        out.logits.data,
        out.captures[0].1.shape,
        ig.map.shape,
        net.model().class_name(ig.targets[0])
    );
    Ok(())
}
