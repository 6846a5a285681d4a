//! Grad-CAM and guided Grad-CAM (Captum's LayerGradCam / GuidedGradCam).

use super::resample::Upsample;
use super::{run_gradients, Attribution, Target};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::gpu::{read_all, Recorder};
use crate::graph::stream::passes;
use crate::graph::{Keep, Net};
use crate::model::LayerKind;
use crate::ops::objective::{argmax_objective, objective, Objective, Targets};
use crate::ops::{self, ReluRule};

/// The default Grad-CAM layer: the ReLU after the last conv (or the last conv); where
/// that conv feeds a residual sum, the sum's ReLU (a torchvision ResNet's `layer4`).
pub fn default_layer(net: &Net) -> Result<usize> {
    let layers = &net.model().layers;
    let mut at = layers
        .iter()
        .rposition(|l| matches!(l.kind, LayerKind::Conv2d { .. }))
        .ok_or_else(|| Error::Other("the model has no conv layer for Grad-CAM".into()))?;
    // on through its ReLU, and through a residual sum and the ReLU after it
    while let [next] = net.consumers()[at][..] {
        if !matches!(layers[next].kind, LayerKind::Relu | LayerKind::Add) {
            break;
        }
        at = next;
    }
    Ok(at)
}

/// Grad-CAM at layer index `layer`, upsampled to the input size, on the device: the
/// backward walk stops at the layer, the channel weights (spatial means of its gradient),
/// the weighted sum of its channels and the upsampling run as kernels; one read per pass.
pub fn grad_cam(
    net: &Net,
    x: &Array,
    target: &Target,
    layer: usize,
    relu: bool,
    up: Upsample,
) -> Result<Attribution> {
    x.check_finite()?;
    // given targets, or each item's argmax found on the device in the same pass
    let fixed = target.fixed(x.batch());
    let ctx = net.ctx();
    let last = net.model().layers.len() - 1;
    if layer > last {
        return Err(Error::Other(format!("layer {layer} does not exist")));
    }
    let size = (x.shape[2], x.shape[3]);
    // an item too large for the device: its first layers in row bands
    let bands = net.bands(&x.shape)?;
    let chunk = match &bands {
        Some(b) => {
            net.check_after_bands(b, &x.shape, &[layer], "--layer")?;
            1
        }
        None => net.tape_batch(&x.shape)?,
    };
    let parts = passes(x.batch(), chunk, &indicatif::ProgressBar::hidden(), |r| {
        let part = x.slice_batch(r.start, r.end);
        let mut rec = Recorder::new(ctx, "grad-cam");
        let keep = Keep::Gradient(vec![layer]);
        let tape = net.record_forward_host(&mut rec, &part, bands.as_ref(), &keep)?;
        let (seed, value) = match &fixed {
            Some(t) => {
                let t = Targets::classes(ctx, &t[r.clone()], &tape.logits.shape[1..])?;
                objective(&mut rec, &tape.logits, &t, Objective::Logit)?
            }
            None => argmax_objective(&mut rec, &tape.logits)?,
        };
        let g = net.record_backward_range(
            &mut rec,
            &tape,
            last,
            layer + 1,
            &seed,
            ReluRule::Gradient,
            &[],
        )?;
        let cam = ops::reduce::grad_cam(&mut rec, tape.output(layer)?, &g.input, relu)?;
        let map = match up {
            Upsample::Nearest => ops::resample::nearest(&mut rec, &cam, size)?,
            Upsample::Bilinear => ops::resample::bilinear(&mut rec, &cam, size)?,
        };
        rec.submit()?;
        let mut got = read_all(ctx, &[&map, &value])?.into_iter();
        let m = Array::new(map.shape.clone(), got.next().expect("the map"))?;
        let t: Vec<usize> = match &fixed {
            Some(t) => t[r.clone()].to_vec(),
            None => got
                .next()
                .expect("the argmax")
                .iter()
                .map(|c| *c as usize)
                .collect(),
        };
        Ok((m, t))
    })?;
    let (maps, t): (Vec<Array>, Vec<Vec<usize>>) = parts.into_iter().unzip();
    Ok(Attribution {
        map: Array::concat(&maps)?,
        targets: t.concat(),
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
    let cam = grad_cam(net, x, target, layer, true, up)?;
    let t = cam.targets.clone();
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
