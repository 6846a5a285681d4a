//! torchvision VGG and ResNet architectures with random weights, for benchmarks and size
//! tests.

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

/// torchvision's ResNet block counts and whether its blocks are Bottlenecks.
pub fn resnet_config(depth: u32) -> Option<([usize; 4], bool)> {
    Some(match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        152 => ([3, 8, 36, 3], true),
        _ => return None,
    })
}

/// A torchvision ResNet (`depth` 18/34/50/101/152) with uniform Kaiming-scaled random
/// weights and random batch-norm statistics, made as a state dict under torchvision's
/// names and loaded through the importer (`import/resnet.rs`), batch norms folded.
pub fn resnet_random(depth: u32, classes: usize, seed: u64) -> Option<Model> {
    let (blocks, deep) = resnet_config(depth)?;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut conv = |t: &mut Vec<_>, name: &str, cout: usize, cin: usize, k: usize| {
        let a = (6.0 / (cin * k * k) as f32).sqrt();
        t.push((
            format!("{name}.weight"),
            vec![cout, cin, k, k],
            rng.fill(cout * cin * k * k, a),
        ));
    };
    let mut stats = Rng((seed ^ 0xB5).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut bn = |t: &mut Vec<(String, Vec<usize>, Vec<f32>)>, name: &str, c: usize| {
        let gamma = stats.fill(c, 0.2).iter().map(|v| 1.0 + v).collect();
        let var = stats.fill(c, 0.25).iter().map(|v| 0.75 + v).collect();
        t.push((format!("{name}.weight"), vec![c], gamma));
        t.push((format!("{name}.bias"), vec![c], stats.fill(c, 0.1)));
        t.push((format!("{name}.running_mean"), vec![c], stats.fill(c, 0.2)));
        t.push((format!("{name}.running_var"), vec![c], var));
    };
    conv(&mut tensors, "conv1", 64, 3, 7);
    bn(&mut tensors, "bn1", 64);
    let mut inplanes = 64;
    for (s, &n) in blocks.iter().enumerate() {
        let planes = 64 << s;
        let out = if deep { 4 * planes } else { planes };
        for b in 0..n {
            let p = format!("layer{}.{b}", s + 1);
            if deep {
                conv(&mut tensors, &format!("{p}.conv1"), planes, inplanes, 1);
                bn(&mut tensors, &format!("{p}.bn1"), planes);
                conv(&mut tensors, &format!("{p}.conv2"), planes, planes, 3);
                bn(&mut tensors, &format!("{p}.bn2"), planes);
                conv(&mut tensors, &format!("{p}.conv3"), out, planes, 1);
                bn(&mut tensors, &format!("{p}.bn3"), out);
            } else {
                conv(&mut tensors, &format!("{p}.conv1"), planes, inplanes, 3);
                bn(&mut tensors, &format!("{p}.bn1"), planes);
                conv(&mut tensors, &format!("{p}.conv2"), planes, planes, 3);
                bn(&mut tensors, &format!("{p}.bn2"), planes);
            }
            if b == 0 && (s > 0 || inplanes != out) {
                conv(&mut tensors, &format!("{p}.downsample.0"), out, inplanes, 1);
                bn(&mut tensors, &format!("{p}.downsample.1"), out);
            }
            inplanes = out;
        }
    }
    let a = (6.0 / inplanes as f32).sqrt();
    tensors.push((
        "fc.weight".into(),
        vec![classes, inplanes],
        rng.fill(classes * inplanes, a),
    ));
    tensors.push(("fc.bias".into(), vec![classes], rng.fill(classes, 0.05)));
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, s, v)| (k, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, s, d)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                .expect("shapes match their data");
            (k.clone(), v)
        })
        .collect();
    let file = safetensors::serialize(views, None).ok()?;
    let mut m = super::load_bytes(&file, &format!("resnet{depth}")).ok()?;
    m.meta.arch = format!("resnet{depth}");
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The random ResNets have torchvision's shapes: its parameter counts less one per
    /// batch-norm channel (a folded batch norm leaves a bias where it had a weight and a
    /// bias), as `netlens info` counts a torchvision export.
    #[test]
    fn random_resnets_have_torchvision_shapes() {
        for (depth, params) in [(18, 11_689_512 - 4_800), (50, 25_557_032 - 26_560)] {
            let m = resnet_random(depth, 1000, 1).unwrap();
            assert_eq!(m.meta.arch, format!("resnet{depth}"));
            assert_eq!(m.param_count(), params, "resnet{depth}");
            let shapes = m.output_shapes(&[1, 3, 224, 224]).unwrap();
            assert_eq!(shapes.last().unwrap(), &[1, 1000]);
        }
        assert!(resnet_random(20, 10, 1).is_none());
    }
}
