//! A whole network on the CPU, composed of the reference kernels: the ground truth for
//! device-resident loops (forward, objective, backward, update), layer by layer.

use super::*;
use crate::model::{LayerKind, Model, Src};

/// What a CPU forward pass keeps for the backward one: every layer's first input and
/// shape (an add's inputs all have that shape).
pub struct Trace {
    inputs: Vec<(Vec<f32>, Vec<usize>)>,
    argmax: Vec<Option<(Vec<u32>, usize)>>,
    /// The last layer's output and shape.
    pub out: (Vec<f32>, Vec<usize>),
}

fn dims4(s: &[usize]) -> [usize; 4] {
    [s[0], s[1], s[2], s[3]]
}

/// The model's forward pass on x (shape `dims`), through every layer.
pub fn forward(model: &Model, x: &[f32], dims: &[usize]) -> Trace {
    let mut outs: Vec<(Vec<f32>, Vec<usize>)> = Vec::new();
    let (mut cur, mut shape) = (x.to_vec(), dims.to_vec());
    let mut inputs = Vec::new();
    let mut argmax = Vec::new();
    let get = |outs: &[(Vec<f32>, Vec<usize>)], s: Src| match s {
        Src::Input => (x.to_vec(), dims.to_vec()),
        Src::Layer(j) => outs[j].clone(),
    };
    for l in &model.layers {
        (cur, shape) = get(&outs, l.inputs[0]);
        inputs.push((cur.clone(), shape.clone()));
        let mut arg = None;
        (cur, shape) = match &l.kind {
            LayerKind::Conv2d { geom, weight, bias } => {
                let (y, oh, ow) = conv2d(&cur, dims4(&shape), weight, bias.as_deref(), geom, false);
                (y, vec![shape[0], geom.cout, oh, ow])
            }
            LayerKind::Linear {
                out_features,
                weight,
                bias,
                ..
            } => {
                let y = linear(
                    &cur,
                    shape[0],
                    weight,
                    bias.as_deref(),
                    *out_features,
                    false,
                );
                (y, vec![shape[0], *out_features])
            }
            LayerKind::Relu => (relu(&cur), shape),
            LayerKind::MaxPool2d(p) => {
                let (y, a, oh, ow) = max_pool2d(&cur, dims4(&shape), p);
                arg = Some((a, oh * ow));
                (y, vec![shape[0], shape[1], oh, ow])
            }
            LayerKind::AvgPool2d(p) => {
                let (y, oh, ow) = avg_pool2d(&cur, dims4(&shape), p);
                (y, vec![shape[0], shape[1], oh, ow])
            }
            LayerKind::AdaptiveAvgPool2d(o) => {
                let y = adaptive_avg_pool2d(&cur, dims4(&shape), *o);
                (y, vec![shape[0], shape[1], o.0, o.1])
            }
            LayerKind::Flatten => {
                let f = shape[1..].iter().product();
                (cur, vec![shape[0], f])
            }
            LayerKind::Dropout => (cur, shape),
            LayerKind::Add => {
                for s in &l.inputs[1..] {
                    let (other, _) = get(&outs, *s);
                    cur.iter_mut().zip(&other).for_each(|(a, b)| *a += b);
                }
                (cur, shape)
            }
            LayerKind::BatchNorm2d { .. } => panic!("fold batch norms first (model::load does)"),
        };
        argmax.push(arg);
        outs.push((cur.clone(), shape.clone()));
    }
    Trace {
        inputs,
        argmax,
        out: (cur, shape),
    }
}

/// d(seed . output) / d input: the gradient walk over a trace.
pub fn backward(model: &Model, trace: &Trace, seed: &[f32]) -> Vec<f32> {
    let n = model.layers.len();
    let mut gs: Vec<Option<Vec<f32>>> = vec![None; n];
    gs[n - 1] = Some(seed.to_vec());
    let mut g_input: Option<Vec<f32>> = None;
    for (i, l) in model.layers.iter().enumerate().rev() {
        let Some(g) = gs[i].take() else { continue };
        let (x, shape) = &trace.inputs[i];
        let g = match &l.kind {
            LayerKind::Conv2d { geom, weight, .. } => {
                conv2d_backward_input(&g, dims4(shape), weight, geom)
            }
            LayerKind::Linear {
                out_features,
                weight,
                ..
            } => linear_backward_input(&g, shape[0], weight, *out_features),
            LayerKind::Relu => relu_backward(&relu(x), &g, 0),
            LayerKind::MaxPool2d(_) => {
                let (a, plane) = trace.argmax[i].as_ref().expect("max-pool argmax");
                max_pool2d_backward(&g, a, dims4(shape), *plane)
            }
            LayerKind::AvgPool2d(p) => avg_pool2d_backward(&g, dims4(shape), p),
            LayerKind::AdaptiveAvgPool2d(o) => adaptive_avg_pool2d_backward(&g, dims4(shape), *o),
            LayerKind::Flatten | LayerKind::Dropout | LayerKind::Add => g,
            LayerKind::BatchNorm2d { .. } => panic!("fold batch norms first"),
        };
        for s in &l.inputs {
            let slot = match *s {
                Src::Input => &mut g_input,
                Src::Layer(j) => &mut gs[j],
            };
            match slot {
                Some(acc) => acc.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                None => *slot = Some(g.clone()),
            }
        }
    }
    g_input.unwrap_or_else(|| vec![0.0; trace.inputs[0].0.len()])
}

/// Log-softmax of row `r`'s target and its seed (onehot - p), per row of [N, K] logits.
pub fn log_prob(logits: &[f32], k: usize, targets: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut values = Vec::new();
    let mut seed = vec![0f32; logits.len()];
    for (r, &t) in targets.iter().enumerate() {
        let row = &logits[r * k..(r + 1) * k];
        let m = row.iter().fold(f64::MIN, |a, v| a.max(*v as f64));
        let total: f64 = row.iter().map(|v| (*v as f64 - m).exp()).sum();
        values.push((row[t] as f64 - m - total.ln()) as f32);
        for j in 0..k {
            let p = (row[j] as f64 - m).exp() / total;
            seed[r * k + j] = ((if j == t { 1.0 } else { 0.0 }) - p) as f32;
        }
    }
    (values, seed)
}
