//! Maximally activating patches: the top-k (image, position) of each unit of a layer over
//! a dataset, selected on the device batch by batch, with each position's exact receptive
//! field in the input.

use crate::data::folder::ImageSet;
use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::graph::{Keep, Net};
use crate::model::{LayerKind, Model, Src};
use crate::ops::visualize::TopList;

/// One of a unit's best positions.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// Index into the dataset.
    pub image: usize,
    pub y: usize,
    pub x: usize,
    pub value: f32,
    /// The receptive field [y0, x0, y1, x1) in the model's input, clipped to the image.
    pub bbox: [usize; 4],
}

/// The input rows (and, by the same rule, columns) that position range [a, b] of layer
/// `layer`'s output depends on, for an input of size `input` along that axis.
fn field_1d(
    model: &Model,
    layer: usize,
    input: &[usize],
    axis: usize,
    a: usize,
    b: usize,
) -> Result<(usize, usize)> {
    let shapes = model.output_shapes(input)?;
    // the span each layer's output is needed over, widened backwards from `layer`; where
    // paths meet (a residual sum's inputs) the spans are joined
    let mut span: Vec<Option<(i64, i64)>> = vec![None; layer + 1];
    span[layer] = Some((a as i64, b as i64));
    let mut at_input: Option<(i64, i64)> = None;
    for i in (0..=layer).rev() {
        let Some((lo, hi)) = span[i] else { continue };
        let l = &model.layers[i];
        let in_shape = Model::src_shape(l.inputs[0], input, &shapes);
        let size = in_shape.get(2 + axis).copied().unwrap_or(1) as i64;
        let window = |k: usize, s: usize, p: usize| {
            (
                lo * s as i64 - p as i64,
                hi * s as i64 - p as i64 + k as i64 - 1,
            )
        };
        let pick = |t: (usize, usize)| if axis == 0 { t.0 } else { t.1 };
        let (mut lo, mut hi) = match &l.kind {
            LayerKind::Conv2d { geom, .. } => {
                window(pick(geom.kernel), pick(geom.stride), pick(geom.padding))
            }
            LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => {
                window(pick(p.kernel), pick(p.stride), pick(p.padding))
            }
            LayerKind::AdaptiveAvgPool2d(o) => {
                let out = if axis == 0 { o.0 } else { o.1 } as i64;
                ((lo * size) / out, ((hi + 1) * size + out - 1) / out - 1)
            }
            // below a flatten everything is seen
            LayerKind::Flatten | LayerKind::Linear { .. } => (0, size - 1),
            LayerKind::Relu
            | LayerKind::Dropout
            | LayerKind::Add
            | LayerKind::BatchNorm2d { .. } => (lo, hi),
        };
        lo = lo.clamp(0, size - 1);
        hi = hi.clamp(0, size - 1);
        for s in &l.inputs {
            let slot = match *s {
                Src::Input => &mut at_input,
                Src::Layer(j) => &mut span[j],
            };
            *slot = Some(slot.map_or((lo, hi), |(l0, h0)| (l0.min(lo), h0.max(hi))));
        }
    }
    let (lo, hi) = at_input.ok_or_else(|| Error::Other("layer does not read the input".into()))?;
    Ok((lo as usize, hi as usize + 1))
}

/// The receptive field [y0, x0, y1, x1) in an input [1, C, H, W] of position (y, x) of
/// layer `layer`'s output (the whole image for layers after a flatten).
pub fn receptive_field(
    model: &Model,
    layer: usize,
    input: &[usize],
    y: usize,
    x: usize,
) -> Result<[usize; 4]> {
    if layer >= model.layers.len() {
        return Err(Error::Shape(format!("layer {layer} does not exist")));
    }
    let flat = model.layers[..=layer]
        .iter()
        .any(|l| matches!(l.kind, LayerKind::Flatten | LayerKind::Linear { .. }));
    if flat {
        return Ok([0, 0, input[2], input[3]]);
    }
    let (y0, y1) = field_1d(model, layer, input, 0, y, y)?;
    let (x0, x1) = field_1d(model, layer, input, 1, x, x)?;
    Ok([y0, x0, y1, x1])
}

/// The `k` best patches of every channel of layer `layer` over the dataset, best first
/// (ties: smaller image, then smaller position). Images stream through the device in
/// batches; only the lists are read back, once.
pub fn top_patches(
    net: &Net,
    data: &ImageSet,
    layer: usize,
    k: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Vec<Patch>>> {
    let model = net.model();
    let ctx = net.ctx();
    let first = data.load(0, 1, &model.meta)?;
    let one = first.shape.clone();
    if layer >= model.layers.len() {
        return Err(Error::Shape(format!("layer {layer} does not exist")));
    }
    let out = model.output_shapes(&one)?[layer].clone();
    let channels = out[1];
    let width = out.get(3).copied().unwrap_or(1);
    let chunk = net.forward_batch(&one)?.min(64);
    let mut list = TopList::new(ctx, channels, k)?;
    progress.set_length(data.len() as u64);
    let mut start = 0;
    while start < data.len() {
        let end = (start + chunk).min(data.len());
        let x = data.load(start, end, &model.meta)?;
        if x.shape[1..] != one[1..] {
            return Err(Error::input(
                data.root.display(),
                format!(
                    "images prepare to {:?} and {:?}; all must share one size",
                    one, x.shape
                ),
            ));
        }
        x.check_finite()?;
        let xt = Tensor::upload(ctx, &x.data, &x.shape)?;
        let mut rec = Recorder::new(ctx, "top patches");
        let tape = net.record_forward_any(&mut rec, &xt, &Keep::Nothing, Some(layer), "--layer")?;
        list = list.merge(&mut rec, &tape.logits, start)?;
        rec.submit()?;
        progress.inc((end - start) as u64);
        start = end;
    }
    let values = list.values.read(ctx)?;
    let index = list.index.read_u32(ctx)?;
    let mut units = Vec::with_capacity(channels);
    for c in 0..channels {
        let mut v = Vec::new();
        for j in 0..k {
            let at = c * k + j;
            let (image, pos) = (index[2 * at] as usize, index[2 * at + 1] as usize);
            if index[2 * at] == u32::MAX {
                break;
            }
            let (y, x) = (pos / width, pos % width);
            v.push(Patch {
                image,
                y,
                x,
                value: values[at],
                bbox: receptive_field(model, layer, &one, y, x)?,
            });
        }
        units.push(v);
    }
    Ok(units)
}
