//! LRP rules (Zennit's definitions and names).

use crate::error::{Error, Result};

/// The stabilizer of every rule but Epsilon (whose ε plays that part), as Zennit.
pub const STABILIZER: f32 = 1e-6;

#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// R_in = a ⊙ Wᵀ(R / s(z)), bias inside z.
    Epsilon(f32),
    /// (W⁺, a⁺) with (W⁻, a⁻), only b⁺.
    ZPlus,
    /// α·(positive part) − β·(negative part), α − β = 1.
    AlphaBeta { alpha: f32, beta: f32 },
    /// Weights W + γW⁺ (and W + γW⁻), chosen by the sign of z.
    Gamma(f32),
    /// z^B for inputs bounded by [low, high].
    ZBox { low: f32, high: f32 },
    /// All-ones weights on an all-ones input, no bias; not multiplied by the input.
    Flat,
    /// W² and b².
    WSquare,
    /// Avg-pools: the ε rule on the pool's own linear map, ε only as a stabilizer.
    Norm,
    /// Relevance passes unchanged (ReLU, flatten, dropout).
    Pass,
    /// The plain gradient (max-pool: to the winner).
    Gradient,
}

impl Rule {
    /// Parses a rule for conv/linear layers: epsilon, zplus, alpha-beta, gamma, zbox, flat, wsquare.
    pub fn parse(name: &str, p: &RuleParams) -> Result<Rule> {
        Ok(match name {
            "epsilon" => Rule::Epsilon(p.epsilon),
            "zplus" => Rule::ZPlus,
            "alpha-beta" => {
                if p.alpha < 0.0 || p.beta < 0.0 || (p.alpha - p.beta - 1.0).abs() > 1e-6 {
                    return Err(Error::input("--alpha/--beta", format!("need α, β ≥ 0 with α − β = 1, got α = {}, β = {}", p.alpha, p.beta)));
                }
                Rule::AlphaBeta { alpha: p.alpha, beta: p.beta }
            }
            "gamma" => Rule::Gamma(p.gamma),
            "zbox" => {
                if p.low >= p.high {
                    return Err(Error::input("--low/--high", format!("need low < high, got {} and {}", p.low, p.high)));
                }
                Rule::ZBox { low: p.low, high: p.high }
            }
            "flat" => Rule::Flat,
            "wsquare" => Rule::WSquare,
            "pass" => Rule::Pass,
            "norm" => Rule::Norm,
            "gradient" => Rule::Gradient,
            o => {
                return Err(Error::input(
                    "rule",
                    format!("unknown rule '{o}': use epsilon, zplus, alpha-beta, gamma, zbox, flat, wsquare (or pass, norm, gradient)"),
                ))
            }
        })
    }

    /// Rules that make modified weights from the layer's host weights (`ModWeights`).
    pub fn modifies_weights(&self) -> bool {
        matches!(
            self,
            Rule::ZPlus
                | Rule::AlphaBeta { .. }
                | Rule::Gamma(_)
                | Rule::ZBox { .. }
                | Rule::Flat
                | Rule::WSquare
        )
    }

    /// Rules that need a conv or linear layer's weights.
    pub fn needs_weights(&self) -> bool {
        !matches!(self, Rule::Norm | Rule::Pass | Rule::Gradient)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Epsilon(e) => write!(f, "epsilon(ε={e})"),
            Rule::ZPlus => write!(f, "zplus"),
            Rule::AlphaBeta { alpha, beta } => write!(f, "alpha-beta(α={alpha}, β={beta})"),
            Rule::Gamma(g) => write!(f, "gamma(γ={g})"),
            Rule::ZBox { low, high } => write!(f, "zbox(low={low}, high={high})"),
            Rule::Flat => write!(f, "flat"),
            Rule::WSquare => write!(f, "wsquare"),
            Rule::Norm => write!(f, "norm"),
            Rule::Pass => write!(f, "pass"),
            Rule::Gradient => write!(f, "gradient"),
        }
    }
}

/// Rule parameters (Zennit's defaults).
#[derive(Clone, Debug)]
pub struct RuleParams {
    pub epsilon: f32,
    pub alpha: f32,
    pub beta: f32,
    pub gamma: f32,
    pub low: f32,
    pub high: f32,
}

impl Default for RuleParams {
    fn default() -> Self {
        RuleParams {
            epsilon: 1e-6,
            alpha: 2.0,
            beta: 1.0,
            gamma: 0.25,
            low: -3.0,
            high: 3.0,
        }
    }
}
