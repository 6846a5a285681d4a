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
use crate::gpu::{Recorder, Tensor};
use crate::graph::stream::passes;
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
        Lrp {
            net,
            weights: ModWeights::default(),
        }
    }

    /// Relevance of each item's target class (argmax when None).
    pub fn relevance(
        &self,
        x: &Array,
        targets: Option<&[usize]>,
        rules: &[Rule],
        start: Start,
        keep_layers: bool,
    ) -> Result<Relevance> {
        let net = self.net;
        let ctx = net.ctx();
        x.check_finite()?;
        let chunk = net.tape_batch(&x.shape)?;
        let (mut inputs, mut all_t) = (Vec::new(), Vec::new());
        let mut layer_parts: Vec<Vec<Array>> = Vec::new();
        let hidden = indicatif::ProgressBar::hidden();
        passes(x.batch(), chunk, &hidden, |r| {
            let (s, e) = (r.start, r.end);
            let part = x.slice_batch(s, e);
            // forward and seed in one submission; the walk is encoded while it runs
            let xt = Tensor::upload(ctx, &part.data, &part.shape)?;
            let mut rec = Recorder::new(ctx, "lrp forward");
            let tape = net.record_forward(&mut rec, &xt, &Keep::All, None)?;
            let given = targets.map(|t| &t[s..e]);
            let (seed, top) = super::seed(&mut rec, &tape, given, start == Start::Logit)?;
            rec.submit()?;
            let (r, at) = walk::walk(net, &self.weights, &tape, &seed, rules, keep_layers)?;
            inputs.push(Array::new(r.shape.clone(), r.read(ctx)?)?);
            let t: Vec<usize> = match (top, given) {
                (Some(top), _) => top.read(ctx)?.iter().map(|c| *c as usize).collect(),
                (None, given) => given.unwrap_or_default().to_vec(),
            };
            for (j, t) in at.iter().enumerate() {
                if layer_parts.len() <= j {
                    layer_parts.push(Vec::new());
                }
                layer_parts[j].push(Array::new(t.shape.clone(), t.read(ctx)?)?);
            }
            all_t.extend(t);
            Ok(())
        })?;
        let layers = layer_parts
            .iter()
            .enumerate()
            .map(|(i, p)| Ok((net.model().output_name(i).to_string(), Array::concat(p)?)))
            .collect::<Result<_>>()?;
        Ok(Relevance {
            input: Array::concat(&inputs)?,
            targets: all_t,
            layers,
        })
    }
}
