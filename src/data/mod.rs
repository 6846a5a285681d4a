//! Data: the procedural concept dataset (Broden layout) and a reader for Broden-format
//! directories.

pub mod broden;
pub mod folder;
pub mod render;
pub mod rng;
pub mod shapes;
pub mod synth;
pub mod vocab;
