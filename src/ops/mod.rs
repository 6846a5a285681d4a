//! One launcher per kernel family. Each checks shapes, allocates its output from the
//! pool and records its launches; nothing runs until the recorder is submitted.

mod backward;
pub mod bands;
mod conv;
mod conv_pool;
pub mod copies;
pub mod dissect;
pub mod extremal;
pub mod fourier;
mod lrp;
pub mod map;
pub mod objective;
mod pack;
mod perturb;
mod pool;
pub mod reduce;
pub mod resample;
pub mod select;
mod simple;
pub mod visualize;
mod winograd;

pub use backward::{
    adaptive_avg_pool2d_backward, avg_pool2d_backward, conv2d_backward_input,
    conv2d_backward_pooled, conv2d_backward_ratio, conv2d_backward_ratio_scaled,
    conv2d_backward_ratios, linear_backward_input, max_pool2d_backward, max_pool2d_relu_backward,
    relu_backward, tiles_input, PoolGrad, ReluRule,
};
#[cfg(test)]
pub(crate) use conv::CPU_GEMV_BATCH;
pub use conv::{
    conv2d, conv2d_acc, conv2d_act, conv2d_packs_output, linear, linear_acc, tiled_split,
    Conv2dGeom,
};
pub use conv_pool::{conv2d_pool, conv2d_pool_act, conv2d_pool_fits};
pub use lrp::{
    lrp_axpby, lrp_clamp, lrp_combine, lrp_ratio, lrp_ratio_of, lrp_sum_rule, Keep as LrpKeep,
    Ratio as LrpRatio,
};
pub use pack::{pack_tensor, Act, PackedTensor};
pub use perturb::{occlude, ranked_copies, Windows};
pub use pool::{adaptive_avg_pool2d, avg_pool2d, max_pool2d, pool_out, Pool2d};
pub use simple::{add, add_relu, relu, softmax};

use crate::error::{Error, Result};

/// Output size of a convolution along one axis, as PyTorch computes it.
pub fn conv_out(input: usize, kernel: usize, stride: usize, pad: usize) -> Result<usize> {
    if stride == 0 || kernel == 0 {
        return Err(Error::Shape("kernel and stride must be positive".into()));
    }
    let padded = input + 2 * pad;
    if padded < kernel {
        return Err(Error::Shape(format!(
            "input size {input} with padding {pad} is smaller than the kernel {kernel}"
        )));
    }
    Ok((padded - kernel) / stride + 1)
}

pub(crate) fn dims4(shape: &[usize], what: &str) -> Result<[usize; 4]> {
    match shape {
        [n, c, h, w] => Ok([*n, *c, *h, *w]),
        _ => Err(Error::Shape(format!(
            "{what} expects an NCHW tensor, got shape {shape:?}"
        ))),
    }
}

pub(crate) fn u32s(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Shape(format!("{what} = {v} does not fit a 32-bit index")))
}
