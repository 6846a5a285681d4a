//! The `netlens` command line: one file per subcommand.

mod accuracy;
mod attribute;
mod classify;
mod dissect;
mod doctor;
mod evaluate;
mod features;
mod filters;
mod info;
mod mask;
mod maximize;
mod patches;
mod synth;

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::gpu::{Backend, Context, Precision};
use crate::graph::{HostWeights, Net};

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
    /// How model weights are stored on the GPU: f32, or f16 (half the memory, f32
    /// arithmetic); default NETLENS_WEIGHTS, else f32
    #[arg(long, global = true, value_name = "f32|f16")]
    weights: Option<String>,
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
    Attribute(Box<attribute::Args>),
    /// Faithfulness of attribution maps: AOPC (region perturbation), deletion, insertion
    Evaluate(Box<evaluate::Args>),
    /// Learned perturbation masks (Fong & Vedaldi 2017): deletion and preservation games
    Mask(Box<mask::Args>),
    /// Images that maximise a class score or a unit (class models, unit visualisation)
    Maximize(Box<maximize::Args>),
    /// Each unit's maximally activating patches over a dataset
    TopPatches(Box<patches::Args>),
    /// A 2-D embedding (PCA or t-SNE) of a layer's features over a dataset
    Embed(Box<features::EmbedArgs>),
    /// The nearest dataset images of query images in a layer's features
    Neighbors(Box<features::NeighborArgs>),
    /// A conv layer's filters as an RGB grid
    Filters(filters::FilterArgs),
    /// A layer's feature maps for one input, as a grid
    Activations(Box<filters::ActivationArgs>),
    /// Network dissection: unit–concept IoUs over a Broden-layout dataset, shardable
    Dissect(Box<dissect::Args>),
    /// Write the procedural concept dataset (Broden layout)
    Synth(synth::Args),
    /// Top-1 accuracy of a model over a generated dataset
    Accuracy(accuracy::Args),
    /// The GPU adapter, backend, driver, limits and kernel variants netlens finds here
    Doctor,
}

/// Where and how a command runs its network.
#[derive(Clone, Copy)]
pub(crate) struct Gpu {
    backend: Backend,
    weights: Precision,
}

pub fn run(cli: Cli) -> Result<()> {
    let backend = match &cli.backend {
        Some(b) => b.parse()?,
        None => Backend::from_env()?,
    };
    let weights = match cli
        .weights
        .or_else(|| std::env::var("NETLENS_WEIGHTS").ok())
    {
        Some(w) if !w.is_empty() => w.parse()?,
        _ => Precision::F32,
    };
    let backend = Gpu { backend, weights };
    match cli.command {
        Command::Info(a) => info::run(a),
        Command::Classify(a) => classify::run(a, backend),
        Command::Attribute(a) => attribute::run(*a, backend),
        Command::Mask(a) => mask::run(*a, backend),
        Command::Evaluate(a) => evaluate::run(*a, backend),
        Command::Maximize(a) => maximize::run(*a, backend),
        Command::TopPatches(a) => patches::run(*a, backend),
        Command::Embed(a) => features::embed(*a, backend),
        Command::Neighbors(a) => features::neighbors_cmd(*a, backend),
        Command::Filters(a) => filters::filters(a),
        Command::Activations(a) => filters::activations(*a, backend),
        Command::Dissect(a) => dissect::run(*a, backend),
        Command::Synth(a) => synth::run(a),
        Command::Accuracy(a) => accuracy::run(a, backend),
        Command::Doctor => doctor::run(backend),
    }
}

/// Opens the GPU and uploads the model's weights at the chosen precision, keeping the host
/// copy of those `host` names (LRP's modified weights are made from them).
pub(crate) fn open_net(gpu: Gpu, model: crate::model::Model, host: HostWeights) -> Result<Net> {
    let ctx = Context::new(gpu.backend)?;
    log::info!(
        "GPU: {} (GEMM kernels: {}, weights: {:?})",
        ctx.adapter_name(),
        ctx.gemm().name(),
        gpu.weights
    );
    Net::upload(Arc::new(ctx), model, gpu.weights, host)
}

/// The model at `path` with its large linear weights left in the file
/// (`model::load_deferred`): `open_net` reads them a piece at a time as it uploads them, and
/// a command that opens no net checks them with `Model::check_file_weights`.
pub(crate) fn load_model(path: &std::path::Path) -> Result<crate::model::Model> {
    crate::model::load_deferred(path)
}

/// Refuses to start when an output exists and `--overwrite` was not given, or when its
/// directory does not exist (so that nothing fails after the work is done).
pub(crate) fn refuse_existing<'p>(
    outputs: impl IntoIterator<Item = &'p std::path::Path>,
    overwrite: bool,
) -> Result<()> {
    for o in outputs {
        let parent = o.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(d) = parent.filter(|d| !d.is_dir()) {
            return Err(crate::error::Error::Other(format!(
                "{}: the directory {} does not exist; create it first",
                o.display(),
                d.display()
            )));
        }
        refuse_existing_files([o], overwrite)?;
    }
    Ok(())
}

/// As `refuse_existing`, for outputs in directories the command creates itself.
pub(crate) fn refuse_existing_files<'p>(
    outputs: impl IntoIterator<Item = &'p std::path::Path>,
    overwrite: bool,
) -> Result<()> {
    for o in outputs {
        if o.exists() && !overwrite {
            return Err(crate::error::Error::Other(format!(
                "{} exists; pass --overwrite to replace it",
                o.display()
            )));
        }
    }
    Ok(())
}

/// The inputs (images or .npy batches) as one batch; all must share one size.
pub(crate) fn load_inputs(
    paths: &[std::path::PathBuf],
    meta: &crate::model::ModelMeta,
) -> Result<crate::Array> {
    let items: Vec<crate::Array> = paths
        .iter()
        .map(|p| crate::io::load_input(p, meta))
        .collect::<Result<_>>()?;
    crate::Array::concat(&items).map_err(|_| {
        crate::error::Error::input(
            "inputs",
            "all inputs must have the same size; run them separately",
        )
    })
}

/// A progress bar on a terminal (hidden otherwise), counting `unit`.
pub(crate) fn progress(label: &str, unit: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(0);
    let t = format!("{label} {{bar:30}} {{pos}}/{{len}} {unit} {{elapsed}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&t) {
        b.set_style(style);
    }
    b
}
