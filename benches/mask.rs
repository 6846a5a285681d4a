//! One meaningful-perturbation iteration (up-sample, blend, jitter, forward, probability,
//! backward, the blend's and up-sampling's adjoints, TV and L1 gradients, Adam, clamp,
//! history rows: one submission) against a bare forward + backward of the same batch, on
//! the demo model with three samples. Goal: at most 1.2x. tools/mask_reference.py --time
//! times the PyTorch loop on the same samples.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use netlens::explain::mask::{filler, Game, MaskRun, MaskSettings};
use netlens::gpu::{Recorder, Tensor};
use netlens::graph::Keep;
use netlens::ops::ReluRule;
use netlens::Array;

fn bench(c: &mut Criterion) {
    let (ctx, net) = common::demo_net();
    let x = common::samples(&net, &["star", "cross", "triangle"]);
    let s = MaskSettings {
        iterations: 100_000,
        ..MaskSettings::new(Game::Deletion, (64, 64))
    };
    let xt = Tensor::upload(&ctx, &x.data, &x.shape).unwrap();
    let eta = filler(&net, &x, &xt, &s.perturbation, 0).unwrap();
    let eta = Array::new(x.shape.clone(), eta.read(&ctx).unwrap()).unwrap();
    let mut seed = vec![0f32; 3 * 8];
    (0..3).for_each(|i| seed[i * 8 + 3] = 1.0);
    let seed = Tensor::upload(&ctx, &seed, &[3, 8]).unwrap();
    let last = net.model().layers.len() - 1;
    let mut g = c.benchmark_group("mask_b3");
    g.sample_size(20);
    g.bench_function("forward + backward", |b| {
        b.iter(|| {
            let mut rec = Recorder::new(&ctx, "bare");
            let tape = net.record_forward(&mut rec, &xt, &Keep::All, None).unwrap();
            let _g = net
                .record_backward(&mut rec, &tape, last, &seed, ReluRule::Gradient, &[])
                .unwrap();
            rec.submit().unwrap();
            ctx.wait().unwrap();
        })
    });
    let mut run = MaskRun::new(&net, &x, &eta, &[3, 4, 1], &[0, 1, 2], &s).unwrap();
    g.bench_function("mask iteration", |b| {
        b.iter(|| {
            run.step().unwrap();
            ctx.wait().unwrap();
        })
    });
    g.finish();
}

criterion_group!(mask, bench);
criterion_main!(mask);
