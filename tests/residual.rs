//! A network with skip connections (tools/make_residual_fixtures.py): layers that name
//! their inputs, residual sums (one over an identity path, one over a 1x1 projection), a
//! batch norm folded inside a block. Forward, captures, gradients and LRP against PyTorch
//! and Zennit; Grad-CAM's default layer; the CPU reference walk; receptive fields over
//! both paths; wiring errors.

mod common;
use common::{arc_ctx, bits, fixture, load_tensors, rel_l2, targets};

use netlens::explain::gradcam::{default_layer, grad_cam};
use netlens::explain::lrp::{assign, Composite, Lrp, Rule, RuleParams, Start};
use netlens::explain::resample::Upsample;
use netlens::explain::visualize::receptive_field;
use netlens::explain::{gradient, Target};
use netlens::graph::Net;
use netlens::model::{self, LayerKind, Src};
use netlens::ops::ReluRule;
use netlens::reference;

fn load() -> model::Model {
    model::load(std::path::Path::new(&fixture("residual.safetensors"))).unwrap()
}

#[test]
fn wiring_is_read_from_metadata_and_survives_folding() {
    let m = load();
    assert!(!m.is_sequential());
    // b1.1 (batch norm) is folded into b1.0; every later index shifts down by one
    let idx = |n: &str| m.find(n).unwrap();
    assert_eq!(idx("b1.1"), 2);
    assert!(
        m.find("b1.0").is_err(),
        "a folded conv's own output is gone"
    );
    let add1 = &m.layers[idx("b1_add")];
    assert!(matches!(add1.kind, LayerKind::Add));
    assert_eq!(
        add1.inputs,
        [Src::Layer(idx("b1_conv2")), Src::Layer(idx("stem_relu"))]
    );
    assert_eq!(m.layers[idx("b1_relu")].inputs, [Src::Layer(idx("b1.1"))]);
    assert_eq!(m.layers[idx("b2_proj")].inputs, [Src::Layer(idx("pool"))]);
    assert_eq!(m.layers[0].inputs, [Src::Input]);
    let readers = m.consumers();
    assert_eq!(readers[idx("stem_relu")], [idx("b1.1"), idx("b1_add")]);
    assert_eq!(readers[idx("pool")], [idx("b2_conv1"), idx("b2_proj")]);
    assert_eq!(m.num_classes(), 5);
}

#[test]
fn forward_and_captures_match_pytorch() {
    let net = Net::new(arc_ctx(), load()).unwrap();
    let io = load_tensors(&fixture("residual_io.safetensors"));
    for b in ["b1", "b3"] {
        let x = &io[&format!("input.{b}")];
        let names: Vec<String> = ["b1_add", "b2_add", "b2_out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = net.forward(x, &names).unwrap();
        let e = rel_l2(&f.logits.data, &io[&format!("logits.{b}")].data);
        assert!(e < 1e-5, "{b} logits: rel L2 {e:.2e}");
        for (name, got) in &f.captures {
            let want = &io[&format!("act_{name}.{b}")];
            assert_eq!(got.shape, want.shape, "{b} {name}");
            let e = rel_l2(&got.data, &want.data);
            assert!(e < 1e-5, "{b} {name}: rel L2 {e:.2e}");
        }
    }
}

#[test]
fn gradients_sum_over_both_paths_like_autograd() {
    let m = load();
    let net = Net::new(arc_ctx(), m.clone()).unwrap();
    let io = load_tensors(&fixture("residual_io.safetensors"));
    for b in ["b1", "b3"] {
        let x = &io[&format!("input.{b}")];
        let t = targets(&io, b);
        let a = gradient::gradient(&net, x, &Target::Each(t.clone()), ReluRule::Gradient).unwrap();
        let want = &io[&format!("gradient.{b}")];
        let e = rel_l2(&a.map.data, &want.data);
        assert!(e < 1e-4, "{b} gradient: rel L2 {e:.2e}");
        // the CPU reference walk agrees too
        let trace = reference::net::forward(&m, &x.data, &x.shape);
        let k = trace.out.1[1];
        let mut seed = vec![0.0; trace.out.0.len()];
        for (i, &c) in t.iter().enumerate() {
            seed[i * k + c] = 1.0;
        }
        let g = reference::net::backward(&m, &trace, &seed);
        let e = rel_l2(&g, &want.data);
        assert!(e < 1e-4, "{b} CPU reference gradient: rel L2 {e:.2e}");
    }
}

#[test]
fn grad_cam_defaults_to_the_last_blocks_relu() {
    let net = Net::new(arc_ctx(), load()).unwrap();
    let layer = default_layer(&net).unwrap();
    assert_eq!(net.model().output_name(layer), "b2_out");
    let io = load_tensors(&fixture("residual_io.safetensors"));
    for b in ["b1", "b3"] {
        let x = &io[&format!("input.{b}")];
        let t = targets(&io, b);
        let a = grad_cam(&net, x, &Target::Each(t), layer, false, Upsample::Nearest).unwrap();
        let want = &io[&format!("grad_cam.{b}")];
        assert_eq!(a.map.shape, want.shape);
        let e = rel_l2(&a.map.data, &want.data);
        assert!(e < 1e-4, "{b} Grad-CAM: rel L2 {e:.2e}");
    }
}

#[test]
fn lrp_matches_zennit_with_norm_on_sums() {
    let net = Net::new(arc_ctx(), load()).unwrap();
    let lrp = Lrp::new(&net);
    let io = load_tensors(&fixture("residual_io.safetensors"));
    let mut checked = 0;
    for (key, c) in [
        ("epsilon_plus", Composite::EpsilonPlus),
        ("epsilon_alpha2_beta1", Composite::EpsilonAlpha2Beta1),
        ("rule_epsilon", Composite::Single(Rule::Epsilon(0.25))),
        ("rule_zplus", Composite::Single(Rule::ZPlus)),
        // the sums pass relevance to conv outputs below zero, where γ takes its second half
        ("epsilon_gamma_box", Composite::EpsilonGammaBox),
        ("rule_gamma", Composite::Single(Rule::Gamma(0.25))),
    ] {
        // the composites keep Zennit's default ε (1e-6) on the linear layer
        let p = RuleParams {
            epsilon: if key == "rule_epsilon" { 0.25 } else { 1e-6 },
            ..RuleParams::default()
        };
        let rules = assign(net.model(), &c, &p, &[]).unwrap();
        for (l, r) in net.model().layers.iter().zip(&rules) {
            if matches!(l.kind, LayerKind::Add) {
                assert_eq!(*r, Rule::Norm, "sums get Zennit's Norm");
            }
        }
        for b in ["b1", "b3"] {
            let x = &io[&format!("input.{b}")];
            let t = targets(&io, b);
            let r = lrp
                .relevance(x, Some(&t), &rules, Start::Logit, false)
                .unwrap();
            let want = &io[&format!("{key}.{b}")];
            let e = rel_l2(&r.input.data, &want.data);
            assert!(e < 1e-4, "{key} {b}: rel L2 {e:.2e}");
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn receptive_fields_join_both_paths() {
    let m = load();
    let add2 = m.find("b2_add").unwrap();
    // the conv path (stem, two convs in block 1, pool, two convs in block 2) is the wider
    // one; y and x are clipped separately (input 16 x 15)
    let f = receptive_field(&m, add2, &[1, 3, 16, 15], 2, 4).unwrap();
    assert_eq!(f, [0, 1, 13, 15]);
    // the projection path alone: a 1x1 conv then the pool's 2x2 window, through block 1
    let proj = m.find("b2_proj").unwrap();
    let f = receptive_field(&m, proj, &[1, 3, 16, 15], 3, 3).unwrap();
    // pool rows 6..7, then block 1 (three 3x3 convs on the longest path): 3..10
    assert_eq!(f, [3, 3, 11, 11]);
}

/// The residual model's metadata with its layer list edited.
fn with_layers(edit: impl Fn(&mut Vec<serde_json::Value>)) -> netlens::Result<model::Model> {
    let bytes = std::fs::read(fixture("residual.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_str(&header.metadata().as_ref().unwrap()["netlens"]).unwrap();
    let mut layers = meta["layers"].as_array().unwrap().clone();
    edit(&mut layers);
    meta["layers"] = serde_json::Value::Array(layers);
    let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors().into_iter().collect();
    let m = std::collections::HashMap::from([("netlens".to_string(), meta.to_string())]);
    let out = safetensors::serialize(views, Some(m)).unwrap();
    model::load_bytes(&out, "edited.safetensors")
}

fn err(r: netlens::Result<model::Model>) -> String {
    match r {
        Ok(_) => panic!("the edited model loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_wiring_is_a_clear_error() {
    assert!(with_layers(|_| {}).is_ok());
    let find =
        |ls: &Vec<serde_json::Value>, n: &str| ls.iter().position(|l| l["name"] == n).unwrap();
    // an input that comes later
    let e = err(with_layers(|ls| {
        let i = find(ls, "b1_add");
        ls[i]["inputs"] = serde_json::json!(["b1_conv2", "b2_out"]);
    }));
    assert!(
        e.contains("b1_add") && e.contains("b2_out") && e.contains("before"),
        "{e}"
    );
    // a name that is not a layer
    let e = err(with_layers(|ls| {
        let i = find(ls, "b2_proj");
        ls[i]["inputs"] = serde_json::json!(["nowhere"]);
    }));
    assert!(e.contains("nowhere"), "{e}");
    // an add of one input, a conv of two
    let e = err(with_layers(|ls| {
        let i = find(ls, "b1_add");
        ls[i]["inputs"] = serde_json::json!(["b1_conv2"]);
    }));
    assert!(e.contains("b1_add") && e.contains("two or more"), "{e}");
    let e = err(with_layers(|ls| {
        let i = find(ls, "b2_proj");
        ls[i]["inputs"] = serde_json::json!(["pool", "pool"]);
    }));
    assert!(e.contains("b2_proj") && e.contains("2 inputs"), "{e}");
    // an add without inputs reads one layer: refused
    let e = err(with_layers(|ls| {
        let i = find(ls, "b1_add");
        ls[i].as_object_mut().unwrap().remove("inputs");
    }));
    assert!(e.contains("b1_add"), "{e}");
    // shapes that do not add up: the projection path skipped (8 channels against 12)
    let e = err(with_layers(|ls| {
        let i = find(ls, "b2_add");
        ls[i]["inputs"] = serde_json::json!(["b2_conv2", "pool"]);
    }));
    assert!(
        e.contains("b2_add") && e.contains("different shapes"),
        "{e}"
    );
    // inputs that are not a list of names
    let e = err(with_layers(|ls| {
        let i = find(ls, "b2_add");
        ls[i]["inputs"] = serde_json::json!("b2_conv2");
    }));
    assert!(e.contains("inputs"), "{e}");
    // a batch norm whose conv another layer also reads cannot be folded
    let e = err(with_layers(|ls| {
        let i = find(ls, "b1_add");
        ls[i]["inputs"] = serde_json::json!(["b1_conv2", "b1.0"]);
    }));
    assert!(e.contains("b1.1") && e.contains("other layers read"), "{e}");
}

/// A tensor two convs read (the pool: block 2's first conv and its projection) is packed
/// once for both on the texture-reading GEMMs; a third reader that is not a conv (a ReLU
/// added here, whose output nothing reads) still gets the tensor, and the logits are the
/// same bits as the unedited net's.
#[test]
fn a_tensor_two_convs_share_still_reaches_its_other_readers() {
    let extra = with_layers(|ls| {
        let at = ls.iter().position(|l| l["name"] == "b2_proj").unwrap();
        ls.insert(
            at + 1,
            serde_json::json!({"type": "relu", "name": "pool_relu", "inputs": ["pool"]}),
        );
    })
    .unwrap();
    let plain = Net::new(arc_ctx(), load()).unwrap();
    let extra = Net::new(arc_ctx(), extra).unwrap();
    let io = load_tensors(&fixture("residual_io.safetensors"));
    let x = &io["input.b3"];
    let want = plain.forward(x, &[]).unwrap();
    let got = extra.forward(x, &["pool_relu".to_string()]).unwrap();
    assert_eq!(bits(&got.logits.data), bits(&want.logits.data));
    let pool = plain.forward(x, &["pool".to_string()]).unwrap();
    let relu: Vec<f32> = pool.captures[0].1.data.iter().map(|v| v.max(0.0)).collect();
    assert_eq!(bits(&got.captures[0].1.data), bits(&relu));
}
