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

/// The largest image file read (an image also has at most `image::MAX_SIDE` pixels a side).
pub const MAX_IMAGE_FILE: u64 = 1 << 30;
/// The largest .npy, model or dissection-state file read.
pub const MAX_ARRAY_FILE: u64 = 4 << 30;
/// The largest CSV file read.
pub const MAX_TEXT_FILE: u64 = 1 << 30;

/// Reads a whole file of at most `limit` bytes. A larger file, or an endless one (a device,
/// a pipe), is an error once `limit` bytes are read, before it can fill memory; `what` names
/// the file's role in that message.
pub fn read_capped(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let too_big = || {
        Error::input(
            path.display(),
            format!("{what} is over {limit} bytes, the most netlens reads; is it the right file?"),
        )
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::input(
            path.display(),
            format!("is a directory, not {what}"),
        ));
    }
    if meta.is_file() && meta.len() > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() {
        meta.len() as usize
    } else {
        0
    });
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// What a file's first bytes say of its length (see `read_framed`).
pub enum Frame {
    /// Not known until at least this many bytes are read.
    More(u64),
    /// The whole file is this many bytes.
    Total(u64),
    /// The bytes cannot begin such a file: why.
    Bad(String),
}

/// `read_capped` for a format whose header states its length (models, .npy): a stream (a
/// pipe, a device) is read only as far as its header says, so an endless or wrong one
/// fails at its first bytes instead of after `limit`. `frame` reads the bytes so far. A
/// regular file is read whole, as `read_capped` does, and its parser judges it.
pub fn read_framed(
    path: &Path,
    limit: u64,
    what: &str,
    frame: impl Fn(&[u8]) -> Frame,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() || meta.is_dir() {
        return read_capped(path, limit, what);
    }
    let too_big = |n: u64| {
        Error::input(
            path.display(),
            format!("{what} says it holds {n} bytes, over {limit}, the most netlens reads"),
        )
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    loop {
        let (want, done) = match frame(&bytes) {
            Frame::Bad(why) => return Err(Error::input(path.display(), why)),
            Frame::Total(n) => (n, true),
            Frame::More(n) => (n, false),
        };
        if want > limit {
            return Err(too_big(want));
        }
        let have = bytes.len() as u64;
        if want <= have {
            return Ok(bytes); // nothing more to read: the parser judges the bytes
        }
        let got = (&mut file)
            .take(want - have)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        // a stream that ended early: the parser says what is missing
        if done || (got as u64) < want - have {
            return Ok(bytes);
        }
    }
}

/// `read_capped` of a UTF-8 text file.
pub fn read_text(path: &Path, limit: u64, what: &str) -> Result<String> {
    String::from_utf8(read_capped(path, limit, what)?)
        .map_err(|e| Error::input(path.display(), format!("{what} is not UTF-8 text ({e})")))
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
