//! netlens's side of the README speed table: median seconds of every VGG16 conv/linear
//! shape, VGG16 forward and gradient at batch 1 and 8, every LRP composite, ResNet-50's
//! forward, gradient and two LRP composites, and the demo model's integrated gradients and
//! occlusion, one JSON object per line. Run through `python3 tools/speed_table.py`, which
//! times the peers on the same inputs in the same run.
//!
//! cargo run --release --example speed -- [--reps N] [--quick] [--only vgg|resnet|demo]
use std::sync::Arc;
use std::time::Instant;

use netlens::explain::gradient::{integrated_gradients, Baseline, IgMethod};
use netlens::explain::lrp::{assign, Composite, Lrp, RuleParams, Start};
use netlens::explain::occlusion::occlusion;
use netlens::explain::{run_gradients, Target};
use netlens::gpu::{Context, Recorder, Tensor, WeightBuffer};
use netlens::graph::{Keep, Net};
use netlens::model::zoo;
use netlens::ops::{self, Conv2dGeom, ReluRule};
use netlens::Array;

#[path = "../benches/common.rs"]
mod common;
use common::{fill, VGG16_CONVS as CONVS};

/// (name, batch, in, out)
const LINEARS: &[(&str, usize, usize, usize)] = &[
    ("fc6", 1, 25088, 4096),
    ("fc7", 1, 4096, 4096),
    ("fc8", 1, 4096, 1000),
];

/// Median seconds of `reps` runs after one warm-up run.
fn median(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

fn emit(name: &str, seconds: f64, flops: Option<f64>) {
    let gflops = flops.map_or("null".to_string(), |f| format!("{:.3}", f / seconds / 1e9));
    println!("{{\"name\": \"{name}\", \"seconds\": {seconds:.6}, \"gflops\": {gflops}}}");
}

fn main() -> netlens::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .map_or(3, |v| v.parse().expect("--reps N"));
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let ctx = Arc::new(Context::from_env()?);
    eprintln!(
        "GPU: {} (GEMM kernels: {})",
        ctx.adapter_name(),
        ctx.gemm().name()
    );
    if only.is_none_or(|o| o == "vgg") {
        vgg16(&ctx, reps, quick)?;
    }
    if only.is_none_or(|o| o == "resnet") {
        resnet50(&ctx, reps)?;
    }
    if only.is_none_or(|o| o == "demo") {
        demo(&ctx, reps)?;
    }
    Ok(())
}

/// Every VGG16 conv and linear shape, VGG16 forward and gradient, every LRP composite.
fn vgg16(ctx: &Arc<Context>, reps: usize, quick: bool) -> netlens::Result<()> {
    let ctx = ctx.clone();
    for (name, d, cout) in CONVS {
        let g = Conv2dGeom {
            cin: d[1],
            cout: *cout,
            kernel: (3, 3),
            stride: (1, 1),
            padding: (1, 1),
        };
        let w = WeightBuffer::upload_conv(
            &ctx,
            name,
            &fill(cout * d[1] * 9),
            *cout,
            9,
            Some(&fill(*cout)),
        )?;
        let x = Tensor::upload(&ctx, &fill(d.iter().product()), d)?;
        let t = median(reps, || {
            let mut rec = Recorder::new(&ctx, "speed");
            let _y = ops::conv2d(&mut rec, &x, &w, &g, true).unwrap();
            rec.submit().unwrap();
            ctx.wait().unwrap();
        });
        emit(
            &format!("conv {name} b1"),
            t,
            Some(2.0 * (d[2] * d[3] * cout * d[1] * 9) as f64),
        );
    }
    for (name, n, k, out) in LINEARS {
        let w = WeightBuffer::upload(&ctx, name, &fill(out * k), *out, *k, Some(&fill(*out)))?;
        let x = Tensor::upload(&ctx, &fill(n * k), &[*n, *k])?;
        let t = median(reps, || {
            let mut rec = Recorder::new(&ctx, "speed");
            let _y = ops::linear(&mut rec, &x, &w, false).unwrap();
            rec.submit().unwrap();
            ctx.wait().unwrap();
        });
        emit(
            &format!("linear {name} b{n}"),
            t,
            Some(2.0 * (n * k * out) as f64),
        );
    }
    let net = Net::new(
        ctx.clone(),
        zoo::vgg_random(16, 4096, 1000, 1).expect("vgg16"),
    )?;
    let batches: &[usize] = if quick { &[1] } else { &[1, 8] };
    for &n in batches {
        let x = Array::new(vec![n, 3, 224, 224], fill(n * 3 * 224 * 224))?;
        let xt = Tensor::upload(&ctx, &x.data, &x.shape)?;
        let t = median(reps, || {
            let tape = net.forward_gpu(&xt, &Keep::Nothing).unwrap();
            tape.logits.read(&ctx).unwrap();
        });
        emit(&format!("vgg16 forward b{n}"), t, Some(30.946e9 * n as f64));
        let targets = vec![3; n];
        let hidden = indicatif::ProgressBar::hidden();
        let t = median(reps, || {
            run_gradients(&net, &x, Some(&targets), ReluRule::Gradient, None, &hidden).unwrap();
        });
        emit(&format!("vgg16 gradient b{n}"), t, None);
    }
    let lrp = Lrp::new(&net);
    let x = Array::new(vec![1, 3, 224, 224], fill(3 * 224 * 224))?;
    let p = RuleParams::default();
    for c in [
        Composite::EpsilonPlus,
        Composite::EpsilonPlusFlat,
        Composite::EpsilonGammaBox,
        Composite::EpsilonAlpha2Beta1,
        Composite::EpsilonAlpha2Beta1Flat,
    ] {
        let rules = assign(net.model(), &c, &p, &[])?;
        let t = median(reps, || {
            lrp.relevance(&x, Some(&[3]), &rules, Start::Logit, false)
                .unwrap();
        });
        emit(&format!("vgg16 lrp {c:?} b1"), t, None);
    }
    Ok(())
}

/// ResNet-50 (random weights and batch-norm statistics) at batch 1: forward, gradient,
/// and the LRP composites Zennit's ResNetCanonizer serves (EpsilonPlus, EpsilonAlpha2Beta1).
fn resnet50(ctx: &Arc<Context>, reps: usize) -> netlens::Result<()> {
    let net = Net::new(
        ctx.clone(),
        zoo::resnet_random(50, 1000, 1).expect("resnet50"),
    )?;
    let x = Array::new(vec![1, 3, 224, 224], fill(3 * 224 * 224))?;
    let xt = Tensor::upload(ctx, &x.data, &x.shape)?;
    let t = median(reps, || {
        let tape = net.forward_gpu(&xt, &Keep::Nothing).unwrap();
        tape.logits.read(ctx).unwrap();
    });
    emit("resnet50 forward b1", t, Some(8.18e9));
    let hidden = indicatif::ProgressBar::hidden();
    let t = median(reps, || {
        run_gradients(&net, &x, Some(&[3]), ReluRule::Gradient, None, &hidden).unwrap();
    });
    emit("resnet50 gradient b1", t, None);
    let lrp = Lrp::new(&net);
    for c in [Composite::EpsilonPlus, Composite::EpsilonAlpha2Beta1] {
        let rules = assign(net.model(), &c, &RuleParams::default(), &[])?;
        let t = median(reps, || {
            lrp.relevance(&x, Some(&[3]), &rules, Start::Logit, false)
                .unwrap();
        });
        emit(&format!("resnet50 lrp {c:?} b1"), t, None);
    }
    Ok(())
}

/// The demo model's integrated gradients and occlusion.
fn demo(ctx: &Arc<Context>, reps: usize) -> netlens::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    let demo = Net::new(
        ctx.clone(),
        netlens::model::load(std::path::Path::new(path))?,
    )?;
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/models/samples/star.png");
    let x = netlens::io::image::load(std::path::Path::new(img), &demo.model().meta)?;
    let t = median(reps, || {
        integrated_gradients(
            &demo,
            &x,
            &Target::Class(3),
            &Baseline::Zero,
            50,
            IgMethod::GaussLegendre,
        )
        .unwrap();
    });
    emit("demo integrated-gradients 50 steps", t, None);
    let hidden = indicatif::ProgressBar::hidden();
    for (w, s) in [(16, 8), (8, 4)] {
        let t = median(reps, || {
            occlusion(
                &demo,
                &x,
                &Target::Class(3),
                (w, w),
                (s, s),
                &Baseline::Zero,
                &hidden,
            )
            .unwrap();
        });
        emit(&format!("demo occlusion w{w} s{s}"), t, None);
    }
    Ok(())
}
