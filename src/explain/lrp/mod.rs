//! Layer-wise relevance propagation: the backward walk with a rule per layer (Zennit's
//! rules, composites and names). Rules, composites and the modified-weight cache are
//! separate; batch norms are folded into their convs at load (the canonizer).

pub mod composite;
pub mod rule;
pub mod signs;
pub mod walk;
pub mod weights;

pub use composite::{assign, describe, Composite};
pub use rule::{Rule, RuleParams};

use crate::array::Array;
use crate::error::Result;
use crate::gpu::{Recorder, Tensor};
use crate::graph::stream::passes;
use crate::graph::{Bands, Keep, Net};
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
        if let Some(b) = net.bands(&x.shape)? {
            if keep_layers {
                return Err(net.unbanded_error(
                    &x.shape,
                    "every layer's relevance cannot be kept where the first layers run in \
                     row bands",
                ));
            }
            return self.banded(x, targets, rules, start, &b);
        }
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

    /// `relevance` for items too large for the device, one at a time: the layers after
    /// the row bands (`Net::bands`) walked on their joined output, then the bands
    /// (`Net::banded_walk`).
    fn banded(
        &self,
        x: &Array,
        targets: Option<&[usize]>,
        rules: &[Rule],
        start: Start,
        b: &Bands,
    ) -> Result<Relevance> {
        let net = self.net;
        let ctx = net.ctx();
        let n = net.model().layers.len();
        let (mut inputs, mut all_t) = (Vec::new(), Vec::new());
        passes(x.batch(), 1, &indicatif::ProgressBar::hidden(), |r| {
            let item = x.slice_batch(r.start, r.end);
            let mut rec = Recorder::new(ctx, "lrp forward after bands");
            let tape = net.record_forward_host(&mut rec, &item, Some(b), &Keep::All)?;
            let given = targets.map(|t| &t[r.clone()]);
            let (seed, top) = super::seed(&mut rec, &tape, given, start == Start::Logit)?;
            rec.submit()?;
            let span = (n - 1, b.last + 1);
            let (rel, _) = walk::walk_range(net, &self.weights, &tape, span, &seed, rules, false)?;
            inputs.push(net.banded_walk(&item, b, &rel, &Keep::All, |tape, seed| {
                let span = (b.last, 0);
                walk::walk_part(net, &self.weights, tape, span, n - 1, seed, rules)
            })?);
            all_t.extend(match (top, given) {
                (Some(top), _) => top.read(ctx)?.iter().map(|c| *c as usize).collect(),
                (None, given) => given.unwrap_or_default().to_vec(),
            });
            Ok(())
        })?;
        Ok(Relevance {
            input: Array::concat(&inputs)?,
            targets: all_t,
            layers: Vec::new(),
        })
    }
}
