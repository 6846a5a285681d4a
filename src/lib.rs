//! netlens: explain what vision CNNs see, on any GPU, through wgpu and WGSL kernels.

pub mod error;
pub mod gpu;
pub mod ops;
pub mod reference;

pub use error::{Error, Result};
