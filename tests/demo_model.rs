//! The shipped demo model classifies a freshly generated held-out set (a seed never used
//! in training: tools/train_demo.py trains on seed 1, validates on 2, samples use 7) at
//! >= 95% through netlens itself, and gets every shipped sample right.

mod common;
use common::arc_ctx;

use netlens::data::synth::{generate, Options};
use netlens::eval::accuracy;
use netlens::gpu::Precision;
use netlens::graph::Net;

fn demo_net() -> Net {
    demo_net_at(Precision::F32)
}

fn demo_net_at(precision: Precision) -> Net {
    let path = format!(
        "{}/models/shapes-vgg.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let model = netlens::model::load(std::path::Path::new(&path)).unwrap();
    Net::with_precision(arc_ctx(), model, precision).unwrap()
}

#[test]
fn held_out_accuracy_at_least_95_percent() {
    held_out(Precision::F32);
}

/// f16 weight storage costs the demo model nothing measurable: the same accuracy bar,
/// and every sample's logits within 1e-3 relative L2 of the f32 net's.
#[test]
fn f16_weights_keep_accuracy_and_logits() {
    held_out(Precision::F16);
    let (full, half) = (demo_net(), demo_net_at(Precision::F16));
    for name in full.model().meta.classes.clone().unwrap() {
        let path = format!("{}/models/samples/{name}.png", env!("CARGO_MANIFEST_DIR"));
        let x = netlens::io::image::load(std::path::Path::new(&path), &full.model().meta).unwrap();
        let a = full.forward(&x, &[]).unwrap().logits;
        let b = half.forward(&x, &[]).unwrap().logits;
        let err = common::rel_l2(&b.data, &a.data);
        assert!(err < 1e-3, "{name}: f16 logits {err:.2e} from f32");
    }
}

fn held_out(precision: Precision) {
    let dir = std::env::temp_dir().join(format!(
        "netlens-heldout-{}-{precision:?}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        count: 240,
        size: 64,
        seed: 4242,
        split: "val".into(),
    };
    generate(&dir, &opts, &indicatif::ProgressBar::hidden()).unwrap();
    let net = demo_net_at(precision);
    let r = accuracy(&net, &dir, 48, false).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(r.total, 240);
    assert!(
        r.accuracy() >= 0.95,
        "held-out accuracy {:.3}",
        r.accuracy()
    );
    assert_eq!(
        r.per_class.len(),
        8,
        "every class appears: {:?}",
        r.per_class
    );
}

#[test]
fn shipped_samples_are_classified_right() {
    let net = demo_net();
    let classes = net.model().meta.classes.clone().unwrap();
    for (k, name) in classes.iter().enumerate() {
        let path = format!("{}/models/samples/{name}.png", env!("CARGO_MANIFEST_DIR"));
        let x = netlens::io::image::load(std::path::Path::new(&path), &net.model().meta).unwrap();
        let out = net.forward(&x, &[]).unwrap();
        assert_eq!(
            netlens::explain::argmax_rows(&out.logits),
            vec![k],
            "{name}"
        );
    }
}

/// A net that released its host weights at upload runs the same forward and gradient,
/// bit for bit, counts the same parameters, and refuses LRP (whose modified weights are made
/// from the host copy) with an error that says how to keep them.
#[test]
fn released_host_weights_give_the_same_bits_and_lrp_says_why_not() {
    use netlens::explain::{self, method, Target};
    use netlens::graph::HostWeights;
    let path = format!(
        "{}/models/shapes-vgg.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let model = netlens::model::load(std::path::Path::new(&path)).unwrap();
    let kept = Net::upload(arc_ctx(), model.clone(), Precision::F32, HostWeights::Keep).unwrap();
    let freed = Net::upload(arc_ctx(), model, Precision::F32, HostWeights::Release).unwrap();
    let host: usize = freed
        .model()
        .layers
        .iter()
        .map(|l| match &l.kind {
            netlens::model::LayerKind::Conv2d { weight, .. }
            | netlens::model::LayerKind::Linear { weight, .. } => weight.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(host, 0, "host weights left after the release");
    assert_eq!(kept.model().param_count(), freed.model().param_count());
    let x = common::samples(&kept, &["star", "ring"]);
    assert_eq!(
        kept.forward(&x, &[]).unwrap().logits.data,
        freed.forward(&x, &[]).unwrap().logits.data
    );
    let g = |n: &Net| {
        explain::gradient::saliency(n, &x, &Target::Argmax)
            .unwrap()
            .map
            .data
    };
    assert_eq!(g(&kept), g(&freed));
    let s = method::Settings::default();
    assert!(method::relevance(&kept, "lrp-epsilon-plus", &x, &Target::Argmax, &s).is_ok());
    let e = method::relevance(&freed, "lrp-epsilon-plus", &x, &Target::Argmax, &s)
        .err()
        .expect("LRP without host weights");
    assert!(e.to_string().contains("HostWeights::Keep"), "{e}");
    // what the command line keeps for LRP: the weights its rules modify (EpsilonPlus: z+ on
    // the convs, ε on the linear layers, which reads the device's weights)
    let model = netlens::model::load(std::path::Path::new(&path)).unwrap();
    let m = ["lrp-epsilon-plus".to_string()];
    let host = method::host_weights(&model, &m, &s).unwrap();
    let HostWeights::KeepLayers(keep) = &host else {
        panic!("{host:?}")
    };
    for (l, k) in model.layers.iter().zip(keep) {
        let conv = matches!(l.kind, netlens::model::LayerKind::Conv2d { .. });
        assert_eq!(*k, conv, "{}", l.name);
    }
    let gradient = ["gradient".to_string(), "grad-cam".to_string()];
    assert_eq!(
        method::host_weights(&model, &gradient, &s).unwrap(),
        HostWeights::Release
    );
    let some = Net::upload(arc_ctx(), model, Precision::F32, host.clone()).unwrap();
    for (l, k) in some.model().layers.iter().zip(keep) {
        if let netlens::model::LayerKind::Linear { weight, .. } = &l.kind {
            assert_eq!(weight.is_empty(), !k, "{}", l.name);
        }
    }
    let r = |n: &Net| {
        let r = method::relevance(n, &m[0], &x, &Target::Argmax, &s).unwrap();
        r.input.data
    };
    assert_eq!(r(&kept), r(&some));
}

/// A model loaded with its large linear weights left in the file (`load_deferred`: the
/// demo's classifier.0, 1.6 MB) uploads the same weights: released (read a piece at a time
/// into the device), kept (read whole into the model first) or kept for LRP's layers only,
/// the same logits, gradients and relevance bit for bit, f32 and f16.
#[test]
fn deferred_loads_upload_the_same_weights() {
    use netlens::explain::{self, method, Target};
    use netlens::graph::HostWeights;
    let path = format!(
        "{}/models/shapes-vgg.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let path = std::path::Path::new(&path);
    let lazy = netlens::model::load_deferred(path).unwrap();
    let fc = lazy
        .layers
        .iter()
        .find(|l| l.name == "classifier.0")
        .unwrap();
    assert!(fc.file_weights.is_some(), "classifier.0 read at load");
    let whole = netlens::model::load(path).unwrap();
    let s = method::Settings::default();
    let lrp = ["lrp-epsilon-alpha2-beta1".to_string()];
    for precision in [Precision::F32, Precision::F16] {
        let want = Net::upload(arc_ctx(), whole.clone(), precision, HostWeights::Keep).unwrap();
        let x = common::samples(&want, &["star", "ring"]);
        let logits = want.forward(&x, &[]).unwrap().logits.data;
        let grad = |n: &Net| {
            let m = explain::gradient::saliency(n, &x, &Target::Argmax).unwrap();
            m.map.data
        };
        let relevance = |n: &Net| {
            let r = method::relevance(n, &lrp[0], &x, &Target::Argmax, &s).unwrap();
            r.input.data
        };
        let host = method::host_weights(&lazy, &lrp, &s).unwrap();
        for keep in [HostWeights::Release, HostWeights::Keep, host] {
            let what = format!("{precision:?} {keep:?}");
            let net = Net::upload(arc_ctx(), lazy.clone(), precision, keep.clone()).unwrap();
            assert!(net.model().layers.iter().all(|l| l.file_weights.is_none()));
            assert_eq!(net.forward(&x, &[]).unwrap().logits.data, logits, "{what}");
            assert_eq!(grad(&net), grad(&want), "{what}");
            if keep != HostWeights::Release {
                assert_eq!(relevance(&net), relevance(&want), "{what}");
            }
            if keep == HostWeights::Keep {
                let (a, b) = (format!("{:?}", net.model()), format!("{:?}", want.model()));
                assert_eq!(a, b, "{what}: the model's host weights");
            }
        }
    }
}

/// `attribute` with no `--target` takes each input's top class from its first method's own
/// forward: gradient and LRP on the demo model's six convs launch twelve conv forwards
/// (one tape each, no separate pass for the targets), and the targets are the samples'
/// classes.
#[test]
fn attribute_finds_targets_in_its_methods_forward() {
    let root = env!("CARGO_MANIFEST_DIR");
    let classes = demo_net().model().meta.classes.clone().unwrap();
    let picks = [3, 0, 5];
    let dir = std::env::temp_dir().join(format!("netlens-targets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netlens"))
        .env("NETLENS_PROFILE", "host")
        .args([
            "attribute",
            &format!("{root}/models/shapes-vgg.safetensors"),
        ])
        .args(picks.map(|k| format!("{root}/models/samples/{}.png", classes[k])))
        .args(["--method", "gradient,lrp-epsilon", "--out"])
        .arg(dir.join("map.npy"))
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["targets"], serde_json::json!(picks), "{doc}");
    let conv_forwards: u64 = err
        .lines()
        .filter(|l| l.starts_with("Conv2dForward"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(conv_forwards, 12, "{err}");
}
