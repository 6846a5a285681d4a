//! End to end against PyTorch: logits and every layer's output on the committed fixtures
//! (tools/make_fixtures.py), batch 1 and batch > 1.

mod common;
use common::{arc_ctx, fixture, load_tensors, rel_l2};

use netlens::graph::Net;
use netlens::model;

const TOL: f64 = 1e-4;

/// Checks every batch in `<name>_io.safetensors`; returns the layer names compared.
fn check(model_file: &str, io_file: &str, cap: Option<usize>) -> Vec<String> {
    let m = model::load(std::path::Path::new(&fixture(model_file))).unwrap();
    let mut net = Net::new(arc_ctx(), m).unwrap();
    if let Some(c) = cap {
        net = net.with_max_batch(c);
    }
    let io = load_tensors(&fixture(io_file));
    let mut compared = Vec::new();
    for (key, input) in io.iter().filter(|(k, _)| k.starts_with("input.")) {
        let b = key.trim_start_matches("input.");
        let prefix = format!("{b}.");
        // layers whose own output the runner computes (a conv folded with its BN is not one)
        let names: Vec<String> = io
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|n| *n != "logits" && net.model().find(n).is_ok())
            .map(String::from)
            .collect();
        let out = net.forward(input, &names).unwrap();
        let want = &io[&format!("{b}.logits")];
        assert_eq!(out.logits.shape, want.shape);
        let e = rel_l2(&out.logits.data, &want.data);
        assert!(e < TOL, "{model_file} {b} logits: rel L2 {e:.2e}");
        for (name, got) in &out.captures {
            let want = &io[&format!("{b}.{name}")];
            assert_eq!(got.shape, want.shape, "{name}");
            let e = rel_l2(&got.data, &want.data);
            assert!(e < TOL, "{model_file} {b} {name}: rel L2 {e:.2e}");
            compared.push(format!("{b}.{name}"));
        }
    }
    compared
}

#[test]
fn small_metadata_net_matches_pytorch() {
    let c = check("small.safetensors", "small_io.safetensors", None);
    assert_eq!(c.len(), 2 * 14, "every layer of both batches: {c:?}");
}

#[test]
fn torchvision_vgg11_reduced_matches_pytorch() {
    let c = check("vgg11_tiny.safetensors", "vgg11_tiny_io.safetensors", None);
    // features 0..=20, avgpool, flatten, classifier 0..=6 = 21 + 2 + 7 layers, two batches
    assert_eq!(c.len(), 2 * 30, "{c:?}");
}

#[test]
fn batches_split_to_fit_give_the_same_answer() {
    check(
        "vgg11_tiny.safetensors",
        "vgg11_tiny_io.safetensors",
        Some(1),
    );
}

#[test]
fn batchnorm_variant_matches_pytorch() {
    let c = check(
        "vgg11_bn_tiny.safetensors",
        "vgg11_bn_tiny_io.safetensors",
        None,
    );
    // 8 convs are folded into their BNs: 29 features + 2 + 7 - 8 = 30 layers per batch
    assert_eq!(c.len(), 2 * 30, "{c:?}");
    let m = model::load(std::path::Path::new(&fixture("vgg11_bn_tiny.safetensors"))).unwrap();
    assert_eq!(m.meta.arch, "vgg11_bn");
    let err = m.find("features.0").unwrap_err().to_string();
    assert!(err.contains("features.1"), "{err}");
}

#[test]
fn half_precision_files_load() {
    for tag in ["f16", "bf16"] {
        check(
            &format!("vgg11_tiny_{tag}.safetensors"),
            &format!("vgg11_tiny_{tag}_io.safetensors"),
            None,
        );
    }
}

#[test]
fn torchvision_inference_reads_the_architecture() {
    let m = model::load(std::path::Path::new(&fixture("vgg11_tiny.safetensors"))).unwrap();
    assert_eq!(m.meta.arch, "vgg11");
    assert_eq!(m.num_classes(), 5);
    let kinds: Vec<&str> = m.layers.iter().map(|l| l.kind.type_name()).collect();
    assert_eq!(&kinds[..4], &["Conv2d", "ReLU", "MaxPool2d", "Conv2d"]);
    assert_eq!(
        &kinds[kinds.len() - 9..],
        &[
            "AdaptiveAvgPool2d",
            "Flatten",
            "Linear",
            "ReLU",
            "Dropout",
            "Linear",
            "ReLU",
            "Dropout",
            "Linear"
        ]
    );
    let small = model::load(std::path::Path::new(&fixture("small.safetensors"))).unwrap();
    assert_eq!(small.class_name(2), "cat");
    assert_eq!(small.meta.input_size, (17, 15));
}
