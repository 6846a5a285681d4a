//! Method names and their settings, shared by the CLI and library users.

use super::gradcam::{default_layer, grad_cam, guided_grad_cam};
use super::gradient::{self, Baseline, IgMethod};
use super::lrp::{self, Composite, Lrp, Rule, RuleParams, Start};
use super::occlusion::occlusion;
use super::resample::Upsample;
use super::{Attribution, Target};
use crate::array::Array;
use crate::error::{check_range, Error, Result};
use crate::graph::{HostWeights, Net};
use crate::ops::ReluRule;

/// Every attribution method by its CLI name.
pub const METHODS: &[&str] = &[
    "gradient",
    "saliency",
    "input-x-gradient",
    "smoothgrad",
    "integrated-gradients",
    "guided-backprop",
    "deconvnet",
    "grad-cam",
    "guided-grad-cam",
    "occlusion",
    "lrp-epsilon",
    "lrp-zplus",
    "lrp-alpha-beta",
    "lrp-gamma",
    "lrp-flat",
    "lrp-wsquare",
    "lrp-epsilon-plus",
    "lrp-epsilon-plus-flat",
    "lrp-epsilon-gamma-box",
    "lrp-epsilon-alpha2-beta1",
    "lrp-epsilon-alpha2-beta1-flat",
];

/// An error naming the methods when `name` is not one of them.
pub fn check_name(name: &str) -> Result<()> {
    if METHODS.contains(&name) {
        return Ok(());
    }
    Err(Error::input(
        "--method",
        format!(
            "unknown method '{name}'; methods are: {}",
            METHODS.join(", ")
        ),
    ))
}

/// Settings of all methods (each reads its own).
#[derive(Clone, Debug)]
pub struct Settings {
    pub samples: usize,
    pub noise: f32,
    pub seed: u64,
    pub steps: usize,
    pub baseline: Baseline,
    pub ig_method: IgMethod,
    /// Grad-CAM layer name (default: the ReLU after the last conv).
    pub layer: Option<String>,
    pub relu: bool,
    pub upsample: Upsample,
    pub window: usize,
    pub stride: usize,
    /// Occlusion's baseline when it differs from `baseline` (the `--occlusion-baseline`
    /// alias); None: `baseline`.
    pub occlusion_baseline: Option<f32>,
    /// LRP rule parameters (ε, α, β, γ, low, high).
    pub rule: RuleParams,
    /// LRP: where the walk starts.
    pub start: Start,
    /// LRP: rules by layer name or index that override the composite's.
    pub rule_overrides: Vec<(String, Rule)>,
    /// LRP: keep the relevance arriving at every layer.
    pub layer_relevance: bool,
}

impl Settings {
    /// Checks every numeric setting against its valid range, naming the CLI flag, so
    /// that nothing starts with a value that would give NaN maps or run for hours:
    /// samples and steps 1..=10000; noise, ε, α, β and γ finite and ≥ 0 (noise ≤ 100);
    /// the blur baseline's σ in (0, 256]; window and stride 1..=4096; occlusion baseline
    /// finite; low < high, both finite.
    pub fn check(&self) -> Result<()> {
        let count = |flag: &str, v: usize| -> Result<()> {
            if (1..=10_000).contains(&v) {
                return Ok(());
            }
            Err(Error::input(flag, format!("{v} must be in 1..=10000")))
        };
        let nonneg = |flag: &str, v: f32, max: f32| check_range(flag, v, 0.0, max, false);
        count("--samples", self.samples)?;
        count("--steps", self.steps)?;
        nonneg("--noise", self.noise, 100.0)?;
        let r = &self.rule;
        nonneg("--epsilon", r.epsilon, f32::INFINITY)?;
        nonneg("--alpha", r.alpha, f32::INFINITY)?;
        nonneg("--beta", r.beta, f32::INFINITY)?;
        nonneg("--gamma", r.gamma, f32::INFINITY)?;
        if !(r.low.is_finite() && r.high.is_finite() && r.low < r.high) {
            return Err(Error::input(
                "--low/--high",
                format!("{} and {}: need finite low < high", r.low, r.high),
            ));
        }
        if let Baseline::Blur(sigma) = self.baseline {
            check_range("--blur-sigma", sigma, 0.0, 256.0, true)?;
        }
        if let Baseline::Value(v) = self.baseline {
            if !v.is_finite() {
                return Err(Error::input("--baseline", format!("{v} must be finite")));
            }
        }
        if let Some(v) = self.occlusion_baseline {
            if !v.is_finite() {
                return Err(Error::input(
                    "--occlusion-baseline",
                    format!("{v} must be finite"),
                ));
            }
        }
        for (flag, v) in [("--window", self.window), ("--stride", self.stride)] {
            if !(1..=4096).contains(&v) {
                return Err(Error::input(flag, format!("{v} must be in 1..=4096")));
            }
        }
        Ok(())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            samples: 50,
            noise: 0.15,
            seed: 0,
            steps: 50,
            baseline: Baseline::Zero,
            ig_method: IgMethod::GaussLegendre,
            layer: None,
            relu: false,
            upsample: Upsample::Nearest,
            window: 16,
            stride: 8,
            occlusion_baseline: None,
            rule: RuleParams::default(),
            start: Start::Logit,
            rule_overrides: Vec::new(),
            layer_relevance: false,
        }
    }
}

/// Runs method `name` on a batch.
pub fn attribute(
    net: &Net,
    name: &str,
    x: &Array,
    target: &Target,
    s: &Settings,
    progress: &indicatif::ProgressBar,
) -> Result<Attribution> {
    s.check()?;
    let layer = || -> Result<usize> {
        match &s.layer {
            Some(l) => net.model().find(l),
            None => default_layer(net),
        }
    };
    match name {
        "gradient" => gradient::gradient(net, x, target, ReluRule::Gradient),
        "saliency" => gradient::saliency(net, x, target),
        "input-x-gradient" => gradient::input_x_gradient(net, x, target),
        "smoothgrad" => gradient::smoothgrad(net, x, target, s.samples, s.noise, s.seed),
        "integrated-gradients" => {
            gradient::integrated_gradients(net, x, target, &s.baseline, s.steps, s.ig_method)
        }
        "guided-backprop" => gradient::gradient(net, x, target, ReluRule::Guided),
        "deconvnet" => gradient::gradient(net, x, target, ReluRule::Deconv),
        "grad-cam" => grad_cam(net, x, target, layer()?, s.relu, s.upsample),
        "guided-grad-cam" => guided_grad_cam(net, x, target, layer()?, s.upsample),
        "occlusion" => occlusion(
            net,
            x,
            target,
            (s.window, s.window),
            (s.stride, s.stride),
            &s.occlusion_baseline
                .map_or_else(|| s.baseline.clone(), Baseline::Value),
            progress,
        ),
        m if m.starts_with("lrp-") => {
            let r = relevance(net, m, x, target, s)?;
            Ok(Attribution {
                map: r.input,
                targets: r.targets,
            })
        }
        other => {
            check_name(other)?;
            Err(Error::Other(format!(
                "method {other} is listed but not dispatched"
            )))
        }
    }
}

/// The host weights a `Net` must keep for `methods` on `model`: those of the layers whose
/// LRP rule makes modified weights from them (`Rule::modifies_weights`); none for the
/// other methods.
pub fn host_weights<'m>(
    model: &crate::model::Model,
    methods: impl IntoIterator<Item = &'m String>,
    s: &Settings,
) -> Result<HostWeights> {
    let mut keep = vec![false; model.layers.len()];
    for m in methods.into_iter().filter(|m| m.starts_with("lrp-")) {
        let c = Composite::from_method(m, &s.rule)?;
        for (k, rule) in keep
            .iter_mut()
            .zip(lrp::assign(model, &c, &s.rule, &s.rule_overrides)?)
        {
            *k |= rule.modifies_weights();
        }
    }
    Ok(if keep.iter().any(|k| *k) {
        HostWeights::KeepLayers(keep)
    } else {
        HostWeights::Release
    })
}

/// The rule of every layer for an LRP method name.
pub fn lrp_rules(net: &Net, method: &str, s: &Settings) -> Result<Vec<Rule>> {
    let c = Composite::from_method(method, &s.rule)?;
    lrp::assign(net.model(), &c, &s.rule, &s.rule_overrides)
}

/// LRP relevance for an `lrp-*` method, with the per-layer relevance when asked.
pub fn relevance(
    net: &Net,
    method: &str,
    x: &Array,
    target: &Target,
    s: &Settings,
) -> Result<lrp::Relevance> {
    s.check()?;
    let rules = lrp_rules(net, method, s)?;
    Lrp::new(net).relevance(
        x,
        target.fixed(x.batch()).as_deref(),
        &rules,
        s.start,
        s.layer_relevance,
    )
}
