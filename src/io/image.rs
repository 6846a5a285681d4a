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
    let bytes = super::read_capped(path, super::MAX_IMAGE_FILE, "an image file")?;
    decode(&bytes, &path.display().to_string(), meta)
}

/// Decodes an image file's bytes (`name` is used in errors) and preprocesses it.
pub fn decode(bytes: &[u8], name: &str, meta: &ModelMeta) -> Result<Array> {
    preprocess(&decode_rgb(bytes, name)?, meta)
}

/// Most pixels a file can hold per byte: deflate (PNG) expands at most 1032:1 and a 1-bit
/// PNG packs 8 pixels a byte; a baseline JPEG needs at least two bits per 8x8 block.
const MAX_PIXELS_PER_BYTE: u64 = 8300;
/// Pixels always allowed, whatever the file size (a 4096² image).
const MIN_PIXELS: u64 = 4096 * 4096;

/// Decodes PNG or JPEG bytes to RGB after checking the header's size claims: each side at
/// most [`MAX_SIDE`], and no more pixels than the file's size can hold, so a small corrupt
/// file cannot make the decoder allocate gigabytes.
pub fn decode_rgb(bytes: &[u8], name: &str) -> Result<image::RgbImage> {
    let bad = |e: &dyn std::fmt::Display| Error::input(name, format!("cannot decode image: {e}"));
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| bad(&e))
    };
    let (w, h) = reader()?.into_dimensions().map_err(|e| bad(&e))?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::input(
            name,
            format!("image is {w}x{h}; each side must be 1..={MAX_SIDE} pixels"),
        ));
    }
    let pixels = w as u64 * h as u64;
    if pixels > MIN_PIXELS.max(MAX_PIXELS_PER_BYTE * bytes.len() as u64) {
        return Err(bad(&format_args!(
            "the header says {w}x{h} pixels, more than a {}-byte file can hold \
             (truncated or corrupt?)",
            bytes.len()
        )));
    }
    if jpeg_truncated(bytes) {
        return Err(bad(
            &"the JPEG ends before its last scan does (truncated file?)",
        ));
    }
    let mut r = reader()?;
    r.limits(decode_limits());
    let img = r.decode().map_err(|e| bad(&e))?;
    Ok(img.to_rgb8())
}

/// The decoder's limits: sides up to [`MAX_SIDE`], and room for the largest such image at
/// 16 bits per channel with alpha (8 bytes a pixel, 2 GiB) plus the decoder's own buffers;
/// the crate's default (512 MiB) would refuse an RGB image over about 13000² pixels.
fn decode_limits() -> image::Limits {
    let side = MAX_SIDE as u64;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(side * side * 8 + (64 << 20));
    limits
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
    if w == 0 || h == 0 {
        return Err(Error::Other("the image is empty (0 pixels)".into()));
    }
    let (ch, cw) = (meta.input_size.0 as u32, meta.input_size.1 as u32);
    let short = meta.resize.max(ch as usize).max(cw as usize) as u64;
    let (nw, nh) = if w <= h {
        (short, h as u64 * short / w as u64)
    } else {
        (w as u64 * short / h as u64, short)
    };
    // A thin image scaled up to `short` on its narrow side would be huge on the other.
    let limit = (MAX_SIDE as u64).max(short);
    if nw.max(nh) > limit {
        return Err(Error::Other(format!(
            "a {w}x{h} image resized to {short} on its shorter side would be {nw}x{nh}; \
             its aspect ratio is too extreme (at most {limit} pixels on the longer side)"
        )));
    }
    let (nw, nh) = (nw as u32, nh as u32);
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
