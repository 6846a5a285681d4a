//! Attribution methods. Each takes a batch of inputs and returns a batch of maps; the
//! noisy copies, interpolation steps and occluded copies run as GPU batches.

mod engine;
pub mod gradcam;
pub mod gradient;
pub mod lrp;
pub mod method;
pub mod occlusion;
pub mod resample;

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
        let n = x.batch();
        let classes = net.model().num_classes();
        let v = match self {
            Target::Argmax => argmax_rows(&net.forward(x, &[])?.logits),
            Target::Class(k) => vec![*k; n],
            Target::Each(v) if v.len() == n => v.clone(),
            Target::Each(v) => return Err(Error::input("--target", format!("{} targets for {n} inputs", v.len()))),
        };
        if let Some(bad) = v.iter().find(|&&k| k >= classes) {
            return Err(Error::input("--target", format!("class {bad} does not exist; the model has {classes} classes")));
        }
        Ok(v)
    }
}

pub fn argmax_rows(a: &Array) -> Vec<usize> {
    let k = a.shape[1..].iter().product::<usize>().max(1);
    a.data
        .chunks(k)
        .map(|r| (0..k).max_by(|x, y| r[*x].total_cmp(&r[*y]).then(y.cmp(x))).unwrap_or(0))
        .collect()
}

/// A batch of attribution maps with the classes they explain.
pub struct Attribution {
    pub map: Array,
    pub targets: Vec<usize>,
}
