//! The concept dataset as dissection sees it: images in Broden's order, each image's
//! label planes at the masks' resolution, each label's categories as a bit set.

use std::path::Path;

use crate::array::Array;
use crate::data::broden::Broden;
use crate::data::folder::ImageSet;
use crate::error::{Error, Result};
use crate::model::ModelMeta;

/// The label planes of a run of images.
pub struct Planes {
    /// [images, planes, sh, sw] global label numbers (0: none).
    pub labels: Vec<u32>,
    /// Planes per image: the most any image has, at least 1; missing ones are 0.
    pub planes: usize,
    /// Each image's annotated categories as bits.
    pub annotated: Vec<u32>,
    /// Each label's pixels (image-level labels count the whole image).
    pub pixels: Vec<u64>,
}

pub struct Concepts {
    pub broden: Broden,
    pub images: ImageSet,
    /// The masks' resolution (sh, sw), shared by every image.
    pub mask: (usize, usize),
    /// Global label numbers run below this (column 0 is "-").
    pub labels: usize,
    /// Each label's categories as bits of `broden.categories`.
    pub label_cats: Vec<u32>,
}

impl Concepts {
    pub fn open(root: &Path) -> Result<Concepts> {
        let broden = Broden::open(root)?;
        let images = ImageSet::open(root)?;
        if broden.records.is_empty() {
            return Err(Error::input(root.display(), "index.csv lists no images"));
        }
        if broden.categories.len() > 32 {
            return Err(Error::input(
                root.display(),
                format!(
                    "label.csv names {} categories; dissection handles at most 32",
                    broden.categories.len()
                ),
            ));
        }
        let r0 = &broden.records[0];
        let mask = (r0.sh, r0.sw);
        if let Some(r) = broden.records.iter().find(|r| (r.sh, r.sw) != mask) {
            return Err(Error::input(
                root.join("index.csv").display(),
                format!(
                    "{} has {}x{} masks and {} has {}x{}; dissection needs one mask size",
                    r0.image, mask.0, mask.1, r.image, r.sh, r.sw
                ),
            ));
        }
        if mask.0 * mask.1 == 0 || mask.0 > 4096 || mask.1 > 4096 {
            return Err(Error::input(
                root.join("index.csv").display(),
                format!("mask size {}x{} is outside 1..=4096", mask.0, mask.1),
            ));
        }
        let labels = broden.labels.keys().max().map_or(1, |m| *m as usize + 1);
        if labels > 1 << 20 {
            return Err(Error::input(
                root.join("label.csv").display(),
                format!(
                    "label numbers reach {}; at most 2^20 are supported",
                    labels - 1
                ),
            ));
        }
        let mut label_cats = vec![0u32; labels];
        for (n, l) in &broden.labels {
            for c in &l.categories {
                if let Some(i) = broden.categories.iter().position(|x| x == c) {
                    label_cats[*n as usize] |= 1 << i;
                }
            }
        }
        label_cats[0] = 0;
        Ok(Concepts {
            broden,
            images,
            mask,
            labels,
            label_cats,
        })
    }

    pub fn len(&self) -> usize {
        self.broden.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.broden.records.is_empty()
    }

    pub fn load(&self, start: usize, end: usize, meta: &ModelMeta) -> Result<Array> {
        self.images.load(start, end, meta)
    }

    /// The label planes of images start..end.
    pub fn planes(&self, start: usize, end: usize) -> Result<Planes> {
        let plane = self.mask.0 * self.mask.1;
        let mut per_image = Vec::with_capacity(end - start);
        let mut annotated = Vec::with_capacity(end - start);
        for r in &self.broden.records[start..end] {
            let mut ps = Vec::new();
            let mut bits = 0u32;
            for (ci, cat) in self.broden.categories.iter().enumerate() {
                let m = self.broden.masks(r, cat)?;
                if !m.is_empty() {
                    bits |= 1 << ci;
                }
                ps.extend(m);
            }
            annotated.push(bits);
            per_image.push(ps);
        }
        let planes = per_image.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut out = vec![0u32; (end - start) * planes * plane];
        let mut pixels = vec![0u64; self.labels];
        for (b, ps) in per_image.iter().enumerate() {
            for (k, p) in ps.iter().enumerate() {
                for &l in p {
                    if l as usize >= self.labels {
                        return Err(Error::input(
                            self.broden.records[start + b].image.as_str(),
                            format!(
                                "a mask holds label {l}, which label.csv does not list (labels run below {})",
                                self.labels
                            ),
                        ));
                    }
                    pixels[l as usize] += 1;
                }
                let at = (b * planes + k) * plane;
                out[at..at + plane].copy_from_slice(p);
            }
        }
        pixels[0] = 0;
        Ok(Planes {
            labels: out,
            planes,
            annotated,
            pixels,
        })
    }
}
