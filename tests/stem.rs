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
        assert!(err < 1e-5, "IG through the stem is {err:.2e} from the walk");
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
