//! One item too large for a storage binding runs its first layers in row bands: the same
//! logits and gradients as on a device whose bindings hold it whole.

mod common;

use std::sync::Arc;

use netlens::explain::gradient::{ig_steps, IgMethod};
use netlens::explain::method::{attribute, Settings};
use netlens::explain::{run_gradients, Target};
use netlens::gpu::Context;
use netlens::graph::Net;
use netlens::ops::ReluRule;
use netlens::Array;

/// The demo model's first conv output at 128² is 2 MiB: over this, under the default.
const BINDING: u64 = 768 << 10;

fn narrow() -> Net {
    let ctx = Context::from_env().unwrap().with_binding_limit(BINDING);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    Net::new(Arc::new(ctx), netlens::model::load(path.as_ref()).unwrap()).unwrap()
}

/// Shipped samples at twice their size (nearest), cropped to `h` x `w`.
fn large(net: &Net, names: &[&str], h: usize, w: usize) -> Array {
    let x = common::samples(net, names);
    let [n, c, sh, sw] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let mut data = Vec::with_capacity(n * c * h * w);
    for plane in x.data.chunks(sh * sw) {
        for y in 0..h {
            for xx in 0..w {
                data.push(plane[(y / 2).min(sh - 1) * sw + (xx / 2).min(sw - 1)]);
            }
        }
    }
    Array::new(vec![n, c, h, w], data).unwrap()
}

fn run(net: &Net, method: &str, x: &Array) -> (Array, Vec<usize>) {
    let bar = indicatif::ProgressBar::hidden();
    let s = Settings {
        steps: 6,
        samples: 3,
        window: 32,
        stride: 24,
        ..Settings::default()
    };
    let a = attribute(net, method, x, &Target::Argmax, &s, &bar).unwrap();
    (a.map, a.targets)
}

/// `net` (in bands) and `full` (whole) give the same logits.
fn assert_same_logits(net: &Net, full: &Net, x: &Array) {
    let got = net.forward(x, &[]).unwrap().logits;
    let want = full.forward(x, &[]).unwrap().logits;
    common::assert_close(&got.data, &want.data, 1e-5, 1e-5, "logits");
}

/// `net` (in bands) and `full` (whole) give `method`'s map for the same targets, every
/// value within 1e-5 of the map's largest plus 1e-4 of itself, and rel. L2 under 1e-5.
fn assert_same_map(net: &Net, full: &Net, method: &str, x: &Array) {
    let (g, t) = run(net, method, x);
    let (gw, tw) = run(full, method, x);
    assert_eq!(t, tw, "{method}");
    let what = format!("{method} at {:?}", x.shape);
    let scale = gw.data.iter().fold(0f32, |m, v| m.max(v.abs()));
    common::assert_close(&g.data, &gw.data, 1e-5 * scale, 1e-4, &what);
    let e = common::rel_l2(&g.data, &gw.data);
    assert!(e < 1e-5, "{what}: rel. L2 {e}");
}

#[test]
fn bands_cover_the_output_once_and_overlap_at_the_input() {
    let net = narrow();
    assert!(net.bands(&[1, 3, 64, 64]).unwrap().is_none());
    let b = net.bands(&[1, 3, 131, 97]).unwrap().expect("bands");
    // features.5 (a pool) is the first layer from which every output fits
    assert_eq!(net.model().layers[b.last].name, "features.5");
    assert_eq!(b.out_shape, vec![1, 64, 32, 24]);
    assert!(b.bands.len() >= 2, "{b:?}");
    let mut next = 0;
    for (k, band) in b.bands.iter().enumerate() {
        assert_eq!(band.valid.start, next, "{b:?}");
        next = band.valid.end;
        assert_eq!(band.rows.start % 4, 0, "rows start on the strides: {b:?}");
        if k > 0 {
            assert!(band.rows.start < b.bands[k - 1].rows.end, "halo: {b:?}");
        }
    }
    assert_eq!(next, 32);
    assert_eq!(b.bands.last().unwrap().rows.end, 131);
    // going back, each band gives its own input rows, reading more around them
    assert!(b.back.len() >= 2, "{b:?}");
    let mut next = 0;
    for band in &b.back {
        assert_eq!(band.keep.start, next, "{b:?}");
        next = band.keep.end;
        assert!(band.rows.start <= band.keep.start && band.keep.end <= band.rows.end);
        assert!(band.rows.len() > band.keep.len(), "{b:?}");
    }
    assert_eq!(next, 131);
}

#[test]
fn an_item_too_large_for_one_binding_gives_the_whole_items_logits_and_gradients() {
    let (net, full) = (narrow(), common::demo());
    for (names, h, w) in [(&["star", "arrow"][..], 128, 128), (&["ring"][..], 131, 97)] {
        let x = large(&net, names, h, w);
        assert!(net.max_batch(&x.shape).is_err(), "one pass cannot hold it");
        let got = net.forward(&x, &["classifier.3".into()]).unwrap();
        let want = full.forward(&x, &["classifier.3".into()]).unwrap();
        common::assert_close(&got.logits.data, &want.logits.data, 1e-5, 1e-5, "logits");
        common::assert_close(
            &got.captures[0].1.data,
            &want.captures[0].1.data,
            1e-5,
            1e-5,
            "capture",
        );
        for method in [
            "gradient",
            "saliency",
            "input-x-gradient",
            "smoothgrad",
            "grad-cam",
            "guided-backprop",
            "deconvnet",
            "guided-grad-cam",
            "occlusion",
            "lrp-epsilon",
            "lrp-epsilon-plus-flat",
            "lrp-epsilon-gamma-box",
            "lrp-epsilon-alpha2-beta1",
        ] {
            // ε-LRP divides by sums near 0, and SmoothGrad's noisy copies put
            // pre-activations near 0: summed in another order, a ratio or a ReLU can
            // tip (on the tiled GEMMs: 3e-5 and 4e-4); the rest stay within 1e-5 of
            // the map's largest value
            if matches!(method, "lrp-epsilon" | "smoothgrad") {
                let (g, t) = run(&net, method, &x);
                let (gw, tw) = run(&full, method, &x);
                assert_eq!(t, tw);
                let e = common::rel_l2(&g.data, &gw.data);
                assert!(e < 2e-3, "{method} at {h}x{w}: rel. L2 {e}");
                continue;
            }
            assert_same_map(&net, &full, method, &x);
        }
        // integrated gradients without the first conv's linearity (the whole item's
        // path interpolates that conv's output, a rounding away): the plain gradients of
        // the interpolated copies, summed here
        let (ig, t) = run(&net, "integrated-gradients", &x);
        let (alphas, weights) = ig_steps(IgMethod::GaussLegendre, 6).unwrap();
        let per = x.data.len() / x.batch();
        for (i, &ti) in t.iter().enumerate() {
            let xi = &x.data[i * per..(i + 1) * per];
            let copies: Vec<f32> = alphas
                .iter()
                .flat_map(|a| xi.iter().map(move |v| *a as f32 * v))
                .collect();
            let mut shape = x.shape.clone();
            shape[0] = alphas.len();
            let c = Array::new(shape, copies).unwrap();
            let bar = indicatif::ProgressBar::hidden();
            let g = run_gradients(&full, &c, Some(&[ti; 6]), ReluRule::Gradient, None, &bar)
                .unwrap()
                .grad;
            let want: Vec<f32> = (0..per)
                .map(|j| {
                    let s: f64 = (0..6)
                        .map(|k| weights[k] * g.data[k * per + j] as f64)
                        .sum();
                    (s * xi[j] as f64) as f32
                })
                .collect();
            let got = &ig.data[i * per..(i + 1) * per];
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            common::assert_close(got, &want, 1e-5 * scale, 1e-4, "integrated gradients");
        }
    }
}

#[test]
fn layers_inside_the_bands_cannot_be_captured() {
    let net = narrow();
    let x = large(&net, &["star"], 128, 128);
    let Err(e) = net.forward(&x, &["features.3".into()]) else {
        panic!("features.3 runs in bands")
    };
    assert!(e.to_string().contains("row bands"), "{e}");
}

#[test]
fn a_residual_block_runs_in_bands_with_its_sum() {
    let path = common::fixture("residual.safetensors");
    let load = || netlens::model::load(path.as_ref()).unwrap();
    // the stem and the first block (8 x 64 x 64 floats each) over the limit, the pool
    // after them (8 x 32 x 32) under it
    let ctx = Context::from_env().unwrap().with_binding_limit(100_000);
    let net = Net::new(Arc::new(ctx), load()).unwrap();
    let full = Net::new(common::arc_ctx(), load()).unwrap();
    let x = Array::new(vec![1, 3, 64, 61], common::rand_vec(3 * 64 * 61, 7)).unwrap();
    let b = net.bands(&x.shape).unwrap().expect("bands");
    assert_eq!(net.model().layers[b.last].name, "pool");
    assert!(b.bands.len() >= 2 && b.back.len() >= 2, "{b:?}");
    assert_same_logits(&net, &full, &x);
    for method in [
        "gradient",
        "guided-backprop",
        "lrp-epsilon-plus",
        "lrp-epsilon-gamma-box",
    ] {
        assert_same_map(&net, &full, method, &x);
    }
}

/// A conv of stride 2, a max pool with padding and ceil mode, a conv without padding,
/// an average pool that leaves its padding out and a 1x1 conv, all in the bands.
fn odd_geometry() -> netlens::model::Model {
    use netlens::model::{Layer, LayerKind, Model, ModelMeta, Src};
    use netlens::ops::{Conv2dGeom, Pool2d};
    let conv =
        |cin: usize, cout: usize, k: usize, s: usize, p: usize, seed: u64| LayerKind::Conv2d {
            geom: Conv2dGeom {
                cin,
                cout,
                kernel: (k, k),
                stride: (s, s),
                padding: (p, p),
            },
            weight: common::rand_vec(cout * cin * k * k, seed),
            bias: Some(common::rand_vec(cout, seed + 1)),
        };
    let pool = |k: usize, s: usize, p: usize, ceil: bool, include: bool| Pool2d {
        kernel: (k, k),
        stride: (s, s),
        padding: (p, p),
        ceil_mode: ceil,
        count_include_pad: include,
    };
    let kinds = vec![
        conv(3, 6, 5, 2, 2, 1),
        LayerKind::Relu,
        LayerKind::MaxPool2d(pool(3, 2, 1, true, true)),
        conv(6, 96, 3, 1, 0, 3),
        LayerKind::AvgPool2d(pool(3, 1, 1, false, false)),
        LayerKind::Relu,
        conv(96, 4, 1, 1, 0, 5),
        LayerKind::AdaptiveAvgPool2d((2, 2)),
        LayerKind::Flatten,
        LayerKind::Linear {
            in_features: 16,
            out_features: 5,
            weight: common::rand_vec(80, 7),
            bias: None,
        },
    ];
    let layers = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Layer {
            name: format!("l{i}"),
            kind,
            inputs: vec![Src::before(i)],
            folded_bn: None,
            file_weights: None,
        })
        .collect();
    Model {
        layers,
        meta: ModelMeta {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
            input_size: (157, 45),
            ..ModelMeta::default()
        },
        in_channels: 3,
    }
}

#[test]
fn strided_padded_and_unpadded_layers_line_up_in_bands() {
    // the input (3 x 157 x 45) and the 96 channels after the max pool over 60000 bytes
    let ctx = Context::from_env().unwrap().with_binding_limit(60_000);
    let net = Net::new(Arc::new(ctx), odd_geometry()).unwrap();
    let full = Net::new(common::arc_ctx(), odd_geometry()).unwrap();
    let x = Array::new(vec![1, 3, 157, 45], common::rand_vec(3 * 157 * 45, 9)).unwrap();
    let b = net.bands(&x.shape).unwrap().expect("bands");
    assert_eq!(b.last, 6, "{b:?}");
    assert!(b.bands.len() >= 2 && b.back.len() >= 2, "{b:?}");
    assert!(b.bands.iter().all(|band| band.rows.start % 4 == 0), "{b:?}");
    assert_same_logits(&net, &full, &x);
    for method in ["gradient", "guided-backprop", "lrp-epsilon-plus"] {
        assert_same_map(&net, &full, method, &x);
    }
}

#[test]
fn joined_bands_hold_the_whole_items_activations_bit_for_bit() {
    // the same sums over the same values: the claim is exact, so is the check
    let (net, full) = (narrow(), common::demo());
    let x = large(&net, &["ring"], 131, 97);
    let b = net.bands(&x.shape).unwrap().unwrap();
    let got = net.banded_prefix(&x, &b).unwrap().read(net.ctx()).unwrap();
    let name = net.model().layers[b.last].name.clone();
    let want = full.forward(&x, &[name]).unwrap().captures.remove(0).1;
    assert_eq!(got, want.data);
}

#[test]
fn faithfulness_curves_run_their_copies_in_bands() {
    use netlens::explain::faithfulness::{aopc, deletion_insertion, Order, Score, Substrate};
    let (net, full) = (narrow(), common::demo());
    let x = large(&net, &["star", "ring"], 128, 128);
    let bar = indicatif::ProgressBar::hidden();
    let (maps, targets) = run(&full, "gradient", &x);
    // the same copies, scored by the banded and the whole network
    let close = |got: &[netlens::explain::faithfulness::Curve],
                 want: &[netlens::explain::faithfulness::Curve],
                 what: &str| {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            common::assert_close(&g.curve, &w.curve, 1e-5, 1e-4, what);
            assert!((g.value - w.value).abs() < 1e-5, "{what}");
        }
    };
    for (order, sub, score) in [
        (Order::Morf, Substrate::Blur(3.0), Score::Prob),
        (Order::Random(4), Substrate::Uniform(2), Score::Logit),
    ] {
        let r = |n: &Net| aopc(n, &x, &maps, &targets, 16, 40, order, &sub, score, &bar);
        let (got, want) = (r(&net).unwrap(), r(&full).unwrap());
        assert_eq!(got[0].curve.len(), 41);
        // the random order's first patches change the score
        assert!(want[0]
            .curve
            .iter()
            .any(|v| (v - want[0].curve[0]).abs() > 1e-3));
        close(&got, &want, &format!("aopc {order:?} {sub:?}"));
    }
    for insert in [false, true] {
        let sub = Substrate::Constant(0.5);
        let r = |n: &Net| deletion_insertion(n, &x, &maps, &targets, 1500, insert, &sub, &bar);
        close(
            &r(&net).unwrap(),
            &r(&full).unwrap(),
            &format!("insert {insert}"),
        );
    }
}

/// Every `a` within 1e-4 of `b`'s largest value plus 1e-3 of itself.
fn assert_near(a: &[f32], b: &[f32], what: &str) {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    common::assert_close(a, b, 1e-4 * scale, 1e-3, what);
}

#[test]
fn masks_learn_through_the_bands() {
    use netlens::explain::mask::extremal::{extremal_perturbation, ExtremalSettings, Variant};
    use netlens::explain::mask::{meaningful_perturbation, Game, MaskSettings};
    let (net, full) = (narrow(), common::demo());
    let x = large(&net, &["star", "cross"], 128, 128);
    let bar = indicatif::ProgressBar::hidden();
    // jittered steps, two items a pass each
    let s = MaskSettings {
        iterations: 6,
        explainable_below: 1.0,
        ..MaskSettings::new(Game::Preservation, (128, 128))
    };
    assert!(s.jitter > 0);
    let run = |n: &Net| meaningful_perturbation(n, &x, &Target::Argmax, &s, &bar).unwrap();
    let (got, want) = (run(&net), run(&full));
    assert_near(&got.mask.data, &want.mask.data, "meaningful mask");
    assert_near(&got.perturbed.data, &want.perturbed.data, "meaningful Φ");
    for (g, w) in got.items.iter().zip(&want.items) {
        assert!(w.explainable);
        assert_near(&g.loss, &w.loss, "meaningful loss");
        assert!((g.p_perturbed - w.p_perturbed).abs() < 1e-4);
    }
    // dual: two rows (kept and deleted) joined after the bands; two pyramid levels, as
    // the input's whole-image tensors must fit the narrow bindings
    let s = ExtremalSettings {
        areas: vec![0.2],
        levels: 2,
        iterations: 4,
        explainable_below: 1.0,
        ..ExtremalSettings::new(Variant::Dual, (128, 128))
    };
    let x1 = x.slice_batch(0, 1);
    // eight levels of a 3 x 128² input are 1.5 MiB; four fit the 768 KiB bindings
    let eight = ExtremalSettings {
        levels: 8,
        ..s.clone()
    };
    let Err(e) = extremal_perturbation(&net, &x1, &Target::Argmax, &eight, &bar) else {
        panic!("eight levels do not fit")
    };
    assert!(e.to_string().contains("--levels 4 or fewer"), "{e}");
    let run = |n: &Net| extremal_perturbation(n, &x1, &Target::Argmax, &s, &bar).unwrap();
    let (got, want) = (run(&net), run(&full));
    assert_near(&got.mask.data, &want.mask.data, "extremal mask");
    for (g, w) in got.items.iter().zip(&want.items) {
        assert_near(&g.loss, &w.loss, "extremal energy");
        assert!((g.p_perturbed - w.p_perturbed).abs() < 1e-4);
    }
}

#[test]
fn maximisation_steps_through_the_bands() {
    use netlens::explain::visualize::{maximize, Goal, MaximizeSettings, Optimizer, Preset};
    let (net, full) = (narrow(), common::demo());
    let bar = indicatif::ProgressBar::hidden();
    let shape = [1, 3, 128, 128];
    let goals: Vec<Goal> = ["class:2", "channel:features.6:5"]
        .iter()
        .map(|t| Goal::parse(t, net.model(), &shape).unwrap())
        .collect();
    // two steps: the banded walk's gradients differ from the whole one's by rounding
    // (2e-6 rel. L2 after one step), and a noisy image's near-zero pre-activations can
    // tip a ReLU on that, more with every step (4 steps: 4e-4 to 4e-3). Adam's first
    // steps are ±lr wherever a gradient is not 0, whatever its size, which turns the
    // rounding in near-zero gradients into whole steps: both presets take SGD steps here
    for preset in [Preset::Simonyan, Preset::Lucid] {
        let s = MaximizeSettings {
            steps: 2,
            optimizer: Optimizer::Sgd { lr: 0.05 },
            // pixel images start from noise, not the flat mean image (whose conv
            // outputs are all their bias, a gradient of cancelling sums)
            jitter: if preset == Preset::Simonyan { 3 } else { 0 },
            init_noise: if preset == Preset::Simonyan { 1.0 } else { 0.0 },
            ..MaximizeSettings::preset(preset, (128, 128))
        };
        let (got, want) = (
            maximize(&net, &goals, &s, &bar).unwrap(),
            maximize(&full, &goals, &s, &bar).unwrap(),
        );
        let what = format!("{preset:?}");
        assert_near(&got.images.data, &want.images.data, &what);
        assert_near(&got.history.data, &want.history.data, &what);
        assert_near(&got.values, &want.values, &what);
    }
    // a unit inside the bands has no whole output to maximise
    let inside = [Goal::parse("channel:features.3:0", net.model(), &shape).unwrap()];
    let s = MaximizeSettings {
        steps: 2,
        ..MaximizeSettings::preset(Preset::Simonyan, (128, 128))
    };
    let Err(e) = maximize(&net, &inside, &s, &bar) else {
        panic!("features.3 runs in bands")
    };
    assert!(e.to_string().contains("row bands"), "{e}");
}

#[test]
fn dataset_passes_run_their_images_in_bands() {
    use netlens::data::folder::ImageSet;
    use netlens::explain::dissect::{self, dissect, Concepts, Settings};
    use netlens::explain::visualize::top_patches;
    // the demo model told to see 128² images: the generated 64² ones are brought up
    let at128 = |ctx: Arc<Context>| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
        let mut m = netlens::model::load(path.as_ref()).unwrap();
        m.meta.input_size = (128, 128);
        m.meta.resize = 128;
        Net::new(ctx, m).unwrap()
    };
    let narrow = Context::from_env().unwrap().with_binding_limit(BINDING);
    let (net, full) = (at128(Arc::new(narrow)), at128(common::arc_ctx()));
    assert!(net.bands(&[1, 3, 128, 128]).unwrap().is_some());
    let dir = std::env::temp_dir().join(format!("netlens-bands-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = netlens::data::synth::Options {
        count: 5,
        size: 64,
        seed: 3,
        split: "train".into(),
    };
    let bar = indicatif::ProgressBar::hidden();
    netlens::data::synth::generate(&dir, &opts, &bar).unwrap();
    let images = ImageSet::open(&dir).unwrap();
    let layer = net.model().find("features.6").unwrap();
    let got = top_patches(&net, &images, layer, 3, &bar).unwrap();
    let want = top_patches(&full, &images, layer, 3, &bar).unwrap();
    for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
        assert_eq!((g.image, g.y, g.x, g.bbox), (w.image, w.y, w.x, w.bbox));
        assert!((g.value - w.value).abs() <= 1e-5 * w.value.abs().max(1.0));
    }
    let concepts = Concepts::open(&dir).unwrap();
    let names = ["features.6".to_string(), "features.9".to_string()];
    let layers = dissect::layers(&net, &names).unwrap();
    let s = Settings {
        batch: 2,
        ..Settings::default()
    };
    let got = dissect(&net, &concepts, &layers, &s, &bar).unwrap();
    let want = dissect(&full, &concepts, &layers, &s, &bar).unwrap();
    for (g, w) in got.iter().zip(&want) {
        common::assert_close(&g.thresholds, &w.thresholds, 1e-6, 1e-5, "thresholds");
        common::assert_close(&g.iou, &w.iou, 2e-3, 0.0, "IoU");
    }
    // a layer inside the bands never exists whole
    let inside = dissect::layers(&net, &["features.3".to_string()]).unwrap();
    let Err(e) = dissect(&net, &concepts, &inside, &s, &bar) else {
        panic!("features.3 runs in bands")
    };
    assert!(e.to_string().contains("row bands"), "{e}");
    let Err(e) = top_patches(&net, &images, 3, 3, &bar) else {
        panic!("features.3 runs in bands")
    };
    assert!(e.to_string().contains("row bands"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
