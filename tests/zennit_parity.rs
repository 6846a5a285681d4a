//! LRP against Zennit on the committed fixtures (tools/make_lrp_fixtures.py): every rule on
//! all layers and every composite, on the small net, the reduced torchvision VGG and its
//! `_bn` variant, batch 1 (argmax target) and > 1; plus conservation per layer.

mod common;
use common::{arc_ctx, fixture, load_tensors, rel_l2};

use netlens::explain::lrp::{assign, Composite, Lrp, Rule, RuleParams, Start};
use netlens::graph::Net;
use netlens::model::{self, LayerKind};

fn composite_of(key: &str) -> (Composite, RuleParams) {
    let mut p = RuleParams::default();
    let c = match key {
        "rule_epsilon" => {
            p.epsilon = 0.25;
            Composite::Single(Rule::Epsilon(0.25))
        }
        "rule_epsilon_small" => Composite::Single(Rule::Epsilon(1e-6)),
        "rule_zplus" => Composite::Single(Rule::ZPlus),
        "rule_alpha_beta" => Composite::Single(Rule::AlphaBeta {
            alpha: 2.0,
            beta: 1.0,
        }),
        "rule_gamma" => Composite::Single(Rule::Gamma(0.25)),
        "rule_flat" => Composite::Single(Rule::Flat),
        "rule_wsquare" => Composite::Single(Rule::WSquare),
        "epsilon_plus" | "epsilon_plus_onehot" => Composite::EpsilonPlus,
        "epsilon_plus_flat" => Composite::EpsilonPlusFlat,
        "epsilon_gamma_box" => Composite::EpsilonGammaBox,
        "epsilon_alpha2_beta1" => Composite::EpsilonAlpha2Beta1,
        "epsilon_alpha2_beta1_flat" => Composite::EpsilonAlpha2Beta1Flat,
        other => panic!("unknown fixture key {other}"),
    };
    (c, p)
}

fn run(name: &str) {
    let m = model::load(std::path::Path::new(&fixture(&format!(
        "{name}.safetensors"
    ))))
    .unwrap();
    let net = Net::new(arc_ctx(), m).unwrap();
    let lrp = Lrp::new(&net);
    let io = load_tensors(&fixture(&format!("lrp_{name}.safetensors")));
    let mut checked = 0;
    for (key, want) in &io {
        let Some((method, b)) = key.rsplit_once('.') else {
            continue;
        };
        if method == "input" || method == "target" {
            continue;
        }
        let x = &io[&format!("input.{b}")];
        let t: Vec<usize> = io[&format!("target.{b}")]
            .data
            .iter()
            .map(|v| *v as usize)
            .collect();
        let (c, p) = composite_of(method);
        let rules = assign(net.model(), &c, &p, &[]).unwrap();
        let start = if method.ends_with("onehot") {
            Start::OneHot
        } else {
            Start::Logit
        };
        let given = if x.batch() == 1 {
            None
        } else {
            Some(t.as_slice())
        };
        let r = lrp.relevance(x, given, &rules, start, false).unwrap();
        assert_eq!(r.targets, t, "{name} {key} targets");
        assert_eq!(r.input.shape, want.shape);
        // ε = 1e-6 is ill-conditioned in float32 (see README): 1e-3 there, 1e-4 elsewhere
        let tol = if method == "rule_epsilon_small" {
            1e-3
        } else {
            1e-4
        };
        let e = rel_l2(&r.input.data, &want.data);
        assert!(e < tol, "{name} {key}: rel L2 {e:.2e}");
        checked += 1;
    }
    assert_eq!(checked, 2 * 13, "{name}: every method, two batches");
}

#[test]
fn small_net_matches_zennit() {
    run("small");
}

#[test]
fn torchvision_vgg_matches_zennit() {
    run("vgg11_tiny");
}

#[test]
fn batchnorm_vgg_matches_zennit_with_merged_bn() {
    run("vgg11_bn_tiny");
}

/// A bias-free copy of the fixture VGG: every rule keeps Σ relevance across each conv and
/// linear layer; with the z-rules (which give nothing to inactive units) the input
/// relevance sums to the target logit. (Flat and WSquare also reach units whose activation
/// is 0, whose share the Norm rule of the avg-pool then drops.)
#[test]
fn conserving_rules_conserve_per_layer() {
    let mut m = model::load(std::path::Path::new(&fixture("vgg11_tiny.safetensors"))).unwrap();
    for l in &mut m.layers {
        if let LayerKind::Conv2d { bias, .. } | LayerKind::Linear { bias, .. } = &mut l.kind {
            *bias = None;
        }
    }
    let net = Net::new(arc_ctx(), m).unwrap();
    let lrp = Lrp::new(&net);
    let io = load_tensors(&fixture("lrp_vgg11_tiny.safetensors"));
    let x = &io["input.b2"];
    let logits = net.forward(x, &[]).unwrap().logits;
    for rule in [
        Rule::Epsilon(1e-9),
        Rule::ZPlus,
        Rule::AlphaBeta {
            alpha: 2.0,
            beta: 1.0,
        },
        Rule::Gamma(0.25),
        Rule::Flat,
        Rule::WSquare,
    ] {
        let rules = assign(
            net.model(),
            &Composite::Single(rule.clone()),
            &RuleParams::default(),
            &[],
        )
        .unwrap();
        let r = lrp
            .relevance(x, Some(&[4, 2]), &rules, Start::Logit, true)
            .unwrap();
        for item in 0..2 {
            let target_logit = logits.data[item * 5 + [4, 2][item]] as f64;
            let sum = |a: &netlens::Array| -> f64 {
                let per = a.data.len() / 2;
                a.data[item * per..(item + 1) * per]
                    .iter()
                    .map(|v| *v as f64)
                    .sum()
            };
            let layers = &net.model().layers;
            let mut checked = 0;
            for (i, l) in layers.iter().enumerate() {
                if !matches!(l.kind, LayerKind::Conv2d { .. } | LayerKind::Linear { .. }) {
                    continue;
                }
                let out = sum(&r.layers[i].1);
                let inp = if i == 0 {
                    sum(&r.input)
                } else {
                    sum(&r.layers[i - 1].1)
                };
                assert!(
                    (out - inp).abs() <= 1e-3 * out.abs().max(1e-3),
                    "{rule} at {}: Σ out {out}, Σ in {inp}",
                    l.name
                );
                checked += 1;
            }
            assert_eq!(checked, 11);
            assert!(
                (sum(&r.layers[layers.len() - 1].1) - target_logit).abs() < 1e-5,
                "the walk starts at the logit"
            );
            if !matches!(rule, Rule::Flat | Rule::WSquare) {
                let s = sum(&r.input);
                assert!(
                    (s - target_logit).abs() <= 2e-3 * target_logit.abs().max(1e-3),
                    "{rule}: Σ input {s} vs logit {target_logit}"
                );
            }
        }
    }
}

#[test]
fn assignment_is_exhaustive_and_printable() {
    let m = model::load(std::path::Path::new(&fixture("vgg11_tiny.safetensors"))).unwrap();
    let p = RuleParams::default();
    let rules = assign(&m, &Composite::EpsilonGammaBox, &p, &[]).unwrap();
    assert_eq!(rules.len(), m.layers.len());
    assert_eq!(
        rules[0],
        Rule::ZBox {
            low: -3.0,
            high: 3.0
        }
    );
    assert_eq!(rules[3], Rule::Gamma(0.25));
    let text = netlens::explain::lrp::describe(&m, &rules);
    assert!(
        text.contains("features.0")
            && text.contains("zbox")
            && text.contains("norm")
            && text.contains("epsilon"),
        "{text}"
    );
    let over = assign(
        &m,
        &Composite::EpsilonPlus,
        &p,
        &[
            ("features.3".into(), Rule::Flat),
            ("0".into(), Rule::WSquare),
        ],
    )
    .unwrap();
    assert_eq!(
        (over[0].clone(), over[3].clone()),
        (Rule::WSquare, Rule::Flat)
    );
    assert!(
        assign(
            &m,
            &Composite::EpsilonPlus,
            &p,
            &[("features.2".into(), Rule::Flat)]
        )
        .is_err(),
        "flat on a max-pool"
    );
}
