//! The LRP backward walk: one forward tape, then each layer's rule from the output back to
//! the input, in one GPU submission per batch chunk.

use super::rule::{Rule, STABILIZER};
pub use super::signs::nonnegative_inputs;
use super::signs::relevance_only_where_positive;
use super::weights::{Mod, ModWeights};
use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor, WeightBuffer};
use crate::graph::{accumulate, Net, Tape};
use crate::model::{LayerKind, Src};
use crate::ops::{self, LrpKeep, LrpRatio, ReluRule};

struct Affine<'a> {
    net: &'a Net,
    layer: usize,
}

impl Affine<'_> {
    fn kind(&self) -> &LayerKind {
        &self.net.model().layers[self.layer].kind
    }

    fn fwd(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        w: &WeightBuffer,
        acc: Option<&Tensor>,
    ) -> Result<Tensor> {
        match self.kind() {
            LayerKind::Conv2d { geom, .. } => ops::conv2d_acc(rec, x, w, geom, false, acc),
            _ => ops::linear_acc(rec, x, w, false, acc),
        }
    }

    fn bwd(
        &self,
        rec: &mut Recorder,
        g: &Tensor,
        w: &WeightBuffer,
        input: &Tensor,
    ) -> Result<Tensor> {
        match self.kind() {
            LayerKind::Conv2d { geom, .. } => {
                ops::conv2d_backward_input(rec, g, w, geom, (input.shape[2], input.shape[3]))
            }
            _ => ops::linear_backward_input(rec, g, w),
        }
    }

    /// `bwd` of the ratio `q` (for a conv, packed into the GEMM's input where it reads one);
    /// with `times` (the layer's input a), a ⊙ that, which a conv's GEMM stores itself where
    /// it can (`ops::conv2d_backward_ratio_scaled`).
    fn bwd_ratio(
        &self,
        rec: &mut Recorder,
        q: &LrpRatio,
        w: &WeightBuffer,
        input: &Tensor,
        times: Option<&Tensor>,
    ) -> Result<Tensor> {
        match self.kind() {
            LayerKind::Conv2d { geom, .. } => {
                let hw = (input.shape[2], input.shape[3]);
                ops::conv2d_backward_ratio_scaled(rec, q, w, geom, hw, times)
            }
            _ => {
                let g = ops::lrp_ratio_of(rec, q)?;
                let t = ops::linear_backward_input(rec, &g, w)?;
                match times {
                    Some(a) => ops::lrp_combine(rec, 1.0, a, &t, 0.0, a, &t, None),
                    None => Ok(t),
                }
            }
        }
    }

    /// a ⊙ (c1 W₁ᵀ q1 + c2 W₂ᵀ q2), W₁ and W₂ the weights as `m1` and `m2` modify them, for
    /// a conv of a multiple of 4 output channels: one input-gradient GEMM over both, stacked
    /// (`ModWeights::stacked`, `ops::conv2d_backward_ratios`), where two GEMMs, their packs
    /// and the sum of their outputs would run. None for other layers, and where the stacked
    /// ratios would not fit one binding.
    fn stacked_pair(
        &self,
        rec: &mut Recorder,
        mw: &ModWeights,
        a: &Tensor,
        [(q1, m1, c1), (q2, m2, c2)]: [(&LrpRatio, Mod, f32); 2],
    ) -> Result<Option<Tensor>> {
        let LayerKind::Conv2d { geom, .. } = self.kind() else {
            return Ok(None);
        };
        // the buffer-reading GEMMs bind the stacked ratios as one tensor: where that is over
        // the binding limit (an image run in bands) the two GEMMs run as before
        let ctx = rec.ctx();
        let stacked = (2 * q1.r.len() * std::mem::size_of::<f32>()) as u64;
        if !geom.cout.is_multiple_of(4)
            || (!ctx.gemm().reads_textures() && stacked > ctx.max_binding())
        {
            return Ok(None);
        }
        let w = mw.stacked(self.net, self.layer, [(m1, c1), (m2, c2)])?;
        let g = ops::Conv2dGeom {
            cout: 2 * geom.cout,
            ..*geom
        };
        let hw = (a.shape[2], a.shape[3]);
        ops::conv2d_backward_ratios(rec, (q1, q2), &w, &g, hw, Some(a)).map(Some)
    }
}

fn constant(net: &Net, shape: &[usize], v: f32) -> Result<Tensor> {
    Tensor::upload(net.ctx(), &vec![v; shape.iter().product()], shape)
}

/// Relevance at each input of a sum from relevance `r` at its output: shares in
/// proportion to the inputs' contributions (Norm, as Zennit's `Sum`; Epsilon with its ε),
/// or all of `r` to every input (Gradient, Pass).
fn add_rule(
    net: &Net,
    rec: &mut Recorder,
    tape: &Tape,
    i: usize,
    rule: &Rule,
    r: &Tensor,
) -> Result<Vec<Tensor>> {
    let l = &net.model().layers[i];
    let eps = match rule {
        Rule::Norm => STABILIZER,
        Rule::Epsilon(e) => *e,
        Rule::Gradient | Rule::Pass => return Ok(vec![r.clone(); l.inputs.len()]),
        _ => {
            return Err(Error::Other(format!(
                "rule {rule} cannot apply to {} (Add); use norm, epsilon, gradient or pass",
                l.name
            )))
        }
    };
    let z = tape.output(i)?;
    if let [a, b] = l.inputs[..] {
        let out = ops::lrp_sum_rule(rec, r, z, [tape.src(a)?, tape.src(b)?], eps)?;
        return Ok(out.into());
    }
    let g = ops::lrp_ratio(rec, r, z, z, LrpKeep::All, eps)?;
    l.inputs
        .iter()
        .map(|s| {
            let x = tape.src(*s)?;
            ops::lrp_combine(rec, 1.0, x, &g, 0.0, x, &g, None)
        })
        .collect()
}

/// What the walk knows of a layer's signs (`signs.rs`): its input is non-negative; the
/// relevance at its output is zero wherever the output is ≤ 0.
#[derive(Clone, Copy)]
struct Sign {
    nonneg_input: bool,
    positive_only: bool,
}

/// Relevance at the input of layer `i` from relevance `r` at its output.
#[allow(clippy::too_many_arguments)]
fn layer_rule(
    net: &Net,
    mw: &ModWeights,
    rec: &mut Recorder,
    tape: &Tape,
    i: usize,
    rule: &Rule,
    r: &Tensor,
    sign: Sign,
) -> Result<Tensor> {
    let layers = &net.model().layers;
    let a = tape.src(layers[i].inputs[0])?;
    let z0 = tape.output(i)?;
    let kind = &layers[i].kind;
    let affine = matches!(kind, LayerKind::Conv2d { .. } | LayerKind::Linear { .. });
    if rule.needs_weights() && !affine {
        return Err(Error::Other(format!(
            "rule {rule} cannot apply to {} ({})",
            layers[i].name,
            kind.type_name()
        )));
    }
    let f = Affine { net, layer: i };
    let w = |m: Mod| mw.get(net, i, m);
    // weights only an input gradient reads
    let wb = |m: Mod| mw.get_backward(net, i, m);
    Ok(match rule {
        Rule::Pass => match kind {
            LayerKind::Flatten => r.reshape(&a.shape)?,
            LayerKind::Relu | LayerKind::Dropout => r.clone(),
            _ => {
                return Err(Error::Other(format!(
                    "pass cannot apply to {} ({})",
                    layers[i].name,
                    kind.type_name()
                )))
            }
        },
        Rule::Gradient => match kind {
            LayerKind::MaxPool2d(p) => {
                let arg = tape.argmax[i]
                    .as_ref()
                    .ok_or_else(|| Error::Other("tape lacks a max-pool argmax".into()))?;
                ops::max_pool2d_backward(rec, r, arg, p, &a.shape)?
            }
            LayerKind::AvgPool2d(p) => ops::avg_pool2d_backward(rec, r, p, &a.shape)?,
            LayerKind::AdaptiveAvgPool2d(_) => ops::adaptive_avg_pool2d_backward(rec, r, &a.shape)?,
            LayerKind::Relu => ops::relu_backward(rec, z0, r, ReluRule::Gradient)?,
            LayerKind::Flatten => r.reshape(&a.shape)?,
            LayerKind::Dropout => r.clone(),
            _ => f.bwd(rec, r, net.weights(i), a)?,
        },
        Rule::Norm => {
            let g = ops::lrp_ratio(rec, r, z0, z0, LrpKeep::All, STABILIZER)?;
            let t = match kind {
                LayerKind::AvgPool2d(p) => ops::avg_pool2d_backward(rec, &g, p, &a.shape)?,
                LayerKind::AdaptiveAvgPool2d(_) => {
                    ops::adaptive_avg_pool2d_backward(rec, &g, &a.shape)?
                }
                _ => {
                    return Err(Error::Other(format!(
                        "norm applies to avg-pools, not {}",
                        kind.type_name()
                    )))
                }
            };
            ops::lrp_combine(rec, 1.0, a, &t, 0.0, a, &t, None)?
        }
        Rule::Epsilon(e) => {
            let q = LrpRatio::new(r, z0, z0, LrpKeep::All, *e);
            f.bwd_ratio(rec, &q, net.weights(i), a, Some(a))?
        }
        Rule::ZPlus | Rule::AlphaBeta { .. } | Rule::Gamma(_) if sign.nonneg_input => {
            // a ≥ 0: every a⁻ term vanishes, and with u = W⁺a + b⁺ and the tape's z0 = Wa + b
            // each rule's denominators follow from one extra forward:
            // W⁻a + b⁻ = z0 − u, (W + γW⁺)a + b + γb⁺ = z0 + γu, (W + γW⁻)a + b + γb⁻ = (1 + γ)z0 − γu
            // (an input gradient ignores biases: W⁺'s backward GEMMs read these weights too)
            let pos = w(Mod::Pos { bias: true })?;
            let u = f.fwd(rec, a, &pos, None)?;
            match rule {
                Rule::Gamma(gamma) => {
                    let gb = gamma.to_bits();
                    let q1 = LrpRatio::new(r, z0, z0, LrpKeep::Positive, STABILIZER)
                        .mixed(1.0, &u, *gamma);
                    let w1 = Mod::GammaPos {
                        gamma: gb,
                        bias: false,
                    };
                    if sign.positive_only {
                        // no relevance where z0 < 0: the negative half is all zeros
                        return f.bwd_ratio(rec, &q1, &*wb(w1)?, a, Some(a));
                    }
                    let q2 = LrpRatio::new(r, z0, z0, LrpKeep::Negative, STABILIZER).mixed(
                        1.0 + gamma,
                        &u,
                        -gamma,
                    );
                    let pair = [
                        (&q1, w1, 1.0),
                        (
                            &q2,
                            Mod::GammaNeg {
                                gamma: gb,
                                bias: false,
                            },
                            1.0,
                        ),
                    ];
                    if let Some(out) = f.stacked_pair(rec, mw, a, pair)? {
                        return Ok(out);
                    }
                    let t1 = f.bwd_ratio(rec, &q1, &*wb(w1)?, a, None)?;
                    let t2 = f.bwd_ratio(
                        rec,
                        &q2,
                        &*wb(Mod::GammaNeg {
                            gamma: gb,
                            bias: false,
                        })?,
                        a,
                        None,
                    )?;
                    ops::lrp_combine(rec, 1.0, a, &t1, 1.0, a, &t2, None)?
                }
                _ => {
                    let (alpha, beta) = match rule {
                        Rule::AlphaBeta { alpha, beta } => (*alpha, *beta),
                        _ => (1.0, 0.0),
                    };
                    let qp = LrpRatio::new(r, &u, &u, LrpKeep::All, STABILIZER);
                    if beta == 0.0 && alpha == 1.0 {
                        f.bwd_ratio(rec, &qp, &pos, a, Some(a))?
                    } else if beta == 0.0 {
                        let t1 = f.bwd_ratio(rec, &qp, &pos, a, None)?;
                        ops::lrp_combine(rec, alpha, a, &t1, 0.0, a, &t1, None)?
                    } else {
                        // W⁻a + b⁻ = z0 − u
                        let qn =
                            LrpRatio::new(r, z0, z0, LrpKeep::All, STABILIZER).mixed(1.0, &u, -1.0);
                        let pair = [
                            (&qp, Mod::Pos { bias: false }, alpha),
                            (&qn, Mod::Neg { bias: false }, -beta),
                        ];
                        if let Some(out) = f.stacked_pair(rec, mw, a, pair)? {
                            return Ok(out);
                        }
                        let t1 = f.bwd_ratio(rec, &qp, &pos, a, None)?;
                        let t2 = f.bwd_ratio(rec, &qn, &*wb(Mod::Neg { bias: false })?, a, None)?;
                        ops::lrp_combine(rec, alpha, a, &t1, -beta, a, &t2, None)?
                    }
                }
            }
        }
        Rule::ZPlus | Rule::AlphaBeta { .. } => {
            let (alpha, beta) = match rule {
                Rule::AlphaBeta { alpha, beta } => (*alpha, *beta),
                _ => (1.0, 0.0),
            };
            let (pos, neg) = (w(Mod::Pos { bias: false })?, w(Mod::Neg { bias: false })?);
            let ap = ops::lrp_clamp(rec, a, false)?;
            let an = ops::lrp_clamp(rec, a, true)?;
            let zp = f.fwd(rec, &ap, &*w(Mod::Pos { bias: true })?, None)?;
            let zp = f.fwd(rec, &an, &neg, Some(&zp))?;
            let gp = ops::lrp_ratio(rec, r, &zp, &zp, LrpKeep::All, STABILIZER)?;
            let t1 = f.bwd(rec, &gp, &pos, a)?;
            let t2 = f.bwd(rec, &gp, &neg, a)?;
            let out = ops::lrp_combine(rec, alpha, &ap, &t1, alpha, &an, &t2, None)?;
            if beta == 0.0 {
                out
            } else {
                let zn = f.fwd(rec, &ap, &*w(Mod::Neg { bias: true })?, None)?;
                let zn = f.fwd(rec, &an, &pos, Some(&zn))?;
                let gn = ops::lrp_ratio(rec, r, &zn, &zn, LrpKeep::All, STABILIZER)?;
                let t3 = f.bwd(rec, &gn, &neg, a)?;
                let t4 = f.bwd(rec, &gn, &pos, a)?;
                ops::lrp_combine(rec, -beta, &ap, &t3, -beta, &an, &t4, Some(&out))?
            }
        }
        Rule::Gamma(gamma) => {
            let gb = gamma.to_bits();
            let ap = ops::lrp_clamp(rec, a, false)?;
            let an = ops::lrp_clamp(rec, a, true)?;
            let gp_nb = w(Mod::GammaPos {
                gamma: gb,
                bias: false,
            })?;
            let gn_nb = w(Mod::GammaNeg {
                gamma: gb,
                bias: false,
            })?;
            let z1 = f.fwd(
                rec,
                &ap,
                &*w(Mod::GammaPos {
                    gamma: gb,
                    bias: true,
                })?,
                None,
            )?;
            let z1 = f.fwd(rec, &an, &gn_nb, Some(&z1))?;
            let g1 = ops::lrp_ratio(rec, r, &z1, z0, LrpKeep::Positive, STABILIZER)?;
            let t1 = f.bwd(rec, &g1, &gp_nb, a)?;
            let t2 = f.bwd(rec, &g1, &gn_nb, a)?;
            let out = ops::lrp_combine(rec, 1.0, &ap, &t1, 1.0, &an, &t2, None)?;
            if sign.positive_only {
                return Ok(out); // no relevance where z0 < 0
            }
            let z2 = f.fwd(
                rec,
                &ap,
                &*w(Mod::GammaNeg {
                    gamma: gb,
                    bias: true,
                })?,
                None,
            )?;
            let z2 = f.fwd(rec, &an, &gp_nb, Some(&z2))?;
            let g2 = ops::lrp_ratio(rec, r, &z2, z0, LrpKeep::Negative, STABILIZER)?;
            let t3 = f.bwd(rec, &g2, &gn_nb, a)?;
            let t4 = f.bwd(rec, &g2, &gp_nb, a)?;
            ops::lrp_combine(rec, 1.0, &ap, &t3, 1.0, &an, &t4, Some(&out))?
        }
        Rule::ZBox { low, high } => {
            // z^B = W a − W⁺ l − W⁻ h (the biases cancel); bounds are zero-padded like a
            let lo = constant(net, &a.shape, *low)?;
            let hi = constant(net, &a.shape, *high)?;
            let plain = w(Mod::PlainNoBias)?;
            let z = f.fwd(rec, a, &plain, None)?;
            let z = f.fwd(rec, &lo, &*w(Mod::MinusPos)?, Some(&z))?;
            let z = f.fwd(rec, &hi, &*w(Mod::MinusNeg)?, Some(&z))?;
            let g = ops::lrp_ratio(rec, r, &z, &z, LrpKeep::All, STABILIZER)?;
            let t0 = f.bwd(rec, &g, &plain, a)?;
            let t1 = f.bwd(rec, &g, &*wb(Mod::Pos { bias: false })?, a)?;
            let t2 = f.bwd(rec, &g, &*wb(Mod::Neg { bias: false })?, a)?;
            let out = ops::lrp_combine(rec, 1.0, a, &t0, -1.0, &lo, &t1, None)?;
            ops::lrp_combine(rec, -1.0, &hi, &t2, 0.0, &hi, &t2, Some(&out))?
        }
        Rule::Flat | Rule::WSquare => {
            let m = if *rule == Rule::Flat {
                Mod::Ones
            } else {
                Mod::Square
            };
            let wm = w(m)?;
            let ones = constant(net, &a.shape, 1.0)?;
            let z = f.fwd(rec, &ones, &wm, None)?;
            f.bwd_ratio(
                rec,
                &LrpRatio::new(r, &z, &z, LrpKeep::All, STABILIZER),
                &wm,
                a,
                None,
            )?
        }
    })
}

/// Walks the tape from the output relevance `seed` back to the input with one rule per
/// layer. Returns the input relevance and, when `keep`, the relevance arriving at each
/// layer's output (index order).
pub fn walk(
    net: &Net,
    mw: &ModWeights,
    tape: &Tape,
    seed: &Tensor,
    rules: &[Rule],
    keep: bool,
) -> Result<(Tensor, Vec<Tensor>)> {
    let n = net.model().layers.len();
    walk_range(net, mw, tape, (n - 1, 0), seed, rules, keep)
}

/// As `walk`, from layer `from` (whose output `seed` is the relevance at) down to layer
/// `down_to`: the relevance returned is at `down_to`'s input, and the layers' relevances
/// (`keep`) only for a whole walk.
pub fn walk_range(
    net: &Net,
    mw: &ModWeights,
    tape: &Tape,
    span: (usize, usize),
    seed: &Tensor,
    rules: &[Rule],
    keep: bool,
) -> Result<(Tensor, Vec<Tensor>)> {
    walk_span(net, mw, tape, span, span.0, seed, rules, keep)
}

/// As `walk_range`, for a `seed` that a walk from layer `top` (≥ `from`) with the same
/// rules brought to `from`'s output (a walk in parts: the layers after row bands, then the
/// bands), so the parts skip what one walk would (`relevance_only_where_positive`).
pub fn walk_part(
    net: &Net,
    mw: &ModWeights,
    tape: &Tape,
    span: (usize, usize),
    top: usize,
    seed: &Tensor,
    rules: &[Rule],
) -> Result<Tensor> {
    let n = net.model().layers.len();
    if top < span.0 || top >= n {
        return Err(Error::Other(format!(
            "a walk from layer {top} of {n} cannot have seeded layer {}",
            span.0
        )));
    }
    Ok(walk_span(net, mw, tape, span, top, seed, rules, false)?.0)
}

#[allow(clippy::too_many_arguments)]
fn walk_span(
    net: &Net,
    mw: &ModWeights,
    tape: &Tape,
    (from, down_to): (usize, usize),
    top: usize,
    seed: &Tensor,
    rules: &[Rule],
    keep: bool,
) -> Result<(Tensor, Vec<Tensor>)> {
    let n = net.model().layers.len();
    if rules.len() != n {
        return Err(Error::Other(format!(
            "{} rules for {n} layers",
            rules.len()
        )));
    }
    let whole = from + 1 == n && down_to == 0;
    if from >= n || down_to > from || (keep && !whole) {
        return Err(Error::Other(format!(
            "cannot walk layers {from} down to {down_to} of {n}{}",
            if keep {
                ", keeping their relevance"
            } else {
                ""
            }
        )));
    }
    let nonneg = nonnegative_inputs(net.model());
    let positive_only = relevance_only_where_positive(net.model(), net.consumers(), rules, top);
    let layers = &net.model().layers;
    let mut rec = Recorder::new(net.ctx(), "lrp");
    // relevance at each layer's output, summed over its readers as they are walked
    let mut rs: Vec<Option<Tensor>> = vec![None; n];
    let mut r_input: Option<Tensor> = None;
    rs[from] = Some(seed.clone());
    let mut at: Vec<Option<Tensor>> = vec![None; n];
    for i in (down_to..=from).rev() {
        let Some(r) = rs[i].take() else { continue };
        if keep {
            at[i] = Some(r.clone());
        }
        let parts = match layers[i].kind {
            LayerKind::Add => add_rule(net, &mut rec, tape, i, &rules[i], &r)?,
            _ => {
                let sign = Sign {
                    nonneg_input: nonneg[i],
                    positive_only: positive_only[i],
                };
                vec![layer_rule(net, mw, &mut rec, tape, i, &rules[i], &r, sign)?]
            }
        };
        for (s, part) in layers[i].inputs.iter().zip(parts) {
            accumulate(&mut rec, &mut rs, &mut r_input, *s, part)?;
        }
    }
    rec.submit()?;
    let r = match down_to {
        0 => r_input,
        d => rs[d - 1].take(),
    };
    let r = match r {
        Some(r) => r,
        None => constant(net, &tape.src(Src::before(down_to))?.shape, 0.0)?,
    };
    let at = if keep {
        at.into_iter()
            .zip(net.model().output_shapes(&tape.input.shape)?)
            .map(|(t, shape)| match t {
                Some(t) => Ok(t),
                None => constant(net, &shape, 0.0),
            })
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    Ok((r, at))
}
