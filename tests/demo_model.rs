//! The shipped demo model classifies a freshly generated held-out set (a seed never used
//! in training: tools/train_demo.py trains on seed 1, validates on 2, samples use 7) at
//! >= 95% through netlens itself, and gets every shipped sample right.

mod common;
use common::arc_ctx;

use netlens::data::synth::{generate, Options};
use netlens::eval::accuracy;
use netlens::graph::Net;

fn demo_net() -> Net {
    let path = format!(
        "{}/models/shapes-vgg.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    Net::new(
        arc_ctx(),
        netlens::model::load(std::path::Path::new(&path)).unwrap(),
    )
    .unwrap()
}

#[test]
fn held_out_accuracy_at_least_95_percent() {
    let dir = std::env::temp_dir().join(format!("netlens-heldout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        count: 240,
        size: 64,
        seed: 4242,
        split: "val".into(),
    };
    generate(&dir, &opts, &indicatif::ProgressBar::hidden()).unwrap();
    let net = demo_net();
    let r = accuracy(&net, &dir, 48, false).unwrap();
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
