//! Network dissection's counting pass (kernels/dissect.wgsl): thresholded, up-sampled unit
//! maps counted against label planes, accumulated on the device across batches.

use bytemuck::{Pod, Zeroable};

use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct DissectParams {
    batch: u32,
    units: u32,
    h: u32,
    w: u32,
    sh: u32,
    sw: u32,
    planes: u32,
    labels: u32,
    categories: u32,
    _pad: [u32; 3],
}

/// Device counters of one layer: `both` [units, labels] (|M_u ∩ L_c| summed) and `cats`
/// [2, units, categories] (|M_u| summed over the images where M_u meets a label of the
/// category, then over those annotated in it). u32: the caller reads them back before
/// they could overflow.
pub struct Tally {
    pub both: Tensor,
    pub cats: Tensor,
    pub units: usize,
    pub labels: usize,
    pub categories: usize,
}

impl Tally {
    pub fn new(rec: &Recorder, units: usize, labels: usize, categories: usize) -> Result<Tally> {
        if !(1..=32).contains(&categories) {
            return Err(Error::Shape(format!(
                "dissection handles 1 to 32 categories, the dataset has {categories}"
            )));
        }
        let ctx = rec.ctx();
        Ok(Tally {
            both: Tensor::upload_u32(ctx, &vec![0; units * labels], &[units, labels])?,
            cats: Tensor::upload_u32(
                ctx,
                &vec![0; 2 * units * categories],
                &[2, units, categories],
            )?,
            units,
            labels,
            categories,
        })
    }

    /// Counts one batch: `act` [B, U, h, w] the layer's maps, `thresholds` [U], `labels`
    /// [B, planes, sh, sw] u32 global label numbers (0: none), `label_cats` [labels] each
    /// label's category bit set, `annotated` [B] each image's category bit set.
    pub fn add(
        &self,
        rec: &mut Recorder,
        act: &Tensor,
        thresholds: &Tensor,
        labels: &Tensor,
        label_cats: &Tensor,
        annotated: &Tensor,
    ) -> Result<()> {
        let (b, u, h, w) = match act.shape.as_slice() {
            [b, u, h, w] if b * u * h * w > 0 => (*b, *u, *h, *w),
            s => {
                return Err(Error::Shape(format!(
                    "dissect: maps {s:?} are not [B, U, h, w]"
                )))
            }
        };
        let (planes, sh, sw) = match labels.shape.as_slice() {
            [lb, k, sh, sw] if *lb == b && k * sh * sw > 0 => (*k, *sh, *sw),
            s => {
                return Err(Error::Shape(format!(
                    "dissect: labels {s:?} are not [{b}, planes, sh, sw]"
                )))
            }
        };
        if u != self.units
            || thresholds.shape != [u]
            || label_cats.shape != [self.labels]
            || annotated.shape != [b]
        {
            return Err(Error::Shape(format!(
                "dissect: {u} units against counters for {}, thresholds {:?}, label categories {:?}, annotations {:?}",
                self.units, thresholds.shape, label_cats.shape, annotated.shape
            )));
        }
        let ctx = rec.ctx();
        let size = Tensor::upload_u32(ctx, &vec![0; b * u], &[b, u])?;
        let hit = Tensor::upload_u32(ctx, &vec![0; b * u], &[b, u])?;
        let p = DissectParams {
            batch: u32s(b, "batch")?,
            units: u32s(u, "units")?,
            h: u32s(h, "height")?,
            w: u32s(w, "width")?,
            sh: u32s(sh, "mask height")?,
            sw: u32s(sw, "mask width")?,
            planes: u32s(planes, "label planes")?,
            labels: u32s(self.labels, "labels")?,
            categories: u32s(self.categories, "categories")?,
            ..Default::default()
        };
        let active = Tensor::empty_u32(ctx, &[b, u], "dissect flags")?;
        rec.launch_1d(
            Kernel::DissectActive,
            &p,
            &[
                Binding::Tensor(act),
                Binding::Tensor(thresholds),
                Binding::Tensor(&active),
            ],
            b * u,
        );
        if u > 65535 || b > 65535 {
            return Err(Error::Shape(format!(
                "dissect: {u} units or a batch of {b} exceed one dispatch"
            )));
        }
        rec.launch(
            Kernel::DissectTally,
            &p,
            &[
                Binding::Tensor(act),
                Binding::Tensor(thresholds),
                Binding::Tensor(labels),
                Binding::Tensor(label_cats),
                Binding::Tensor(&self.both),
                Binding::Tensor(&size),
                Binding::Tensor(&hit),
                Binding::Tensor(&active),
            ],
            [u as u32, b as u32, 1],
        );
        rec.launch_1d(
            Kernel::DissectUnitCategories,
            &p,
            &[
                Binding::Tensor(&size),
                Binding::Tensor(&hit),
                Binding::Tensor(annotated),
                Binding::Tensor(&self.cats),
            ],
            u * self.categories,
        );
        Ok(())
    }
}
