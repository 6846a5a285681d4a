//! Bad input gets a clear error and exit code 1 (2 for usage), never a panic.

mod common;
use common::fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netlens-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs the CLI; returns (exit code, stderr).
fn netlens(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netlens"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    (out.status.code().unwrap_or(-1), err)
}

fn expect_error(args: &[&str], needle: &str) {
    let (code, err) = netlens(args);
    assert_eq!(code, 1, "{args:?} should fail with 1: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: '{needle}' not in: {err}"
    );
}

fn npy(name: &str, shape: &[usize], fill: f32) -> String {
    let n = shape.iter().product();
    let a = netlens::Array::new(shape.to_vec(), vec![fill; n]).unwrap();
    let p = tmp(name);
    std::fs::write(&p, netlens::io::npy::to_bytes(&a)).unwrap();
    p.display().to_string()
}

fn write_model(name: &str, tensors: &[(&str, Dtype, Vec<usize>)]) -> String {
    let bufs: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, d, s)| vec![0u8; s.iter().product::<usize>() * d.bitsize() / 8])
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bufs)
        .map(|((n, d, s), b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let p = tmp(name);
    safetensors::serialize_to_file(views, None, &p).unwrap();
    p.display().to_string()
}

fn good_model() -> String {
    fixture("vgg11_tiny.safetensors")
}

/// A NaN in a linear weight large enough to stay in the file until upload (the demo's
/// classifier.0, 1.6 MB): `info` and `filters` still read it and say where, and so does
/// `classify` (at upload).
#[test]
fn a_bad_weight_left_in_the_file_is_still_reported() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut bytes = std::fs::read(format!("{root}/models/shapes-vgg.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let meta: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = meta["classifier.0.weight"]["data_offsets"][0]
        .as_u64()
        .unwrap() as usize;
    let at = 8 + n + start + 4 * 300_001;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let m = tmp("deferred_nan.safetensors");
    std::fs::write(&m, &bytes).unwrap();
    let m = m.to_str().unwrap();
    let star = format!("{root}/models/samples/star.png");
    let npy = tmp("deferred_nan_filters.npy");
    let npy = npy.to_str().unwrap();
    let filters = vec!["filters", m, "--npy", npy, "--overwrite"];
    for args in [vec!["info", m], vec!["classify", m, &star], filters] {
        expect_error(
            &args,
            "tensor 'classifier.0.weight' holds NaN at index 300001",
        );
    }
}

#[test]
fn truncated_and_corrupt_model_files() {
    let bytes = std::fs::read(good_model()).unwrap();
    let t = tmp("truncated.safetensors");
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    expect_error(&["info", t.to_str().unwrap()], "truncated");
    let c = tmp("corrupt.safetensors");
    let mut junk = bytes.clone();
    junk[8..40].copy_from_slice(b"this is not json at all, sorry!!");
    std::fs::write(&c, &junk).unwrap();
    expect_error(&["info", c.to_str().unwrap()], "safetensors");
    let e = tmp("empty.safetensors");
    std::fs::write(&e, b"").unwrap();
    expect_error(&["info", e.to_str().unwrap()], "safetensors");
    expect_error(&["info", "/nonexistent/model.safetensors"], "no such file");
}

#[test]
fn mismatched_model_files() {
    let f = Dtype::F32;
    let m = write_model("extra.safetensors", &[("fc.weight", f, vec![2, 2])]);
    expect_error(&["info", &m], "fc.weight");
    let m = write_model(
        "nocls.safetensors",
        &[("features.0.weight", f, vec![4, 3, 3, 3])],
    );
    expect_error(&["info", &m], "classifier");
    let m = write_model(
        "wrongin.safetensors",
        &[
            ("features.0.weight", f, vec![4, 3, 3, 3]),
            ("classifier.0.weight", f, vec![5, 100]),
        ],
    );
    expect_error(&["info", &m], "4*7*7");
    let m = write_model(
        "rank.safetensors",
        &[
            ("features.0.weight", f, vec![4, 27]),
            ("classifier.0.weight", f, vec![5, 196]),
        ],
    );
    expect_error(&["info", &m], "features.0");
    let m = write_model(
        "dtype.safetensors",
        &[
            ("features.0.weight", Dtype::I32, vec![4, 3, 3, 3]),
            ("classifier.0.weight", f, vec![5, 196]),
        ],
    );
    expect_error(&["info", &m], "dtype");
    let m = write_model(
        "badbias.safetensors",
        &[
            ("features.0.weight", f, vec![4, 3, 3, 3]),
            ("features.0.bias", f, vec![5]),
            ("classifier.0.weight", f, vec![5, 196]),
        ],
    );
    expect_error(&["info", &m], "features.0.bias");
}

#[test]
fn bad_metadata() {
    let bytes = std::fs::read(fixture("small.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, TensorView)> = st.iter().map(|(n, v)| (n.to_string(), v)).collect();
    let meta = std::collections::HashMap::from([(
        "netlens".to_string(),
        r#"{"layers": [{"type": "conv3d", "name": "body.0"}]}"#.to_string(),
    )]);
    let p = tmp("badmeta.safetensors");
    safetensors::serialize_to_file(views, Some(meta), &p).unwrap();
    expect_error(&["info", p.to_str().unwrap()], "conv3d");
}

#[test]
fn bad_inputs() {
    let m = good_model();
    expect_error(
        &["classify", &m, &npy("onech.npy", &[1, 1, 64, 64], 0.5)],
        "[N, 3, H, W]",
    );
    expect_error(
        &["classify", &m, &npy("nan.npy", &[1, 3, 64, 64], f32::NAN)],
        "not finite",
    );
    expect_error(
        &["classify", &m, &npy("small.npy", &[1, 3, 8, 8], 0.5)],
        "smaller than the pool window",
    );
    expect_error(
        &["classify", &m, &npy("rank.npy", &[3, 64, 64], 0.5)],
        "[N, C, H, W]",
    );
    let fake = tmp("fake.png");
    std::fs::write(&fake, b"definitely not a png").unwrap();
    expect_error(&["classify", &m, fake.to_str().unwrap()], "decode");
    let tr = tmp("trunc.npy");
    let full = std::fs::read(npy("full.npy", &[1, 3, 64, 64], 0.1)).unwrap();
    std::fs::write(&tr, &full[..full.len() - 100]).unwrap();
    expect_error(&["classify", &m, tr.to_str().unwrap()], "truncated");
}

/// A PNG whose header claims 20000x20000 pixels: refused before decoding.
#[test]
fn huge_images_are_refused() {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    }
    fn crc32(b: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &x in b {
            crc ^= x as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&20000u32.to_be_bytes());
    ihdr.extend_from_slice(&20000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    let p = tmp("huge.png");
    std::fs::write(&p, png).unwrap();
    expect_error(
        &["classify", &good_model(), p.to_str().unwrap()],
        "20000x20000",
    );
}

#[test]
fn activations_over_the_binding_limit_are_a_clear_error() {
    let m = netlens::model::load(Path::new(&good_model())).unwrap();
    // lavapipe's 128 MiB binding limit, on every device
    let ctx = std::sync::Arc::new(
        netlens::gpu::Context::from_env()
            .unwrap()
            .with_binding_limit(128 << 20),
    );
    let net = netlens::graph::Net::new(ctx, m).unwrap();
    let err = net.max_batch(&[1, 3, 9000, 9000]).unwrap_err().to_string();
    assert!(
        err.contains("over this adapter's limit") && err.contains("features.0"),
        "{err}"
    );
    // a batch that does not fit one pass is split, not refused
    assert!(net.max_batch(&[64, 3, 1024, 1024]).unwrap() >= 1);
}

#[test]
fn outputs_are_not_overwritten_and_usage_errors_exit_2() {
    let out = tmp("exists.npy");
    std::fs::write(&out, b"keep me").unwrap();
    let x = npy("ok.npy", &[1, 3, 32, 32], 0.1);
    expect_error(
        &[
            "classify",
            &good_model(),
            &x,
            "--logits",
            out.to_str().unwrap(),
        ],
        "--overwrite",
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let (code, _) = netlens(&[
        "classify",
        &good_model(),
        &x,
        "--logits",
        out.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(code, 0);
    let written = netlens::io::npy::read(&out).unwrap();
    assert_eq!(written.shape, vec![1, 5]);
    expect_error(
        &["--backend", "quantum", "classify", &good_model(), &x],
        "unknown backend",
    );
    assert_eq!(netlens(&["classify"]).0, 2);
    assert_eq!(netlens(&["frobnicate"]).0, 2);
}

#[test]
fn attribute_cli_writes_maps_and_refuses_bad_settings() {
    let m = fixture("small.safetensors");
    let x = npy("attr_in.npy", &[2, 3, 17, 15], 0.3);
    let out = tmp("attr_map.npy");
    let fig = tmp("attr_fig.png");
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&fig);
    let (code, err) = netlens(&[
        "attribute",
        &m,
        &x,
        "--method",
        "saliency",
        "--out",
        out.to_str().unwrap(),
        "--heatmap",
        fig.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        netlens::io::npy::read(&out).unwrap().shape,
        vec![2, 1, 17, 15]
    );
    assert!(image::open(&fig).is_ok(), "the figure is a PNG");
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "saliency",
            "--out",
            out.to_str().unwrap(),
        ],
        "--overwrite",
    );
    expect_error(
        &["attribute", &m, &x, "--method", "magic"],
        "unknown method",
    );
    expect_error(
        &["attribute", &m, &x, "--method", "gradient", "--target", "9"],
        "class 9",
    );
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "grad-cam",
            "--layer",
            "nope",
        ],
        "no layer named",
    );
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "occlusion",
            "--window",
            "40",
        ],
        "window",
    );
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "integrated-gradients",
            "--ig-method",
            "simpson",
        ],
        "riemann",
    );
}

#[test]
fn lrp_cli_flags() {
    let m = fixture("small.safetensors");
    let x = npy("lrp_in.npy", &[1, 3, 17, 15], 0.2);
    let out = tmp("lrp_map.npy");
    let _ = std::fs::remove_file(&out);
    let (code, err) = netlens(&[
        "attribute",
        &m,
        &x,
        "--method",
        "lrp-epsilon-gamma-box",
        "--low",
        "-3",
        "--high",
        "3",
        "--print-rules",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("zbox(low=-3, high=3)") && err.contains("body.10"),
        "{err}"
    );
    assert_eq!(
        netlens::io::npy::read(&out).unwrap().shape,
        vec![1, 3, 17, 15]
    );
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "lrp-alpha-beta",
            "--alpha",
            "3",
            "--beta",
            "1",
        ],
        "α − β = 1",
    );
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "lrp-epsilon-plus",
            "--rule",
            "body.4=flat",
        ],
        "needs a conv or linear",
    );
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "lrp-epsilon-plus",
            "--rule",
            "body.0",
        ],
        "LAYER=RULE",
    );
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "lrp-epsilon-plus",
            "--rule",
            "body.0=magic",
        ],
        "unknown rule",
    );
    expect_error(
        &[
            "attribute",
            &m,
            &x,
            "--method",
            "lrp-epsilon",
            "--start",
            "middle",
        ],
        "logit or onehot",
    );
}

#[test]
fn mask_cli_writes_every_output_and_refuses_bad_settings() {
    let m = fixture("small.safetensors");
    let x = npy("mask_in.npy", &[2, 3, 17, 15], 0.3);
    let names = ["mask.npy", "phi.npy", "mask.json", "mask.png", "curves.png"];
    let paths: Vec<String> = names.iter().map(|n| tmp(n).display().to_string()).collect();
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    let flags = ["--out", "--perturbed", "--json", "--heatmap", "--curves"];
    let mut args = vec![
        "mask",
        &m,
        &x,
        "--iterations",
        "3",
        "--explainable-below",
        "1",
    ];
    for (f, p) in flags.iter().zip(&paths) {
        args.push(f);
        args.push(p);
    }
    let (code, err) = netlens(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        netlens::io::npy::read(paths[0].as_ref()).unwrap().shape,
        vec![2, 1, 17, 15]
    );
    assert_eq!(
        netlens::io::npy::read(paths[1].as_ref()).unwrap().shape,
        vec![2, 3, 17, 15]
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&paths[2]).unwrap()).unwrap();
    assert_eq!(doc["items"][1]["loss"].as_array().unwrap().len(), 3);
    assert!(image::open(&paths[3]).is_ok() && image::open(&paths[4]).is_ok());
    expect_error(&args, "exists");
    // extremal: one mask per item and area
    let out = tmp("ext.npy");
    let _ = std::fs::remove_file(&out);
    let (code, err) = netlens(&[
        "mask",
        &m,
        &x,
        "--game",
        "extremal",
        "--area",
        "0.1,0.3",
        "--iterations",
        "2",
        "--explainable-below",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        netlens::io::npy::read(&out).unwrap().shape,
        vec![4, 1, 17, 15]
    );
    for (bad, needle) in [
        (vec!["--game", "erase"], "--game"),
        (vec!["--perturbation", "ink"], "--perturbation"),
        (vec!["--score", "loss"], "--score"),
        (vec!["--mask-size", "0"], "--mask-size"),
        (vec!["--lr", "nan"], "--lr"),
        (vec!["--tv-beta", "0"], "--tv-beta"),
        (vec!["--jitter", "30"], "--jitter"),
        (vec!["--init", "2"], "--init"),
        (vec!["--blur-sigma", "-1"], "--blur-sigma"),
        (
            vec!["--perturbation", "constant", "--baseline", "grey"],
            "--baseline",
        ),
        (vec!["--game", "extremal", "--area", "1.5"], "--area"),
        (vec!["--game", "extremal", "--variant", "both"], "--variant"),
        (vec!["--game", "extremal", "--levels", "1"], "--levels"),
        (
            vec!["--game", "extremal", "--regul-weight", "-1"],
            "--regul-weight",
        ),
        (
            vec!["--game", "extremal", "--regul-growth", "0.9"],
            "--regul-growth",
        ),
        (
            vec!["--game", "extremal", "--perturbation", "noise"],
            "--perturbation",
        ),
        (vec!["--target", "99"], "--target"),
    ] {
        let mut a = vec!["mask", m.as_str(), x.as_str()];
        a.extend(bad.iter().copied());
        expect_error(&a, needle);
    }
}

#[test]
fn evaluate_cli_scores_maps_and_refuses_bad_settings() {
    let m = fixture("small.safetensors");
    let x = npy("eval_in.npy", &[2, 3, 17, 15], 0.3);
    let map = npy("eval_map.npy", &[2, 1, 17, 15], 0.5);
    let bad_map = npy("eval_bad_map.npy", &[1, 1, 17, 15], 0.5);
    let (json, csv) = (tmp("eval.json"), tmp("eval.csv"));
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&csv);
    let (code, err) = netlens(&[
        "evaluate",
        &m,
        &x,
        "--maps",
        &map,
        "--metric",
        "aopc,deletion,insertion",
        "--order",
        "morf,lerf,random",
        "--region",
        "4",
        "--step",
        "64",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // 2 inputs x (3 AOPC orders + deletion + insertion)
    assert_eq!(doc["results"].as_array().unwrap().len(), 10);
    assert_eq!(doc["summary"].as_array().unwrap().len(), 5);
    // 5 x 4 patches of 4 px: K = 20 steps, 21 scores; deletion: ceil(255 / 64) = 4 steps
    assert_eq!(doc["results"][0]["curve"].as_array().unwrap().len(), 21);
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), 11);
    for (bad, needle) in [
        (vec!["--maps", map.as_str(), "--metric", "auc"], "--metric"),
        (vec!["--maps", map.as_str(), "--order", "best"], "--order"),
        (
            vec!["--maps", map.as_str(), "--perturbation", "ink"],
            "--perturbation",
        ),
        (vec!["--maps", map.as_str(), "--region", "0"], "--region"),
        (vec!["--maps", map.as_str(), "--step", "0"], "--step"),
        (
            vec!["--maps", map.as_str(), "--metric", "pointing"],
            "pointing",
        ),
        (vec!["--methods", "nope"], "nope"),
        (vec![], "--maps"),
        (vec!["--maps", bad_map.as_str()], "--maps"),
        (
            vec!["--maps", map.as_str(), "--save-maps", "/tmp"],
            "--save-maps",
        ),
    ] {
        let mut a = vec!["evaluate", m.as_str(), x.as_str()];
        a.extend(bad.iter().copied());
        expect_error(&a, needle);
    }
}

#[test]
fn evaluate_cli_saved_maps_score_the_same() {
    let m = fixture("small.safetensors");
    let x = npy("eval_saved_in.npy", &[2, 3, 17, 15], 0.3);
    let dir = tmp("eval_saved_maps");
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let score = |args: &[&str], out: &str| -> Vec<f64> {
        let json = tmp(out);
        let _ = std::fs::remove_file(&json);
        let mut a = vec!["evaluate", m.as_str(), x.as_str(), "--region", "4"];
        a.extend(args.iter().copied());
        a.extend(["--json", json.to_str().unwrap()]);
        let (code, err) = netlens(&a);
        assert_eq!(code, 0, "{err}");
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let rows = doc["results"].as_array().unwrap().clone();
        rows.iter().map(|r| r["value"].as_f64().unwrap()).collect()
    };
    let computed = score(
        &["--methods", "gradient", "--save-maps", d],
        "eval_saved_a.json",
    );
    let saved = dir.join("gradient.npy");
    let again = score(&["--maps", saved.to_str().unwrap()], "eval_saved_b.json");
    assert_eq!(computed.len(), 2);
    for (a, b) in computed.iter().zip(&again) {
        assert!((a - b).abs() < 1e-6, "{computed:?} vs {again:?}");
    }
    // the saved map is the user's now: a second run does not replace it silently
    expect_error(
        &[
            "evaluate",
            m.as_str(),
            x.as_str(),
            "--methods",
            "gradient",
            "--save-maps",
            d,
        ],
        "exists",
    );
}

/// small.safetensors with its metadata edited and tensors replaced or added.
fn edited_model(
    name: &str,
    edit: impl Fn(&mut serde_json::Value),
    tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)],
) -> String {
    let bytes = std::fs::read(fixture("small.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_str(&header.metadata().as_ref().unwrap()["netlens"]).unwrap();
    edit(&mut meta);
    let mut views: Vec<(String, TensorView)> = st
        .iter()
        .filter(|(n, _)| !tensors.iter().any(|t| t.0 == *n))
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    for (n, d, s, b) in tensors {
        views.push((n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()));
    }
    let m = std::collections::HashMap::from([("netlens".to_string(), meta.to_string())]);
    let p = tmp(name);
    safetensors::serialize_to_file(views, Some(m), &p).unwrap();
    p.display().to_string()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Issue 14's list of inputs that were accepted, aborted or blamed the wrong thing: each
/// is now a clear error naming the file, field or flag, before any work.
#[test]
fn models_with_absurd_or_broken_contents_are_refused() {
    let x = npy("v_in.npy", &[1, 3, 17, 15], 0.3);
    let classify = |m: &str, needle: &str| expect_error(&["classify", m, x.as_str()], needle);
    let m = edited_model(
        "v_size.safetensors",
        |j| j["input_size"] = 100_000.into(),
        &[],
    );
    classify(&m, "input_size");
    let m = edited_model(
        "v_resize.safetensors",
        |j| j["resize"] = 1_000_000_000.into(),
        &[],
    );
    classify(&m, "resize");
    let m = edited_model(
        "v_type.safetensors",
        |j| j["input_size"] = "abc".into(),
        &[],
    );
    classify(&m, "field 'input_size'");
    let m = edited_model(
        "v_pool.safetensors",
        |j| j["layers"][4]["kernel"] = 0.into(),
        &[],
    );
    classify(&m, "body.4: kernel");
    let m = edited_model(
        "v_dup.safetensors",
        |j| j["layers"][3]["name"] = "body.1".into(),
        &[],
    );
    classify(&m, "two layers are named 'body.1'");
    // non-finite weights in each stored precision
    let w = |v: Vec<u8>, d: Dtype| vec![("body.0.bias", d, vec![v.len() * 8 / d.bitsize()], v)];
    let mut bias = vec![0.0f32; 4];
    let st = std::fs::read(fixture("small.safetensors")).unwrap();
    let n = safetensors::SafeTensors::deserialize(&st)
        .unwrap()
        .tensor("body.0.bias")
        .unwrap()
        .shape()[0];
    bias.resize(n, 0.0);
    bias[1] = f32::NAN;
    let m = edited_model(
        "v_nan32.safetensors",
        |_| {},
        &w(f32_bytes(&bias), Dtype::F32),
    );
    classify(&m, "body.0.bias");
    let mut h: Vec<u8> = vec![0; 2 * n];
    h[2..4].copy_from_slice(&half::f16::INFINITY.to_le_bytes());
    let m = edited_model("v_inf16.safetensors", |_| {}, &w(h, Dtype::F16));
    classify(&m, "inf");
    let mut b: Vec<u8> = vec![0; 2 * n];
    b[0..2].copy_from_slice(&half::bf16::NAN.to_le_bytes());
    let m = edited_model("v_nanbf16.safetensors", |_| {}, &w(b, Dtype::BF16));
    classify(&m, "NaN");
    // a batch norm with a negative variance
    let bn = |name: &'static str, v: f32| (name, Dtype::F32, vec![n], f32_bytes(&vec![v; n]));
    let layers_with_bn = |j: &mut serde_json::Value| {
        let layers = j["layers"].as_array_mut().unwrap();
        layers.insert(1, serde_json::json!({"type": "batchnorm2d", "name": "bn"}));
    };
    let m = edited_model(
        "v_bn.safetensors",
        layers_with_bn,
        &[
            bn("bn.running_mean", 0.0),
            bn("bn.running_var", -1.0),
            bn("bn.weight", 1.0),
            bn("bn.bias", 0.0),
        ],
    );
    classify(&m, "negative");
}

#[test]
fn flags_files_and_outputs_are_checked_before_any_work() {
    let m = fixture("small.safetensors");
    let x = npy("f_in.npy", &[1, 3, 17, 15], 0.3);
    let attr = |extra: &[&str], needle: &str| {
        let mut a = vec!["attribute", m.as_str(), x.as_str()];
        a.extend(extra.iter().copied());
        expect_error(&a, needle);
    };
    attr(
        &["--method", "lrp-epsilon", "--epsilon", "NaN"],
        "--epsilon",
    );
    attr(&["--method", "lrp-epsilon", "--epsilon", "-1"], "--epsilon");
    attr(&["--method", "lrp-gamma", "--gamma", "-1"], "--gamma");
    attr(&["--method", "smoothgrad", "--noise", "NaN"], "--noise");
    let blur = ["--method", "integrated-gradients", "--baseline", "blur"];
    attr(
        &[&blur[..], &["--blur-sigma", "-5"]].concat(),
        "--blur-sigma",
    );
    attr(
        &[
            "--method",
            "lrp-epsilon-gamma-box",
            "--low",
            "3",
            "--high",
            "-3",
        ],
        "--low",
    );
    let nodir = tmp("no-such-dir").join("map.npy");
    attr(
        &["--method", "gradient", "--out", nodir.to_str().unwrap()],
        "does not exist",
    );
    expect_error(&["classify", &m, &x, "--top", "0"], "--top");
    // a JPEG cut in half decoded as grey before
    let img = image::RgbImage::from_fn(256, 192, |x, y| {
        image::Rgb([(x * 7 + y * 3) as u8, (x ^ y) as u8, (x * y) as u8])
    });
    let mut jpg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    let whole = tmp("whole.jpg");
    std::fs::write(&whole, &jpg).unwrap();
    let (code, err) = netlens(&["classify", &m, whole.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let cut = tmp("cut.jpg");
    std::fs::write(&cut, &jpg[..jpg.len() / 2]).unwrap();
    expect_error(&["classify", &m, cut.to_str().unwrap()], "truncated");
    // an empty dataset has no accuracy
    let empty = tmp("empty-data");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("labels.csv"), "image,class,name\n").unwrap();
    expect_error(&["accuracy", &m, empty.to_str().unwrap()], "no images");
}

#[test]
fn synth_quotes_its_csv_and_a_closed_pipe_ends_quietly() {
    let out = tmp("split-data");
    let _ = std::fs::remove_dir_all(&out);
    let (code, err) = netlens(&[
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--count",
        "2",
        "--split",
        "a,b\"c",
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(out.join("index.csv")).unwrap();
    let row = text.lines().nth(1).unwrap();
    let cols = netlens::data::broden::split_csv(row);
    assert_eq!(cols.len(), 12, "{row}");
    assert_eq!(cols[1], "a,b\"c");
    // `netlens info M | head -1`: stdout closed after the first line
    let mut child = Command::new(env!("CARGO_BIN_EXE_netlens"))
        .args(["info", &fixture("small.safetensors")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// Every numeric flag of every command refuses NaN and infinity, naming the flag, before
/// any work (whether or not the chosen mode reads it).
#[test]
fn every_numeric_flag_refuses_nan_and_infinity() {
    let m = fixture("small.safetensors");
    let x = npy("nf_in.npy", &[1, 3, 17, 15], 0.3);
    let data = tmp("nf-data");
    if !data.join("index.csv").exists() {
        let (code, err) = netlens(&[
            "synth",
            "--out",
            data.to_str().unwrap(),
            "--count",
            "4",
            "--size",
            "32",
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let d = data.to_str().unwrap();
    let out = tmp("nf-out.npy");
    let o = out.to_str().unwrap();
    let dir = tmp("nf-dir");
    let od = dir.to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["maximize", &m, "--objective", "class:0", "--out", o],
            &[
                "--size",
                "--steps",
                "--lr",
                "--l2",
                "--blur-every",
                "--blur-sigma",
                "--clip-norm-pct",
                "--clip-contrib-pct",
                "--jitter",
                "--init-noise",
                "--decay",
                "--init-sd",
            ],
        ),
        (
            &["mask", &m, &x, "--out", o],
            &[
                "--area",
                "--levels",
                "--step",
                "--sigma",
                "--blur-sigma",
                "--baseline",
                "--noise-sigma",
                "--mask-size",
                "--l1",
                "--tv",
                "--tv-beta",
                "--lr",
                "--iterations",
                "--jitter",
                "--init",
                "--explainable-below",
                "--regul-weight",
                "--regul-growth",
            ],
        ),
        (
            &["attribute", &m, &x, "--method", "gradient", "--out", o],
            &[
                "--samples",
                "--noise",
                "--steps",
                "--blur-sigma",
                "--window",
                "--stride",
                "--occlusion-baseline",
                "--epsilon",
                "--alpha",
                "--beta",
                "--gamma",
                "--low",
                "--high",
            ],
        ),
        (
            &["evaluate", &m, &x, "--methods", "gradient"],
            &[
                "--tolerance",
                "--region",
                "--steps",
                "--baseline",
                "--blur-sigma",
                "--step",
            ],
        ),
        (
            &["top-patches", &m, d, "--layer", "body.1", "--out", od],
            &["--k"],
        ),
        (
            &["embed", &m, d, "--layer", "body.1", "--npy", o],
            &["--perplexity", "--steps"],
        ),
        (&["neighbors", &m, d, &x, "--layer", "body.1"], &["--k"]),
        (
            &["dissect", &m, d, "--layer", "body.1", "--out", od],
            &["--quantile", "--iou", "--batch", "--top"],
        ),
        (&["classify", &m, &x], &["--top", "--batch"]),
        (&["accuracy", &m, d], &["--batch"]),
        (&["synth", "--out", od], &["--count", "--size"]),
    ];
    for (base, flags) in cases {
        for flag in *flags {
            for v in ["NaN", "inf"] {
                let mut a = base.to_vec();
                let arg = format!("{flag}={v}");
                a.push(&arg);
                let (code, err) = netlens(&a);
                assert!(code == 1 || code == 2, "{a:?} exited {code}: {err}");
                assert!(err.contains(flag), "{a:?}: {flag} not named in: {err}");
            }
        }
    }
    assert!(!out.exists() && !dir.exists(), "a refused run wrote output");
}
