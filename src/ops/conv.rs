//! conv2d and linear launchers (linear layers run as 1x1 conv2d GEMMs, except on the
//! tiled variant, whose GEMV kernels run them at any batch).

use bytemuck::{Pod, Zeroable};

use super::pack::Act;
use super::{conv_out, dims4, u32s};
use crate::error::{Error, Result};
use crate::gpu::recorder::Binding;
use std::sync::Arc;

use crate::gpu::weights::{WeightChunk, WeightSource};
use crate::gpu::{Gemm, Kernel, Packing, Recorder, Tensor, WeightBuffer, WeightKind};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Conv2dParams {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    co_offset: u32,
    co_count: u32,
    pub(crate) flags: u32,
    phase: Phase,
}

/// Where a launch's taps and, for an input gradient, its pixels sit in the whole
/// convolution's (conv2d_tiled.wgsl, conv2d_cpu.wgsl): the launch's tap (ky, kx) is weight
/// tap `tap0 + ky tap_dy + kx tap_dx` of `taps`; an input gradient's pixel (y, x) is
/// `dx_origin + y dx_sy + x dx_sx` of a dx plane of `dx_plane`. `whole` for a launch over
/// the whole convolution; a strided convolution's input gradient runs a launch per stride
/// phase (`Conv2dParams::stride_phases`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct Phase {
    pub tap0: u32,
    pub tap_dy: u32,
    pub tap_dx: u32,
    pub taps: u32,
    pub dx_origin: u32,
    pub dx_sy: u32,
    pub dx_sx: u32,
    pub dx_plane: u32,
}

impl Phase {
    /// A launch over every tap of a `kernel` and every pixel of an `hw` input.
    fn whole(kernel: (usize, usize), hw: (usize, usize)) -> Self {
        let (kh, kw) = (kernel.0 as u32, kernel.1 as u32);
        let (h, w) = (hw.0 as u32, hw.1 as u32);
        Phase {
            tap0: 0,
            tap_dy: kw,
            tap_dx: 1,
            taps: kh * kw,
            dx_origin: 0,
            dx_sy: w,
            dx_sx: 1,
            dx_plane: h * w,
        }
    }
}

impl Conv2dParams {
    /// One launch over weight chunk `ch` for input [n, cin, h, w] -> output (oh, ow).
    pub(crate) fn new(
        g: &Conv2dGeom,
        n: usize,
        hw: (usize, usize),
        ohw: (usize, usize),
        ch: &WeightChunk,
        flags: u32,
    ) -> Result<Self> {
        Self::rows(g, n, hw, ohw, (ch.start, ch.rows), flags)
    }

    /// As `new`, over output channels [start, start + rows).
    fn rows(
        g: &Conv2dGeom,
        n: usize,
        hw: (usize, usize),
        ohw: (usize, usize),
        (start, rows): (usize, usize),
        flags: u32,
    ) -> Result<Self> {
        Ok(Conv2dParams {
            n: u32s(n, "batch")?,
            cin: u32s(g.cin, "channels")?,
            h: u32s(hw.0, "height")?,
            w: u32s(hw.1, "width")?,
            cout: u32s(g.cout, "channels")?,
            oh: ohw.0 as u32,
            ow: ohw.1 as u32,
            kh: g.kernel.0 as u32,
            kw: g.kernel.1 as u32,
            stride_h: g.stride.0 as u32,
            stride_w: g.stride.1 as u32,
            pad_h: g.padding.0 as u32,
            pad_w: g.padding.1 as u32,
            co_offset: start as u32,
            co_count: rows as u32,
            flags,
            phase: Phase::whole(g.kernel, hw),
        })
    }

    /// A strided convolution's input gradient as one stride-1 launch per stride phase (every
    /// variant's input-gradient kernels assume stride 1). Input pixel iy receives dY[oy] through tap ky only where
    /// oy stride = iy + pad - ky, so the pixels iy = py + stride j of phase py take only the
    /// taps ky = ky0 + stride t, ky0 = (py + pad) mod stride, from oy = j + c - t,
    /// c = (py + pad - ky0) / stride: a stride-1 input gradient over the phase's sub-grid
    /// with those taps and padding c. One launch over every tap would run stride² as many
    /// multiply-adds, most of them on zeros. Each item: the launch's parameters (the
    /// sub-grid as `h` x `w`, the phase's taps as `kh` x `kw`, stride 1, padding c), where
    /// its taps and pixels sit in the whole convolution `self` (`Phase`), and its GEMM's
    /// (m, n, k).
    /// Phases without pixels are left out; one without taps (a 1x1 stride-2 conv's
    /// off-grid pixels) still runs, to store its zeros.
    pub(crate) fn stride_phases(&self) -> Vec<(Conv2dParams, (usize, usize, usize))> {
        let p = self;
        // (pixels, taps, padding, first tap) of phase `at` along one axis
        let axis = |at: u32, size: u32, k: u32, stride: u32, pad: u32| {
            let k0 = (at + pad) % stride;
            let pixels = if at < size {
                (size - at).div_ceil(stride)
            } else {
                0
            };
            let taps = if k0 < k { (k - k0).div_ceil(stride) } else { 0 };
            (pixels, taps, (at + pad - k0) / stride, k0)
        };
        let mut out = vec![];
        for py in 0..p.stride_h {
            for px in 0..p.stride_w {
                let (hp, khp, cy, ky0) = axis(py, p.h, p.kh, p.stride_h, p.pad_h);
                let (wp, kwp, cx, kx0) = axis(px, p.w, p.kw, p.stride_w, p.pad_w);
                if hp == 0 || wp == 0 {
                    continue;
                }
                let phase = Phase {
                    tap0: ky0 * p.kw + kx0,
                    tap_dy: p.stride_h * p.kw,
                    tap_dx: p.stride_w,
                    taps: p.kh * p.kw,
                    dx_origin: py * p.w + px,
                    dx_sy: p.stride_h * p.w,
                    dx_sx: p.stride_w,
                    dx_plane: p.h * p.w,
                };
                let q = Conv2dParams {
                    h: hp,
                    w: wp,
                    kh: khp,
                    kw: kwp,
                    stride_h: 1,
                    stride_w: 1,
                    pad_h: cy,
                    pad_w: cx,
                    phase,
                    ..*p
                };
                let mnk = (
                    (p.n * hp * wp) as usize,
                    p.cin as usize,
                    (p.co_count * khp * kwp) as usize,
                );
                out.push((q, mnk));
            }
        }
        out
    }

    /// A 1x1 convolution (a plain GEMM) of `n` items of `cin` channels over planes of
    /// `plane` pixels into `cout` channels, all in one launch, with `flags`.
    pub(crate) fn pointwise(
        n: usize,
        cin: usize,
        plane: usize,
        cout: usize,
        flags: u32,
    ) -> Result<Self> {
        let g = Conv2dGeom {
            cin,
            cout,
            kernel: (1, 1),
            stride: (1, 1),
            padding: (0, 0),
        };
        Self::rows(&g, n, (plane, 1), (plane, 1), (0, cout), flags)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LinearParams {
    pub n: u32,
    pub in_features: u32,
    pub out_features: u32,
    pub o_offset: u32,
    pub o_count: u32,
    pub flags: u32,
    pub _pad: [u32; 2],
}

/// Geometry of a 2-D convolution (weights [cout, cin, kh, kw]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub cin: usize,
    pub cout: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Conv2dGeom {
    /// A 1x1 convolution at stride 1 without padding: per pixel, a plain GEMM (the tiled
    /// kernels' pointwise entry points).
    pub fn pointwise(&self) -> bool {
        self.kernel == (1, 1) && self.stride == (1, 1) && self.padding == (0, 0)
    }

    pub fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        Ok((
            conv_out(h, self.kernel.0, self.stride.0, self.padding.0)?,
            conv_out(w, self.kernel.1, self.stride.1, self.padding.1)?,
        ))
    }
}

/// The tiled kernel's output tile: pixels x channels per workgroup.
const TILED: (usize, usize) = (128, 64);
/// The tiled kernel's reduction slice (`BK` in conv2d.wgsl).
const TILED_BK: usize = 8;
/// Workgroups a tiled launch aims for: a layer with fewer than half as many output tiles
/// splits its reduction (two 256-lane workgroups per multiprocessor on a 132-SM GPU).
const TILED_TARGET_GROUPS: usize = 256;
/// Least reduction length one split covers.
const TILED_MIN_SPLIT_K: usize = 128;
/// Largest split-K scratch, bytes.
const TILED_MAX_SCRATCH: u64 = 64 << 20;
/// The CPU-shaped kernel's: 8 lanes (one subgroup) of two pixels each, 64 channels.
const CPU: (usize, usize) = (16, 64);
/// The narrow CPU-shaped kernel's: 8 lanes of four pixels each, 4 channels.
const NARROW: (usize, usize) = (32, 4);
/// Output channels up to which a CPU-shaped launch runs the narrow kernel: the 64-channel
/// one computes a whole block of 64 whatever the count.
pub(crate) const NARROW_ROWS: usize = 8;

/// Rows a workgroup of the matrix-vector kernels owns (linear_cpu.wgsl: ROWS).
const GEMV_ROWS: usize = 32;
/// Inputs a workgroup of the input-gradient GEMV over the forward packing owns
/// (linear_cpu.wgsl: STRIP).
const GEMV_STRIP: usize = 256;

/// The grid and kernel of a CPU-shaped launch `p` over `m` pixels and `rows` output
/// channels: `kernel` with its (pixels, channels) `tile`; its narrow twin for few
/// channels; its matrix-vector twin for a 1x1 convolution of 1x1 images (a linear layer)
/// at fewer than `CPU_GEMV_BATCH` items.
pub(crate) fn cpu_launch(
    kernel: Kernel,
    tile: (usize, usize),
    p: &Conv2dParams,
    m: usize,
    rows: usize,
) -> Result<(Kernel, [u32; 3])> {
    let vector = [p.h, p.w, p.kh, p.kw, p.oh, p.ow] == [1; 6];
    if let (Some(k), true) = (kernel.gemv(), vector && (p.n as usize) < CPU_GEMV_BATCH) {
        let mut g = crate::gpu::recorder::grid(u32s(rows.div_ceil(GEMV_ROWS), "row blocks")?);
        g[1] = p.n;
        return Ok((k, g));
    }
    let (kernel, tile) = match kernel.narrow() {
        Some(k) if rows <= NARROW_ROWS => (k, NARROW),
        _ => (kernel, tile),
    };
    let mut g = crate::gpu::recorder::grid(u32s(m.div_ceil(tile.0), "conv2d pixel tiles")?);
    g[1] = u32s(rows.div_ceil(tile.1), "conv2d channel tiles")?;
    Ok((kernel, g))
}

/// The launch of `gemv`'s twin that reads the forward packing (`Kernel::strips`) over
/// `inputs` input channels.
pub(crate) fn strips_launch(
    gemv: Kernel,
    p: &Conv2dParams,
    inputs: usize,
) -> Result<(Kernel, [u32; 3])> {
    let k = gemv
        .strips()
        .ok_or_else(|| Error::Other(format!("{gemv:?} has no twin over the forward packing")))?;
    let mut g = crate::gpu::recorder::grid(u32s(inputs.div_ceil(GEMV_STRIP), "input strips")?);
    g[1] = p.n;
    Ok((k, g))
}

/// The context's variant of a GEMM kernel (tiled, CPU-shaped with buffers, with textures,
/// with textures and no subgroups) and its (pixels, channels) per workgroup.
pub(crate) fn gemm_kernel(rec: &Recorder, kernels: [Kernel; 4]) -> (Kernel, (usize, usize)) {
    match rec.ctx().gemm() {
        Gemm::Tiled | Gemm::TiledSubgroup => (kernels[0], TILED),
        Gemm::Cpu => (kernels[1], CPU),
        Gemm::CpuTex => (kernels[2], CPU),
        Gemm::CpuFetch => (kernels[3], CPU),
    }
}

/// How the tiled kernels split a reduction of length `k` for one batch item's `m` x `n`
/// output: (splits, reduction steps per split). One split where one item's output tiles
/// give enough workgroups; otherwise enough splits to approach `TILED_TARGET_GROUPS`, each
/// at least `TILED_MIN_SPLIT_K` long, with one item's scratch (`splits` x m x n floats)
/// under `max_scratch` bytes. Every split is non-empty and a multiple of the kernel's
/// slice. The plan depends on one item only, so an item's sums are the same bits whatever
/// the batch (a batch too large for the scratch runs in groups of items).
pub fn tiled_split(m: usize, n: usize, k: usize, max_scratch: u64) -> (usize, usize) {
    let tiles = m.div_ceil(TILED.0) * n.div_ceil(TILED.1);
    let mut splits = 1;
    if tiles * 2 < TILED_TARGET_GROUPS {
        splits = (TILED_TARGET_GROUPS / tiles.max(1)).min(k / TILED_MIN_SPLIT_K);
        let per = (m * n * 4).max(1) as u64;
        splits = splits.min((max_scratch / per) as usize).max(1);
    }
    let chunk = k.max(1).div_ceil(splits).div_ceil(TILED_BK) * TILED_BK;
    (k.max(1).div_ceil(chunk), chunk)
}

/// The tiled kernels' parameters: a conv launch's, its split of the reduction, the first
/// batch item it covers, and its groups (`Groups`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GemmParams {
    conv: Conv2dParams,
    splits: u32,
    k_chunk: u32,
    mode: u32,
    item0: u32,
    groups: u32,
    group_items: u32,
    w_stride: u32,
    _pad: u32,
}

/// Independent GEMMs of one shape that one tiled launch runs (Winograd's 16 transform
/// points): group g reads and writes items from `g * items`, and its weights start
/// `w_stride` values after group g - 1's. `plan_plane`: the item plane split-K is planned
/// for where the launch covers part of one (0: the launch's own).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Groups {
    pub count: usize,
    pub items: usize,
    pub w_stride: usize,
    pub plan_plane: usize,
}

impl Groups {
    /// One GEMM.
    pub(crate) const ONE: Groups = Groups {
        count: 1,
        items: 0,
        w_stride: 0,
        plan_plane: 0,
    };
}

/// Launches a tiled GEMM (`Gemm::Tiled`, or its subgroup twin where the context runs
/// `Gemm::TiledSubgroup`) over one weight chunk: `(m, n, k)` its output
/// pixels (all items), channels and reduction length, `backward` for the input gradient.
/// A split reduction (planned per item by `tiled_split`) writes its slices to a scratch
/// tensor that `Conv2dSplitSum` adds in order and stores with the launch's bias, ReLU and
/// accumulation, for as many items at a time as the scratch bound allows. `bindings`:
/// input, weights, bias, output. `groups`: the launch's independent GEMMs, each `(m, n,
/// k)` (m over `base.n` items).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_tiled(
    rec: &mut Recorder,
    kernel: Kernel,
    half: bool,
    base: Conv2dParams,
    backward: bool,
    (m, n, k): (usize, usize, usize),
    groups: Groups,
    [x, w, bias, y]: [Binding; 4],
) -> Result<()> {
    let kernel = match (rec.ctx().gemm(), kernel.subgroup()) {
        (Gemm::TiledSubgroup, Some(twin)) => twin,
        _ => kernel,
    };
    let max_scratch = TILED_MAX_SCRATCH.min(rec.ctx().max_binding());
    let items = (base.n as usize).max(1);
    let plane = m / items;
    let g_count = groups.count.max(1);
    let planned = if groups.plan_plane > 0 {
        groups.plan_plane
    } else {
        plane
    };
    let (splits, chunk) = tiled_split(planned, n, k, max_scratch / g_count as u64);
    let grid = |pixels: usize| -> Result<[u32; 3]> {
        let mut g = crate::gpu::recorder::grid(u32s(pixels.div_ceil(TILED.0), "pixel tiles")?);
        g[1] = u32s(
            n.div_ceil(TILED.1) * splits * g_count,
            "conv2d channel tiles",
        )?;
        Ok(g)
    };
    let mut p = GemmParams {
        conv: base,
        splits: splits as u32,
        k_chunk: chunk as u32,
        mode: backward as u32,
        item0: 0,
        groups: g_count as u32,
        group_items: u32s(groups.items, "items a group")?,
        w_stride: u32s(groups.w_stride, "weights a group")?,
        _pad: 0,
    };
    if splits == 1 {
        rec.launch_gemm(kernel, half, &p, &[x, w, bias, y], grid(m)?);
        return Ok(());
    }
    let per_item = (g_count * splits * plane * n * 4).max(1) as u64;
    let group = ((max_scratch / per_item) as usize).clamp(1, items);
    let scratch = Tensor::empty(
        rec.ctx(),
        &[g_count * splits, n, group * plane],
        "split-K partial sums",
    )?;
    for item0 in (0..items).step_by(group) {
        let count = group.min(items - item0);
        p.conv.n = count as u32;
        p.item0 = item0 as u32;
        p.conv.flags = 8;
        let binds = [x, w, bias, Binding::Tensor(&scratch)];
        rec.launch_gemm(kernel, half, &p, &binds, grid(count * plane)?);
        p.conv.flags = base.flags;
        let sums = u32s((g_count * count * plane * n).div_ceil(64), "split-K sums")?;
        let binds = [Binding::Tensor(&scratch), w, bias, y];
        let groups = crate::gpu::recorder::grid(sums);
        rec.launch_gemm(Kernel::Conv2dSplitSum, half, &p, &binds, groups);
    }
    Ok(())
}

/// Weights uploaded with another context (another device, where wgpu would panic) are
/// refused.
pub(crate) fn check_context(rec: &Recorder, w: &WeightBuffer, what: &str) -> Result<()> {
    if w.ctx != rec.ctx().id {
        return Err(Error::Shape(format!(
            "{what}: the weights were uploaded with another context (another device); upload \
             them with the context that runs them"
        )));
    }
    Ok(())
}

/// Weights laid out for another kernel shape, layer type or context's GEMM kernels are
/// refused, not misread.
pub(crate) fn check_layout(
    rec: &Recorder,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    what: &str,
) -> Result<()> {
    let taps = g.kernel.0 * g.kernel.1;
    let fits = match w.kind {
        WeightKind::Conv { taps: t } => t == taps,
        WeightKind::Linear => taps == 1, // linear layers run as 1x1 convolutions
    };
    if !fits || w.rows != g.cout || w.row_len != g.cin * taps {
        return Err(Error::Shape(format!(
            "{what}: weights [{}, {}] ({:?}) do not fit a {}x{} convolution of {} -> {} channels \
             (upload conv weights with WeightBuffer::upload_conv)",
            w.rows, w.row_len, w.kind, g.kernel.0, g.kernel.1, g.cin, g.cout
        )));
    }
    check_context(rec, w, what)?;
    let gemm = rec.ctx().gemm();
    if w.packing != gemm.packing() {
        return Err(Error::Shape(format!(
            "{what}: weights laid out as {:?} for another context; this one runs the {} GEMMs \
             (upload the weights with the context that runs them)",
            w.packing,
            gemm.name()
        )));
    }
    Ok(())
}

pub(crate) fn flags(relu: bool, w: &WeightBuffer) -> u32 {
    (relu as u32) | ((w.has_bias as u32) << 1)
}

/// y = conv2d(x, W) + b, ReLU fused when `relu`.
pub fn conv2d(
    rec: &mut Recorder,
    x: &Tensor,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    relu: bool,
) -> Result<Tensor> {
    conv2d_acc(rec, x, w, g, relu, None)
}

/// As `conv2d`; with `acc`, adds the result into that tensor and returns it.
pub fn conv2d_acc(
    rec: &mut Recorder,
    x: &Tensor,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    relu: bool,
    acc: Option<&Tensor>,
) -> Result<Tensor> {
    let dims = forward_dims(rec, &x.shape, w, g, "conv2d")?;
    let ([n, _, _, _], (oh, ow)) = dims;
    let y = match acc {
        Some(t) if t.shape == [n, g.cout, oh, ow] => t.clone(),
        Some(t) => {
            return Err(Error::Shape(format!(
                "conv2d: cannot accumulate into {:?}",
                t.shape
            )))
        }
        None => Tensor::empty(rec.ctx(), &[n, g.cout, oh, ow], "conv2d output")?,
    };
    let accumulate = if acc.is_some() { 4 } else { 0 };
    let y = Act::Tensor(y);
    launch_forward(
        rec,
        &Act::Tensor(x.clone()),
        w,
        g,
        dims,
        relu,
        accumulate,
        &y,
    )?;
    match y {
        Act::Tensor(y) => Ok(y),
        Act::Packed(_) => unreachable!("made as a tensor"),
    }
}

/// `conv2d` of a tensor or a packed one (`Act`), its output packed four channels a texel
/// with `packed` (the next conv then reads it without a packing pass; see
/// `conv2d_packs_output` for where it can), else a tensor.
pub fn conv2d_act(
    rec: &mut Recorder,
    x: &Act,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    relu: bool,
    packed: bool,
) -> Result<Act> {
    let dims = forward_dims(rec, x.shape(), w, g, "conv2d")?;
    let ([n, _, _, _], (oh, ow)) = dims;
    let y = forward_output(
        rec,
        w,
        g,
        (n, (oh, ow)),
        &[n, g.cout, oh, ow],
        packed,
        "conv2d",
    )?;
    launch_forward(rec, x, w, g, dims, relu, 0, &y)?;
    Ok(y)
}

/// A forward's output of `shape`: packed with `packed`, where `conv2d_packs_output` says
/// the conv with weights `w` over `n` items of `conv_ohw` outputs can store it so (an
/// error naming `what` otherwise), else a tensor.
pub(crate) fn forward_output(
    rec: &mut Recorder,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    (n, conv_ohw): (usize, (usize, usize)),
    shape: &[usize],
    packed: bool,
    what: &str,
) -> Result<Act> {
    if !packed {
        let label = format!("{what} output");
        return Ok(Act::Tensor(Tensor::empty(rec.ctx(), shape, &label)?));
    }
    if !conv2d_packs_output(rec.ctx(), w, g, n, conv_ohw) {
        return Err(Error::Other(format!(
            "{what}: the {} GEMMs cannot store this {}-channel output packed; run it unpacked",
            rec.ctx().gemm().name(),
            g.cout
        )));
    }
    Ok(Act::Packed(super::pack::packed_tensor(rec, shape)?))
}

/// Whether conv2d (or conv2d_pool) with weights `w` on `n` items of `ohw` outputs can
/// store its output packed: a texture-reading GEMM whose 64-channel kernel runs every
/// launch (not the narrow or matrix-vector twins), a whole texel of channels each (a
/// multiple of 4 channels, chunks starting on one).
pub fn conv2d_packs_output(
    ctx: &crate::gpu::Context,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    n: usize,
    ohw: (usize, usize),
) -> bool {
    let vector = n < CPU_GEMV_BATCH && ohw == (1, 1) && g.kernel == (1, 1);
    ctx.gemm().reads_textures()
        && g.cout.is_multiple_of(4)
        && !vector
        && w.chunks
            .iter()
            .all(|c| c.start.is_multiple_of(4) && c.rows > NARROW_ROWS)
}

/// Records conv2d's launches over every weight chunk of `w`: x (a tensor or packed, of the
/// checked `forward_dims`) into y (a tensor, or packed with conv2d_cpu.wgsl's TEXELS),
/// with the ReLU and `accumulate` (flags bit2) flags.
#[allow(clippy::too_many_arguments)]
fn launch_forward(
    rec: &mut Recorder,
    x: &Act,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    ([n, c, h, wd], (oh, ow)): ([usize; 4], (usize, usize)),
    relu: bool,
    accumulate: u32,
    y: &Act,
) -> Result<()> {
    if let (Act::Tensor(xt), Act::Tensor(yt)) = (x, y) {
        if super::winograd::applies(rec.ctx(), w, g, (oh, ow)) {
            let dims = ([n, c, h, wd], (oh, ow));
            let flags = relu as u32 | accumulate;
            if super::winograd::forward(rec, xt, w, g, dims, flags, yt)? {
                return Ok(());
            }
        }
    }
    let m = n * oh * ow;
    let (kernel, tile, packed) = forward_input(rec, x, c)?;
    let texels = matches!(y, Act::Packed(_)) as u32 * TEXELS;
    // conv2d_cpu.wgsl's forward binds a pool argmax, which it writes only with POOL, and
    // the texels output
    let tail = binds_argmax(kernel)
        .then(|| ForwardTail::new(rec, None, y))
        .transpose()?;
    for (i, ch) in w.chunks.iter().enumerate() {
        let flags = flags(relu, w) | accumulate | texels;
        let p = Conv2dParams::new(g, n, (h, wd), (oh, ow), ch, flags)?;
        let weights = w.forward_source(rec.ctx(), i)?;
        let binds = forward_binds(x, &packed, &weights, ch, y, tail.as_ref());
        if w.packing == Packing::Rows {
            let k = g.cin * g.kernel.0 * g.kernel.1;
            let kernel = match g.pointwise() {
                true => Kernel::Conv2dForwardPointwise,
                false => kernel,
            };
            launch_tiled(
                rec,
                kernel,
                w.half,
                p,
                false,
                (m, ch.rows, k),
                Groups::ONE,
                binds,
            )?;
            continue;
        }
        let (kernel, grid) = cpu_launch(kernel, tile, &p, m, ch.rows)?;
        match &tail {
            // not the narrow or GEMV twin cpu_launch may pick
            Some(t) if binds_argmax(kernel) => {
                let binds = [&binds[..], &t.bindings(kernel)].concat();
                rec.launch_gemm(kernel, w.half, &p, &binds, grid);
            }
            _ if texels != 0 => {
                return Err(Error::Other(format!(
                    "conv2d: {kernel:?} cannot store a packed output"
                )))
            }
            _ => rec.launch_gemm(kernel, w.half, &p, &binds, grid),
        }
    }
    Ok(())
}

/// conv2d_cpu.wgsl's flags bit5: the output packed four channels a texel.
pub(crate) const TEXELS: u32 = 32;

/// The dims of a conv input of shape `x` and the conv's output size, after checking `x`
/// against `g` and `w` (`what` names the op in errors).
pub(crate) fn forward_dims(
    rec: &Recorder,
    x: &[usize],
    w: &WeightBuffer,
    g: &Conv2dGeom,
    what: &str,
) -> Result<([usize; 4], (usize, usize))> {
    let [n, c, h, wd] = dims4(x, what)?;
    if c != g.cin {
        return Err(Error::Shape(format!(
            "{what} expects {} input channels, got input {x:?}",
            g.cin
        )));
    }
    check_layout(rec, w, g, what)?;
    Ok(([n, c, h, wd], g.out_hw(h, wd)?))
}

/// A conv input packed into a texture, for the GEMMs that read textures.
pub(crate) type Packed = Option<Arc<wgpu::TextureView>>;

/// The context's forward GEMM kernel, its (pixels, channels) tile, and, where it reads
/// textures, `x`'s `c` channels packed into one (or `x` itself if it is packed).
pub(crate) fn forward_input(
    rec: &mut Recorder,
    x: &Act,
    c: usize,
) -> Result<(Kernel, (usize, usize), Packed)> {
    let (kernel, tile) = gemm_kernel(
        rec,
        [
            Kernel::Conv2dForward,
            Kernel::Conv2dForwardCpu,
            Kernel::Conv2dForwardCpuTex,
            Kernel::Conv2dForwardCpuFetch,
        ],
    );
    let packed = match (x, rec.ctx().gemm().reads_textures()) {
        (Act::Tensor(x), true) => Some(super::pack::pack_texture(rec, x, 0, c)?),
        (Act::Tensor(_), false) => None,
        (Act::Packed(p), true) => Some(p.view.clone()),
        (Act::Packed(_), false) => {
            return Err(Error::Other(format!(
                "a packed conv input on the {} GEMMs, which read tensors",
                rec.ctx().gemm().name()
            )))
        }
    };
    Ok((kernel, tile, packed))
}

/// The bindings of a CPU-shaped forward launch after its first four (conv2d_cpu.wgsl):
/// the pool argmax (binding 5) and, for the texture-reading kernels, the texels output
/// (binding 6); placeholders where the launch writes neither.
pub(crate) struct ForwardTail {
    argmax: Tensor,
    texels: Arc<wgpu::TextureView>,
    /// bound as the output buffer where the output is packed (stored as texels)
    spare: Tensor,
}

impl ForwardTail {
    /// `argmax` (or a placeholder) and `y`'s texture if it is packed (else a placeholder).
    pub(crate) fn new(rec: &mut Recorder, argmax: Option<&Tensor>, y: &Act) -> Result<Self> {
        let unused = |rec: &Recorder| Tensor::empty_u32(rec.ctx(), &[4], "unused binding");
        let argmax = match argmax {
            Some(a) => a.clone(),
            None => unused(rec)?,
        };
        let (texels, spare) = match y {
            Act::Packed(p) => (p.view.clone(), unused(rec)?),
            // spare is then never bound
            Act::Tensor(_) => (super::pack::packed_texture(rec, 1)?.0, argmax.clone()),
        };
        Ok(ForwardTail {
            argmax,
            texels,
            spare,
        })
    }

    /// The tail `kernel` declares.
    pub(crate) fn bindings(&self, kernel: Kernel) -> Vec<Binding<'_>> {
        let mut b = vec![Binding::Tensor(&self.argmax)];
        if matches!(
            kernel,
            Kernel::Conv2dForwardCpuTex | Kernel::Conv2dForwardCpuFetch
        ) {
            b.push(Binding::Texture(&self.texels));
        }
        b
    }

    /// A buffer to bind as binding 4 where the output is packed.
    pub(crate) fn spare(&self) -> &Tensor {
        &self.spare
    }
}

/// A forward GEMM launch's bindings over weight chunk `ch`: the input (`x`, or its
/// packing), the chunk's weights and bias, the output `y` (where `y` is packed, `tail`'s
/// spare buffer: the kernel stores texels instead).
pub(crate) fn forward_binds<'a>(
    x: &'a Act,
    packed: &'a Packed,
    weights: &'a WeightSource,
    ch: &'a WeightChunk,
    y: &'a Act,
    tail: Option<&'a ForwardTail>,
) -> [Binding<'a>; 4] {
    let input = match (packed, x) {
        (Some(t), _) => Binding::Texture(t),
        (None, Act::Tensor(t)) => Binding::Tensor(t),
        (None, Act::Packed(p)) => Binding::Texture(&p.view),
    };
    let output = match (y, tail) {
        (Act::Tensor(t), _) => Binding::Tensor(t),
        (Act::Packed(_), Some(t)) => Binding::Tensor(t.spare()),
        (Act::Packed(p), None) => Binding::Texture(&p.view), // refused by the launcher
    };
    [input, weights.binding(), Binding::Raw(&ch.bias), output]
}

/// Whether `kernel` is conv2d_cpu.wgsl's forward, which binds a pool argmax.
pub(crate) fn binds_argmax(kernel: Kernel) -> bool {
    matches!(
        kernel,
        Kernel::Conv2dForwardCpu | Kernel::Conv2dForwardCpuTex | Kernel::Conv2dForwardCpuFetch
    )
}

/// Batch below which the CPU-shaped variants run linear layers through their
/// matrix-vector kernels (linear_cpu.wgsl, chosen by `cpu_launch`) instead of the GEMM. The GEMV reads the weights once per
/// item, the GEMM once for up to 16: on lavapipe (AVX2) VGG16's fc6 takes 25-45 ms an
/// item through the first, 70-120 ms for 1 to 16 items through the second.
pub(crate) const CPU_GEMV_BATCH: usize = 4;

/// y = x W^T + b for x [N, in], W [out, in]; ReLU fused when `relu`.
pub fn linear(rec: &mut Recorder, x: &Tensor, w: &WeightBuffer, relu: bool) -> Result<Tensor> {
    linear_acc(rec, x, w, relu, None)
}

/// As `linear`; with `acc`, adds the result into that tensor and returns it.
pub fn linear_acc(
    rec: &mut Recorder,
    x: &Tensor,
    w: &WeightBuffer,
    relu: bool,
    acc: Option<&Tensor>,
) -> Result<Tensor> {
    let (n, k) = match x.shape.as_slice() {
        [n, k] => (*n, *k),
        s => {
            return Err(Error::Shape(format!(
                "linear expects [N, features], got {s:?}"
            )))
        }
    };
    if k != w.row_len {
        return Err(Error::Shape(format!(
            "linear expects {} input features, got {k}",
            w.row_len
        )));
    }
    check_context(rec, w, "linear")?;
    // The tiled variant runs its GEMV at any batch: it reads each weight row once per 8
    // items where the GEMM would share it among 128, but the GEMM sums in another order,
    // and switching by batch size would make an item's outputs depend on its batch.
    if w.packing != Packing::Rows {
        let g = Conv2dGeom {
            cin: k,
            cout: w.rows,
            kernel: (1, 1),
            stride: (1, 1),
            padding: (0, 0),
        };
        let acc4 = acc.map(|t| t.reshape(&[n, w.rows, 1, 1])).transpose()?;
        let y = conv2d_acc(rec, &x.reshape(&[n, k, 1, 1])?, w, &g, relu, acc4.as_ref())?;
        return y.reshape(&[n, w.rows]);
    }
    let y = match acc {
        Some(t) if t.shape == [n, w.rows] => t.clone(),
        Some(t) => {
            return Err(Error::Shape(format!(
                "linear: cannot accumulate into {:?}",
                t.shape
            )))
        }
        None => Tensor::empty(rec.ctx(), &[n, w.rows], "linear output")?,
    };
    let accumulate = if acc.is_some() { 4 } else { 0 };
    let kernel = match rec.ctx().subgroup_size() {
        Some(_) => Kernel::LinearForwardSubgroup,
        None => Kernel::LinearForward,
    };
    for ch in &w.chunks {
        let p = LinearParams {
            n: n as u32,
            in_features: u32s(k, "features")?,
            out_features: w.rows as u32,
            o_offset: ch.start as u32,
            o_count: ch.rows as u32,
            flags: flags(relu, w) | accumulate,
            _pad: [0; 2],
        };
        let mut grid = crate::gpu::recorder::grid(ch.rows as u32);
        grid[1] = n.div_ceil(8) as u32;
        rec.launch_gemm(
            kernel,
            w.half,
            &p,
            &[
                Binding::Tensor(x),
                Binding::Raw(ch.buffer()?),
                Binding::Raw(&ch.bias),
                Binding::Tensor(&y),
            ],
            grid,
        );
    }
    Ok(y)
}
