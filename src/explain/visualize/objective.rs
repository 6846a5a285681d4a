//! What a visualisation maximises: `class:K`, `logprob:K`, `prob:K`, `channel:LAYER:C`
//! or `unit:LAYER:C:Y:X`, parsed and checked against the model before any work starts.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::ops::objective::Objective;

/// One item's objective, resolved against a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goal {
    /// The objective kind on the device.
    pub kind: Objective,
    /// The layer whose output it reads (the last layer for class scores).
    pub layer: usize,
    /// The class or channel.
    pub target: usize,
    /// The unit's position (y, x), for `unit:`.
    pub at: Option<(usize, usize)>,
    /// The text it was parsed from.
    pub text: String,
}

impl Goal {
    /// Parses one objective; `shape` is the model input [1, C, H, W] it will run at.
    pub fn parse(text: &str, model: &Model, shape: &[usize]) -> Result<Goal> {
        let bad = |why: String| Error::input("--objective", format!("'{text}': {why}"));
        let parts: Vec<&str> = text.trim().split(':').collect();
        let num = |s: &str, what: &str| -> Result<usize> {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(format!("{what} '{s}' is not a whole number")))
        };
        let shapes = model.output_shapes(shape)?;
        let last = model.layers.len() - 1;
        let classes = shapes[last].get(1).copied().unwrap_or(0);
        let (kind, layer, target, at) = match parts.as_slice() {
            [k @ ("class" | "logit" | "logprob" | "prob"), c] => {
                let kind = match *k {
                    "logprob" => Objective::LogProb,
                    "prob" => Objective::Prob,
                    _ => Objective::Logit,
                };
                (kind, last, num(c, "class")?, None)
            }
            ["channel", l, c] => (
                Objective::ChannelMean,
                model.find(l)?,
                num(c, "channel")?,
                None,
            ),
            ["unit", l, c, y, x] => {
                let at = (num(y, "y")?, num(x, "x")?);
                (
                    Objective::Unit,
                    model.find(l)?,
                    num(c, "channel")?,
                    Some(at),
                )
            }
            _ => {
                return Err(bad(
                    "use class:K, logprob:K, prob:K, channel:LAYER:C or unit:LAYER:C:Y:X".into(),
                ))
            }
        };
        let out = &shapes[layer];
        match kind {
            Objective::Logit | Objective::LogProb | Objective::Prob if target >= classes => {
                return Err(bad(format!(
                    "class {target} does not exist; the model has {classes}"
                )))
            }
            Objective::ChannelMean | Objective::Unit => {
                let c = out.get(1).copied().unwrap_or(0);
                if target >= c {
                    return Err(bad(format!(
                        "layer {} has {c} channels",
                        model.output_name(layer)
                    )));
                }
                if let Some((y, x)) = at {
                    let (h, w) = match out.as_slice() {
                        [_, _, h, w] => (*h, *w),
                        _ => (1, 1),
                    };
                    if y >= h || x >= w {
                        return Err(bad(format!(
                            "({y}, {x}) is outside layer {}'s {h}x{w} output",
                            model.output_name(layer)
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(Goal {
            kind,
            layer,
            target,
            at,
            text: text.trim().to_string(),
        })
    }

    /// Parses a comma-separated list; `channel:LAYER:*` stands for every channel of the
    /// layer (one image per unit).
    pub fn parse_list(text: &str, model: &Model, shape: &[usize]) -> Result<Vec<Goal>> {
        let mut goals = Vec::new();
        for s in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match s
                .strip_prefix("channel:")
                .and_then(|r| r.strip_suffix(":*"))
            {
                Some(layer) => {
                    let i = model.find(layer)?;
                    let c = model.output_shapes(shape)?[i].get(1).copied().unwrap_or(0);
                    for k in 0..c {
                        goals.push(Goal::parse(&format!("channel:{layer}:{k}"), model, shape)?);
                    }
                }
                None => goals.push(Goal::parse(s, model, shape)?),
            }
        }
        if goals.is_empty() {
            return Err(Error::input("--objective", "no objective given"));
        }
        Ok(goals)
    }

    /// Whether it reads class scores.
    pub fn is_class(&self) -> bool {
        matches!(
            self.kind,
            Objective::Logit | Objective::LogProb | Objective::Prob
        )
    }
}
