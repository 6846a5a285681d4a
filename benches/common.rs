//! Shapes shared by the kernel benches and tools/bench_torch.py (keep them in step), and
//! the demo model the loop benches run.
#![allow(dead_code)]

use std::sync::Arc;

use netlens::gpu::Context;
use netlens::graph::Net;
use netlens::Array;

/// The wgpu device (its adapter and GEMM variant printed) and the demo model on it.
pub fn demo_net() -> (Arc<Context>, Net) {
    let ctx = Arc::new(Context::from_env().expect("a wgpu adapter"));
    eprintln!(
        "GPU: {} (GEMM kernels: {})",
        ctx.adapter_name(),
        ctx.gemm().name()
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    let model = netlens::model::load(std::path::Path::new(path)).unwrap();
    let net = Net::new(ctx.clone(), model).unwrap();
    (ctx, net)
}

/// The demo model's sample images `models/samples/NAME.png`, as one batch.
pub fn samples(net: &Net, names: &[&str]) -> Array {
    let root = env!("CARGO_MANIFEST_DIR");
    let items: Vec<Array> = names
        .iter()
        .map(|s| {
            let p = format!("{root}/models/samples/{s}.png");
            netlens::io::image::load(p.as_ref(), &net.model().meta).unwrap()
        })
        .collect();
    Array::concat(&items).unwrap()
}

/// (name, [n, cin, h, w], cout): 3x3 convs, padding 1, from VGG16.
pub const CONVS: &[(&str, [usize; 4], usize)] = &[
    ("conv1_2 b1", [1, 64, 224, 224], 64),
    ("conv3_2 b1", [1, 256, 56, 56], 256),
    ("conv5_2 b8", [8, 512, 14, 14], 512),
];
/// (name, batch, in, out)
pub const LINEARS: &[(&str, usize, usize, usize)] = &[
    ("fc6 b1", 1, 25088, 4096),
    ("fc6 b8", 8, 25088, 4096),
    ("fc7 b32", 32, 4096, 4096),
];
/// (name, [n, c, h, w]) with 2x2 stride-2 pooling
pub const POOLS: &[(&str, [usize; 4])] = &[
    ("pool1 b8", [8, 64, 224, 224]),
    ("pool4 b8", [8, 512, 28, 28]),
];
/// The demo model's convs (models/shapes-vgg.safetensors) at the mask loop's batch of 3
/// (name, [n, cin, h, w], cout): 32- and 96-channel layers, small planes.
pub const DEMO_CONVS: &[(&str, [usize; 4], usize)] = &[
    ("demo0", [3, 3, 64, 64], 32),
    ("demo3", [3, 32, 32, 32], 64),
    ("demo6", [3, 64, 16, 16], 96),
    ("demo8", [3, 96, 16, 16], 96),
    ("demo11", [3, 96, 8, 8], 128),
    ("demo14", [3, 128, 4, 4], 128),
];
/// Every distinct 3x3 conv of VGG16 at 224, batch 1 (name, [n, cin, h, w], cout); the
/// speed table's shapes (tools/speed_table.py keeps its own copy in step).
pub const VGG16_CONVS: &[(&str, [usize; 4], usize)] = &[
    ("conv1_1", [1, 3, 224, 224], 64),
    ("conv1_2", [1, 64, 224, 224], 64),
    ("conv2_1", [1, 64, 112, 112], 128),
    ("conv2_2", [1, 128, 112, 112], 128),
    ("conv3_1", [1, 128, 56, 56], 256),
    ("conv3_2", [1, 256, 56, 56], 256),
    ("conv4_1", [1, 256, 28, 28], 512),
    ("conv4_2", [1, 512, 28, 28], 512),
    ("conv5_1", [1, 512, 14, 14], 512),
];

/// Deterministic values in [-0.5, 0.5) for weights and inputs of timing runs.
pub fn fill(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}
