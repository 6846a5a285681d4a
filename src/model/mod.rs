//! The host-side model: layers with their weights, each naming the outputs it reads (a
//! VGG is a plain sequence; residual sums make a DAG), and preprocessing metadata.

mod canonize;
mod file_weights;
mod import;
mod spec;
pub mod zoo;

pub use canonize::fold_batchnorm;
pub use file_weights::FileWeights;
pub use import::{frame, load, load_bytes, load_deferred};
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
    /// The element-wise sum of two or more inputs of one shape (a residual connection).
    Add,
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
            LayerKind::Add => "Add",
        }
    }

    /// Parameters by the layer's shape (the same whether or not a `Net` released the host
    /// copy of its weights).
    pub fn param_count(&self) -> usize {
        let bias = |b: &Option<Vec<f32>>| b.as_ref().map_or(0, |b| b.len());
        match self {
            LayerKind::Conv2d { geom, bias: b, .. } => {
                geom.cout * geom.cin * geom.kernel.0 * geom.kernel.1 + bias(b)
            }
            LayerKind::Linear {
                in_features,
                out_features,
                bias: b,
                ..
            } => in_features * out_features + bias(b),
            LayerKind::BatchNorm2d { gamma, .. } => 2 * gamma.len(),
            _ => 0,
        }
    }
}

/// Where a layer's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// The network's input.
    Input,
    /// The output of the layer with this index (always an earlier layer).
    Layer(usize),
}

impl Src {
    /// The source of layer `i`'s input in a plain sequence: the layer before it.
    pub fn before(i: usize) -> Src {
        i.checked_sub(1).map_or(Src::Input, Src::Layer)
    }
}

#[derive(Clone, Debug)]
pub struct Layer {
    /// torchvision module name (`features.0`, `avgpool`, `classifier.6`) or the metadata's.
    pub name: String,
    pub kind: LayerKind,
    /// The outputs this layer reads, in order: one for every kind but `Add`. Layers are
    /// stored in an order where every input comes earlier (a topological order).
    pub inputs: Vec<Src>,
    /// Set on a conv whose batch norm was folded into it: the BN layer's name. The layer
    /// then outputs what the BN layer did; the conv's own output no longer exists.
    pub folded_bn: Option<String>,
    /// A linear layer's weights left in the model file by `load_deferred` (`kind`'s
    /// `weight` is then empty until `resolve` or `Net::upload` reads them).
    pub file_weights: Option<FileWeights>,
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

impl Layer {
    /// Reads weights `load_deferred` left in the file into `kind` (nothing to do for any
    /// other layer).
    pub fn resolve(&mut self) -> Result<()> {
        if let Some(fw) = self.file_weights.take() {
            if let LayerKind::Conv2d { weight, .. } | LayerKind::Linear { weight, .. } =
                &mut self.kind
            {
                *weight = fw.read_all()?;
            }
        }
        Ok(())
    }
}

impl Model {
    /// Reads every weight `load_deferred` left in the file: the model is then what `load`
    /// gives.
    pub fn resolve(&mut self) -> Result<()> {
        self.layers.iter_mut().try_for_each(Layer::resolve)
    }

    /// Checks every weight `load_deferred` left in the file as `load` would, a piece at a
    /// time, without reading it into the model.
    pub fn check_file_weights(&self) -> Result<()> {
        let mut file = self.layers.iter().filter_map(|l| l.file_weights.as_ref());
        file.try_for_each(FileWeights::check)
    }

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

    /// Index of the layer with this name (a folded BN's name finds its conv), or of a torch
    /// container's last numbered child (`layer4` finds `layer4.2`).
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
        // a torch container (`layer4`, `features`) outputs what its last numbered child
        // does: the block `layer4.2`, the layer `features.30`
        let child = |i: &usize| {
            let rest = self.output_name(*i).strip_prefix(name)?.strip_prefix('.')?;
            rest.parse::<usize>().ok()
        };
        if let Some(i) = (0..self.layers.len())
            .max_by_key(|i| child(i))
            .filter(|i| child(i).is_some())
        {
            return Ok(i);
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

    /// The name of what `src` holds: `input`, or the layer's output name.
    pub fn src_name(&self, src: Src) -> &str {
        match src {
            Src::Input => "input",
            Src::Layer(j) => self.output_name(j),
        }
    }

    /// Each layer's output shape for an input shape, or an error naming the layer that
    /// cannot take it.
    pub fn output_shapes(&self, input: &[usize]) -> Result<Vec<Vec<usize>>> {
        self.output_shapes_through(input, self.layers.len().saturating_sub(1))
    }

    /// As `output_shapes`, for layers 0 ..= `last` only (later ones may not take them).
    pub fn output_shapes_through(&self, input: &[usize], last: usize) -> Result<Vec<Vec<usize>>> {
        self.check_graph()?;
        let mut out: Vec<Vec<usize>> = Vec::with_capacity(self.layers.len());
        for l in self.layers.iter().take(last + 1) {
            let ins: Vec<&[usize]> = l
                .inputs
                .iter()
                .map(|s| match *s {
                    Src::Input => input,
                    Src::Layer(j) => &out[j][..],
                })
                .collect();
            let shape = layer_output(l, &ins).map_err(|e| {
                Error::Shape(format!("layer {} ({}): {e}", l.name, l.kind.type_name()))
            })?;
            out.push(shape);
        }
        Ok(out)
    }

    /// The shape of what `src` holds, given every layer's output shape.
    pub fn src_shape<'a>(src: Src, input: &'a [usize], shapes: &'a [Vec<usize>]) -> &'a [usize] {
        match src {
            Src::Input => input,
            Src::Layer(j) => &shapes[j],
        }
    }

    /// Checks the wiring: every input is an earlier layer or the network input, `Add`
    /// takes two or more, every other kind exactly one.
    pub fn check_graph(&self) -> Result<()> {
        for (i, l) in self.layers.iter().enumerate() {
            let arity_ok = match l.kind {
                LayerKind::Add => l.inputs.len() >= 2,
                _ => l.inputs.len() == 1,
            };
            if !arity_ok {
                return Err(Error::Other(format!(
                    "layer {} ({}) has {} inputs; an add takes two or more, every other layer one",
                    l.name,
                    l.kind.type_name(),
                    l.inputs.len()
                )));
            }
            if let Some(Src::Layer(j)) = l
                .inputs
                .iter()
                .find(|s| matches!(s, Src::Layer(j) if *j >= i))
            {
                let what = self
                    .layers
                    .get(*j)
                    .map_or("a missing layer", |o| o.name.as_str());
                return Err(Error::Other(format!(
                    "layer {} reads {what}, which does not come before it; list layers so that every input comes first",
                    l.name
                )));
            }
        }
        Ok(())
    }

    /// Whether every layer reads the one before it (a plain sequence, like VGG).
    pub fn is_sequential(&self) -> bool {
        self.layers
            .iter()
            .enumerate()
            .all(|(i, l)| l.inputs == [Src::before(i)])
    }

    /// The layers that read each layer's output, in order.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.layers.len()];
        for (i, l) in self.layers.iter().enumerate() {
            for s in &l.inputs {
                if let Src::Layer(j) = *s {
                    if !out[j].contains(&i) {
                        out[j].push(i);
                    }
                }
            }
        }
        out
    }

    /// Removes layer `i`, whose readers read `to` instead (a folded batch norm's readers
    /// read its conv); later indices shift down by one.
    pub(crate) fn remove_layer(&mut self, i: usize, to: Src) {
        self.layers.remove(i);
        for l in &mut self.layers {
            for s in &mut l.inputs {
                *s = match *s {
                    Src::Layer(j) if j == i => to,
                    Src::Layer(j) if j > i => Src::Layer(j - 1),
                    other => other,
                };
            }
        }
    }
}

fn layer_output(l: &Layer, ins: &[&[usize]]) -> std::result::Result<Vec<usize>, String> {
    let s = ins[0];
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
        LayerKind::Add => {
            if let Some(o) = ins.iter().find(|o| **o != s) {
                return Err(format!("adds inputs of different shapes, {s:?} and {o:?}"));
            }
            s.to_vec()
        }
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
