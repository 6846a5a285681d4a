//! Canonizers: rewrite a model into an equivalent one the kernels run directly.

use super::{LayerKind, Model, Src};
use crate::error::{Error, Result};

/// Folds each eval-mode BatchNorm2d into the conv before it:
/// W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps).
/// The BN layer disappears; the conv now outputs what BN did (see `Layer::folded_bn`).
/// The BN must read a conv that nothing else reads.
pub fn fold_batchnorm(model: &mut Model) -> Result<()> {
    model.check_graph()?;
    let mut i = 0;
    while i < model.layers.len() {
        if let LayerKind::BatchNorm2d {
            mean,
            var,
            gamma,
            beta,
            eps,
        } = &model.layers[i].kind
        {
            let (mean, var, gamma, beta, eps) =
                (mean.clone(), var.clone(), gamma.clone(), beta.clone(), *eps);
            let bn_name = model.layers[i].name.clone();
            let p = match model.layers[i].inputs[..] {
                [Src::Layer(p)] => p,
                _ => {
                    return Err(Error::Other(format!(
                        "batch norm {bn_name} has no conv before it to fold into"
                    )))
                }
            };
            if model.consumers()[p].len() > 1 {
                return Err(Error::Other(format!(
                    "batch norm {bn_name} cannot be folded into {}: other layers read that conv's output too",
                    model.layers[p].name
                )));
            }
            let prev = &mut model.layers[p];
            let LayerKind::Conv2d { geom, weight, bias } = &mut prev.kind else {
                return Err(Error::Other(format!(
                    "batch norm {bn_name} follows {} ({}), not a conv; only conv + batch norm is supported",
                    prev.name,
                    prev.kind.type_name()
                )));
            };
            if prev.folded_bn.is_some() || mean.len() != geom.cout {
                return Err(Error::Other(format!(
                    "batch norm {bn_name} does not match conv {}",
                    prev.name
                )));
            }
            let per = weight.len() / geom.cout;
            let mut new_bias = Vec::with_capacity(geom.cout);
            for c in 0..geom.cout {
                let s = gamma[c] as f64 / (var[c] as f64 + eps as f64).sqrt();
                for w in &mut weight[c * per..(c + 1) * per] {
                    *w = (*w as f64 * s) as f32;
                }
                let b = bias.as_ref().map_or(0.0, |b| b[c] as f64);
                new_bias.push(((b - mean[c] as f64) * s + beta[c] as f64) as f32);
            }
            *bias = Some(new_bias);
            prev.folded_bn = Some(bn_name);
            model.remove_layer(i, Src::Layer(p));
        } else {
            i += 1;
        }
    }
    Ok(())
}
