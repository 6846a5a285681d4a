//! The WGSL kernels, named by an enum; pipelines and bind-group layouts are built once
//! per device and cached. Shapes reach kernels through a uniform, never the shader text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How a kernel sees a binding (binding 0 is always the uniform parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
    /// A 2-D read-only storage texture of this format, read with textureLoad.
    TextureIn(wgpu::TextureFormat),
    /// An rgba32float 2-D storage texture written with textureStore.
    TextureOut,
}

use Access::{Read as R, ReadWrite as W, TextureOut as O};
/// An rgba32float input texture; an rgba16float one (f16 weights).
const T: Access = Access::TextureIn(wgpu::TextureFormat::Rgba32Float);
const H: Access = Access::TextureIn(wgpu::TextureFormat::Rgba16Float);

/// Declares every kernel once: its name, shader file (under `kernels/`, embedded at build
/// time; `FILE after [A, B]` puts preludes before it), entry point and bindings after the
/// uniform. Adding a kernel is one line.
macro_rules! kernels {
    ($($name:ident => $file:literal $(after [$($pre:literal),+])?, $entry:literal, [$($a:ident),*];)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel {
            $($name,)*
        }

        impl Kernel {
            pub const ALL: &'static [Kernel] = &[$(Kernel::$name,)*];

            /// (shader file, entry point, storage bindings after the uniform)
            pub fn spec(self) -> (&'static str, &'static str, &'static [Access]) {
                match self {
                    $(Kernel::$name => (concat!($($($pre, "+",)+)? $file), $entry, &[$($a),*]),)*
                }
            }

            /// The WGSL source of the kernel's file.
            pub fn source(self) -> &'static str {
                match self {
                    $(Kernel::$name => concat!(
                        $($(include_str!(concat!("../../kernels/", $pre)),)+)?
                        include_str!(concat!("../../kernels/", $file))
                    ),)*
                }
            }
        }
    };
}

kernels! {
    Conv2dForward => "conv2d.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_forward", [R, R, R, W];
    Conv2dBackwardInput => "conv2d.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_backward_input", [R, R, R, W];
    Conv2dForwardPointwise => "conv2d.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_forward_pointwise", [R, R, R, W];
    Conv2dBackwardInputPointwise => "conv2d.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_backward_input_pointwise", [R, R, R, W];
    Conv2dForwardSubgroup => "conv2d_subgroup.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_forward_subgroup", [R, R, R, W];
    Conv2dBackwardInputSubgroup => "conv2d_subgroup.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_backward_input_subgroup", [R, R, R, W];
    Conv2dForwardPointwiseSubgroup => "conv2d_subgroup.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_forward_pointwise_subgroup", [R, R, R, W];
    Conv2dBackwardInputPointwiseSubgroup => "conv2d_subgroup.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_backward_input_pointwise_subgroup", [R, R, R, W];
    Conv2dBackwardInputGather => "conv2d_gather.wgsl" after ["conv2d_weights.wgsl"], "conv2d_backward_input_gather", [R, R, R, W];
    Conv2dSplitSum => "conv2d.wgsl" after ["conv2d_weights.wgsl", "conv2d_tiled.wgsl"], "conv2d_split_sum", [R, R, R, W];
    WinogradWeights => "winograd_weights.wgsl", "winograd_weights", [R, W];
    WinogradInput => "winograd_input.wgsl" after ["winograd_common.wgsl"], "winograd_input", [R, W];
    WinogradOutput => "winograd_output.wgsl" after ["winograd_common.wgsl"], "winograd_output", [R, R, W];
    Conv2dForwardCpu => "conv2d_cpu.wgsl" after ["conv2d_cpu_input.wgsl", "conv2d_cpu_buffer.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_forward_cpu", [R, R, R, W, W];
    Conv2dBackwardInputCpu => "conv2d_cpu.wgsl" after ["conv2d_cpu_input.wgsl", "conv2d_cpu_buffer.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_backward_input_cpu", [R, R, R, W];
    Conv2dForwardCpuTex => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_forward_cpu", [T, T, R, W, W, O];
    Conv2dBackwardInputCpuTex => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_backward_input_cpu", [T, T, R, W];
    Conv2dForwardCpuTexHalf => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_forward_cpu", [T, H, R, W, W, O];
    Conv2dBackwardInputCpuTexHalf => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_backward_input_cpu", [T, H, R, W];
    Conv2dForwardCpuFetch => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_fetch.wgsl"], "conv2d_forward_cpu", [T, T, R, W, W, O];
    Conv2dBackwardInputCpuFetch => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_fetch.wgsl"], "conv2d_backward_input_cpu", [T, T, R, W];
    Conv2dForwardCpuFetchHalf => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_fetch.wgsl"], "conv2d_forward_cpu", [T, H, R, W, W, O];
    Conv2dBackwardInputCpuFetchHalf => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_fetch.wgsl"], "conv2d_backward_input_cpu", [T, H, R, W];
    Conv2dBackwardInputCpuPhases => "conv2d_cpu.wgsl" after ["conv2d_cpu_input.wgsl", "conv2d_cpu_buffer.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_backward_input_cpu", [R, R, R, W];
    Conv2dBackwardInputCpuTexPhases => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_backward_input_cpu", [T, T, R, W];
    Conv2dBackwardInputCpuTexPhasesHalf => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_share.wgsl"], "conv2d_backward_input_cpu", [T, H, R, W];
    Conv2dBackwardInputCpuFetchPhases => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_fetch.wgsl"], "conv2d_backward_input_cpu", [T, T, R, W];
    Conv2dBackwardInputCpuFetchPhasesHalf => "conv2d_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl", "conv2d_cpu_fetch.wgsl"], "conv2d_backward_input_cpu", [T, H, R, W];
    LinearForwardCpu => "linear_cpu.wgsl" after ["conv2d_cpu_input.wgsl", "conv2d_cpu_buffer.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_forward_cpu", [R, R, R, W];
    LinearBackwardInputCpu => "linear_cpu.wgsl" after ["conv2d_cpu_input.wgsl", "conv2d_cpu_buffer.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_backward_input_cpu", [R, R, R, W];
    LinearForwardCpuTex => "linear_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_forward_cpu", [T, T, R, W];
    LinearBackwardInputCpuTex => "linear_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_backward_input_cpu", [T, T, R, W];
    LinearForwardCpuTexHalf => "linear_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_forward_cpu", [T, H, R, W];
    LinearBackwardInputCpuTexHalf => "linear_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_backward_input_cpu", [T, H, R, W];
    LinearBackwardInputCpuStrips => "linear_cpu.wgsl" after ["conv2d_cpu_input.wgsl", "conv2d_cpu_buffer.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_backward_input_cpu_strips", [R, R, R, W];
    LinearBackwardInputCpuTexStrips => "linear_cpu.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_backward_input_cpu_strips", [T, T, R, W];
    LinearBackwardInputCpuTexStripsHalf => "linear_cpu.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "linear_backward_input_cpu_strips", [T, H, R, W];
    Conv2dForwardCpuNarrow => "conv2d_cpu_narrow.wgsl" after ["conv2d_cpu_input.wgsl", "conv2d_cpu_buffer.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "conv2d_forward_cpu_narrow", [R, R, R, W];
    Conv2dBackwardInputCpuNarrow => "conv2d_cpu_narrow.wgsl" after ["conv2d_cpu_input.wgsl", "conv2d_cpu_buffer.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "conv2d_backward_input_cpu_narrow", [R, R, R, W];
    Conv2dForwardCpuTexNarrow => "conv2d_cpu_narrow.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "conv2d_forward_cpu_narrow", [T, T, R, W];
    Conv2dBackwardInputCpuTexNarrow => "conv2d_cpu_narrow.wgsl" after ["conv2d_cpu_weights32.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "conv2d_backward_input_cpu_narrow", [T, T, R, W];
    Conv2dForwardCpuTexNarrowHalf => "conv2d_cpu_narrow.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "conv2d_forward_cpu_narrow", [T, H, R, W];
    Conv2dBackwardInputCpuTexNarrowHalf => "conv2d_cpu_narrow.wgsl" after ["conv2d_cpu_weights16.wgsl", "conv2d_cpu_texture.wgsl", "fdiv.wgsl", "conv2d_cpu_common.wgsl"], "conv2d_backward_input_cpu_narrow", [T, H, R, W];
    PackTexture => "pack_texture.wgsl" after ["lrp_ratio.wgsl"], "pack_texture", [R, O];
    PackTexture4 => "pack_texture.wgsl" after ["lrp_ratio.wgsl"], "pack_texture4", [R, O];
    PackRatioTexture => "pack_texture.wgsl" after ["lrp_ratio.wgsl"], "pack_ratio_texture", [R, R, R, R, O];
    PackRatioTexture4 => "pack_texture.wgsl" after ["lrp_ratio.wgsl"], "pack_ratio_texture4", [R, R, R, R, O];
    PackPoolGradTexture4 => "pack_texture.wgsl" after ["lrp_ratio.wgsl"], "pack_pool_grad_texture4", [R, R, R, O];
    TransposePacked => "repack.wgsl", "transpose_packed", [R, W];
    TransposePackedTexture => "repack.wgsl", "transpose_packed_texture", [T, O];
    LinearForward => "linear.wgsl" after ["linear_common.wgsl"], "linear_forward", [R, R, R, W];
    LinearForwardSubgroup => "linear_subgroup.wgsl" after ["linear_common.wgsl"], "linear_forward_subgroup", [R, R, R, W];
    LinearBackwardInput => "linear.wgsl" after ["linear_common.wgsl"], "linear_backward_input", [R, R, R, W];
    MaxPool2dForward => "pool.wgsl" after ["pool_common.wgsl"], "max_pool2d_forward", [R, W, W];
    MaxPool2dForwardPairs => "pool_pairs.wgsl" after ["pool_common.wgsl", "fdiv.wgsl", "pool_pair.wgsl"], "max_pool2d_forward_pairs", [R, W, W];
    MaxPool2dBackward => "pool.wgsl" after ["pool_common.wgsl"], "max_pool2d_backward", [R, W, R];
    MaxPool2dBackwardTiling => "pool.wgsl" after ["pool_common.wgsl"], "max_pool2d_backward_tiling", [R, W, R];
    MaxPool2dBackwardPairs => "pool_pairs.wgsl" after ["pool_common.wgsl", "fdiv.wgsl", "pool_pair.wgsl"], "max_pool2d_backward_pairs", [R, W, R];
    MaxPool2dReluBackwardTiling => "pool.wgsl" after ["pool_common.wgsl"], "max_pool2d_relu_backward_tiling", [R, W, R, R];
    MaxPool2dReluBackwardPairs => "pool_pairs.wgsl" after ["pool_common.wgsl", "fdiv.wgsl", "pool_pair.wgsl"], "max_pool2d_relu_backward_pairs", [R, W, R, R];
    AvgPool2dForward => "pool.wgsl" after ["pool_common.wgsl"], "avg_pool2d_forward", [R, W];
    AvgPool2dBackward => "pool.wgsl" after ["pool_common.wgsl"], "avg_pool2d_backward", [R, W];
    AdaptiveAvgPool2dForward => "pool.wgsl" after ["pool_common.wgsl"], "adaptive_avg_pool2d_forward", [R, W];
    AdaptiveAvgPool2dBackward => "pool.wgsl" after ["pool_common.wgsl"], "adaptive_avg_pool2d_backward", [R, W];
    ReluForward => "elementwise.wgsl", "relu_forward", [R, W];
    ReluBackward => "elementwise.wgsl", "relu_backward", [R, W, R];
    ReluForward4 => "elementwise4.wgsl", "relu_forward4", [R, W];
    ReluBackward4 => "elementwise4.wgsl", "relu_backward4", [R, W, R];
    SoftmaxForward => "elementwise.wgsl", "softmax_forward", [R, W];
    Occlude => "perturb.wgsl", "occlude", [R, W, R];
    Ranked => "perturb.wgsl", "ranked", [R, R, R, R, W];
    LrpRatio => "lrp.wgsl" after ["lrp_ratio.wgsl"], "lrp_ratio", [R, R, R, R, W];
    LrpCombine => "lrp.wgsl" after ["lrp_ratio.wgsl"], "lrp_combine", [R, R, R, R, W];
    LrpAxpby => "lrp.wgsl" after ["lrp_ratio.wgsl"], "lrp_axpby", [R, R, W];
    LrpClamp => "lrp.wgsl" after ["lrp_ratio.wgsl"], "lrp_clamp", [R, W];
    LrpSum => "lrp.wgsl" after ["lrp_ratio.wgsl"], "lrp_sum", [R, R, R, R, W, W];
    LrpRatio4 => "lrp4.wgsl" after ["lrp_ratio.wgsl"], "lrp_ratio4", [R, R, R, R, W];
    LrpCombine4 => "lrp4.wgsl" after ["lrp_ratio.wgsl"], "lrp_combine4", [R, R, R, R, W];
    LrpAxpby4 => "lrp4.wgsl" after ["lrp_ratio.wgsl"], "lrp_axpby4", [R, R, W];
    LrpClamp4 => "lrp4.wgsl" after ["lrp_ratio.wgsl"], "lrp_clamp4", [R, W];
    LrpSum4 => "lrp4.wgsl" after ["lrp_ratio.wgsl"], "lrp_sum4", [R, R, R, R, W, W];
    Axpy => "map.wgsl", "axpy", [R, W];
    Affine => "map.wgsl", "affine", [R, W];
    Clamp => "map.wgsl", "clamp_range", [R, W];
    Sigmoid => "map.wgsl", "sigmoid", [R, W];
    Mix => "map.wgsl", "mix_masked", [R, R, R, W];
    Adam => "map.wgsl", "adam", [R, W, W, W];
    Multiply => "map.wgsl", "multiply", [R, R, W];
    ClampOwn => "map.wgsl", "clamp_own", [W];
    MixGrad => "map.wgsl", "mix_grad", [R, R, R, W];
    StoreRow => "map.wgsl", "store_row", [R, W];
    Sgd => "map.wgsl", "sgd", [R, W, W];
    Combine3 => "map.wgsl", "combine3", [R, R, R, W];
    CopyIfBetter => "map.wgsl", "copy_if_better", [R, R, R, W];
    MinInto => "map.wgsl", "min_into", [R, W];
    FlipX => "resample.wgsl", "flip_x", [R, W];
    SmoothMask => "extremal.wgsl", "smooth_mask", [R, W, W];
    SmoothMaskGrad => "extremal.wgsl", "smooth_mask_grad", [R, R, R, W];
    PyramidMix => "extremal.wgsl", "pyramid_mix", [R, R, W];
    PyramidMixGrad => "extremal.wgsl", "pyramid_mix_grad", [R, R, R, W];
    AreaRegulariser => "extremal.wgsl", "area_regulariser", [R, R, W, W];
    LerpCopies => "copies.wgsl", "lerp_copies", [R, R, R, W];
    LerpCopies4 => "copies.wgsl", "lerp_copies4", [R, R, R, W];
    NoisyCopies => "copies.wgsl", "noisy_copies", [R, W];
    WeightedSum => "copies.wgsl", "weighted_sum", [R, R, W];
    WeightedSum4 => "copies.wgsl", "weighted_sum4", [R, R, W];
    LerpPoolCopies => "copies_pool.wgsl" after ["fdiv.wgsl", "pool_pair.wgsl"], "lerp_pool_copies", [R, R, R, W, W];
    WeightedPoolGradSum => "copies_pool.wgsl" after ["fdiv.wgsl", "pool_pair.wgsl"], "weighted_pool_grad_sum", [R, R, R, R, W];
    Bilinear => "resample.wgsl", "bilinear", [R, W];
    Nearest => "resample.wgsl", "nearest", [R, W];
    Blur4 => "resample.wgsl", "blur4", [R, W];
    BlurAdjoint => "resample.wgsl", "blur_adjoint", [R, W];
    Roll => "resample.wgsl", "roll", [R, W, R];
    BandRows => "bands.wgsl", "band_rows", [R, W];
    ReduceRows => "reduce.wgsl", "reduce_rows", [R, W];
    TvRows => "reduce.wgsl", "tv_rows", [R, W];
    TvGrad => "reduce.wgsl", "tv_grad", [R, W];
    ChannelCombination => "reduce.wgsl", "channel_combination", [R, R, W];
    Histogram => "select.wgsl", "histogram", [R, W];
    TopK => "select.wgsl", "top_k", [R, W, W];
    Objective => "objective.wgsl", "objective", [R, R, W, W];
    ClampChannels => "visualize.wgsl", "clamp_channels", [R, W];
    ClipSmall => "visualize.wgsl", "clip_small", [R, W, W];
    UnitTopK => "visualize.wgsl", "unit_top_k", [R, R, R, W, W];
    ChannelAffine => "visualize.wgsl", "channel_affine", [R, R, W];
    FftCols => "fourier.wgsl", "fft_cols", [R, R, W];
    FftColsAdjoint => "fourier.wgsl", "fft_cols_adjoint", [R, R, W];
    FftRows => "fourier.wgsl", "fft_rows", [R, W];
    FftRowsAdjoint => "fourier.wgsl", "fft_rows_adjoint", [R, W];
    ColorSigmoid => "fourier.wgsl", "color_sigmoid", [R, R, W];
    ColorSigmoidAdjoint => "fourier.wgsl", "color_sigmoid_adjoint", [R, R, W, R];
    Warp => "warp.wgsl", "warp", [R, W];
    WarpAdjoint => "warp.wgsl", "warp_adjoint", [R, W];
    DissectActive => "dissect.wgsl", "dissect_active", [R, R, W];
    DissectTally => "dissect.wgsl", "dissect_tally", [R, R, R, R, W, W, W, R];
    DissectUnitCategories => "dissect.wgsl", "dissect_unit_categories", [R, R, R, W];
}

impl Kernel {
    /// The kernel that runs this GEMM kernel's work with f16 weights (`half`): the cpu-tex
    /// kernels read those from an rgba16float texture, a binding of another type; the
    /// other GEMM kernels take f16 weights through their HALF constant.
    pub fn for_weights(self, half: bool) -> Kernel {
        match (self, half) {
            (Kernel::Conv2dForwardCpuTex, true) => Kernel::Conv2dForwardCpuTexHalf,
            (Kernel::Conv2dBackwardInputCpuTex, true) => Kernel::Conv2dBackwardInputCpuTexHalf,
            (Kernel::Conv2dForwardCpuTexNarrow, true) => Kernel::Conv2dForwardCpuTexNarrowHalf,
            (Kernel::Conv2dBackwardInputCpuTexNarrow, true) => {
                Kernel::Conv2dBackwardInputCpuTexNarrowHalf
            }
            (Kernel::Conv2dForwardCpuFetch, true) => Kernel::Conv2dForwardCpuFetchHalf,
            (Kernel::Conv2dBackwardInputCpuFetch, true) => Kernel::Conv2dBackwardInputCpuFetchHalf,
            (Kernel::Conv2dBackwardInputCpuTexPhases, true) => {
                Kernel::Conv2dBackwardInputCpuTexPhasesHalf
            }
            (Kernel::Conv2dBackwardInputCpuFetchPhases, true) => {
                Kernel::Conv2dBackwardInputCpuFetchPhasesHalf
            }
            (Kernel::LinearForwardCpuTex, true) => Kernel::LinearForwardCpuTexHalf,
            (Kernel::LinearBackwardInputCpuTex, true) => Kernel::LinearBackwardInputCpuTexHalf,
            (Kernel::LinearBackwardInputCpuTexStrips, true) => {
                Kernel::LinearBackwardInputCpuTexStripsHalf
            }
            _ => self,
        }
    }

    /// The CPU-shaped GEMM kernel's twin for launches of few output channels
    /// (conv2d_cpu_narrow.wgsl), if it has one.
    pub fn narrow(self) -> Option<Kernel> {
        Some(match self {
            Kernel::Conv2dForwardCpu => Kernel::Conv2dForwardCpuNarrow,
            Kernel::Conv2dBackwardInputCpu => Kernel::Conv2dBackwardInputCpuNarrow,
            Kernel::Conv2dForwardCpuTex => Kernel::Conv2dForwardCpuTexNarrow,
            Kernel::Conv2dBackwardInputCpuTex => Kernel::Conv2dBackwardInputCpuTexNarrow,
            Kernel::Conv2dForwardCpuFetch => Kernel::Conv2dForwardCpuTexNarrow,
            Kernel::Conv2dBackwardInputCpuFetch => Kernel::Conv2dBackwardInputCpuTexNarrow,
            _ => return None,
        })
    }

    /// The CPU-shaped input-gradient kernel's twin for one stride phase of a strided
    /// conv (conv2d_cpu.wgsl's PHASES), if it has one.
    pub fn phases(self) -> Option<Kernel> {
        Some(match self {
            Kernel::Conv2dBackwardInputCpu => Kernel::Conv2dBackwardInputCpuPhases,
            Kernel::Conv2dBackwardInputCpuTex => Kernel::Conv2dBackwardInputCpuTexPhases,
            Kernel::Conv2dBackwardInputCpuFetch => Kernel::Conv2dBackwardInputCpuFetchPhases,
            _ => return None,
        })
    }

    /// Whether the kernel is a stride phase's twin (PHASES set).
    fn of_phases(self) -> bool {
        matches!(
            self,
            Kernel::Conv2dBackwardInputCpuPhases
                | Kernel::Conv2dBackwardInputCpuTexPhases
                | Kernel::Conv2dBackwardInputCpuTexPhasesHalf
                | Kernel::Conv2dBackwardInputCpuFetchPhases
                | Kernel::Conv2dBackwardInputCpuFetchPhasesHalf
        )
    }

    /// The tiled GEMM kernel's twin that hands the weights round by subgroup broadcasts
    /// (conv2d_subgroup.wgsl), if it has one.
    pub fn subgroup(self) -> Option<Kernel> {
        Some(match self {
            Kernel::Conv2dForward => Kernel::Conv2dForwardSubgroup,
            Kernel::Conv2dBackwardInput => Kernel::Conv2dBackwardInputSubgroup,
            Kernel::Conv2dForwardPointwise => Kernel::Conv2dForwardPointwiseSubgroup,
            Kernel::Conv2dBackwardInputPointwise => Kernel::Conv2dBackwardInputPointwiseSubgroup,
            _ => return None,
        })
    }

    /// The input-gradient GEMV's twin that reads the forward packing, if it has one.
    pub fn strips(self) -> Option<Kernel> {
        Some(match self {
            Kernel::LinearBackwardInputCpu => Kernel::LinearBackwardInputCpuStrips,
            Kernel::LinearBackwardInputCpuTex => Kernel::LinearBackwardInputCpuTexStrips,
            _ => return None,
        })
    }

    /// The CPU-shaped GEMM kernel's matrix-vector twin for linear layers at small batches
    /// (linear_cpu.wgsl), if it has one.
    pub fn gemv(self) -> Option<Kernel> {
        Some(match self {
            Kernel::Conv2dForwardCpu => Kernel::LinearForwardCpu,
            Kernel::Conv2dBackwardInputCpu => Kernel::LinearBackwardInputCpu,
            Kernel::Conv2dForwardCpuTex => Kernel::LinearForwardCpuTex,
            Kernel::Conv2dBackwardInputCpuTex => Kernel::LinearBackwardInputCpuTex,
            Kernel::Conv2dForwardCpuFetch => Kernel::LinearForwardCpuTex,
            Kernel::Conv2dBackwardInputCpuFetch => Kernel::LinearBackwardInputCpuTex,
            _ => return None,
        })
    }
}

/// Whether kernels keep wgpu's injected runtime checks (bounds, loop bounding, division
/// guards): off by default, on with `NETLENS_CHECKED_SHADERS=1` (for debugging a kernel).
/// Vulkan drivers' robust buffer access applies either way.
pub fn checked_shaders() -> bool {
    std::env::var("NETLENS_CHECKED_SHADERS").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub struct Compiled {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Shader modules per file and pipelines per kernel, created on first use.
#[derive(Default)]
pub struct KernelCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(Kernel, bool), Arc<Compiled>>>,
    /// The subgroup kernels' `SG` constant: the device's smallest subgroup size.
    subgroup: u32,
}

impl KernelCache {
    /// A cache for a device whose subgroups have at least `subgroup` lanes (0: none).
    pub fn new(subgroup: u32) -> Self {
        KernelCache {
            subgroup,
            ..Default::default()
        }
    }

    /// Creates the pipelines of `keys` ((kernel, half) as in `get`) not made yet, on as
    /// many threads as the host has cores: a driver compiles each pipeline on the thread
    /// that asks for it, and a submission's kernels are known before it is encoded. Not on
    /// GL, where every call holds the one context (wgpu's GL backend gives up on a thread
    /// that waits for it over 6 s, which a long compile on another thread can cause).
    pub fn prepare(&self, device: &wgpu::Device, keys: &[(Kernel, bool)]) {
        let mut missing: Vec<(Kernel, bool)> = {
            let made = self.pipelines.lock().unwrap();
            keys.iter()
                .filter(|k| !made.contains_key(k))
                .copied()
                .collect()
        };
        missing.sort_by_key(|k| (k.0 as usize, k.1));
        missing.dedup();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(missing.len());
        if threads < 2 || device.adapter_info().backend == wgpu::Backend::Gl {
            return; // `get` makes them on first use
        }
        log::debug!("creating {} pipelines on {threads} threads", missing.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(kernel, half)) = missing.get(i) else {
                        break;
                    };
                    self.get(device, kernel, half);
                });
            }
        });
    }

    /// The pipeline of `kernel`; `half` sets the GEMM kernels' HALF constant (f16 weights).
    pub fn get(&self, device: &wgpu::Device, kernel: Kernel, half: bool) -> Arc<Compiled> {
        if let Some(c) = self.pipelines.lock().unwrap().get(&(kernel, half)) {
            return c.clone();
        }
        let (file, entry, access) = kernel.spec();
        let start = std::time::Instant::now();
        let module = {
            let mut modules = self.modules.lock().unwrap();
            modules
                .entry(file)
                .or_insert_with(|| {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(file),
                        source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
                    };
                    if checked_shaders() {
                        device.create_shader_module(desc)
                    } else {
                        // SAFETY: these are netlens's own kernels, not user input. Every
                        // storage index is guarded or clamped in the WGSL (the kernel tests
                        // run odd, padded, strided, batched and split shapes on both GEMM
                        // variants), every loop runs to a bound from the uniform, and every
                        // integer divisor is a size the launchers check to be non-zero.
                        unsafe {
                            device.create_shader_module_trusted(
                                desc,
                                wgpu::ShaderRuntimeChecks::unchecked(),
                            )
                        }
                    }
                })
                .clone()
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, a) in access.iter().enumerate() {
            let ty = match a {
                Access::TextureIn(format) => wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::ReadOnly,
                    format: *format,
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
                Access::TextureOut => wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::WriteOnly,
                    format: wgpu::TextureFormat::Rgba32Float,
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
                _ => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *a == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            };
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty,
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &entries,
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let mut constants = Vec::new();
        if half {
            constants.push(("HALF", 1.0));
        }
        if kernel == Kernel::LinearForwardSubgroup {
            constants.push(("SG", self.subgroup as f64));
        }
        if kernel.of_phases() {
            constants.push(("PHASES", 1.0));
        }
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        });
        log::debug!(
            "pipeline {kernel:?}{}: {:.1} ms",
            if half { " (f16 weights)" } else { "" },
            start.elapsed().as_secs_f64() * 1e3
        );
        let c = Arc::new(Compiled { pipeline, layout });
        self.pipelines
            .lock()
            .unwrap()
            .insert((kernel, half), c.clone());
        c
    }
}
