//! Kernel benches: conv2d, linear (forward and input gradient) and max-pool on VGG16
//! shapes, in GFLOP/s (criterion's "elem/s" below counts floating-point operations).
//! Compare with tools/bench_torch.py.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netlens::gpu::{Context, Recorder, Tensor, WeightBuffer};
use netlens::ops::{self, Conv2dGeom, Pool2d};

#[path = "common.rs"]
mod common;
use common::fill;

fn ctx() -> Arc<Context> {
    Arc::new(Context::from_env().expect("a wgpu adapter"))
}

fn benches(c: &mut Criterion) {
    let ctx = ctx();
    eprintln!("GPU: {}", ctx.adapter_name());
    let mut g = c.benchmark_group("conv2d");
    g.sample_size(10);
    for (name, d, cout) in common::CONVS {
        let geom = Conv2dGeom {
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
        )
        .unwrap();
        let x = Tensor::upload(&ctx, &fill(d.iter().product()), d).unwrap();
        g.throughput(Throughput::Elements(
            (2 * d[0] * d[2] * d[3] * cout * d[1] * 9) as u64,
        ));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut rec = Recorder::new(&ctx, "bench");
                let _y = ops::conv2d(&mut rec, &x, &w, &geom, true).unwrap();
                rec.submit().unwrap();
                ctx.wait().unwrap();
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("linear");
    g.sample_size(10);
    for (name, n, k, out) in common::LINEARS {
        let w =
            WeightBuffer::upload(&ctx, name, &fill(out * k), *out, *k, Some(&fill(*out))).unwrap();
        let x = Tensor::upload(&ctx, &fill(n * k), &[*n, *k]).unwrap();
        g.throughput(Throughput::Elements((2 * n * k * out) as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut rec = Recorder::new(&ctx, "bench");
                let _y = ops::linear(&mut rec, &x, &w, false).unwrap();
                rec.submit().unwrap();
                ctx.wait().unwrap();
            })
        });
    }
    g.finish();
    // the input gradient: below batch 4 the CPU-shaped variants' GEMV reads the forward packing
    let mut g = c.benchmark_group("linear_backward");
    g.sample_size(10);
    for (name, n, k, out) in common::LINEARS {
        let w = WeightBuffer::upload(&ctx, name, &fill(out * k), *out, *k, None).unwrap();
        let dy = Tensor::upload(&ctx, &fill(n * out), &[*n, *out]).unwrap();
        g.throughput(Throughput::Elements((2 * n * k * out) as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut rec = Recorder::new(&ctx, "bench");
                let _dx = ops::linear_backward_input(&mut rec, &dy, &w).unwrap();
                rec.submit().unwrap();
                ctx.wait().unwrap();
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("max_pool2d");
    g.sample_size(10);
    for (name, d) in common::POOLS {
        let x = Tensor::upload(&ctx, &fill(d.iter().product()), d).unwrap();
        // one comparison per input element
        g.throughput(Throughput::Elements(d.iter().product::<usize>() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut rec = Recorder::new(&ctx, "bench");
                let _y = ops::max_pool2d(&mut rec, &x, &Pool2d::square(2, 2)).unwrap();
                rec.submit().unwrap();
                ctx.wait().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(kernels, benches);
criterion_main!(kernels);
