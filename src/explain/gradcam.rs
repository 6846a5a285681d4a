//! Grad-CAM and guided Grad-CAM (Captum's LayerGradCam / GuidedGradCam).

use super::resample::{resize, Upsample};
use super::{run_gradients, Attribution, Target};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::graph::Net;
use crate::model::LayerKind;
use crate::ops::ReluRule;

/// The default Grad-CAM layer: the ReLU after the last conv (or the last conv).
pub fn default_layer(net: &Net) -> Result<usize> {
    let layers = &net.model().layers;
    let conv = layers
        .iter()
        .rposition(|l| matches!(l.kind, LayerKind::Conv2d { .. }))
        .ok_or_else(|| Error::Other("the model has no conv layer for Grad-CAM".into()))?;
    Ok(
        if matches!(layers.get(conv + 1).map(|l| &l.kind), Some(LayerKind::Relu)) {
            conv + 1
        } else {
            conv
        },
    )
}

/// Channel weights = spatial mean of the layer gradient; map = Σ_c w_c A_c, [N, 1, h, w]
/// at the layer's resolution; ReLU only when asked (Captum's default: none).
pub fn layer_cam(act: &Array, grad: &Array, relu: bool) -> Result<Array> {
    if act.shape.len() != 4 || act.shape != grad.shape {
        return Err(Error::Other(format!(
            "Grad-CAM needs a conv-shaped layer output, got {:?}",
            act.shape
        )));
    }
    let [n, c, h, w] = [act.shape[0], act.shape[1], act.shape[2], act.shape[3]];
    let plane = h * w;
    let mut out = vec![0f32; n * plane];
    for b in 0..n {
        for ch in 0..c {
            let base = (b * c + ch) * plane;
            let wgt = grad.data[base..base + plane]
                .iter()
                .map(|v| *v as f64)
                .sum::<f64>()
                / plane as f64;
            for i in 0..plane {
                out[b * plane + i] += (wgt * act.data[base + i] as f64) as f32;
            }
        }
    }
    if relu {
        out.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    Array::new(vec![n, 1, h, w], out)
}

/// Grad-CAM at layer index `layer`, upsampled to the input size.
pub fn grad_cam(
    net: &Net,
    x: &Array,
    target: &Target,
    layer: usize,
    relu: bool,
    up: Upsample,
) -> Result<Attribution> {
    let t = target.resolve(net, x)?;
    let r = run_gradients(
        net,
        x,
        Some(&t),
        ReluRule::Gradient,
        Some(layer),
        &indicatif::ProgressBar::hidden(),
    )?;
    let (act, grad) = r.layer.expect("layer requested");
    let cam = layer_cam(&act, &grad, relu)?;
    Ok(Attribution {
        map: resize(&cam, x.shape[2], x.shape[3], up),
        targets: t,
    })
}

/// Guided Grad-CAM: guided backprop ⊙ upsampled Grad-CAM (with ReLU, as Captum).
pub fn guided_grad_cam(
    net: &Net,
    x: &Array,
    target: &Target,
    layer: usize,
    up: Upsample,
) -> Result<Attribution> {
    let t = target.resolve(net, x)?;
    let cam = grad_cam(net, x, &Target::Each(t.clone()), layer, true, up)?;
    let gb = run_gradients(
        net,
        x,
        Some(&t),
        ReluRule::Guided,
        None,
        &indicatif::ProgressBar::hidden(),
    )?;
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let mut map = gb.grad;
    for b in 0..n {
        for ch in 0..c {
            for i in 0..h * w {
                map.data[(b * c + ch) * h * w + i] *= cam.map.data[b * h * w + i];
            }
        }
    }
    Ok(Attribution { map, targets: t })
}
