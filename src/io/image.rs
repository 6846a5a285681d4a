//! Image inputs: decode, resize the shorter side, center crop, normalize (torchvision's
//! Resize + CenterCrop + ToTensor + Normalize, with a triangle (bilinear) filter).

use std::path::Path;

use image::imageops::FilterType;

use crate::array::Array;
use crate::error::{Error, Result};
use crate::model::ModelMeta;

/// Largest image side accepted before decoding, to refuse decompression bombs.
pub const MAX_SIDE: u32 = 16384;

pub fn load(path: &Path, meta: &ModelMeta) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |e: &dyn std::fmt::Display| {
        Error::input(path.display(), format!("cannot decode image: {e}"))
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))
    };
    let (w, h) = reader()?.into_dimensions().map_err(|e| bad(&e))?;
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::input(
            path.display(),
            format!("image is {w}x{h}; at most {MAX_SIDE} pixels a side"),
        ));
    }
    if jpeg_truncated(&bytes) {
        return Err(bad(
            &"the JPEG ends before its last scan does (truncated file?)",
        ));
    }
    let img = reader()?.decode().map_err(|e| bad(&e))?;
    preprocess(&img.to_rgb8(), meta)
}

/// A JPEG whose last scan (SOS marker FF DA) is not followed by an end-of-image marker
/// (FF D9). The decoder fills the missing part with grey and reports success. Inside a
/// scan every FF byte is followed by 00 or a restart marker, so neither marker can occur
/// by chance there.
fn jpeg_truncated(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return false;
    }
    let Some(sos) = b.windows(2).rposition(|m| m == [0xFF, 0xDA]) else {
        return true;
    };
    !b[sos..].windows(2).any(|m| m == [0xFF, 0xD9])
}

/// Resize (shorter side to `meta.resize`), center crop to `meta.input_size`, scale to
/// [0, 1] and normalize; returns [1, 3, H, W].
pub fn preprocess(img: &image::RgbImage, meta: &ModelMeta) -> Result<Array> {
    if meta.mean.len() != 3 {
        return Err(Error::Other(format!(
            "images give 3 channels; this model takes {}",
            meta.mean.len()
        )));
    }
    let (w, h) = img.dimensions();
    let (ch, cw) = (meta.input_size.0 as u32, meta.input_size.1 as u32);
    let short = meta.resize.max(ch as usize).max(cw as usize) as u32;
    let (nw, nh) = if w <= h {
        (short, ((h as u64 * short as u64) / w as u64) as u32)
    } else {
        (((w as u64 * short as u64) / h as u64) as u32, short)
    };
    let resized = if (nw, nh) == (w, h) {
        img.clone()
    } else {
        image::imageops::resize(img, nw, nh, FilterType::Triangle)
    };
    let x0 = (nw - cw) / 2;
    let y0 = (nh - ch) / 2;
    let plane = (ch * cw) as usize;
    let mut data = vec![0f32; 3 * plane];
    for y in 0..ch {
        for x in 0..cw {
            let p = resized.get_pixel(x0 + x, y0 + y);
            for c in 0..3 {
                data[c * plane + (y * cw + x) as usize] =
                    (p[c] as f32 / 255.0 - meta.mean[c]) / meta.std[c];
            }
        }
    }
    Array::new(vec![1, 3, ch as usize, cw as usize], data)
}
