//! Modified weights (W⁺, W⁻, W + γW⁺, W², ones, ...) in their own GPU buffers, made once
//! per layer and modifier from the host model; the model is never changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::gpu::{WeightBuffer, WeightLayout};
use crate::graph::Net;
use crate::model::LayerKind;

/// How weights and bias are modified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mod {
    /// W, no bias
    PlainNoBias,
    /// W⁺ (bias b⁺ when `bias`)
    Pos { bias: bool },
    /// W⁻ (bias b⁻ when `bias`)
    Neg { bias: bool },
    /// −W⁺, no bias
    MinusPos,
    /// −W⁻, no bias
    MinusNeg,
    /// W + γW⁺ (bias b + γb⁺); gamma as f32 bits
    GammaPos { gamma: u32, bias: bool },
    /// W + γW⁻ (bias b + γb⁻)
    GammaNeg { gamma: u32, bias: bool },
    /// W², b²
    Square,
    /// all ones, no bias
    Ones,
}

impl Mod {
    fn weight(self, w: f32) -> f32 {
        match self {
            Mod::PlainNoBias => w,
            Mod::Pos { .. } => w.max(0.0),
            Mod::Neg { .. } => w.min(0.0),
            Mod::MinusPos => -w.max(0.0),
            Mod::MinusNeg => -w.min(0.0),
            Mod::GammaPos { gamma, .. } => w + f32::from_bits(gamma) * w.max(0.0),
            Mod::GammaNeg { gamma, .. } => w + f32::from_bits(gamma) * w.min(0.0),
            Mod::Square => w * w,
            Mod::Ones => 1.0,
        }
    }

    /// The modified bias, or None when the modifier drops it.
    fn bias(self, b: f32) -> Option<f32> {
        match self {
            Mod::Pos { bias: true } => Some(b.max(0.0)),
            Mod::Neg { bias: true } => Some(b.min(0.0)),
            Mod::GammaPos { gamma, bias: true } => Some(b + f32::from_bits(gamma) * b.max(0.0)),
            Mod::GammaNeg { gamma, bias: true } => Some(b + f32::from_bits(gamma) * b.min(0.0)),
            Mod::Square => Some(b * b),
            _ => None,
        }
    }
}

/// The cache of modified weight buffers of one network.
#[derive(Default)]
pub struct ModWeights {
    cache: Mutex<HashMap<(usize, Mod, bool), Arc<WeightBuffer>>>,
    /// stacked pairs (`stacked`)
    stacks: Mutex<HashMap<StackKey, Arc<WeightBuffer>>>,
}

/// A stacked pair's layer, and its modifiers with their factors' bits.
type StackKey = (usize, [(Mod, u32); 2]);

impl ModWeights {
    /// Layer `layer`'s weights modified by `m`, for forward and input-gradient GEMMs.
    pub fn get(&self, net: &Net, layer: usize, m: Mod) -> Result<Arc<WeightBuffer>> {
        self.made(net, layer, m, false)
    }

    /// Conv layer `layer`'s weights modified by two modifiers and scaled, stacked as one
    /// conv of twice the output channels, no bias: [c1 m1(W); c2 m2(W)], for one
    /// input-gradient GEMM over both (`ops::conv2d_backward_ratios`; made as `get_backward`
    /// makes its weights).
    pub fn stacked(
        &self,
        net: &Net,
        layer: usize,
        [(m1, c1), (m2, c2)]: [(Mod, f32); 2],
    ) -> Result<Arc<WeightBuffer>> {
        let key = (layer, [(m1, c1.to_bits()), (m2, c2.to_bits())]);
        if let Some(w) = self.stacks.lock().unwrap().get(&key) {
            return Ok(w.clone());
        }
        let l = &net.model().layers[layer];
        let LayerKind::Conv2d { geom, weight, .. } = &l.kind else {
            return Err(crate::Error::Other(format!(
                "layer {} ({}): stacked weights are a conv's",
                l.name,
                l.kind.type_name()
            )));
        };
        host_weights(&l.name, weight)?;
        let w: Vec<f32> = [(m1, c1), (m2, c2)]
            .iter()
            .flat_map(|&(m, c)| weight.iter().map(move |v| c * m.weight(*v)))
            .collect();
        let rows = 2 * geom.cout;
        let buf = Arc::new(WeightBuffer::upload_with(
            net.ctx(),
            &format!("{} {m1:?} {m2:?}", l.name),
            &w,
            rows,
            w.len() / rows,
            None,
            WeightLayout::conv(geom.kernel.0 * geom.kernel.1).backward_only(),
        )?);
        self.stacks.lock().unwrap().insert(key, buf.clone());
        Ok(buf)
    }

    /// As `get`, for input-gradient GEMMs only (`WeightLayout::backward_only`: no forward
    /// packing is made, nor a transposition on the device).
    pub fn get_backward(&self, net: &Net, layer: usize, m: Mod) -> Result<Arc<WeightBuffer>> {
        self.made(net, layer, m, true)
    }

    fn made(&self, net: &Net, layer: usize, m: Mod, backward: bool) -> Result<Arc<WeightBuffer>> {
        let key = (layer, m, backward);
        if let Some(w) = self.cache.lock().unwrap().get(&key) {
            return Ok(w.clone());
        }
        let l = &net.model().layers[layer];
        let (weight, bias, rows, layout) = match &l.kind {
            LayerKind::Conv2d { geom, weight, bias } => (
                weight,
                bias,
                geom.cout,
                WeightLayout::conv(geom.kernel.0 * geom.kernel.1),
            ),
            LayerKind::Linear {
                out_features,
                weight,
                bias,
                ..
            } => (weight, bias, *out_features, WeightLayout::linear()),
            other => {
                return Err(crate::Error::Other(format!(
                    "layer {} ({}) has no weights",
                    l.name,
                    other.type_name()
                )))
            }
        };
        host_weights(&l.name, weight)?;
        let w: Vec<f32> = weight.iter().map(|v| m.weight(*v)).collect();
        let b: Option<Vec<f32>> = match bias {
            Some(b) if m.bias(0.0).is_some() => {
                Some(b.iter().map(|v| m.bias(*v).unwrap_or(0.0)).collect())
            }
            _ => None,
        };
        let layout = if backward {
            layout.backward_only()
        } else {
            layout
        };
        let buf = Arc::new(WeightBuffer::upload_with(
            net.ctx(),
            &format!("{} {m:?}", l.name),
            &w,
            rows,
            w.len() / rows,
            b.as_deref(),
            layout,
        )?);
        self.cache.lock().unwrap().insert(key, buf.clone());
        Ok(buf)
    }
}

/// An error unless layer `name`'s host `weight` copy is kept.
fn host_weights(name: &str, weight: &[f32]) -> Result<()> {
    if weight.is_empty() {
        return Err(crate::Error::Other(format!(
            "layer {name}: LRP makes its modified weights from the host copy of the weights, \
             which this Net released at upload; build it with HostWeights::Keep"
        )));
    }
    Ok(())
}
