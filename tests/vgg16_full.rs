//! A full-size VGG16 (random weights, 138M parameters) runs at 224x224: fc6's 411 MB
//! weight is split across 128 MiB bindings; the first and last convolutions and the
//! classifier are checked against the CPU reference applied to the GPU's own inputs.

mod common;
use common::{rand_vec, rel_l2};

use netlens::graph::Net;
use netlens::model::{zoo, LayerKind};
use netlens::reference as cpu;

#[test]
fn vgg16_224_runs_with_split_fc6() {
    let model = zoo::vgg_random(16, 4096, 1000, 7).unwrap();
    assert_eq!(model.param_count(), 138_357_544, "torchvision VGG16 size");
    let conv = |i: usize| match &model.layers[i].kind {
        LayerKind::Conv2d { geom, weight, bias } => (*geom, weight.clone(), bias.clone()),
        _ => panic!("features.{i} is a conv"),
    };
    let (first, last) = (conv(0), conv(28));
    let classifier: Vec<(Vec<f32>, Vec<f32>, usize)> = model
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Linear {
                weight,
                bias,
                out_features,
                ..
            } => Some((weight.clone(), bias.clone().unwrap(), *out_features)),
            _ => None,
        })
        .collect();
    // lavapipe's limit (128 MiB) on every device, so fc6 (411 MB) is split everywhere
    let ctx = std::sync::Arc::new(
        netlens::gpu::Context::from_env()
            .unwrap()
            .with_binding_limit(128 << 20),
    );
    let net = Net::new(ctx.clone(), model).unwrap();
    let x = netlens::Array::new(vec![1, 3, 224, 224], rand_vec(3 * 224 * 224, 11)).unwrap();
    let names = ["flatten", "features.29", "features.1", "features.27"];
    let out = net.forward(&x, &names.map(String::from)).unwrap();
    assert_eq!(out.logits.shape, vec![1, 1000]);
    let flat = &out.captures[0].1;
    assert_eq!(flat.shape, vec![1, 25088]);
    assert!(
        out.captures[1].1.data.iter().any(|v| *v > 0.0),
        "conv stack produced only zeros"
    );
    // conv 0 (3 -> 64 at 224) and conv 28 (512 -> 512 at 14), each with its ReLU
    for ((g, w, b), input, dims, out_i) in [
        (&first, &x.data, [1, 3, 224, 224], 2),
        (&last, &out.captures[3].1.data, [1, 512, 14, 14], 1),
    ] {
        let (want, _, _) = cpu::conv2d(input, dims, w, b.as_deref(), g, true);
        let e = rel_l2(&out.captures[out_i].1.data, &want);
        assert!(e < 1e-4, "conv {:?} vs CPU: rel L2 {e:.2e}", g);
    }
    let mut h = flat.data.clone();
    for (k, (w, b, o)) in classifier.iter().enumerate() {
        h = cpu::linear(&h, 1, w, Some(b), *o, k < 2);
    }
    let e = rel_l2(&out.logits.data, &h);
    assert!(e < 1e-4, "classifier vs CPU: rel L2 {e:.2e}");
}
