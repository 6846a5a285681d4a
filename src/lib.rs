//! netlens: explain what vision CNNs see, on any GPU, through wgpu and WGSL kernels.

pub mod array;
pub mod cli;
pub mod data;
pub mod error;
pub mod eval;
pub mod explain;
#[doc(hidden)]
pub mod fuzz;
pub mod gpu;
pub mod graph;
pub mod io;
pub mod model;
pub mod ops;
pub mod reference;

pub use array::Array;
pub use error::{Error, Result};
