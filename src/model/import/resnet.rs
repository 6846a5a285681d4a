//! torchvision's ResNets by their state-dict names: the stem (`conv1`, `bn1`, ReLU, a 3×3
//! stride-2 max-pool), `layer1`–`layer4` of BasicBlocks or Bottlenecks (stride 2 on the
//! first block of `layer2`–`layer4`, on its 3×3 conv), `avgpool` to 1×1, `fc`. Widths and
//! block counts come from the tensors (resnet18–152, wide_resnet50_2/101_2, and narrower
//! ones); grouped convolutions (ResNeXt) are refused.

use super::{batchnorm, conv, indexed, layer, linear, Tensors};
use crate::error::{Error, Result};
use crate::model::{Layer, LayerKind, Src};
use crate::ops::Pool2d;

/// Whether the tensors name a torchvision ResNet: a `conv1` stem and `layer1` blocks.
pub(super) fn looks_like(t: &Tensors) -> bool {
    t.map.contains_key("conv1.weight") && t.map.keys().any(|k| k.starts_with("layer1."))
}

/// The layers of a torchvision ResNet and its name (`resnet50`, or `resnet` for block
/// counts torchvision does not name). Each block's layers are named after its tensors
/// (`layer2.0.conv1`, `layer2.0.bn1`, `layer2.0.downsample.0`, ...); its ReLUs
/// `layerL.B.relu1`, `layerL.B.relu2`, its sum `layerL.B.add`, and the ReLU after the sum,
/// the block's output, `layerL.B`, as torchvision's module of that name.
pub(super) fn torchvision_resnet(t: &mut Tensors) -> Result<(Vec<Layer>, String)> {
    const PARTS: [&str; 7] = [
        "conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.", "fc.",
    ];
    if let Some(name) = t
        .map
        .keys()
        .filter(|k| !PARTS.iter().any(|p| k.starts_with(p)))
        .min()
    {
        return Err(Error::model(
            &t.path,
            format!(
                "tensor '{name}' is not part of a torchvision ResNet (conv1, bn1, layer1-layer4, fc); \
                 describe other networks with the 'netlens' metadata key (see README)"
            ),
        ));
    }
    let mut b = Builder {
        t,
        layers: Vec::new(),
    };
    let stem = b.conv_bn("conv1", "bn1", (2, 2), Src::Input)?;
    if b.kernel(stem) != (7, 7) {
        return Err(Error::model(
            &b.t.path,
            format!(
                "conv1 is {}; a torchvision ResNet's stem is a 7x7 conv",
                size(b.kernel(stem))
            ),
        ));
    }
    let relu = b.push("relu", LayerKind::Relu, vec![stem]);
    let pool = Pool2d {
        padding: (1, 1),
        ..Pool2d::square(3, 2)
    };
    let mut x = b.push("maxpool", LayerKind::MaxPool2d(pool), vec![relu]);
    let mut channels = b.conv_of(stem).cout;
    let mut counts = Vec::new();
    let mut bottleneck = None;
    for stage in 1..=4 {
        let blocks = indexed(b.t, &format!("layer{stage}."))?;
        let n = blocks.len();
        if n == 0 || blocks.keys().copied().ne(0..n) {
            return Err(Error::model(
                &b.t.path,
                format!(
                    "layer{stage} must hold blocks 0, 1, ... (found {:?})",
                    blocks.keys().collect::<Vec<_>>()
                ),
            ));
        }
        for (i, fields) in &blocks {
            let deep = fields.contains("conv3.weight");
            if *bottleneck.get_or_insert(deep) != deep {
                return Err(Error::model(
                    &b.t.path,
                    format!("layer{stage}.{i} mixes BasicBlocks and Bottlenecks (conv3 only in some blocks)"),
                ));
            }
            let stride = if stage > 1 && *i == 0 { 2 } else { 1 };
            (x, channels) = b.block(&format!("layer{stage}.{i}"), deep, stride, (x, channels))?;
        }
        counts.push(n);
    }
    let pooled = b.push("avgpool", LayerKind::AdaptiveAvgPool2d((1, 1)), vec![x]);
    let flat = b.push("flatten", LayerKind::Flatten, vec![pooled]);
    let fc = linear(b.t, "fc")?;
    if let LayerKind::Linear { in_features, .. } = fc {
        if in_features != channels {
            return Err(Error::model(
                &b.t.path,
                format!("fc takes {in_features} features; layer4 gives {channels} channels"),
            ));
        }
    }
    b.push("fc", fc, vec![flat]);
    let arch = match (bottleneck == Some(true), counts.as_slice()) {
        (false, [2, 2, 2, 2]) => "resnet18",
        (false, [3, 4, 6, 3]) => "resnet34",
        (true, [3, 4, 6, 3]) => "resnet50",
        (true, [3, 4, 23, 3]) => "resnet101",
        (true, [3, 8, 36, 3]) => "resnet152",
        _ => "resnet",
    };
    Ok((b.layers, arch.to_string()))
}

struct Builder<'a> {
    t: &'a mut Tensors,
    layers: Vec<Layer>,
}

impl Builder<'_> {
    /// Appends a layer reading `inputs`; its output as a source.
    fn push(&mut self, name: &str, kind: LayerKind, inputs: Vec<Src>) -> Src {
        let mut l = layer(name, kind);
        l.inputs = inputs;
        self.layers.push(l);
        Src::Layer(self.layers.len() - 1)
    }

    /// The conv of `conv_bn`'s output `s` (its batch norm's conv, the layer before it).
    fn conv_of(&self, s: Src) -> &crate::ops::Conv2dGeom {
        match (s, &self.layers[..]) {
            (Src::Layer(i), l) if i > 0 => match &l[i - 1].kind {
                LayerKind::Conv2d { geom, .. } => geom,
                _ => unreachable!("a batch norm follows its conv"),
            },
            _ => unreachable!("a batch norm's output"),
        }
    }

    fn kernel(&self, s: Src) -> (usize, usize) {
        self.conv_of(s).kernel
    }

    /// Conv `name` (no bias in torchvision's ResNets, but one is read if present; padding
    /// half its kernel) and its batch norm `bn`, reading `x`; the batch norm's output.
    fn conv_bn(&mut self, name: &str, bn: &str, stride: (usize, usize), x: Src) -> Result<Src> {
        let probe = conv(self.t, name, stride, (0, 0), None)?;
        let LayerKind::Conv2d {
            mut geom,
            weight,
            bias,
        } = probe
        else {
            unreachable!("conv gives a conv")
        };
        geom.padding = (geom.kernel.0 / 2, geom.kernel.1 / 2);
        let c = self.push(name, LayerKind::Conv2d { geom, weight, bias }, vec![x]);
        let kind = batchnorm(self.t, bn, geom.cout, 1e-5)?;
        Ok(self.push(bn, kind, vec![c]))
    }

    /// Block `p` (a Bottleneck with `deep`) reading `x` of `input` channels: its output
    /// and channels.
    fn block(
        &mut self,
        p: &str,
        deep: bool,
        stride: usize,
        (x, input): (Src, usize),
    ) -> Result<(Src, usize)> {
        let s = (stride, stride);
        // BasicBlock: 3x3 (stride), 3x3; Bottleneck: 1x1, 3x3 (stride), 1x1
        let (s1, k1) = if deep { ((1, 1), (1, 1)) } else { (s, (3, 3)) };
        let a = self.conv_bn(&format!("{p}.conv1"), &format!("{p}.bn1"), s1, x)?;
        let r1 = self.push(&format!("{p}.relu1"), LayerKind::Relu, vec![a]);
        let b = self.conv_bn(
            &format!("{p}.conv2"),
            &format!("{p}.bn2"),
            if deep { s } else { (1, 1) },
            r1,
        )?;
        let mut shapes = vec![("conv1", a, k1), ("conv2", b, (3, 3))];
        let main = if deep {
            let r2 = self.push(&format!("{p}.relu2"), LayerKind::Relu, vec![b]);
            let c = self.conv_bn(&format!("{p}.conv3"), &format!("{p}.bn3"), (1, 1), r2)?;
            shapes.push(("conv3", c, (1, 1)));
            c
        } else {
            b
        };
        let mut reads = input;
        for (name, out, k) in shapes {
            let g = self.conv_of(out);
            if g.kernel != k {
                return Err(Error::model(
                    &self.t.path,
                    format!(
                        "{p}.{name} is {}; a torchvision {} has {} there",
                        size(g.kernel),
                        kind(deep),
                        size(k)
                    ),
                ));
            }
            if g.cin != reads {
                return Err(Error::model(
                    &self.t.path,
                    format!(
                        "{p}.{name} takes {} channels where {reads} reach it (grouped \
                         convolutions, as in ResNeXt, are not supported)",
                        g.cin
                    ),
                ));
            }
            reads = g.cout;
        }
        let (identity, shortcut) = if self.t.map.contains_key(&format!("{p}.downsample.0.weight")) {
            let d = self.conv_bn(
                &format!("{p}.downsample.0"),
                &format!("{p}.downsample.1"),
                s,
                x,
            )?;
            if self.kernel(d) != (1, 1) {
                return Err(Error::model(
                    &self.t.path,
                    format!(
                        "{p}.downsample.0 is {}; torchvision's shortcut is a 1x1 conv",
                        size(self.kernel(d))
                    ),
                ));
            }
            (d, self.conv_of(d).cout)
        } else {
            (x, input)
        };
        if shortcut != reads {
            return Err(Error::model(
                &self.t.path,
                format!("{p}: its shortcut gives {shortcut} channels and its last conv {reads}"),
            ));
        }
        let sum = self.push(&format!("{p}.add"), LayerKind::Add, vec![main, identity]);
        Ok((self.push(p, LayerKind::Relu, vec![sum]), reads))
    }
}

fn kind(deep: bool) -> &'static str {
    if deep {
        "Bottleneck"
    } else {
        "BasicBlock"
    }
}

fn size((h, w): (usize, usize)) -> String {
    format!("{h}x{w}")
}
