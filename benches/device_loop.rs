//! One device-resident loop iteration (forward, log-probability objective, backward, Adam
//! update: one submission, nothing read back) against a bare forward + backward from a
//! fixed seed, on the demo model at batch 8. The iteration should cost at most 1.1x.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use netlens::gpu::{Recorder, Tensor};
use netlens::graph::Keep;
use netlens::ops::map::{self, Adam};
use netlens::ops::objective::{objective, Objective, Targets};
use netlens::ops::ReluRule;

fn bench(c: &mut Criterion) {
    let (ctx, net) = common::demo_net();
    let n = 8;
    let shape = [n, 3, 64, 64];
    let len = shape.iter().product();
    let x = Tensor::upload(&ctx, &vec![0.1; len], &shape).unwrap();
    let (m, v) = (
        Tensor::upload(&ctx, &vec![0.0; len], &shape).unwrap(),
        Tensor::upload(&ctx, &vec![0.0; len], &shape).unwrap(),
    );
    let targets = Targets::classes(&ctx, &[0, 1, 2, 3, 4, 5, 6, 7], &[8]).unwrap();
    let mut seed = vec![0f32; n * 8];
    (0..n).for_each(|i| seed[i * 8 + i] = 1.0);
    let seed = Tensor::upload(&ctx, &seed, &[n, 8]).unwrap();
    let last = net.model().layers.len() - 1;
    let cfg = Adam {
        lr: 0.01,
        maximize: true,
        ..Default::default()
    };
    let mut g = c.benchmark_group("demo_loop_b8");
    g.sample_size(20);
    g.bench_function("forward + backward", |b| {
        b.iter(|| {
            let mut rec = Recorder::new(&ctx, "bare");
            let tape = net.record_forward(&mut rec, &x, &Keep::All, None).unwrap();
            let _g = net
                .record_backward(&mut rec, &tape, last, &seed, ReluRule::Gradient, &[])
                .unwrap();
            rec.submit().unwrap();
            ctx.wait().unwrap();
        })
    });
    let mut t = 0;
    g.bench_function("loop iteration", |b| {
        b.iter(|| {
            t += 1;
            let mut rec = Recorder::new(&ctx, "iteration");
            let tape = net.record_forward(&mut rec, &x, &Keep::All, None).unwrap();
            let (s, _value) =
                objective(&mut rec, &tape.logits, &targets, Objective::LogProb).unwrap();
            let gr = net
                .record_backward(&mut rec, &tape, last, &s, ReluRule::Gradient, &[])
                .unwrap();
            map::adam_step(&mut rec, &cfg, t, &x, &gr.input, &m, &v).unwrap();
            rec.submit().unwrap();
            ctx.wait().unwrap();
        })
    });
    g.finish();
}

criterion_group!(device_loop, bench);
criterion_main!(device_loop);
