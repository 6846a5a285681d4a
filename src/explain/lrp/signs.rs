//! What the graph and the rules prove about signs, which lets the walk skip GEMMs whose
//! terms are all zero: layers whose input is non-negative (no a⁻ terms), and layers whose
//! relevance is zero wherever their output is not positive (no negative half of γ).

use super::rule::Rule;
use crate::model::{LayerKind, Model, Src};

/// Whether each layer's output is non-negative by construction: a ReLU's, or a pool's,
/// flatten's, dropout's or sum's of such.
pub fn nonnegative_outputs(model: &Model) -> Vec<bool> {
    let mut out: Vec<bool> = Vec::with_capacity(model.layers.len());
    for l in &model.layers {
        let from_nonneg = inputs_nonneg(&l.inputs, &out);
        out.push(match l.kind {
            LayerKind::Relu => true,
            LayerKind::MaxPool2d(_)
            | LayerKind::AvgPool2d(_)
            | LayerKind::AdaptiveAvgPool2d(_)
            | LayerKind::Flatten
            | LayerKind::Dropout
            | LayerKind::Add => from_nonneg,
            _ => false,
        });
    }
    out
}

/// Whether each layer's input is non-negative by construction (it comes from a ReLU,
/// possibly through pools, flatten, dropout or sums of such; the network input may be
/// negative). There a⁻ = 0, so the rules' negative-input terms vanish: z+, αβ and γ then
/// cost one extra forward and one or two backward GEMMs.
pub fn nonnegative_inputs(model: &Model) -> Vec<bool> {
    let out = nonnegative_outputs(model);
    model
        .layers
        .iter()
        .map(|l| inputs_nonneg(&l.inputs, &out))
        .collect()
}

fn inputs_nonneg(inputs: &[Src], out: &[bool]) -> bool {
    inputs.iter().all(|s| match *s {
        Src::Input => false,
        Src::Layer(j) => out[j],
    })
}

/// Whether the relevance that a walk from layer `top`'s output (seeded with any relevance
/// there) brings to each layer's output is zero wherever that output is ≤ 0, whatever the
/// input. γ's negative half (outputs below zero, weights W + γW⁻) then adds only zeros and
/// is skipped. It holds where every reader below `top` passes relevance down in proportion
/// to the value it reads and that value is non-negative (ε, z+, αβ and γ on convs and
/// linear layers, norm and ε on pools and sums), or passes it through a ReLU that drops it
/// where its input is ≤ 0 (the gradient rule), or hands it on unchanged (a ReLU's pass,
/// a max pool's winner, flatten, dropout) from an output where it holds. In a VGG it holds
/// at every conv's output; in a ResNet not at the convs that feed a sum. It never holds at
/// `top`, whose relevance is the seed, nor for a reader whose rule is zB, flat, w² or the
/// plain gradient of a conv or linear layer. `readers`: `Model::consumers` (`Net` keeps
/// them).
pub fn relevance_only_where_positive(
    model: &Model,
    readers: &[Vec<usize>],
    rules: &[Rule],
    top: usize,
) -> Vec<bool> {
    let n = model.layers.len();
    let nonneg = nonnegative_outputs(model);
    let mut out = vec![false; n];
    for i in (0..top.min(n)).rev() {
        out[i] = readers[i].iter().all(|&c| {
            if c > top {
                return true; // above the walk: it sends nothing
            }
            let kind = &model.layers[c].kind;
            match (kind, &rules[c]) {
                (LayerKind::Relu, Rule::Gradient) => true,
                (LayerKind::Relu | LayerKind::Flatten | LayerKind::Dropout, Rule::Pass)
                | (LayerKind::Flatten | LayerKind::Dropout, Rule::Gradient)
                | (LayerKind::MaxPool2d(_), Rule::Gradient) => out[c],
                (
                    LayerKind::Conv2d { .. } | LayerKind::Linear { .. },
                    Rule::Epsilon(_) | Rule::ZPlus | Rule::AlphaBeta { .. } | Rule::Gamma(_),
                )
                | (LayerKind::AvgPool2d(_) | LayerKind::AdaptiveAvgPool2d(_), Rule::Norm)
                | (LayerKind::Add, Rule::Norm | Rule::Epsilon(_)) => nonneg[i],
                _ => false,
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::lrp::{assign, Composite, RuleParams};
    use crate::model::zoo;

    fn rules(m: &Model, c: Composite, over: &[(&str, Rule)]) -> Vec<Rule> {
        let over: Vec<(String, Rule)> = over
            .iter()
            .map(|(k, r)| (k.to_string(), r.clone()))
            .collect();
        assign(m, &c, &RuleParams::default(), &over).unwrap()
    }

    fn positive_only(m: &Model, rules: &[Rule], top: usize) -> Vec<bool> {
        relevance_only_where_positive(m, &m.consumers(), rules, top)
    }

    fn convs(m: &Model) -> Vec<usize> {
        let conv =
            |(_, l): &(usize, &crate::model::Layer)| matches!(l.kind, LayerKind::Conv2d { .. });
        m.layers
            .iter()
            .enumerate()
            .filter(conv)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn every_vgg_conv_sends_relevance_only_where_positive() {
        let m = zoo::vgg_random(11, 16, 4, 1).unwrap();
        let n = m.layers.len();
        for c in [
            Composite::EpsilonGammaBox,
            Composite::EpsilonPlus,
            Composite::EpsilonAlpha2Beta1Flat,
        ] {
            let live = positive_only(&m, &rules(&m, c.clone(), &[]), n - 1);
            for i in convs(&m) {
                assert!(live[i], "{c:?}: {}", m.layers[i].name);
            }
            assert!(!live[n - 1], "the seed's layer");
            // the last hidden linear layer's output, read by a ReLU
            assert!(live[n - 4], "{}", m.layers[n - 4].name);
        }
    }

    #[test]
    fn readers_that_break_it() {
        let m = zoo::vgg_random(11, 16, 4, 1).unwrap();
        let n = m.layers.len();
        let gb = Composite::EpsilonGammaBox;
        let (c0, c1) = (convs(&m)[0], convs(&m)[1]); // features.0, features.3
        assert_eq!((c0, c1), (0, 3));
        let base = positive_only(&m, &rules(&m, gb.clone(), &[]), n - 1);
        assert!(base[c0] && base[1] && base[2]);
        // a seed at the ReLU or the pool above features.0: any relevance there
        for top in [1, 2] {
            let live = positive_only(&m, &rules(&m, gb.clone(), &[]), top);
            assert!(!live[c0] && !live[top], "top {top}");
            assert!(!live[c1], "above the walk");
        }
        // unless the ReLU's gradient rule drops it
        let g = rules(&m, gb.clone(), &[("1", Rule::Gradient)]);
        assert!(positive_only(&m, &g, 1)[c0]);
        assert!(positive_only(&m, &g, 2)[c0]);
        // rules above that do not scale by the value read
        for r in [
            Rule::Flat,
            Rule::WSquare,
            Rule::Gradient,
            Rule::ZBox {
                low: -1.0,
                high: 1.0,
            },
        ] {
            let live = positive_only(&m, &rules(&m, gb.clone(), &[("3", r.clone())]), n - 1);
            assert!(!live[c0] && !live[1] && !live[2], "{r}");
            assert!(live[c1], "{r}");
        }
        // a conv reading a conv's output directly: its proportional share can be
        // negative where that output is
        let mut direct = m.clone();
        direct.layers.remove(2); // the pool: features.3 reads ...
        direct.layers.remove(1); // ... features.0 through nothing
        for (i, l) in direct.layers.iter_mut().enumerate() {
            l.inputs = vec![Src::before(i)];
        }
        let r = rules(&direct, gb.clone(), &[]);
        let live = positive_only(&direct, &r, direct.layers.len() - 1);
        assert!(!live[0] && live[1], "{:?}", &live[..3]);
    }

    #[test]
    fn resnet_convs_into_sums_are_not_covered() {
        let m = zoo::resnet_random(18, 10, 1).unwrap();
        let n = m.layers.len();
        let r = rules(&m, Composite::EpsilonGammaBox, &[]);
        let live = positive_only(&m, &r, n - 1);
        let readers = m.consumers();
        let (mut into_sum, mut into_relu) = (0, 0);
        for i in convs(&m) {
            let reader = &m.layers[readers[i][0]].kind;
            if matches!(reader, LayerKind::Add) {
                into_sum += 1;
                assert!(!live[i], "{}", m.layers[i].name);
            } else {
                assert!(matches!(reader, LayerKind::Relu));
                into_relu += 1;
                assert!(live[i], "{}", m.layers[i].name);
            }
        }
        assert!(into_sum >= 9 && into_relu >= 9, "{into_sum} {into_relu}");
    }
}
