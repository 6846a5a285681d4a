//! Composites: which rule each layer gets. Assignment is exhaustive (every layer gets a
//! rule, named) and printable.

use super::rule::{Rule, RuleParams};
use crate::error::{Error, Result};
use crate::model::{LayerKind, Model};

/// Zennit's composites, or one rule on every conv and linear layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Composite {
    Single(Rule),
    /// ZPlus on convs, Epsilon on linear layers.
    EpsilonPlus,
    /// As EpsilonPlus, Flat on the first conv.
    EpsilonPlusFlat,
    /// ZBox on the first conv, Gamma on other convs, Epsilon on linear layers.
    EpsilonGammaBox,
    /// AlphaBeta(2, 1) on convs, Epsilon on linear layers.
    EpsilonAlpha2Beta1,
    /// As EpsilonAlpha2Beta1, Flat on the first conv.
    EpsilonAlpha2Beta1Flat,
}

impl Composite {
    /// From a CLI method name (`lrp-epsilon-plus`, `lrp-zplus`, ...).
    pub fn from_method(method: &str, p: &RuleParams) -> Result<Composite> {
        let name = method
            .strip_prefix("lrp-")
            .ok_or_else(|| Error::input("--method", format!("{method} is not an LRP method")))?;
        Ok(match name {
            "epsilon-plus" => Composite::EpsilonPlus,
            "epsilon-plus-flat" => Composite::EpsilonPlusFlat,
            "epsilon-gamma-box" => Composite::EpsilonGammaBox,
            "epsilon-alpha2-beta1" => Composite::EpsilonAlpha2Beta1,
            "epsilon-alpha2-beta1-flat" => Composite::EpsilonAlpha2Beta1Flat,
            rule => Composite::Single(Rule::parse(rule, p)?),
        })
    }
}

/// The rule of every layer, by index. `overrides` (layer name or index → rule) win.
pub fn assign(
    model: &Model,
    composite: &Composite,
    p: &RuleParams,
    overrides: &[(String, Rule)],
) -> Result<Vec<Rule>> {
    let first_conv = model
        .layers
        .iter()
        .position(|l| matches!(l.kind, LayerKind::Conv2d { .. }));
    let eps = Rule::Epsilon(p.epsilon);
    let mut rules: Vec<Rule> = model
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| match &l.kind {
            LayerKind::Conv2d { .. } => {
                let first = Some(i) == first_conv;
                match composite {
                    Composite::Single(r) => r.clone(),
                    Composite::EpsilonPlus => Rule::ZPlus,
                    Composite::EpsilonPlusFlat => {
                        if first {
                            Rule::Flat
                        } else {
                            Rule::ZPlus
                        }
                    }
                    Composite::EpsilonGammaBox => {
                        if first {
                            Rule::ZBox {
                                low: p.low,
                                high: p.high,
                            }
                        } else {
                            Rule::Gamma(p.gamma)
                        }
                    }
                    Composite::EpsilonAlpha2Beta1 => Rule::AlphaBeta {
                        alpha: 2.0,
                        beta: 1.0,
                    },
                    Composite::EpsilonAlpha2Beta1Flat => {
                        if first {
                            Rule::Flat
                        } else {
                            Rule::AlphaBeta {
                                alpha: 2.0,
                                beta: 1.0,
                            }
                        }
                    }
                }
            }
            LayerKind::Linear { .. } => match composite {
                Composite::Single(r) => r.clone(),
                _ => eps.clone(),
            },
            // Zennit's base layer map: Norm on sums and average pools
            LayerKind::AvgPool2d(_) | LayerKind::AdaptiveAvgPool2d(_) | LayerKind::Add => {
                Rule::Norm
            }
            LayerKind::MaxPool2d(_) => Rule::Gradient,
            LayerKind::Relu | LayerKind::Flatten | LayerKind::Dropout => Rule::Pass,
            LayerKind::BatchNorm2d { .. } => Rule::Pass, // never present: folded at load
        })
        .collect();
    for (key, rule) in overrides {
        let i = match key.parse::<usize>() {
            Ok(i) if i < rules.len() => i,
            Ok(i) => {
                return Err(Error::input(
                    "--rule",
                    format!("layer index {i} is out of range (0..{})", rules.len()),
                ))
            }
            Err(_) => model.find(key)?,
        };
        let is_affine = matches!(
            model.layers[i].kind,
            LayerKind::Conv2d { .. } | LayerKind::Linear { .. }
        );
        if rule.needs_weights() && !is_affine {
            return Err(Error::input(
                "--rule",
                format!(
                    "{rule} needs a conv or linear layer; {key} is {}",
                    model.layers[i].kind.type_name()
                ),
            ));
        }
        rules[i] = rule.clone();
    }
    Ok(rules)
}

/// One line per layer: index, name, type, rule.
pub fn describe(model: &Model, rules: &[Rule]) -> String {
    let mut s = String::new();
    for (i, (l, r)) in model.layers.iter().zip(rules).enumerate() {
        s.push_str(&format!(
            "{i:>4}  {:<16} {:<18} {r}\n",
            model.output_name(i),
            l.kind.type_name()
        ));
    }
    s
}
