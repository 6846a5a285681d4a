//! Visualisation: activation maximisation reaches its targets on the demo model, top
//! patches equal a brute-force search, receptive fields hold every unit's input-gradient
//! support, PCA matches numpy, t-SNE and neighbours keep clusters apart.

mod common;
use common::{assert_close, demo, fixture, load_tensors, rand_vec};

use netlens::data::folder::ImageSet;
use netlens::explain::visualize::{
    maximize, neighbors, pca, receptive_field, top_patches, tsne, Goal, MaximizeSettings, Metric,
    Preset,
};
use netlens::gpu::{Recorder, Tensor};
use netlens::graph::Keep;
use netlens::ops::objective::{objective, Objective, Targets};
use netlens::ops::visualize::pixel_bounds;
use netlens::ops::ReluRule;
use netlens::Array;

fn hidden() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}

#[test]
fn class_models_reach_every_class_in_350_steps_of_the_default_preset() {
    let net = demo();
    let m = net.model();
    let text: Vec<String> = (0..8).map(|k| format!("logprob:{k}")).collect();
    let goals = Goal::parse_list(&text.join(","), m, &[1, 3, 64, 64]).unwrap();
    // the preset runs 500 steps; the slowest classes (circle, ring) pass p = 0.95 by about
    // step 250 on lavapipe, so 350 keep a margin at 70% of the time
    let s = MaximizeSettings {
        steps: 350,
        ..MaximizeSettings::preset(Preset::Simonyan, (64, 64))
    };
    let r = maximize(&net, &goals, &s, &hidden()).unwrap();
    for k in 0..8 {
        let p = r.probs.data[k * 8 + k];
        assert!(p > 0.95, "class {k} ({}): p = {p}", m.class_name(k));
        // the objective climbed wherever the mean image was not already the class
        let (first, last) = (r.history.data[k], r.history.data[(s.steps - 1) * 8 + k]);
        assert!(
            last >= first - 1e-3,
            "class {k}: log p went {first} -> {last}"
        );
        assert!(
            first > -0.7 || last > first + 1.0,
            "class {k}: log p went {first} -> {last}"
        );
    }
    // every pixel is a valid colour
    let b = pixel_bounds(&m.meta.mean, &m.meta.std).unwrap();
    for (i, v) in r.images.data.iter().enumerate() {
        let c = (i / 4096) % 3;
        assert!(
            v >= &(b[2 * c] - 1e-5) && v <= &(b[2 * c + 1] + 1e-5),
            "pixel {i} = {v}"
        );
    }
}

#[test]
fn units_rise_regularisers_apply_and_items_do_not_depend_on_the_batch() {
    let net = demo();
    let m = net.model();
    let goals = Goal::parse_list(
        "channel:features.8:5,unit:features.8:3:8:8",
        m,
        &[1, 3, 64, 64],
    )
    .unwrap();
    let mut s = MaximizeSettings::preset(Preset::Simonyan, (64, 64));
    s.steps = 24;
    s.blur_every = 4;
    s.blur_sigma = 0.5;
    s.clip_norm_pct = 50.0;
    s.jitter = 2;
    s.clip_contrib_pct = 10.0;
    s.init_noise = 0.5;
    s.seed = 3;
    let both = maximize(&net, &goals, &s, &hidden()).unwrap();
    for (i, g) in goals.iter().enumerate() {
        let (first, last) = (both.history.data[i], both.values[i]);
        assert!(last > first + 0.2, "{}: {first} -> {last}", g.text);
    }
    // the last step clipped half the pixels by norm: all their channels are exactly 0
    for i in 0..2 {
        let zero = (0..4096)
            .filter(|v| (0..3).all(|c| both.images.data[(i * 3 + c) * 4096 + v] == 0.0))
            .count();
        assert!(zero >= 2048, "item {i}: {zero} of 4096 pixels clipped");
    }
    // one item per pass gives what the batch gave: noise and jitter follow the item's index
    let single = maximize(&demo().with_max_batch(1), &goals, &s, &hidden()).unwrap();
    assert_close(
        &single.images.data,
        &both.images.data,
        1e-4,
        1e-4,
        "one item per pass",
    );
    // bad objectives are refused before any work
    for bad in [
        "class:8",
        "channel:features.8:96",
        "unit:features.8:0:16:0",
        "channel:nope:1",
        "logit",
        "",
    ] {
        assert!(Goal::parse_list(bad, m, &[1, 3, 64, 64]).is_err(), "{bad}");
    }
    let mut s2 = s.clone();
    s2.jitter = 32;
    assert!(maximize(&net, &goals, &s2, &hidden()).is_err());
}

fn dataset(name: &str, count: usize) -> ImageSet {
    let dir = std::env::temp_dir().join(format!("netlens-vis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = netlens::data::synth::Options {
        count,
        size: 64,
        seed: 77,
        split: "train".into(),
    };
    netlens::data::synth::generate(&dir, &opts, &hidden()).unwrap();
    ImageSet::open(&dir).unwrap()
}

#[test]
fn top_patches_equal_a_brute_force_search() {
    let net = demo();
    let m = net.model();
    let data = dataset("top", 70); // two batches of the stream
    let all = data.load(0, data.len(), &m.meta).unwrap();
    for (layer, k) in [("features.8", 5), ("features.12", 3), ("classifier.4", 4)] {
        let li = m.find(layer).unwrap();
        let got = top_patches(&net, &data, li, k, &hidden()).unwrap();
        let act = net
            .forward(&all, &[layer.to_string()])
            .unwrap()
            .captures
            .remove(0)
            .1;
        let (n, c) = (act.shape[0], act.shape[1]);
        let plane: usize = act.shape[2..].iter().product();
        let width = act.shape.get(3).copied().unwrap_or(1);
        assert_eq!(got.len(), c);
        for (u, patches) in got.iter().enumerate() {
            let mut all: Vec<(f32, usize, usize)> = (0..n)
                .flat_map(|i| (0..plane).map(move |p| (i, p)))
                .map(|(i, p)| (act.data[(i * c + u) * plane + p], i, p))
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            assert_eq!(patches.len(), k);
            for (j, p) in patches.iter().enumerate() {
                let (v, i, pos) = all[j];
                assert_eq!(
                    (p.image, p.y * width + p.x),
                    (i, pos),
                    "{layer} unit {u} rank {j}"
                );
                assert!(
                    (p.value - v).abs() <= 1e-5 * v.abs().max(1.0),
                    "{layer} unit {u}"
                );
                let want = receptive_field(m, li, &[1, 3, 64, 64], p.y, p.x).unwrap();
                assert_eq!(p.bbox, want);
            }
        }
    }
}

#[test]
fn receptive_fields_hold_each_units_input_gradient_support() {
    let net = demo();
    let m = net.model();
    let ctx = net.ctx();
    let b = 8;
    let x = Tensor::upload(ctx, &rand_vec(b * 3 * 64 * 64, 5), &[b, 3, 64, 64]).unwrap();
    for (layer, at) in [
        ("features.0", (0, 0)),
        ("features.3", (5, 31)),
        ("features.8", (0, 7)),
        ("features.8", (9, 15)),
        ("features.11", (3, 4)),
    ] {
        let li = m.find(layer).unwrap();
        let out = m.output_shapes(&[b, 3, 64, 64]).unwrap()[li].clone();
        let units: Vec<_> = (0..b).map(|i| (i % out[1], at.0, at.1)).collect();
        let tg = Targets::units(ctx, &units, &out[1..]).unwrap();
        let mut rec = Recorder::new(ctx, "field");
        let tape = net
            .record_forward(&mut rec, &x, &Keep::All, Some(li))
            .unwrap();
        let (seed, _) = objective(&mut rec, &tape.logits, &tg, Objective::Unit).unwrap();
        let g = net
            .record_backward(&mut rec, &tape, li, &seed, ReluRule::Gradient, &[])
            .unwrap();
        rec.submit().unwrap();
        let g = g.input.read(ctx).unwrap();
        let want = receptive_field(m, li, &[1, 3, 64, 64], at.0, at.1).unwrap();
        let (mut lo, mut hi) = ([usize::MAX; 2], [0usize; 2]);
        for i in 0..b * 3 {
            for y in 0..64 {
                for x in 0..64 {
                    if g[i * 4096 + y * 64 + x] != 0.0 {
                        assert!(
                            (want[0]..want[2]).contains(&y) && (want[1]..want[3]).contains(&x),
                            "{layer} {at:?}: gradient at ({y}, {x}) outside {want:?}"
                        );
                        lo = [lo[0].min(y), lo[1].min(x)];
                        hi = [hi[0].max(y + 1), hi[1].max(x + 1)];
                    }
                }
            }
        }
        // the field is tight: the supports of a few units on random inputs reach its edges
        assert_eq!([lo[0], lo[1], hi[0], hi[1]], want, "{layer} {at:?}");
    }
    // after the flatten, the whole image
    let li = m.find("classifier.0").unwrap();
    assert_eq!(
        receptive_field(m, li, &[1, 3, 64, 64], 0, 0).unwrap(),
        [0, 0, 64, 64]
    );
}

#[test]
fn pca_matches_numpy() {
    let want = load_tensors(&fixture("pca.safetensors"));
    for name in ["tall", "wide"] {
        let x = &want[&format!("{name}.x")];
        let p = pca(x, 3).unwrap();
        let proj = &want[&format!("{name}.projected")];
        let comps = &want[&format!("{name}.components")];
        let var = &want[&format!("{name}.variance")];
        assert_close(
            &p.projected.data,
            &proj.data,
            1e-3,
            1e-3,
            &format!("{name} projected"),
        );
        assert_close(
            &p.components.data,
            &comps.data,
            1e-4,
            1e-3,
            &format!("{name} components"),
        );
        let v: Vec<f32> = p.variance.iter().map(|v| *v as f32).collect();
        assert_close(&v, &var.data, 0.0, 1e-4, &format!("{name} variance"));
    }
    assert!(pca(&Array::new(vec![1, 4], vec![0.0; 4]).unwrap(), 1).is_err());
    assert!(pca(&want["tall.x"], 10).is_err());
}

#[test]
fn tsne_and_neighbours_keep_clusters_apart() {
    // three well separated blobs in 10-D
    let (n, d) = (45, 10);
    let noise = rand_vec(n * d, 9);
    let data: Vec<f32> = (0..n * d)
        .map(|i| {
            let (row, col) = (i / d, i % d);
            let centre = if col == row % 3 { 8.0 } else { 0.0 };
            centre + noise[i]
        })
        .collect();
    let x = Array::new(vec![n, d], data).unwrap();
    let y = tsne(&x, 5.0, 500, 1).unwrap();
    // (t-SNE may strand a point or two between clusters: allow 2 of 45)
    let nn = neighbors(&y, &y, 2, Metric::L2).unwrap();
    let wrong = nn
        .iter()
        .enumerate()
        .filter(|(i, v)| v[1].0 % 3 != i % 3)
        .count();
    assert!(
        nn.iter().enumerate().all(|(i, v)| v[0].0 == i),
        "a point is its own nearest"
    );
    assert!(
        wrong <= 2,
        "{wrong} of 45 t-SNE points sit nearest another blob"
    );
    let nc = neighbors(&x, &x, 3, Metric::Cosine).unwrap();
    assert!(nc
        .iter()
        .enumerate()
        .all(|(i, v)| v.iter().all(|(j, _)| j % 3 == i % 3)));
    assert!(
        tsne(&x, 40.0, 500, 1).is_err(),
        "perplexity above (N - 1) / 3"
    );
    // the same seed gives the same embedding
    let y2 = tsne(&x, 5.0, 500, 1).unwrap();
    assert_close(&y.data, &y2.data, 0.0, 0.0, "t-SNE determinism");
}

#[test]
fn lucid_parametrisation_and_transforms_match_lucent() {
    use netlens::explain::visualize::transforms::{apply, Draw};
    use netlens::ops::fourier;
    let want = load_tensors(&fixture("lucid.safetensors"));
    let ctx = common::ctx();
    for name in ["even", "odd"] {
        let p = &want[&format!("{name}.spectrum")];
        let pix = &want[&format!("{name}.pixels")];
        let (h, w) = (pix.shape[2], pix.shape[3]);
        let scale = fourier::spectrum_scale(h, w, 1.0);
        let mut rec = Recorder::new(ctx, "lucid");
        let st = Tensor::upload(ctx, &scale, &[h, w / 2 + 1]).unwrap();
        let v = fourier::spectrum_image(
            &mut rec,
            &Tensor::upload(ctx, &p.data, &p.shape).unwrap(),
            &st,
            (h, w),
        )
        .unwrap();
        let m = Tensor::upload(ctx, &fourier::color_matrix(), &[3, 3]).unwrap();
        let got = fourier::color_sigmoid(&mut rec, &v, &m).unwrap();
        rec.submit().unwrap();
        assert_close(
            &got.read(ctx).unwrap(),
            &pix.data,
            1e-5,
            1e-4,
            &format!("{name} pixels"),
        );
    }
    let x = &want["t.input"];
    for seed in [0, 3, 6, 8, 11] {
        let c = &want[&format!("t{seed}.choices")].data;
        let draw = Draw {
            jitter8: (c[0] as usize, c[1] as usize),
            scale: ((c[2] as f64 - 1.0) * 50.0 + 5.0).round() as usize,
            angle: c[3] as i32,
            jitter4: (c[4] as usize, c[5] as usize),
        };
        let out = &want[&format!("t{seed}.output")];
        let mut rec = Recorder::new(ctx, "transforms");
        let a = apply(
            &mut rec,
            &Tensor::upload(ctx, &x.data, &x.shape).unwrap(),
            &draw,
        )
        .unwrap();
        rec.submit().unwrap();
        assert_eq!(a.output.shape, out.shape, "seed {seed}: {draw:?}");
        assert_close(
            &a.output.read(ctx).unwrap(),
            &out.data,
            1e-4,
            1e-4,
            &format!("seed {seed}: {draw:?}"),
        );
    }
}

#[test]
fn the_lucid_preset_raises_its_objective_through_transforms() {
    let net = demo();
    let m = net.model();
    // a class through the transforms (each step sees another draw: compare averages)
    let goals = Goal::parse_list("logprob:3,logprob:5", m, &[1, 3, 64, 64]).unwrap();
    let mut s = MaximizeSettings::preset(Preset::Lucid, (64, 64));
    s.steps = 40;
    s.seed = 5;
    let r = maximize(&net, &goals, &s, &hidden()).unwrap();
    for (i, g) in goals.iter().enumerate() {
        let h: Vec<f32> = (0..s.steps).map(|t| r.history.data[t * 2 + i]).collect();
        let (a, b) = (
            h[..5].iter().sum::<f32>() / 5.0,
            h[35..].iter().sum::<f32>() / 5.0,
        );
        assert!(b > a + 0.5, "{}: {a} -> {b} over {h:?}", g.text);
    }
    // sigmoid pixels: strictly inside the pixel range
    let bounds = pixel_bounds(&m.meta.mean, &m.meta.std).unwrap();
    for (i, v) in r.images.data.iter().enumerate() {
        let c = (i / 4096) % 3;
        assert!(
            *v > bounds[2 * c] && *v < bounds[2 * c + 1],
            "pixel {i} = {v}"
        );
    }
    // a unit's channel through the Fourier parametrisation alone climbs step by step
    let goals = Goal::parse_list("channel:features.8:5", m, &[1, 3, 64, 64]).unwrap();
    s.transforms = netlens::explain::visualize::Transforms::None;
    s.steps = 30;
    let r = maximize(&net, &goals, &s, &hidden()).unwrap();
    let h = &r.history.data;
    assert!(h.windows(2).filter(|w| w[1] > w[0]).count() >= 25, "{h:?}");
    assert!(r.values[0] > h[0] + 0.1, "{} -> {}", h[0], r.values[0]);
    // the fft parametrisation refuses the pixel regularisers
    let mut bad = s.clone();
    bad.blur_every = 4;
    bad.blur_sigma = 1.0;
    assert!(maximize(&net, &goals, &bad, &hidden()).is_err());
}
