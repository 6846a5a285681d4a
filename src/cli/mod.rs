//! The `netlens` command line: one file per subcommand.

mod accuracy;
mod attribute;
mod classify;
mod info;
mod synth;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::gpu::{Backend, Context};

#[derive(Parser)]
#[command(
    name = "netlens",
    version,
    about = "Explain what vision CNNs see, on any GPU (wgpu + WGSL)"
)]
pub struct Cli {
    /// GPU backend: auto, vulkan, gl, metal, dx12 (default: NETLENS_BACKEND, else auto)
    #[arg(long, global = true)]
    backend: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Layers, output shapes, parameter count and memory of a model
    Info(info::Args),
    /// Classify images or .npy batches
    Classify(classify::Args),
    /// Attribution maps: gradients, SmoothGrad, IG, guided backprop, Grad-CAM, occlusion
    Attribute(attribute::Args),
    /// Write the procedural concept dataset (Broden layout)
    Synth(synth::Args),
    /// Top-1 accuracy of a model over a generated dataset
    Accuracy(accuracy::Args),
}

pub fn run(cli: Cli) -> Result<()> {
    let backend = match &cli.backend {
        Some(b) => b.parse()?,
        None => Backend::from_env()?,
    };
    match cli.command {
        Command::Info(a) => info::run(a),
        Command::Classify(a) => classify::run(a, backend),
        Command::Attribute(a) => attribute::run(a, backend),
        Command::Synth(a) => synth::run(a),
        Command::Accuracy(a) => accuracy::run(a, backend),
    }
}

pub(crate) fn open_gpu(backend: Backend) -> Result<Arc<Context>> {
    let ctx = Context::new(backend)?;
    log::info!("GPU: {}", ctx.adapter_name());
    Ok(Arc::new(ctx))
}

pub(crate) fn load_model(path: &PathBuf) -> Result<crate::model::Model> {
    crate::model::load(path)
}
