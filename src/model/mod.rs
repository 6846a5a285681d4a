//! The host-side model: a VGG-style layer sequence with its weights and metadata.

mod canonize;
mod import;
mod spec;
pub mod zoo;

pub use canonize::fold_batchnorm;
pub use import::{load, load_bytes};
pub use spec::LayerSpec;

use crate::error::{Error, Result};
use crate::ops::{Conv2dGeom, Pool2d};

/// What a layer computes. Weights are row-major in torch's layout.
#[derive(Clone, Debug)]
pub enum LayerKind {
    Conv2d {
        geom: Conv2dGeom,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    /// Eval-mode batch norm; folded into the preceding conv at load.
    BatchNorm2d {
        mean: Vec<f32>,
        var: Vec<f32>,
        gamma: Vec<f32>,
        beta: Vec<f32>,
        eps: f32,
    },
    Relu,
    MaxPool2d(Pool2d),
    AvgPool2d(Pool2d),
    AdaptiveAvgPool2d((usize, usize)),
    Flatten,
    Linear {
        in_features: usize,
        out_features: usize,
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    /// Identity at inference.
    Dropout,
}

impl LayerKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerKind::Conv2d { .. } => "Conv2d",
            LayerKind::BatchNorm2d { .. } => "BatchNorm2d",
            LayerKind::Relu => "ReLU",
            LayerKind::MaxPool2d(_) => "MaxPool2d",
            LayerKind::AvgPool2d(_) => "AvgPool2d",
            LayerKind::AdaptiveAvgPool2d(_) => "AdaptiveAvgPool2d",
            LayerKind::Flatten => "Flatten",
            LayerKind::Linear { .. } => "Linear",
            LayerKind::Dropout => "Dropout",
        }
    }

    pub fn param_count(&self) -> usize {
        match self {
            LayerKind::Conv2d { weight, bias, .. } | LayerKind::Linear { weight, bias, .. } => {
                weight.len() + bias.as_ref().map_or(0, |b| b.len())
            }
            LayerKind::BatchNorm2d { gamma, .. } => 2 * gamma.len(),
            _ => 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Layer {
    /// torchvision module name (`features.0`, `avgpool`, `classifier.6`) or the metadata's.
    pub name: String,
    pub kind: LayerKind,
    /// Set on a conv whose batch norm was folded into it: the BN layer's name. The layer
    /// then outputs what the BN layer did; the conv's own output no longer exists.
    pub folded_bn: Option<String>,
}

/// How inputs are prepared and what the outputs mean.
#[derive(Clone, Debug)]
pub struct ModelMeta {
    pub classes: Option<Vec<String>>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Crop size (h, w) images are brought to.
    pub input_size: (usize, usize),
    /// The shorter side is resized to this before the center crop.
    pub resize: usize,
    pub arch: String,
}

impl Default for ModelMeta {
    fn default() -> Self {
        // torchvision's ImageNet preprocessing
        ModelMeta {
            classes: None,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
            input_size: (224, 224),
            resize: 256,
            arch: "vgg".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Model {
    pub layers: Vec<Layer>,
    pub meta: ModelMeta,
    pub in_channels: usize,
}

impl Model {
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(|l| l.kind.param_count()).sum()
    }

    pub fn num_classes(&self) -> usize {
        self.output_shapes(&[
            1,
            self.in_channels,
            self.meta.input_size.0,
            self.meta.input_size.1,
        ])
        .ok()
        .and_then(|s| s.last().map(|s| s[1..].iter().product()))
        .unwrap_or(0)
    }

    /// The class name of index `i`, or its number.
    pub fn class_name(&self, i: usize) -> String {
        self.meta
            .classes
            .as_ref()
            .and_then(|c| c.get(i).cloned())
            .unwrap_or_else(|| i.to_string())
    }

    /// Index of the layer with this name (a folded BN's name finds its conv).
    pub fn find(&self, name: &str) -> Result<usize> {
        for (i, l) in self.layers.iter().enumerate() {
            if l.folded_bn.as_deref() == Some(name) {
                return Ok(i);
            }
            if l.name == name {
                if let Some(bn) = &l.folded_bn {
                    return Err(Error::Other(format!(
                        "layer {name}'s own output is not computed: batch norm {bn} is folded into it; capture {bn} instead"
                    )));
                }
                return Ok(i);
            }
        }
        let names: Vec<&str> = self
            .layers
            .iter()
            .map(|l| l.folded_bn.as_deref().unwrap_or(&l.name))
            .collect();
        Err(Error::Other(format!(
            "no layer named '{name}'; layers are: {}",
            names.join(", ")
        )))
    }

    /// The name under which a layer's output is captured.
    pub fn output_name(&self, i: usize) -> &str {
        let l = &self.layers[i];
        l.folded_bn.as_deref().unwrap_or(&l.name)
    }

    /// Each layer's output shape for an input shape, or an error naming the layer that
    /// cannot take it.
    pub fn output_shapes(&self, input: &[usize]) -> Result<Vec<Vec<usize>>> {
        let mut shape = input.to_vec();
        let mut out = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            shape = layer_output(l, &shape).map_err(|e| {
                Error::Shape(format!("layer {} ({}): {e}", l.name, l.kind.type_name()))
            })?;
            out.push(shape.clone());
        }
        Ok(out)
    }
}

fn layer_output(l: &Layer, s: &[usize]) -> std::result::Result<Vec<usize>, String> {
    let nchw = || -> std::result::Result<[usize; 4], String> {
        match s {
            [n, c, h, w] => Ok([*n, *c, *h, *w]),
            _ => Err(format!("expects an NCHW input, got {s:?}")),
        }
    };
    Ok(match &l.kind {
        LayerKind::Conv2d { geom, .. } => {
            let [n, c, h, w] = nchw()?;
            if c != geom.cin {
                return Err(format!("expects {} input channels, got {c}", geom.cin));
            }
            let (oh, ow) = geom.out_hw(h, w).map_err(|e| e.to_string())?;
            vec![n, geom.cout, oh, ow]
        }
        LayerKind::BatchNorm2d { mean, .. } => {
            let [_, c, _, _] = nchw()?;
            if c != mean.len() {
                return Err(format!("expects {} channels, got {c}", mean.len()));
            }
            s.to_vec()
        }
        LayerKind::Relu | LayerKind::Dropout => s.to_vec(),
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => {
            let [n, c, h, w] = nchw()?;
            let (oh, ow) = p.out_hw(h, w).map_err(|e| e.to_string())?;
            vec![n, c, oh, ow]
        }
        LayerKind::AdaptiveAvgPool2d((oh, ow)) => {
            let [n, c, _, _] = nchw()?;
            vec![n, c, *oh, *ow]
        }
        LayerKind::Flatten => vec![s[0], s[1..].iter().product()],
        LayerKind::Linear {
            in_features,
            out_features,
            ..
        } => match s {
            [n, k] if k == in_features => vec![*n, *out_features],
            _ => return Err(format!("expects [N, {in_features}], got {s:?}")),
        },
    })
}
