//! Attribution costs on VGG16 at 224 (batch 1): `gradient` against one forward pass, each
//! LRP composite against `gradient`; occlusion on the demo model. Compare with
//! tools/bench_captum.py and tools/bench_zennit.py on the same machine.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use netlens::explain::lrp::{assign, Composite, RuleParams, Start};
use netlens::explain::occlusion::occlusion;
use netlens::explain::{run_gradients, Target};
use netlens::gpu::{Context, Tensor};
use netlens::graph::{Keep, Net};
use netlens::model::zoo;
use netlens::ops::ReluRule;
use netlens::Array;

fn bench(c: &mut Criterion) {
    let ctx = Arc::new(Context::from_env().expect("a wgpu adapter"));
    eprintln!("GPU: {}", ctx.adapter_name());
    let net = Net::new(ctx.clone(), zoo::vgg_random(16, 4096, 1000, 1).unwrap()).unwrap();
    let x = Array::new(vec![1, 3, 224, 224], vec![0.1; 3 * 224 * 224]).unwrap();
    let mut g = c.benchmark_group("vgg16_224_b1");
    g.sample_size(10);
    g.bench_function("forward", |b| {
        let xt = Tensor::upload(&ctx, &x.data, &x.shape).unwrap();
        b.iter(|| {
            let t = net.forward_gpu(&xt, &Keep::Nothing).unwrap();
            t.logits.read(&ctx).unwrap()
        })
    });
    g.bench_function("gradient", |b| {
        b.iter(|| {
            run_gradients(
                &net,
                &x,
                Some(&[3]),
                ReluRule::Gradient,
                None,
                &indicatif::ProgressBar::hidden(),
            )
            .unwrap()
        })
    });
    g.finish();
    let lrp = netlens::explain::lrp::Lrp::new(&net);
    let mut g = c.benchmark_group("vgg16_224_b1_lrp");
    g.sample_size(10);
    let p = RuleParams::default();
    for c in [
        Composite::EpsilonPlus,
        Composite::EpsilonPlusFlat,
        Composite::EpsilonGammaBox,
        Composite::EpsilonAlpha2Beta1,
        Composite::EpsilonAlpha2Beta1Flat,
    ] {
        let rules = assign(net.model(), &c, &p, &[]).unwrap();
        g.bench_function(format!("{c:?}"), |b| {
            b.iter(|| {
                lrp.relevance(&x, Some(&[3]), &rules, Start::Logit, false)
                    .unwrap()
            })
        });
    }
    g.finish();
    drop(lrp);
    drop(net);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    let demo = Net::new(
        ctx.clone(),
        netlens::model::load(std::path::Path::new(path)).unwrap(),
    )
    .unwrap();
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/models/samples/star.png");
    let x = netlens::io::image::load(std::path::Path::new(img), &demo.model().meta).unwrap();
    let mut g = c.benchmark_group("occlusion_demo_64");
    g.sample_size(10);
    g.bench_function("window 8 stride 4", |b| {
        b.iter(|| {
            occlusion(
                &demo,
                &x,
                &Target::Class(3),
                (8, 8),
                (4, 4),
                &netlens::explain::gradient::Baseline::Zero,
                &indicatif::ProgressBar::hidden(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(attribution, bench);
criterion_main!(attribution);
