//! GPU runtime: device context, kernel/pipeline cache, pooled tensors and a command recorder.

mod context;
pub mod kernels;
mod profile;
pub mod recorder;
pub mod tensor;
pub(crate) mod upload;
mod variant;
pub(crate) mod weight_texture;
pub mod weights;

pub use context::{Backend, Context};
pub use kernels::Kernel;
pub use profile::KernelTime;
pub use recorder::Recorder;
pub use tensor::{read_all, DType, PoolStats, Tensor, TEXTURE_POOL_LIMIT};
pub use variant::{Gemm, Packing, Winograd, WINOGRAD_MIN_CHANNELS};
pub use weights::{Precision, WeightBuffer, WeightKind, WeightLayout};
