//! Input-gradient launchers, twins of the forward ones.

use super::conv::{
    check_context, check_layout, cpu_launch, gemm_kernel, launch_tiled, strips_launch,
    Conv2dParams, Groups, LinearParams,
};
use super::lrp::Ratio;
use super::pool::{params, runs_in_pairs};
use super::{dims4, u32s, Conv2dGeom, Pool2d};
use crate::error::{Error, Result};
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::{Kernel, Packing, Recorder, Tensor, WeightBuffer};

/// How a ReLU passes the gradient back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReluRule {
    /// dy * (y > 0)
    Gradient,
    /// Guided backprop: max(dy, 0) * (y > 0)
    Guided,
    /// Deconvnet: max(dy, 0)
    Deconv,
}

impl ReluRule {
    /// The rule as the kernels read it (elementwise.wgsl, pool.wgsl, pool_pairs.wgsl,
    /// pack_texture.wgsl).
    pub(crate) fn code(self) -> u32 {
        match self {
            ReluRule::Gradient => 0,
            ReluRule::Guided => 1,
            ReluRule::Deconv => 2,
        }
    }
}

/// dx of a conv2d whose input was `input_hw`, from dy [n, cout, oh, ow].
pub fn conv2d_backward_input(
    rec: &mut Recorder,
    dy: &Tensor,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    input_hw: (usize, usize),
) -> Result<Tensor> {
    backward_input(rec, dy, Dy::Tensor, w, g, input_hw, None)
}

/// `conv2d_backward_input` of the LRP ratio `q` (the shape of dy): where the GEMM reads a
/// packed texture (cpu-tex, cpu-fetch) the ratio is computed as it is packed and never
/// stored; elsewhere it is a tensor first.
pub fn conv2d_backward_ratio(
    rec: &mut Recorder,
    q: &Ratio,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    input_hw: (usize, usize),
) -> Result<Tensor> {
    conv2d_backward_ratio_scaled(rec, q, w, g, input_hw, None)
}

/// `conv2d_backward_ratio`, then with `a` (the conv's input) a ⊙ that, LRP's relevance at
/// the input: stored as products by the GEMM where one launch of the tiled kernel makes dx
/// (flags bit6), else by a pass after it; the same bits either way.
pub fn conv2d_backward_ratio_scaled(
    rec: &mut Recorder,
    q: &Ratio,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    input_hw: (usize, usize),
    a: Option<&Tensor>,
) -> Result<Tensor> {
    // both paths check the ratio's shapes (the pack before its first launch)
    if rec.ctx().gemm().reads_textures() {
        return backward_input(rec, q.r, Dy::Ratio(q), w, g, input_hw, a);
    }
    let dy = super::lrp_ratio_of(rec, q)?;
    backward_input(rec, &dy, Dy::Tensor, w, g, input_hw, a)
}

/// The sum of two LRP ratios' input gradients, Wᵀ₁ q1 + Wᵀ₂ q2, as one GEMM over twice the
/// reduction: `w` holds W₁ and W₂ stacked ([2 cout, cin, kh, kw]; `g` its geometry, cout
/// doubled) and the ratios are stacked an item to match (cout a multiple of 4). As
/// `conv2d_backward_ratio`, packed as computed on the texture-reading GEMMs; elsewhere
/// stacked in a tensor first (`lrp_ratios_stacked`).
/// With `a`, a ⊙ that, as `conv2d_backward_ratio_scaled`.
pub fn conv2d_backward_ratios(
    rec: &mut Recorder,
    (q1, q2): (&Ratio, &Ratio),
    w: &WeightBuffer,
    g: &Conv2dGeom,
    input_hw: (usize, usize),
    a: Option<&Tensor>,
) -> Result<Tensor> {
    if rec.ctx().gemm().reads_textures() {
        return backward_input(rec, q1.r, Dy::Ratios(q1, q2), w, g, input_hw, a);
    }
    let dy = super::lrp::lrp_ratios_stacked(rec, q1, q2)?;
    backward_input(rec, &dy, Dy::Tensor, w, g, input_hw, a)
}

/// The gradient at a conv's output where a ReLU reads it alone and a max-pool whose
/// windows tile the ReLU's output reads that alone (the walk's pool + ReLU backward), given
/// at the pool: `dy` at its output, its `argmax` and its output `pooled` (the ReLU's
/// output at each argmax), the ReLU `rule`.
pub struct PoolGrad<'a> {
    pub dy: &'a Tensor,
    pub argmax: &'a Tensor,
    pub pooled: &'a Tensor,
    pub pool: &'a Pool2d,
    pub rule: ReluRule,
}

impl PoolGrad<'_> {
    /// Whether the texture-reading GEMMs' packing pass can make this gradient for a conv
    /// output of shape `conv_out` (`conv2d_backward_pooled`): 2 x 2, stride 2 windows that
    /// tile it, rows of a multiple of 4 pixels.
    pub fn packs(&self, conv_out: &[usize]) -> bool {
        let o = &self.dy.shape;
        super::tiles_input(self.pool, o, conv_out)
            && runs_in_pairs(self.pool, conv_out, o)
            && self.argmax.shape == *o
            && self.pooled.shape == *o
            && conv_out[1] <= 4 * 65535
            && conv_out[0] <= 65535
            && (conv_out[2] * conv_out[3] / 4).div_ceil(64) <= 65535
    }
}

/// `conv2d_backward_input` of the gradient `pg` gives at the conv's output, on a
/// texture-reading GEMM where `PoolGrad::packs`: the GEMM's packing pass makes it from
/// the pool's tensors, so it is never stored (the same bits as
/// `max_pool2d_relu_backward` then `conv2d_backward_input`).
pub fn conv2d_backward_pooled(
    rec: &mut Recorder,
    pg: &PoolGrad,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    input_hw: (usize, usize),
) -> Result<Tensor> {
    if !rec.ctx().gemm().reads_textures() {
        return Err(Error::Other(format!(
            "conv2d_backward_pooled: the {} GEMMs do not pack their input; run \
             max_pool2d_relu_backward, then conv2d_backward_input",
            rec.ctx().gemm().name()
        )));
    }
    backward_input(rec, pg.dy, Dy::Pooled(pg), w, g, input_hw, None)
}

/// What an input-gradient launch reads as dY: the tensor given, or where the GEMM packs
/// its input, a ratio of its shape or a max-pool's gradient made as it is packed.
#[derive(Clone, Copy)]
enum Dy<'a> {
    Tensor,
    Ratio(&'a Ratio<'a>),
    /// two ratios of dy's shape, stacked an item (`conv2d_backward_ratios`)
    Ratios(&'a Ratio<'a>, &'a Ratio<'a>),
    Pooled(&'a PoolGrad<'a>),
}

/// dx from dy (its shape, for `Dy::Pooled` the conv output's, comes from `g`), or from
/// what `src` says is packed in its place (texture-reading GEMMs only); with `scale`,
/// scale ⊙ dx (in the tiled GEMM's stores where one launch makes dx).
fn backward_input(
    rec: &mut Recorder,
    dy: &Tensor,
    src: Dy,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    input_hw: (usize, usize),
    scale: Option<&Tensor>,
) -> Result<Tensor> {
    let dy_shape = match src {
        // the conv output's, checked before any launch
        Dy::Pooled(pg) => {
            let (oh, ow) = g.out_hw(input_hw.0, input_hw.1)?;
            let shape = vec![dy.shape.first().copied().unwrap_or(0), g.cout, oh, ow];
            if !pg.packs(&shape) {
                return Err(Error::Shape(format!(
                    "conv2d_backward_pooled: a max-pool gradient {:?} ({:?}) that does not \
                     tile a {oh}x{ow} conv output in pairs of windows; run \
                     max_pool2d_relu_backward, then conv2d_backward_input",
                    pg.dy.shape, pg.pool
                )));
            }
            shape
        }
        Dy::Ratios(..) => super::lrp::stacked_shape(&dy.shape)?,
        _ => dy.shape.clone(),
    };
    let [n, c, oh, ow] = dims4(&dy_shape, "conv2d_backward_input")?;
    let (h, wd) = input_hw;
    if c != g.cout || g.out_hw(h, wd)? != (oh, ow) {
        return Err(Error::Shape(format!(
            "conv2d backward: dy {:?} does not come from a {h}x{wd} input",
            dy.shape
        )));
    }
    check_layout(rec, w, g, "conv2d backward")?;
    let dx = Tensor::empty(rec.ctx(), &[n, g.cin, h, wd], "conv2d input gradient")?;
    let (kernel, tile) = gemm_kernel(
        rec,
        [
            Kernel::Conv2dBackwardInput,
            Kernel::Conv2dBackwardInputCpu,
            Kernel::Conv2dBackwardInputCpuTex,
            Kernel::Conv2dBackwardInputCpuFetch,
        ],
    );
    if let Some(a) = scale {
        if a.shape != dx.shape {
            return Err(Error::Shape(format!(
                "conv2d backward: cannot scale a {:?} input gradient by {:?}",
                dx.shape, a.shape
            )));
        }
    }
    if matches!(src, Dy::Tensor)
        && super::winograd::applies(rec.ctx(), w, g, (h, wd))
        && super::winograd::backward_input(rec, dy, w, g, (h, wd), scale, &dx)?
    {
        return Ok(dx);
    }
    let mut scaled = false;
    for (i, ch) in w.chunks.iter().enumerate() {
        let mut p = Conv2dParams::new(g, n, (h, wd), (oh, ow), ch, if i > 0 { 4 } else { 0 })?;
        let mut launch = match w.packing {
            Packing::Rows => None,
            _ if g.stride != (1, 1) => None, // a launch per stride phase, below
            _ => Some(cpu_launch(kernel, tile, &p, n * h * wd, g.cin)?),
        };
        // the CPU-shaped kernels read their own transposed packing, but a linear layer's
        // (GEMV or GEMM) reads the forward one through the GEMV's strips twin until it has
        // seen enough items to pay for the transposition
        let vector = [h, wd, oh, ow, g.kernel.0, g.kernel.1] == [1; 6];
        let weights = match (launch, kernel.gemv()) {
            (Some(_), Some(gemv)) if vector => {
                let (src, strips) = w.gemv_backward_source(rec.ctx(), i, n)?;
                if strips {
                    launch = Some(strips_launch(gemv, &p, g.cin)?);
                }
                src
            }
            _ => w.backward_source(rec.ctx(), i)?,
        };
        // cpu-tex and cpu-fetch read this chunk's channels of dY from a texture
        let packed = match src {
            Dy::Ratio(q) => Some(super::pack::pack_ratio_texture(rec, q, ch.start, ch.rows)?),
            Dy::Ratios(q1, q2) => Some(super::pack::pack_ratios_texture(
                rec, q1, q2, ch.start, ch.rows,
            )?),
            Dy::Pooled(pg) => Some(super::pack::pack_pool_grad_texture(
                rec, pg, &dy_shape, ch.start, ch.rows,
            )?),
            Dy::Tensor if rec.ctx().gemm().reads_textures() => {
                Some(super::pack::pack_texture(rec, dy, ch.start, ch.rows)?)
            }
            Dy::Tensor => None,
        };
        // one launch of the tiled kernel stores scale ⊙ dx itself (products summed over
        // chunks would not be the bits of a product of the sum). The CPU-shaped kernels
        // keep the pass after: their stores are per-lane loops on a CPU driver, and four
        // more loads in each cost what the pass did (VGG16's EpsilonPlus map 28.59 →
        // 28.68 G JIT instructions with them fused, ResNet-50's 15.42 → 15.39 G)
        let fused = scale.is_some() && w.chunks.len() == 1 && w.packing == Packing::Rows;
        if fused {
            p.flags |= SCALE;
            scaled = true;
        }
        let binds = [
            packed
                .as_ref()
                .map_or(Binding::Tensor(dy), |t| Binding::Texture(t)),
            weights.binding(),
            match scale {
                Some(a) if fused => Binding::Tensor(a),
                _ => Binding::Raw(&ch.bias),
            },
            Binding::Tensor(&dx),
        ];
        if w.packing == Packing::Rows {
            let k = ch.rows * g.kernel.0 * g.kernel.1;
            if g.cin <= GATHER_CHANNELS {
                let threads = u32s((n * h * wd).div_ceil(64), "input pixels")?;
                let kernel = Kernel::Conv2dBackwardInputGather;
                rec.launch_gemm(kernel, w.half, &p, &binds, grid(threads));
                continue;
            }
            if g.stride != (1, 1) {
                for (q, mnk) in p.stride_phases() {
                    launch_tiled(rec, kernel, w.half, q, true, mnk, Groups::ONE, binds)?;
                }
                continue;
            }
            let mnk = (n * h * wd, g.cin, k);
            let kernel = match g.pointwise() {
                true => Kernel::Conv2dBackwardInputPointwise,
                false => kernel,
            };
            launch_tiled(rec, kernel, w.half, p, true, mnk, Groups::ONE, binds)?;
            continue;
        }
        if g.stride != (1, 1) {
            for (q, (m, _, _)) in p.stride_phases() {
                let (kernel, gr) = cpu_launch(kernel, tile, &q, m, g.cin)?;
                // the narrow kernel reads the phase's fields itself, per tap
                let kernel = kernel.phases().unwrap_or(kernel);
                rec.launch_gemm(kernel, w.half, &q, &binds, gr);
            }
            continue;
        }
        if let Some((kernel, gr)) = launch {
            rec.launch_gemm(kernel, w.half, &p, &binds, gr);
        }
    }
    match scale {
        Some(a) if !scaled => super::lrp_combine(rec, 1.0, a, &dx, 0.0, a, &dx, None),
        _ => Ok(dx),
    }
}

/// Input channels up to which the tiled variant gathers a conv's input gradient a pixel a
/// thread (conv2d_gather.wgsl) instead of running its 64-channel GEMM tiles.
const GATHER_CHANNELS: usize = 4;

/// conv2d.wgsl's flags bit6: stores times the tensor bound as the bias.
const SCALE: u32 = 64;

/// dx [n, in] of a linear layer from dy [n, out].
pub fn linear_backward_input(rec: &mut Recorder, dy: &Tensor, w: &WeightBuffer) -> Result<Tensor> {
    let n = match dy.shape.as_slice() {
        [n, o] if *o == w.rows => *n,
        s => {
            return Err(Error::Shape(format!(
                "linear backward expects dy [N, {}], got {s:?}",
                w.rows
            )))
        }
    };
    check_context(rec, w, "linear backward")?;
    let k = w.row_len;
    // the tiled variant: its GEMV at any batch, as linear_acc
    if w.packing != Packing::Rows {
        let g = Conv2dGeom {
            cin: k,
            cout: w.rows,
            kernel: (1, 1),
            stride: (1, 1),
            padding: (0, 0),
        };
        let dx = conv2d_backward_input(rec, &dy.reshape(&[n, w.rows, 1, 1])?, w, &g, (1, 1))?;
        return dx.reshape(&[n, k]);
    }
    let dx = Tensor::empty(rec.ctx(), &[n, k], "linear input gradient")?;
    for (i, ch) in w.chunks.iter().enumerate() {
        let p = LinearParams {
            n: n as u32,
            in_features: u32s(k, "features")?,
            out_features: w.rows as u32,
            o_offset: ch.start as u32,
            o_count: ch.rows as u32,
            flags: if i > 0 { 4 } else { 0 },
            _pad: [0; 2],
        };
        let mut gr = grid(k.div_ceil(64) as u32);
        gr[1] = n.div_ceil(8) as u32;
        rec.launch_gemm(
            Kernel::LinearBackwardInput,
            w.half,
            &p,
            &[
                Binding::Tensor(dy),
                Binding::Raw(ch.buffer()?),
                Binding::Raw(&ch.bias),
                Binding::Tensor(&dx),
            ],
            gr,
        );
    }
    Ok(dx)
}

fn pool_back(
    rec: &mut Recorder,
    kernel: Kernel,
    dy: &Tensor,
    argmax: Option<&Tensor>,
    pool: Option<&Pool2d>,
    input: &[usize],
) -> Result<Tensor> {
    let d = dims4(input, "pool backward")?;
    let o = dims4(&dy.shape, "pool backward")?;
    if o[0] != d[0] || o[1] != d[1] {
        return Err(Error::Shape(format!(
            "pool backward: dy {:?} does not match input {input:?}",
            dy.shape
        )));
    }
    let dx = Tensor::empty(rec.ctx(), input, "pool input gradient")?;
    let p = params(&d, o[2], o[3], pool)?;
    // the max-pool backward also reads the forward's argmax; the others bind only dy, dx
    let mut bind = vec![Binding::Tensor(dy), Binding::Tensor(&dx)];
    bind.extend(argmax.map(Binding::Tensor));
    // a thread per input element, or per window where they tile the input
    let threads = match kernel {
        Kernel::MaxPool2dBackwardTiling => dy.len(),
        Kernel::MaxPool2dBackwardPairs => dy.len() / 2,
        _ => dx.len(),
    };
    rec.launch_1d(kernel, &p, &bind, threads);
    Ok(dx)
}

/// Routes each output gradient to its window's winner (the stored argmax).
pub fn max_pool2d_backward(
    rec: &mut Recorder,
    dy: &Tensor,
    argmax: &Tensor,
    pool: &Pool2d,
    input: &[usize],
) -> Result<Tensor> {
    if argmax.shape != dy.shape {
        return Err(Error::Shape("max-pool argmax does not match dy".into()));
    }
    // windows that tile the input exactly (VGG's 2x2, stride 2) run one thread a window
    let kernel = if !tiles_input(pool, &dy.shape, input) {
        Kernel::MaxPool2dBackward
    } else if runs_in_pairs(pool, input, &dy.shape) {
        Kernel::MaxPool2dBackwardPairs
    } else {
        Kernel::MaxPool2dBackwardTiling
    };
    pool_back(rec, kernel, dy, Some(argmax), Some(pool), input)
}

/// Whether `pool`'s windows tile an `input` shaped input exactly (kernel = stride, no
/// padding, each side a multiple of the window) for output `out`.
pub fn tiles_input(pool: &Pool2d, out: &[usize], input: &[usize]) -> bool {
    pool.kernel == pool.stride
        && pool.padding == (0, 0)
        && input.len() == 4
        && out.len() == 4
        && input[2] == out[2] * pool.kernel.0
        && input[3] == out[3] * pool.kernel.1
}

/// The gradient at the input of a ReLU whose only reader is a max-pool whose windows tile
/// its input (`tiles_input`), in one pass: `dy` at the pool's output `pooled` (the
/// ReLU's output at each argmax). The same bits as `max_pool2d_backward` then
/// `relu_backward`.
pub fn max_pool2d_relu_backward(
    rec: &mut Recorder,
    dy: &Tensor,
    argmax: &Tensor,
    pooled: &Tensor,
    pool: &Pool2d,
    input: &[usize],
    rule: ReluRule,
) -> Result<Tensor> {
    if argmax.shape != dy.shape || pooled.shape != dy.shape {
        return Err(Error::Shape(
            "max-pool argmax or output does not match dy".into(),
        ));
    }
    if !tiles_input(pool, &dy.shape, input) {
        return Err(Error::Shape(format!(
            "max-pool {pool:?} does not tile {input:?}: run max_pool2d_backward, then relu_backward"
        )));
    }
    let d = dims4(input, "pool backward")?;
    let dx = Tensor::empty(rec.ctx(), input, "relu input gradient")?;
    let mut p = params(&d, dy.shape[2], dy.shape[3], Some(pool))?;
    p.flags = rule.code();
    let bind = [
        Binding::Tensor(dy),
        Binding::Tensor(&dx),
        Binding::Tensor(argmax),
        Binding::Tensor(pooled),
    ];
    if runs_in_pairs(pool, input, &dy.shape) {
        rec.launch_1d(Kernel::MaxPool2dReluBackwardPairs, &p, &bind, dy.len() / 2);
    } else {
        rec.launch_1d(Kernel::MaxPool2dReluBackwardTiling, &p, &bind, dy.len());
    }
    Ok(dx)
}

pub fn avg_pool2d_backward(
    rec: &mut Recorder,
    dy: &Tensor,
    pool: &Pool2d,
    input: &[usize],
) -> Result<Tensor> {
    pool_back(rec, Kernel::AvgPool2dBackward, dy, None, Some(pool), input)
}

pub fn adaptive_avg_pool2d_backward(
    rec: &mut Recorder,
    dy: &Tensor,
    input: &[usize],
) -> Result<Tensor> {
    pool_back(
        rec,
        Kernel::AdaptiveAvgPool2dBackward,
        dy,
        None,
        None,
        input,
    )
}

/// dx of a ReLU from its forward output `y` and dy.
pub fn relu_backward(
    rec: &mut Recorder,
    y: &Tensor,
    dy: &Tensor,
    rule: ReluRule,
) -> Result<Tensor> {
    if y.len() != dy.len() {
        return Err(Error::Shape(format!(
            "relu backward: y {:?} vs dy {:?}",
            y.shape, dy.shape
        )));
    }
    let dx = Tensor::empty(rec.ctx(), &dy.shape, "relu input gradient")?;
    let (kernel, p) = super::simple::relu_launch(Kernel::ReluBackward, dy.len(), rule.code())?;
    rec.launch_1d(
        kernel,
        &p,
        &[
            Binding::Tensor(y),
            Binding::Tensor(&dx),
            Binding::Tensor(dy),
        ],
        p.count as usize,
    );
    Ok(dx)
}
