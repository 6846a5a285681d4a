//! The linear stem: integrated gradients and SmoothGrad run a first conv once per input
//! (its output interpolated, its input gradient taken of the copies' summed gradient)
//! and give what a walk through every copy gives; a forward resumed after a layer and a
//! walk that stops there match the whole ones.

mod common;
use common::{arc_ctx, assert_close, rand_vec, rel_l2};

use netlens::explain::gradient::{self, Baseline, IgMethod};
use netlens::explain::Target;
use netlens::gpu::{Recorder, Tensor};
use netlens::graph::{Keep, Net};
use netlens::model::{Layer, LayerKind, Model, Src};
use netlens::ops::{self, ReluRule};

fn demo() -> Model {
    let path = format!(
        "{}/models/shapes-vgg.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    netlens::model::load(std::path::Path::new(&path)).unwrap()
}

/// The model behind an identity layer (Dropout) that reads the input: the same function,
/// with no linear stem.
fn behind_dropout(mut m: Model) -> Model {
    for l in &mut m.layers {
        for s in &mut l.inputs {
            *s = match *s {
                Src::Input => Src::Layer(0),
                Src::Layer(j) => Src::Layer(j + 1),
            };
        }
    }
    m.layers.insert(
        0,
        Layer {
            name: "identity".into(),
            kind: LayerKind::Dropout,
            inputs: vec![Src::Input],
            folded_bn: None,
            file_weights: None,
        },
    );
    m
}

fn image(net: &Net, name: &str) -> netlens::Array {
    let img = format!("{}/models/samples/{name}.png", env!("CARGO_MANIFEST_DIR"));
    netlens::io::image::load(std::path::Path::new(&img), &net.model().meta).unwrap()
}

#[test]
fn copies_through_the_stem_match_a_walk_through_every_copy() {
    let stem = Net::new(arc_ctx(), demo()).unwrap();
    let plain = Net::new(arc_ctx(), behind_dropout(demo())).unwrap();
    assert_eq!(stem.linear_stem(), Some(0));
    assert_eq!(plain.linear_stem(), None);
    let x = image(&stem, "star");
    for base in [Baseline::Zero, Baseline::Value(0.7)] {
        let ig = |net: &Net| {
            gradient::integrated_gradients(
                net,
                &x,
                &Target::Class(3),
                &base,
                20,
                IgMethod::GaussLegendre,
            )
            .unwrap()
            .map
            .data
        };
        let (a, b) = (ig(&stem), ig(&plain));
        let err = rel_l2(&a, &b);
        // the two differ only in rounding: on lavapipe up to 9.5e-6 with the tiled GEMMs,
        // 1.1e-5 with Winograd's transforms in some of their layers, 2.3e-6 on cpu-tex
        assert!(err < 3e-5, "IG through the stem is {err:.2e} from the walk");
        assert!(a.iter().any(|v| *v != 0.0));
    }
    let sg = |net: &Net| {
        gradient::smoothgrad(net, &x, &Target::Class(3), 8, 0.2, 5)
            .unwrap()
            .map
            .data
    };
    let (a, b) = (sg(&stem), sg(&plain));
    let err = rel_l2(&a, &b);
    assert!(
        err < 1e-5,
        "SmoothGrad through the stem is {err:.2e} from the walk"
    );
}

#[test]
fn a_forward_resumed_after_a_layer_matches_the_whole_one() {
    let net = Net::new(arc_ctx(), demo()).unwrap();
    let ctx = net.ctx();
    let shape = [2, 3, 64, 64];
    let x = Tensor::upload(ctx, &rand_vec(2 * 3 * 64 * 64, 4), &shape).unwrap();
    let keep = Keep::Gradient(vec![]);
    let last = net.model().layers.len() - 1;
    let seed = Tensor::upload(ctx, &rand_vec(2 * 8, 5), &[2, 8]).unwrap();
    let mut rec = Recorder::new(ctx, "whole");
    let whole = net.record_forward(&mut rec, &x, &keep, None).unwrap();
    let g_whole = net
        .record_backward_range(&mut rec, &whole, last, 1, &seed, ReluRule::Gradient, &[])
        .unwrap();
    // layer 1 (the ReLU after the first conv) given, made the plain way
    let z = net.record_linear(&mut rec, 0, &x, false).unwrap();
    let y = ops::relu(&mut rec, &z).unwrap();
    let resumed = net
        .record_forward_after(&mut rec, &shape, 1, &y, &keep, None)
        .unwrap();
    assert_eq!(resumed.first, 2);
    let g_resumed = net
        .record_backward_range(&mut rec, &resumed, last, 1, &seed, ReluRule::Gradient, &[])
        .unwrap();
    rec.submit().unwrap();
    let read = |t: &Tensor| t.read(ctx).unwrap();
    assert_close(
        &read(&resumed.logits),
        &read(&whole.logits),
        1e-5,
        1e-5,
        "logits",
    );
    assert_eq!(g_resumed.input.shape, vec![2, 32, 64, 64]);
    assert_close(
        &read(&g_resumed.input),
        &read(&g_whole.input),
        1e-6,
        1e-5,
        "gradient at the first conv's output",
    );
    // the walk cannot go below the layer it started after, nor the forward start with a
    // tensor of another shape or past where it stops
    let mut rec = Recorder::new(ctx, "bad");
    let below =
        net.record_backward_range(&mut rec, &resumed, last, 0, &seed, ReluRule::Gradient, &[]);
    let msg = below.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("cannot walk from layer 25 down to layer 0"),
        "walked below the given layer: {msg}"
    );
    assert!(resumed.src(Src::Input).is_err());
    // the stem helpers refuse what is not a conv, or not there
    let err = |r: netlens::Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(net.record_linear(&mut rec, 1, &x, false)).contains("layer 1 (ReLU) is not a conv"));
    assert!(err(net.record_input_gradient(&mut rec, 99, &y, &shape)).contains("does not exist"));
    assert_eq!(net.relu_after(0), Some(1));
    assert_eq!(net.relu_after(1), None);
    assert_eq!(net.relu_after(99), None);
    assert!(net
        .record_forward_after(&mut rec, &shape, 2, &y, &keep, None)
        .is_err());
    assert!(net
        .record_forward_after(&mut rec, &shape, 1, &y, &keep, Some(1))
        .is_err());
}

/// The stem's copies made, ReLU'd and max-pooled in one pass (`lerp_pool_copies`), and
/// their gradients summed back through the pool and ReLU in one (`weighted_pool_grad_sum`),
/// are the same bits as the passes they replace, over odd channel counts, rows of 4 and
/// 8 pixels, a second pass's copies, and ties and NaN-free negatives the ReLU zeroes;
/// shapes they cannot run are refused.
#[test]
fn pooled_copies_match_the_separate_passes() {
    use netlens::ops::copies;
    let ctx = arc_ctx();
    let pool = ops::Pool2d::square(2, 2);
    for (k, item) in [[1, 5, 6, 8], [1, 3, 4, 4], [1, 2, 2, 12]]
        .iter()
        .enumerate()
    {
        let n: usize = item.iter().product();
        // quantised values: ties inside windows
        let q = |v: Vec<f32>| -> Vec<f32> { v.iter().map(|v| (v * 3.0).round() / 2.0).collect() };
        let x = Tensor::upload(&ctx, &q(rand_vec(n, 10 + k as u64)), item).unwrap();
        let b = Tensor::upload(&ctx, &q(rand_vec(n, 20 + k as u64)), item).unwrap();
        let alphas = Tensor::upload(&ctx, &[0.0, 0.25, 0.5, 0.75, 1.0, -0.5, 1.5], &[7]).unwrap();
        let weights = Tensor::upload(&ctx, &rand_vec(7, 30), &[7]).unwrap();
        let (first, m) = (2, 5);
        assert!(copies::stem_pool_fits(item, &pool));
        let mut rec = Recorder::new(&ctx, "pooled copies");
        let (y, arg) =
            copies::lerp_pool_copies(&mut rec, &x, &b, &alphas, &pool, (first, m)).unwrap();
        let full = copies::lerp_copies(&mut rec, &x, &b, &alphas, first, m, true).unwrap();
        let (y2, arg2) = ops::max_pool2d(&mut rec, &full, &pool).unwrap();
        rec.submit().unwrap();
        let what = format!("{item:?}");
        let bits = |t: &Tensor| -> Vec<u32> {
            t.read(&ctx).unwrap().iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(y.shape, y2.shape, "{what}");
        assert!(bits(&y) == bits(&y2), "{what}: pooled copies");
        assert_eq!(
            arg.read_u32(&ctx).unwrap(),
            arg2.read_u32(&ctx).unwrap(),
            "{what}: argmax"
        );
        // the backward: two passes into one sum, as integrated gradients runs them
        let g = Tensor::upload(&ctx, &rand_vec(y.len(), 40), &y.shape).unwrap();
        let start = rand_vec(n, 50);
        let acc = Tensor::upload(&ctx, &start, item).unwrap();
        let acc2 = Tensor::upload(&ctx, &start, item).unwrap();
        let mut rec = Recorder::new(&ctx, "pooled sum");
        copies::weighted_pool_grad_sum(&mut rec, &g, &arg, &y, &weights, first, &acc).unwrap();
        let gx = ops::max_pool2d_relu_backward(
            &mut rec,
            &g,
            &arg2,
            &y2,
            &pool,
            &full.shape,
            ReluRule::Gradient,
        )
        .unwrap();
        copies::weighted_sum(&mut rec, &gx, &weights, first, &acc2).unwrap();
        rec.submit().unwrap();
        let (a, a2) = (bits(&acc), bits(&acc2));
        assert!(
            a != start.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{what}: unchanged"
        );
        assert!(a == a2, "{what}: weighted sums");
    }
    // rows of 6 (not whole pairs of windows), odd rows, a 3x3 pool
    for (item, p) in [
        ([1, 2, 4, 6], pool),
        ([1, 2, 5, 8], pool),
        ([1, 2, 6, 6], ops::Pool2d::square(3, 3)),
    ] {
        assert!(!copies::stem_pool_fits(&item, &p), "{item:?} {p:?}");
        let n: usize = item.iter().product();
        let x = Tensor::upload(&ctx, &rand_vec(n, 1), &item).unwrap();
        let alphas = Tensor::upload(&ctx, &[0.5], &[1]).unwrap();
        let mut rec = Recorder::new(&ctx, "refused");
        assert!(copies::lerp_pool_copies(&mut rec, &x, &x, &alphas, &p, (0, 1)).is_err());
    }
}
