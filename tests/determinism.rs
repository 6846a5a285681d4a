//! Determinism: every method gives bit-identical maps when run again, an item's map does
//! not depend on the other items of its batch or on how the batch is split into passes,
//! and the same command line writes the same bytes twice.

mod common;

use std::process::Command;

use netlens::explain::method::{attribute, Settings, METHODS};
use netlens::explain::Target;
use netlens::Array;

fn settings() -> Settings {
    Settings {
        samples: 3,
        steps: 5,
        window: 16,
        stride: 16,
        seed: 11,
        ..Settings::default()
    }
}

fn map(net: &netlens::graph::Net, m: &str, x: &Array, t: &Target) -> Array {
    let bar = indicatif::ProgressBar::hidden();
    attribute(net, m, x, t, &settings(), &bar).unwrap().map
}

#[test]
fn maps_do_not_depend_on_reruns_batch_neighbours_or_chunking() {
    let net = common::demo();
    let one_pass = common::demo().with_max_batch(1);
    let x = common::samples(&net, &["cross", "star", "ring"]);
    let star = x.slice_batch(1, 2);
    // fixed targets, so every run explains the same class
    let t = Target::Each(vec![3, 6, 4]);
    let t_star = Target::Class(6);
    for m in METHODS {
        let batched = map(&net, m, &x, &t);
        assert_eq!(batched, map(&net, m, &x, &t), "{m}: a rerun differs");
        let alone = map(&net, m, &star, &t_star);
        assert_eq!(
            batched.slice_batch(1, 2),
            alone,
            "{m}: an item's map depends on its batch neighbours"
        );
        assert_eq!(
            map(&one_pass, m, &x, &t),
            batched,
            "{m}: one item a pass differs from one pass"
        );
    }
}

#[test]
fn the_same_command_writes_the_same_bytes() {
    let dir = std::env::temp_dir().join(format!("netlens-determinism-{}", std::process::id()));
    let root = env!("CARGO_MANIFEST_DIR");
    let model = format!("{root}/models/shapes-vgg.safetensors");
    let img = format!("{root}/models/samples/arrow.png");
    // each run writes MAP.smoothgrad.npy and MAP.lrp-epsilon-plus.npy into its own folder
    let run = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let st = Command::new(env!("CARGO_BIN_EXE_netlens"))
            .args([
                "attribute",
                &model,
                &img,
                "--method",
                "smoothgrad,lrp-epsilon-plus",
            ])
            .args(["--samples", "4", "--seed", "5", "--out"])
            .arg(d.join("map.npy"))
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    let (a, b) = (run("a"), run("b"));
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["map.lrp-epsilon-plus.npy", "map.smoothgrad.npy"]);
    assert!(a.iter().all(|(_, bytes)| bytes.len() > 64 * 64 * 4));
    assert!(a == b, "two runs of one command wrote different bytes");
    std::fs::remove_dir_all(&dir).unwrap();
}
