//! One error type for the library; every message says what went wrong and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no GPU adapter found for backend {backend}: {hint}")]
    NoAdapter { backend: String, hint: String },
    #[error("could not open the GPU device: {0}")]
    Device(String),
    #[error("GPU validation error in {context}: {message}")]
    Validation { context: String, message: String },
    #[error("GPU out of memory in {context}: {message}. Try a smaller batch or input size")]
    OutOfMemory { context: String, message: String },
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("{what} needs {bytes} bytes in one binding, over this adapter's limit of {limit} bytes; {hint}")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        hint: String,
    },
    #[error("model {path}: {message}")]
    Model { path: String, message: String },
    #[error("shape error: {0}")]
    Shape(String),
    #[error("bad input {what}: {message}")]
    Input { what: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn model(path: impl std::fmt::Display, message: impl Into<String>) -> Self {
        Error::Model {
            path: path.to_string(),
            message: message.into(),
        }
    }
    pub fn input(what: impl std::fmt::Display, message: impl Into<String>) -> Self {
        Error::Input {
            what: what.to_string(),
            message: message.into(),
        }
    }
}

/// Ok when `v` is a finite number in [lo, hi] (lo itself excluded with `open_lo`); else an
/// input error naming `what` (a flag or a field) and the range.
pub fn check_range(what: &str, v: f32, lo: f32, hi: f32, open_lo: bool) -> Result<()> {
    let above = if open_lo { v > lo } else { v >= lo };
    if v.is_finite() && above && v <= hi {
        return Ok(());
    }
    let l = if open_lo { "(" } else { "[" };
    let (v, lo, hi) = (short(v), short(lo), short(hi));
    Err(Error::input(
        what,
        format!("{v} must be a number in {l}{lo}, {hi}]"),
    ))
}

/// `v` as written in a message: plainly between 1e-4 and 1e7 in size (and 0), else in
/// scientific notation (1e30, not 31 digits).
fn short(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() || (1e-4..1e7).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_errors_write_numbers_short() {
        let msg = |v: f32| {
            check_range("--x", v, 0.0, 100.0, false)
                .unwrap_err()
                .to_string()
        };
        assert!(
            msg(1e30).contains("1e30 must be a number in [0, 100]"),
            "{}",
            msg(1e30)
        );
        assert!(msg(-2.5e-9).contains("-2.5e-9 must"), "{}", msg(-2.5e-9));
        assert!(msg(250.5).contains("250.5 must"), "{}", msg(250.5));
        assert!(msg(f32::NAN).contains("NaN must"), "{}", msg(f32::NAN));
        let big = check_range("--y", 0.0, 1e-9, 1e9, true)
            .unwrap_err()
            .to_string();
        assert!(big.contains("(1e-9, 1e9]"), "{big}");
        assert!(check_range("--x", 100.0, 0.0, 100.0, false).is_ok());
    }
}
