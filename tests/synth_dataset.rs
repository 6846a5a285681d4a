//! The procedural dataset: deterministic, written in Broden's layout, read back by the
//! Broden reader with masks that agree with the pixels drawn.

use std::path::{Path, PathBuf};

use netlens::data::broden::{read_csv, Broden};
use netlens::data::synth::{generate, Options};
use netlens::data::vocab::{self, COLORS, PARTS, SHAPES, TEXTURES};

fn gen(name: &str, count: usize, seed: u64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netlens-synth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        count,
        size: 48,
        seed,
        split: "train".into(),
    };
    generate(&dir, &opts, &indicatif::ProgressBar::hidden()).unwrap();
    dir
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn same_seed_gives_identical_files_and_other_seeds_differ() {
    let a = files(&gen("a", 12, 5));
    let b = files(&gen("b", 12, 5));
    let c = files(&gen("c", 12, 6));
    assert_eq!(a.len(), b.len());
    assert!(a == b, "same seed, different bytes");
    let img = |v: &Vec<(String, Vec<u8>)>| {
        v.iter()
            .find(|f| f.0.ends_with("000003.png"))
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(img(&a), img(&c), "another seed should draw another image");
}

#[test]
fn broden_reader_reads_masks_that_match_the_pixels() {
    let dir = gen("masks", 40, 11);
    let ds = Broden::open(&dir).unwrap();
    assert_eq!(ds.records.len(), 40);
    for cat in vocab::CATEGORIES {
        assert!(
            ds.categories.iter().any(|c| c == cat),
            "{cat} missing from label.csv"
        );
    }
    assert_eq!(ds.label_name(vocab::color_label(8)), "red");
    let classes = read_csv(&dir.join("labels.csv")).unwrap();
    let mut classes_seen = std::collections::BTreeSet::new();
    for (r, row) in ds.records.iter().zip(&classes) {
        assert_eq!(row["image"], r.image);
        let class: usize = row["class"].parse().unwrap();
        classes_seen.insert(class);
        let img = image::open(ds.image_path(r)).unwrap().to_rgb8();
        let color = &ds.masks(r, "color").unwrap()[0];
        let texture = &ds.masks(r, "texture").unwrap()[0];
        let object = &ds.masks(r, "object").unwrap()[0];
        for (i, p) in img.pixels().enumerate() {
            // a pixel's colour concept is the colour drawn there (tint <= 12, noise <= 6)
            let l = color[i] as usize;
            assert!(
                (1..=COLORS.len()).contains(&l),
                "pixel {i} of {} has no colour label",
                r.image
            );
            let base = COLORS[l - 1].1;
            for c in 0..3 {
                let d = (p[c] as i32 - base[c] as i32).abs();
                assert!(
                    d <= 19,
                    "{} pixel {i}: {:?} is not {} {:?}",
                    r.image,
                    p,
                    COLORS[l - 1].0,
                    base
                );
            }
            let t = texture[i];
            assert!(
                (vocab::texture_label(0)..=vocab::texture_label(TEXTURES.len() - 1)).contains(&t)
            );
            assert!(
                object[i] == 0 || object[i] == vocab::shape_label(class),
                "object label is the class"
            );
        }
        let area = object.iter().filter(|&&o| o != 0).count();
        assert!(
            area > 48 * 48 / 20,
            "{}: the target covers only {area} pixels",
            r.image
        );
        let parts = ds.masks(r, "part").unwrap();
        let has_parts = matches!(SHAPES[class], "star" | "cross" | "arrow");
        assert_eq!(
            !parts.is_empty(),
            has_parts,
            "{} ({}) parts",
            r.image,
            SHAPES[class]
        );
        if let Some(p) = parts.first() {
            for (i, &l) in p.iter().enumerate() {
                if l != 0 {
                    assert_ne!(object[i], 0, "a part pixel lies on the object");
                    let name = ds.label_name(l);
                    assert!(
                        PARTS.contains(&name) && name.starts_with(SHAPES[class]),
                        "{name} on a {}",
                        SHAPES[class]
                    );
                }
            }
        }
    }
    assert!(
        classes_seen.len() >= 6,
        "40 images should show most classes: {classes_seen:?}"
    );
}
