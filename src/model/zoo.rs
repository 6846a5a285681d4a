//! torchvision VGG architectures with random weights, for benchmarks and size tests.

use super::{Layer, LayerKind, Model, ModelMeta, Src};
use crate::ops::{Conv2dGeom, Pool2d};

/// torchvision's VGG configurations: channel counts, 0 for 'M' (max-pool).
pub fn vgg_config(depth: u32) -> Option<&'static [usize]> {
    Some(match depth {
        11 => &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        13 => &[
            64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0,
        ],
        16 => &[
            64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
        ],
        19 => &[
            64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512,
            512, 0,
        ],
        _ => return None,
    })
}

struct Rng(u64);
impl Rng {
    /// Uniform in [-a, a).
    fn fill(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
            })
            .collect()
    }
}

/// A torchvision-named VGG (`depth` 11/13/16/19) with uniform Kaiming-scaled random
/// weights and small random biases.
pub fn vgg_random(depth: u32, hidden: usize, classes: usize, seed: u64) -> Option<Model> {
    let cfg = vgg_config(depth)?;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut layers = Vec::new();
    let mut c = 3;
    let mut i = 0;
    let push = |layers: &mut Vec<Layer>, name: String, kind| {
        layers.push(Layer {
            name,
            kind,
            inputs: vec![Src::before(layers.len())],
            folded_bn: None,
            file_weights: None,
        })
    };
    for &v in cfg {
        if v == 0 {
            push(
                &mut layers,
                format!("features.{i}"),
                LayerKind::MaxPool2d(Pool2d::square(2, 2)),
            );
            i += 1;
            continue;
        }
        let geom = Conv2dGeom {
            cin: c,
            cout: v,
            kernel: (3, 3),
            stride: (1, 1),
            padding: (1, 1),
        };
        let a = (6.0 / (c * 9) as f32).sqrt();
        let kind = LayerKind::Conv2d {
            geom,
            weight: rng.fill(v * c * 9, a),
            bias: Some(rng.fill(v, 0.05)),
        };
        push(&mut layers, format!("features.{i}"), kind);
        push(&mut layers, format!("features.{}", i + 1), LayerKind::Relu);
        i += 2;
        c = v;
    }
    push(
        &mut layers,
        "avgpool".into(),
        LayerKind::AdaptiveAvgPool2d((7, 7)),
    );
    push(&mut layers, "flatten".into(), LayerKind::Flatten);
    let widths = [(c * 49, hidden), (hidden, hidden), (hidden, classes)];
    for (k, (fin, fout)) in widths.into_iter().enumerate() {
        let a = (6.0 / fin as f32).sqrt();
        let kind = LayerKind::Linear {
            in_features: fin,
            out_features: fout,
            weight: rng.fill(fin * fout, a),
            bias: Some(rng.fill(fout, 0.05)),
        };
        push(&mut layers, format!("classifier.{}", 3 * k), kind);
        if k < 2 {
            push(
                &mut layers,
                format!("classifier.{}", 3 * k + 1),
                LayerKind::Relu,
            );
            push(
                &mut layers,
                format!("classifier.{}", 3 * k + 2),
                LayerKind::Dropout,
            );
        }
    }
    Some(Model {
        layers,
        meta: ModelMeta {
            arch: format!("vgg{depth}"),
            ..ModelMeta::default()
        },
        in_channels: 3,
    })
}
