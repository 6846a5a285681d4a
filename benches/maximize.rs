//! One activation-maximisation step (forward to the objective, log-probability seed,
//! backward, Adam, pixel-range clamp, history row: one submission) against a bare
//! forward and backward of the same batch: the eight class models of the demo model.
//! Goal: at most 1.2x. A regularised step (jitter, blur, norm clipping) and a Lucid step
//! (Fourier image, standard transforms: the model sees ~90 px images) are timed too;
//! tools/maximize_reference.py times PyTorch and Lucent loops on the same machine.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use netlens::explain::visualize::{Goal, MaximizeRun, MaximizeSettings, Preset};
use netlens::gpu::{Recorder, Tensor};
use netlens::graph::Keep;
use netlens::ops::ReluRule;

fn bench(c: &mut Criterion) {
    let (ctx, net) = common::demo_net();
    let text: Vec<String> = (0..8).map(|k| format!("logprob:{k}")).collect();
    let goals = Goal::parse_list(&text.join(","), net.model(), &[1, 3, 64, 64]).unwrap();
    let xt = Tensor::upload(&ctx, &vec![0.1; 8 * 3 * 64 * 64], &[8, 3, 64, 64]).unwrap();
    let mut seed = vec![0f32; 8 * 8];
    (0..8).for_each(|i| seed[i * 8 + i] = 1.0);
    let seed = Tensor::upload(&ctx, &seed, &[8, 8]).unwrap();
    let last = net.model().layers.len() - 1;
    let mut g = c.benchmark_group("maximize_b8");
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
    let s = MaximizeSettings::preset(Preset::Simonyan, (64, 64));
    let mut run = MaximizeRun::new(&net, &goals, &s).unwrap();
    g.bench_function("maximize step", |b| {
        b.iter(|| {
            run.step().unwrap();
            ctx.wait().unwrap();
        })
    });
    let r = MaximizeSettings {
        jitter: 4,
        blur_every: 1,
        blur_sigma: 0.5,
        clip_norm_pct: 50.0,
        ..s
    };
    let mut run = MaximizeRun::new(&net, &goals, &r).unwrap();
    g.bench_function("regularised step (jitter, blur, clip)", |b| {
        b.iter(|| {
            run.step().unwrap();
            ctx.wait().unwrap();
        })
    });
    let l = MaximizeSettings::preset(Preset::Lucid, (64, 64));
    let mut run = MaximizeRun::new(&net, &goals, &l).unwrap();
    g.bench_function("lucid step (fft image, transforms)", |b| {
        b.iter(|| {
            run.step().unwrap();
            ctx.wait().unwrap();
        })
    });
    g.finish();
}

criterion_group!(maximize, bench);
criterion_main!(maximize);
