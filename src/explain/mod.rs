//! Attribution methods. Each takes a batch of inputs and returns a batch of maps; the
//! noisy copies, interpolation steps and occluded copies run as GPU batches.

pub mod dissect;
mod engine;
pub mod faithfulness;
pub mod gradcam;
pub mod gradient;
pub mod lrp;
pub mod mask;
pub mod method;
pub mod occlusion;
pub mod resample;
pub mod visualize;

pub(crate) use engine::seed;
pub use engine::{run_gradients, GradRun};

use crate::array::Array;
use crate::error::{Error, Result};
use crate::graph::Net;

/// Which output each map explains.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Each item's highest logit.
    Argmax,
    /// The same class for every item.
    Class(usize),
    /// One class per item.
    Each(Vec<usize>),
}

impl Target {
    /// The classes when they do not depend on the network's output (None for Argmax).
    pub fn fixed(&self, n: usize) -> Option<Vec<usize>> {
        match self {
            Target::Argmax => None,
            Target::Class(k) => Some(vec![*k; n]),
            Target::Each(v) => Some(v.clone()),
        }
    }

    /// Concrete classes for a batch, running the network when the argmax is needed.
    pub fn resolve(&self, net: &Net, x: &Array) -> Result<Vec<usize>> {
        match self {
            Target::Argmax => self.from_logits(&net.forward(x, &[])?.logits),
            _ => self.check(x.batch(), net.model().num_classes()),
        }
    }

    /// Concrete classes given the batch's logits [N, classes].
    pub fn from_logits(&self, logits: &Array) -> Result<Vec<usize>> {
        match self {
            Target::Argmax => Ok(argmax_rows(logits)),
            _ => self.check(logits.batch(), logits.shape[1]),
        }
    }

    fn check(&self, n: usize, classes: usize) -> Result<Vec<usize>> {
        let v = match self {
            Target::Each(v) if v.len() != n => {
                return Err(Error::input(
                    "--target",
                    format!("{} targets for {n} inputs", v.len()),
                ))
            }
            _ => self.fixed(n).unwrap_or_default(),
        };
        if let Some(bad) = v.iter().find(|&&k| k >= classes) {
            return Err(Error::input(
                "--target",
                format!("class {bad} does not exist; the model has {classes} classes"),
            ));
        }
        Ok(v)
    }
}

pub fn argmax_rows(a: &Array) -> Vec<usize> {
    let k = a.shape[1..].iter().product::<usize>().max(1);
    a.data
        .chunks(k)
        .map(|r| {
            (0..k)
                .max_by(|x, y| r[*x].total_cmp(&r[*y]).then(y.cmp(x)))
                .unwrap_or(0)
        })
        .collect()
}

/// A batch of attribution maps with the classes they explain.
pub struct Attribution {
    pub map: Array,
    pub targets: Vec<usize>,
}
