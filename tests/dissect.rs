//! Network dissection: thresholds and IoUs against a brute-force CPU computation, planted
//! detector units labelled correctly on a hand-made Broden directory, sharded runs equal
//! to unsharded ones bit for bit (library and command line), the report in Chromium, and
//! bad input refused with clear errors.

mod common;
use common::{arc_ctx, demo};

use std::path::{Path, PathBuf};

use netlens::data::synth::{generate, Options};
use netlens::explain::dissect::{
    self, count_pass, dissect, load_state, quantile_pass, results, save_state, Concepts, Header,
    Settings, State, Union,
};
use netlens::graph::Net;
use netlens::model::{Layer, LayerKind, Model, ModelMeta, Src};
use netlens::ops::Conv2dGeom;

fn hidden() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netlens-dissect-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A generated set of `count` images with masks of `size` (the demo model sees 64x64).
fn synth(name: &str, count: usize, size: usize) -> PathBuf {
    let d = tmp(name);
    let o = Options {
        count,
        size,
        seed: 31,
        split: "train".into(),
    };
    generate(&d, &o, &hidden()).unwrap();
    d
}

/// numpy.quantile(v, level) (linear interpolation).
fn np_quantile(v: &mut [f32], level: f64) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    let p = level * (v.len() - 1) as f64;
    let lo = p.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let t = p - lo as f64;
    let (a, b) = (v[lo] as f64, v[hi] as f64);
    (if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }) as f32
}

/// Bilinear (align_corners = False) of one map at mask pixel (y, x), in f32 as the
/// kernel computes it.
fn up(map: &[f32], h: usize, w: usize, sh: usize, sw: usize, y: usize, x: usize) -> f32 {
    let src =
        |d: usize, n: usize, m: usize| ((d as f32 + 0.5) * (n as f32 / m as f32) - 0.5).max(0.0);
    let (sy, sx) = (src(y, h, sh), src(x, w, sw));
    let (y0, x0) = ((sy as usize).min(h - 1), (sx as usize).min(w - 1));
    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
    let (ly, lx) = (sy - y0 as f32, sx - x0 as f32);
    let a = |yy: usize, xx: usize| map[yy * w + xx];
    let top = (1.0 - lx) * a(y0, x0) + lx * a(y0, x1);
    let bottom = (1.0 - lx) * a(y1, x0) + lx * a(y1, x1);
    (1.0 - ly) * top + ly * bottom
}

/// Brute force: every activation held at once, sorted for the quantile, every mask pixel
/// compared with every label plane. Returns (thresholds, IoU [units, labels]).
fn brute_force(
    net: &Net,
    data: &Concepts,
    layer: &str,
    q: f64,
    union: Union,
) -> (Vec<f32>, Vec<f32>) {
    let m = net.model();
    let x = data.load(0, data.len(), &m.meta).unwrap();
    let f = net.forward(&x, &[layer.to_string()]).unwrap();
    let a = &f.captures[0].1;
    let (n, u_n, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3]);
    let thr: Vec<f32> = (0..u_n)
        .map(|u| {
            let mut v: Vec<f32> = (0..n)
                .flat_map(|b| a.data[(b * u_n + u) * h * w..(b * u_n + u + 1) * h * w].to_vec())
                .collect();
            np_quantile(&mut v, 1.0 - q)
        })
        .collect();
    let (sh, sw) = data.mask;
    let cats = data.broden.categories.clone();
    let nl = data.labels;
    let mut both = vec![0f64; u_n * nl];
    let mut cat_sum = vec![0f64; u_n * cats.len()];
    let mut pixels = vec![0f64; nl];
    for (b, r) in data.broden.records.iter().enumerate() {
        let planes: Vec<(usize, Vec<u32>)> = cats
            .iter()
            .enumerate()
            .flat_map(|(ci, c)| {
                data.broden
                    .masks(r, c)
                    .unwrap()
                    .into_iter()
                    .map(move |p| (ci, p))
            })
            .collect();
        for (_, p) in &planes {
            p.iter()
                .filter(|l| **l > 0)
                .for_each(|l| pixels[*l as usize] += 1.0);
        }
        let annotated: Vec<bool> = (0..cats.len())
            .map(|ci| planes.iter().any(|p| p.0 == ci))
            .collect();
        for u in 0..u_n {
            let map = &a.data[(b * u_n + u) * h * w..(b * u_n + u + 1) * h * w];
            let mut size = 0f64;
            let mut hit = vec![false; cats.len()];
            for y in 0..sh {
                for xx in 0..sw {
                    if up(map, h, w, sh, sw, y, xx) > thr[u] {
                        size += 1.0;
                        for (_, p) in &planes {
                            let l = p[y * sw + xx] as usize;
                            if l > 0 {
                                both[u * nl + l] += 1.0;
                                for (ci, h) in hit.iter_mut().enumerate() {
                                    *h |= data.label_cats[l] & (1 << ci) != 0;
                                }
                            }
                        }
                    }
                }
            }
            for ci in 0..cats.len() {
                let on = match union {
                    Union::Lite => hit[ci],
                    Union::Annotated => annotated[ci],
                };
                if on {
                    cat_sum[u * cats.len() + ci] += size;
                }
            }
        }
    }
    let mut iou = vec![0f32; u_n * nl];
    for u in 0..u_n {
        for l in 1..nl {
            let act: f64 = (0..cats.len())
                .filter(|ci| data.label_cats[l] & (1 << ci) != 0)
                .map(|ci| cat_sum[u * cats.len() + ci])
                .sum();
            let bo = both[u * nl + l];
            iou[u * nl + l] = (bo / (act + pixels[l] - bo + 1e-10)) as f32;
        }
    }
    (thr, iou)
}

#[test]
fn thresholds_and_iou_match_brute_force() {
    let net = demo();
    // masks of 40x40: the 64x64 maps of features.1 are down-sampled, the 8x8 maps of
    // features.12 up-sampled by 5; of 72x72 (wider than the tally's 64 lanes): up-sampled
    let names = ["features.1".to_string(), "features.12".to_string()];
    let layers = dissect::layers(&net, &names).unwrap();
    for (q, union, side) in [(0.005, Union::Lite, 40), (0.05, Union::Annotated, 72)] {
        let dir = synth(&format!("brute{side}"), 20, side);
        let data = Concepts::open(&dir).unwrap();
        let s = Settings {
            quantile: q,
            batch: 7,
            union,
            ..Settings::default()
        };
        let r = dissect(&net, &data, &layers, &s, &hidden()).unwrap();
        for (res, name) in r.iter().zip(&names) {
            let (thr, iou) = brute_force(&net, &data, name, q, union);
            for (u, (a, b)) in res.thresholds.iter().zip(&thr).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{name} unit {u}: threshold {a} vs {b}"
                );
            }
            let mut worst = 0f32;
            for (a, b) in res.iou.iter().zip(&iou) {
                worst = worst.max((a - b).abs());
            }
            // a pixel whose up-sampled value sits within rounding of the threshold may
            // fall either side; a few such pixels move an IoU by far less than 2e-3
            assert!(
                worst < 2e-3,
                "{name} q {q} {union:?}: IoU differs by {worst}"
            );
            let nonzero = iou.iter().filter(|v| **v > 0.0).count();
            assert!(
                nonzero > res.layer.units,
                "{name}: too few non-zero IoUs to mean anything ({nonzero})"
            );
        }
    }
}

/// A 3x3 conv + ReLU with units set by hand: 0 fires on red pixels, 1 on checkered ones
/// (the squares of broden-mini; on grey the Laplacian is 0 inside and 1.5 along the
/// zero-padded border, under the bias), 2 never.
fn planted() -> Net {
    let mut w = vec![0f32; 3 * 3 * 9];
    let at = |o: usize, c: usize, y: usize, x: usize| ((o * 3 + c) * 3 + y) * 3 + x;
    for (c, v) in [1.0, -1.0, -1.0].iter().enumerate() {
        w[at(0, c, 1, 1)] = *v;
    }
    for c in 0..3 {
        w[at(1, c, 1, 1)] = 4.0;
        for (y, x) in [(0, 1), (2, 1), (1, 0), (1, 2)] {
            w[at(1, c, y, x)] = -1.0;
        }
    }
    let model = Model {
        layers: vec![
            Layer {
                name: "conv".into(),
                kind: LayerKind::Conv2d {
                    geom: Conv2dGeom {
                        cin: 3,
                        cout: 3,
                        kernel: (3, 3),
                        stride: (1, 1),
                        padding: (1, 1),
                    },
                    weight: w,
                    bias: Some(vec![-0.2, -2.0, -1.0]),
                },
                inputs: vec![Src::Input],
                folded_bn: None,
                file_weights: None,
            },
            Layer {
                name: "relu".into(),
                kind: LayerKind::Relu,
                inputs: vec![Src::Layer(0)],
                folded_bn: None,
                file_weights: None,
            },
        ],
        meta: ModelMeta {
            classes: None,
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
            input_size: (32, 32),
            resize: 32,
            arch: "planted".into(),
        },
        in_channels: 3,
    };
    Net::new(arc_ctx(), model).unwrap()
}

fn mini() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broden-mini")
}

#[test]
fn planted_detectors_get_their_concepts() {
    let net = planted();
    let data = Concepts::open(&mini()).unwrap();
    assert_eq!(data.mask, (16, 16));
    assert_eq!(data.broden.categories, ["color", "object", "scene"]);
    let layers = dissect::layers(&net, &["relu".to_string()]).unwrap();
    // most activations are 0, so the threshold is 0 and M_u is where the unit fires
    let s = Settings {
        quantile: 0.3,
        batch: 5,
        ..Settings::default()
    };
    let r = &dissect(&net, &data, &layers, &s, &hidden()).unwrap()[0];
    assert_eq!(r.thresholds, vec![0.0; 3]);
    let b0 = &r.best[0][0];
    assert_eq!(
        (b0.name.as_str(), b0.category.as_str()),
        ("red", "color"),
        "{:?}",
        r.best[0]
    );
    assert!(b0.iou >= 0.5, "red unit: IoU {}", b0.iou);
    let b1 = &r.best[1][0];
    assert_eq!(
        (b1.name.as_str(), b1.category.as_str()),
        ("square", "object"),
        "{:?}",
        r.best[1]
    );
    assert!(b1.iou >= 0.5, "square unit: IoU {}", b1.iou);
    assert!(
        r.best[2].is_empty() && !r.is_detector(2),
        "the dead unit: {:?}",
        r.best[2]
    );
    assert_eq!(r.order()[2], 2);
    // the whole-image scene labels count every pixel of their images
    let scene = r.iou[r.labels + 6];
    assert!(scene > 0.0 && scene < 0.5, "square unit vs indoor: {scene}");
}

#[allow(clippy::too_many_arguments)]
fn header(
    net: &Net,
    data: &Concepts,
    layers: &[dissect::Layer],
    s: &Settings,
    stage: &str,
    keep: Vec<usize>,
    totals: Vec<u64>,
    ranges: Vec<(usize, usize)>,
) -> Header {
    Header {
        version: 1,
        stage: stage.into(),
        model: format!("{}", net.model().param_count()),
        model_path: String::new(),
        dataset: format!("{}", data.len()),
        data_path: String::new(),
        images: data.len(),
        layers: layers.to_vec(),
        quantile: s.quantile,
        top: s.top,
        ranges,
        keep,
        totals,
    }
}

#[test]
fn sharded_equals_unsharded_bit_for_bit() {
    let net = demo();
    let dir = synth("shards", 23, 64);
    let data = Concepts::open(&dir).unwrap();
    let names = ["features.4".to_string(), "features.15".to_string()];
    let layers = dissect::layers(&net, &names).unwrap();
    let s = Settings {
        batch: 4,
        top: 3,
        ..Settings::default()
    };
    let whole = dissect(&net, &data, &layers, &s, &hidden()).unwrap();
    let n = 3;
    let state_dir = tmp("states");
    // pass 1 per shard, through the files, merged in a shuffled order
    let mut merged = None;
    for i in [2, 0, 1] {
        let range = dissect::shard_range(data.len(), i, n).unwrap();
        let q = quantile_pass(&net, &data, &layers, &s, range, &hidden()).unwrap();
        let h = header(
            &net,
            &data,
            &layers,
            &s,
            "thresholds",
            q.layers.iter().map(|l| l.keep).collect(),
            q.layers.iter().map(|l| l.total).collect(),
            q.ranges.clone(),
        );
        let d = state_dir.join(format!("q{i}"));
        save_state(&d, &h, &State::Thresholds(q), false).unwrap();
        let State::Thresholds(back) = load_state(&d).unwrap().1 else {
            panic!("stage")
        };
        match &mut merged {
            None => merged = Some(back),
            Some(m) => m.merge(&back).unwrap(),
        }
    }
    let q = merged.unwrap();
    let thresholds = q.thresholds().unwrap();
    let mut counts: Option<dissect::Counts> = None;
    for i in [1, 2, 0] {
        let range = dissect::shard_range(data.len(), i, n).unwrap();
        let c = count_pass(&net, &data, &layers, &thresholds, &s, range, &hidden()).unwrap();
        let top: Vec<_> = q.layers.iter().map(|l| l.top.clone()).collect();
        let h = header(
            &net,
            &data,
            &layers,
            &s,
            "counts",
            vec![0; 2],
            vec![0; 2],
            c.ranges.clone(),
        );
        let d = state_dir.join(format!("c{i}"));
        save_state(&d, &h, &State::Counts { counts: c, top }, false).unwrap();
        let State::Counts { counts: back, .. } = load_state(&d).unwrap().1 else {
            panic!("stage")
        };
        match &mut counts {
            None => counts = Some(back),
            Some(m) => m.merge(&back).unwrap(),
        }
    }
    let top: Vec<_> = q.layers.iter().map(|l| l.top.clone()).collect();
    let sharded = results(&data, &layers, &top, &counts.unwrap(), &s).unwrap();
    for (a, b) in whole.iter().zip(&sharded) {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a.thresholds),
            bits(&b.thresholds),
            "{}: thresholds",
            a.layer.name
        );
        assert_eq!(bits(&a.iou), bits(&b.iou), "{}: IoU", a.layer.name);
        assert_eq!(a.top, b.top, "{}: top images", a.layer.name);
        assert!(a.iou.iter().any(|v| *v > 0.0));
    }
    // a state missing a shard refuses to give thresholds
    let partial = quantile_pass(&net, &data, &layers, &s, (0, 5), &hidden()).unwrap();
    let e = partial.thresholds().unwrap_err().to_string();
    assert!(e.contains("merge every shard"), "{e}");
    // overlapping shards are refused
    let mut a = quantile_pass(&net, &data, &layers, &s, (0, 6), &hidden()).unwrap();
    let e = a.merge(&partial).unwrap_err().to_string();
    assert!(e.contains("appear in two states"), "{e}");
    // a damaged state file is an error, not a panic
    let f = state_dir.join("q0/state.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_state(&state_dir.join("q0")).err().unwrap().to_string();
    assert!(e.contains("truncated") || e.contains("damaged"), "{e}");
    let _ = std::fs::remove_dir_all(&state_dir);
    let _ = std::fs::remove_dir_all(&dir);
}

fn netlens(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_netlens"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) {
    let o = netlens(args);
    assert!(
        o.status.success(),
        "netlens {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Renders a page in headless Chromium and returns the DOM after load.
fn chromium_dom(page: &Path) -> String {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("headless Chromium is needed for the report test: apt-get install -y chromium");
    let o = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn command_line_shards_merge_to_the_same_files_and_the_report_renders() {
    let dir = synth("cli", 18, 64);
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    let d = dir.to_str().unwrap();
    let base = tmp("cli-out");
    let out = |s: &str| base.join(s).to_string_lossy().into_owned();
    let layers = ["--layer", "features.9", "--layer", "features.12"];
    let run = |extra: &[&str]| {
        let mut a = vec!["dissect", model, d];
        a.extend_from_slice(&layers);
        a.extend_from_slice(&["--batch", "5"]);
        a.extend_from_slice(extra);
        ok(&a);
    };
    run(&["--out", &out("whole"), "--html"]);
    for i in 0..2 {
        run(&[
            "--shard",
            &format!("{i}/2"),
            "--out",
            &out(&format!("q{i}")),
        ]);
    }
    ok(&[
        "dissect",
        "merge",
        &out("q1"),
        &out("q0"),
        "--out",
        &out("thr"),
    ]);
    for i in 0..2 {
        run(&[
            "--shard",
            &format!("{i}/2"),
            "--thresholds",
            &out("thr"),
            "--out",
            &out(&format!("c{i}")),
        ]);
    }
    ok(&[
        "dissect",
        "merge",
        &out("c0"),
        &out("c1"),
        "--out",
        &out("merged"),
        "--html",
    ]);
    for layer in ["features.9", "features.12"] {
        for f in [
            "iou.npy",
            "thresholds.npy",
            "units.csv",
            "summary.json",
            "report.html",
            "units/unit-0007.png",
        ] {
            let a = std::fs::read(base.join("whole").join(layer).join(f)).unwrap();
            let b = std::fs::read(base.join("merged").join(layer).join(f)).unwrap();
            assert!(
                a == b,
                "{layer}/{f} differs between the whole and the merged run"
            );
        }
        let th = std::fs::read(base.join("thr").join(layer).join("thresholds.npy")).unwrap();
        assert_eq!(
            th,
            std::fs::read(base.join("whole").join(layer).join("thresholds.npy")).unwrap()
        );
    }
    let csv = std::fs::read_to_string(base.join("whole/features.12/units.csv")).unwrap();
    assert!(csv.starts_with("unit,label,category,iou,label2,iou2,label3,iou3\n"));
    assert_eq!(csv.lines().count(), 129);
    // the report: every unit's panel, every image loaded
    let dom = chromium_dom(&base.join("whole/features.12/report.html"));
    let panels = dom.matches("class=\"unit").count();
    assert_eq!(panels, 128, "unit panels in the rendered report");
    assert!(dom.contains("id=\"summary-chart\""));
    assert_eq!(dom.matches("<img").count(), 128);
    assert!(!dom.contains("class=\"broken\""), "an image failed to load");
    // existing results are not overwritten
    let mut a = vec!["dissect", model, d];
    a.extend_from_slice(&layers);
    let o = out("whole");
    a.extend_from_slice(&["--out", &o]);
    let r = netlens(&a);
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("--overwrite"));
    // mixing stages, bad shards and bad flags are clear errors
    let (q0, c0, x, y) = (out("q0"), out("c0"), out("x"), out("y"));
    let bad = [
        vec!["dissect", "merge", &q0, &c0, "--out", &x],
        vec![
            "dissect",
            model,
            d,
            "--layer",
            "features.9",
            "--out",
            &y,
            "--shard",
            "2/2",
        ],
        vec![
            "dissect",
            model,
            d,
            "--layer",
            "features.9",
            "--out",
            &y,
            "--quantile",
            "0.7",
        ],
        vec!["dissect", model, d, "--layer", "classifier.0", "--out", &y],
        vec!["dissect", model, d, "--layer", "nope", "--out", &y],
        vec![
            "dissect",
            model,
            "/nonexistent",
            "--layer",
            "features.9",
            "--out",
            &y,
        ],
    ];
    for b in bad {
        let r = netlens(&b);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !r.status.success() && !err.contains("panicked"),
            "{b:?}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&dir);
}
