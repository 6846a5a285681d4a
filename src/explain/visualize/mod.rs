//! Visualising what units and classes respond to: activation maximisation (Simonyan et
//! al. 2014, Yosinski et al. 2015), filters and feature maps, maximally activating
//! patches, and feature-space neighbours and embeddings.

mod features;
mod maximize;
mod objective;
mod patches;
mod settings;
pub mod transforms;

pub use features::{features, neighbors, pca, tsne, Metric, Pca};
pub use maximize::{maximize, MaximizeRun, Maximized};
pub use objective::Goal;
pub use patches::{receptive_field, top_patches, Patch};
pub use settings::{MaximizeSettings, Optimizer, Param, Preset, Transforms};
