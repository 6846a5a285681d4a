//! A conv layer (with its ReLU) and the 2 x 2, stride 2 max-pool after it in one pass, on
//! the CPU-shaped GEMMs: the conv's output is never stored, only the pool's (a quarter of
//! the stores) and, for a tape a backward walk reads, the pool's argmax (conv2d_cpu.wgsl's
//! POOL and ARGMAX modes).

use super::conv::{
    flags, forward_binds, forward_dims, forward_input, forward_output, Conv2dParams, ForwardTail,
    TEXELS,
};
use super::pack::Act;
use super::{u32s, Conv2dGeom, Pool2d};
use crate::error::{Error, Result};
use crate::gpu::recorder::grid;
use crate::gpu::{Context, Recorder, Tensor, WeightBuffer};

/// conv2d_cpu.wgsl's POOL and ARGMAX flags.
const POOL: u32 = 8;
const ARGMAX: u32 = 16;
/// Output pixels a workgroup owns (two rows of 8) and channels.
const TILE: (usize, usize) = (16, 64);
/// Tiles of one launch at most: the kernel finds a tile's item and row by fdiv.wgsl's
/// division, exact below 2^24.
const MAX_TILES: usize = 1 << 24;

/// Whether `conv2d_pool` runs `pool` after a conv whose output is `oh` x `ow` on `ctx`:
/// a CPU-shaped GEMM, and windows of 2 x 2 at stride 2 without padding that tile the
/// output's first 2 ⌊oh / 2⌋ rows and 2 ⌊ow / 2⌋ columns (what PyTorch's floor mode
/// pools; ceil mode only where both sides are even).
pub fn conv2d_pool_fits(ctx: &Context, pool: &Pool2d, oh: usize, ow: usize) -> bool {
    let square = pool.kernel == (2, 2) && pool.stride == (2, 2) && pool.padding == (0, 0);
    let floors = !pool.ceil_mode || (oh.is_multiple_of(2) && ow.is_multiple_of(2));
    !ctx.gemm().tiled() && square && floors && oh >= 2 && ow >= 2
}

/// max_pool2d(conv2d(x, W) + b, ReLU first when `relu`) for a pool that
/// `conv2d_pool_fits`, and with `argmax` the pool's argmax: the same bits as `conv2d`
/// then `max_pool2d` (sums, bias, ReLU and the pool's comparisons in the same order).
pub fn conv2d_pool(
    rec: &mut Recorder,
    x: &Tensor,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    relu: bool,
    pool: &Pool2d,
    argmax: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let x = Act::Tensor(x.clone());
    match conv2d_pool_act(rec, &x, w, g, relu, pool, argmax, false)? {
        (Act::Tensor(y), arg) => Ok((y, arg)),
        (Act::Packed(_), _) => unreachable!("made as a tensor"),
    }
}

/// `conv2d_pool` of a tensor or a packed one, its pooled output packed with `packed`
/// (where `conv2d_packs_output` says the conv can), else a tensor.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_pool_act(
    rec: &mut Recorder,
    x: &Act,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    relu: bool,
    pool: &Pool2d,
    argmax: bool,
    packed: bool,
) -> Result<(Act, Option<Tensor>)> {
    let ([n, c, h, wd], (oh, ow)) = forward_dims(rec, x.shape(), w, g, "conv2d_pool")?;
    if !conv2d_pool_fits(rec.ctx(), pool, oh, ow) {
        return Err(Error::Other(format!(
            "conv2d_pool: {pool:?} after a {oh}x{ow} conv output on the {} GEMMs is not a \
             2x2, stride 2 max-pool it can run; run conv2d and max_pool2d",
            rec.ctx().gemm().name()
        )));
    }
    let (ph, pw) = (oh / 2, ow / 2);
    let tiles = n * ph * pw.div_ceil(4);
    if tiles >= MAX_TILES {
        return Err(Error::Other(format!(
            "conv2d_pool: {tiles} tiles of output pixels; at most {MAX_TILES} a launch \
             (run fewer items a pass)"
        )));
    }
    let shape = [n, g.cout, ph, pw];
    let y = forward_output(rec, w, g, (n, (oh, ow)), &shape, packed, "conv2d_pool")?;
    let arg = argmax
        .then(|| Tensor::empty_u32(rec.ctx(), &shape, "conv2d_pool argmax"))
        .transpose()?;
    let mode = POOL | if argmax { ARGMAX } else { 0 } | if packed { TEXELS } else { 0 };
    let (kernel, _, input) = forward_input(rec, x, c)?;
    let tail = ForwardTail::new(rec, arg.as_ref(), &y)?;
    for (i, ch) in w.chunks.iter().enumerate() {
        let p = Conv2dParams::new(g, n, (h, wd), (oh, ow), ch, flags(relu, w) | mode)?;
        let weights = w.forward_source(rec.ctx(), i)?;
        let binds = forward_binds(x, &input, &weights, ch, &y, Some(&tail));
        let binds = [&binds[..], &tail.bindings(kernel)].concat();
        let mut groups = grid(u32s(tiles, "conv2d_pool tiles")?);
        groups[1] = u32s(ch.rows.div_ceil(TILE.1), "conv2d_pool channel tiles")?;
        rec.launch_gemm(kernel, w.half, &p, &binds, groups);
    }
    Ok((y, arg))
}
