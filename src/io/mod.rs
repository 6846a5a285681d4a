//! Reading inputs (images, .npy) and writing outputs (.npy, JSON).

pub mod font;
pub mod grid;
pub mod heatmap;
pub mod image;
pub mod npy;
pub mod plot;

use std::path::Path;

use crate::array::Array;
use crate::error::{Error, Result};
use crate::model::ModelMeta;

/// Loads one input file: a `.npy` float32 NCHW batch, or an image preprocessed for the model.
pub fn load_input(path: &Path, meta: &ModelMeta) -> Result<Array> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "npy" {
        let a = npy::read(path)?;
        if a.shape.len() != 4 {
            return Err(Error::input(
                path.display(),
                format!(
                    "array has shape {:?}; expected float32 [N, C, H, W]",
                    a.shape
                ),
            ));
        }
        Ok(a)
    } else {
        image::load(path, meta)
    }
}

/// Writes `bytes` to `path`, refusing to replace an existing file unless `overwrite`.
pub fn write_new(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    if !overwrite && path.exists() {
        return Err(Error::Other(format!(
            "{} exists; pass --overwrite to replace it",
            path.display()
        )));
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}
