//! Layer-wise relevance propagation: the backward walk with a rule per layer (Zennit's
//! rules, composites and names). Rules, composites and the modified-weight cache are
//! separate; batch norms are folded into their convs at load (the canonizer).

pub mod composite;
pub mod rule;
pub mod walk;
pub mod weights;

pub use composite::{assign, describe, Composite};
pub use rule::{Rule, RuleParams};

use crate::array::Array;
use crate::error::Result;
use crate::gpu::Tensor;
use crate::graph::{Keep, Net};
use weights::ModWeights;

/// Where the backward walk starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Start {
    /// one-hot(target) ⊙ logits: with a conserving rule the input relevance sums to the
    /// target logit.
    #[default]
    Logit,
    /// Zennit's plain one-hot(target).
    OneHot,
}

/// LRP over a network; modified weights are built once and reused across calls.
pub struct Lrp<'n> {
    pub net: &'n Net,
    weights: ModWeights,
}

/// Input relevance per item and, if asked, the relevance arriving at every layer.
pub struct Relevance {
    pub input: Array,
    pub targets: Vec<usize>,
    /// (layer output name, relevance) in layer order.
    pub layers: Vec<(String, Array)>,
}

impl<'n> Lrp<'n> {
    pub fn new(net: &'n Net) -> Self {
        Lrp { net, weights: ModWeights::default() }
    }

    /// Relevance of each item's target class (argmax when None).
    pub fn relevance(&self, x: &Array, targets: Option<&[usize]>, rules: &[Rule], start: Start, keep_layers: bool) -> Result<Relevance> {
        let net = self.net;
        let ctx = net.ctx();
        if let Some(i) = x.first_non_finite() {
            return Err(crate::Error::input("tensor", format!("value {} at flat index {i} is not finite", x.data[i])));
        }
        let chunk = net.tape_batch(&x.shape)?;
        let (mut inputs, mut all_t) = (Vec::new(), Vec::new());
        let mut layer_parts: Vec<Vec<Array>> = Vec::new();
        let mut s = 0;
        while s < x.batch() {
            let e = (s + chunk).min(x.batch());
            let part = x.slice_batch(s, e);
            let tape = net.forward_gpu(&Tensor::upload(ctx, &part.data, &part.shape)?, &Keep::All)?;
            let logits = tape.logits.read(ctx)?;
            let k = tape.logits.shape[1];
            let lg = Array::new(tape.logits.shape.clone(), logits.clone())?;
            let t: Vec<usize> = match targets {
                Some(t) => t[s..e].to_vec(),
                None => super::argmax_rows(&lg),
            };
            let mut seed = vec![0f32; logits.len()];
            for (i, &c) in t.iter().enumerate() {
                if c >= k {
                    return Err(crate::Error::input("--target", format!("class {c} does not exist; the model has {k} classes")));
                }
                seed[i * k + c] = if start == Start::Logit { logits[i * k + c] } else { 1.0 };
            }
            let seed = Tensor::upload(ctx, &seed, &lg.shape)?;
            let (r, at) = walk::walk(net, &self.weights, &tape, &seed, rules, keep_layers)?;
            inputs.push(Array::new(r.shape.clone(), r.read(ctx)?)?);
            for (j, t) in at.iter().enumerate() {
                if layer_parts.len() <= j {
                    layer_parts.push(Vec::new());
                }
                layer_parts[j].push(Array::new(t.shape.clone(), t.read(ctx)?)?);
            }
            all_t.extend(t);
            s = e;
        }
        let layers = layer_parts
            .iter()
            .enumerate()
            .map(|(i, p)| Ok((net.model().output_name(i).to_string(), Array::concat(p)?)))
            .collect::<Result<_>>()?;
        Ok(Relevance { input: Array::concat(&inputs)?, targets: all_t, layers })
    }
}
