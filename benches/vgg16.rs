//! Full VGG16 forward at 224x224, batch 1 and 8, random weights made here (30.9 GFLOP
//! per image; criterion's "elem/s" counts FLOPs). Compare with tools/bench_torch.py.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netlens::gpu::{Context, Tensor};
use netlens::graph::{Keep, Net};
use netlens::model::zoo;

/// Multiply-adds x 2 of torchvision's VGG16 at 224x224.
pub const VGG16_FLOPS: u64 = 30_946_000_000;

fn bench(c: &mut Criterion) {
    let ctx = Arc::new(Context::from_env().expect("a wgpu adapter"));
    eprintln!("GPU: {}", ctx.adapter_name());
    let net = Net::new(ctx.clone(), zoo::vgg_random(16, 4096, 1000, 1).unwrap()).unwrap();
    let mut g = c.benchmark_group("vgg16_forward_224");
    g.sample_size(10);
    for n in [1usize, 8] {
        let x = Tensor::upload(&ctx, &vec![0.1; n * 3 * 224 * 224], &[n, 3, 224, 224]).unwrap();
        g.throughput(Throughput::Elements(VGG16_FLOPS * n as u64));
        g.bench_function(format!("batch {n}"), |b| {
            b.iter(|| {
                let tape = net.forward_gpu(&x, &Keep::Nothing).unwrap();
                ctx.wait().unwrap();
                tape
            })
        });
    }
    g.finish();
}

criterion_group!(vgg16, bench);
criterion_main!(vgg16);
