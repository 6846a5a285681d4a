//! 3x3 stride-1 convolutions and their input gradients by Winograd's F(2x2, 3x3) on the
//! tiled GEMMs (kernels/winograd_*.wgsl): each 2x2 output tile's 4x4 input patch is
//! transformed (B^T d B), the 16 transform points' products summed over input channels as
//! 16 GEMMs in one launch (2.25x fewer multiply-adds than the direct convolution), and the
//! sums transformed back (A^T m A) with the bias, ReLU, accumulation and scale the direct
//! kernel would apply. Weights are transformed on the device on first use and kept
//! (`WeightBuffer::winograd_buffer`: 16/9 of the weights, once for the forward and once
//! for the input gradient). Every launch is planned per item, so an item's outputs are the
//! same bits in any batch.

use bytemuck::{Pod, Zeroable};

use super::conv::{launch_tiled, Conv2dGeom, Conv2dParams, Groups};
use super::u32s;
use crate::error::Result;
use crate::gpu::recorder::Binding;
use crate::gpu::{Context, Kernel, Packing, Recorder, Tensor, WeightBuffer, WeightKind};
use crate::gpu::{Winograd, WINOGRAD_MIN_CHANNELS};

/// Transform points a tile.
const POINTS: usize = 16;
/// Tiles an item from which `Winograd::Auto` transforms a layer. On lavapipe (tiled
/// GEMMs, `examples/conv_time`) the demo model's 128 channels at 8x8 (16 tiles) ran in
/// 8.7 ms against 9.3 ms directly, at 4x4 (4 tiles) in 10.3 against 6.1: three passes
/// more cost more than a GEMM that small saves.
const MIN_TILES: usize = 16;
/// Largest transformed input or GEMM output, bytes: a batch whose transforms would be
/// larger runs in groups of items, an item in strips of tile rows.
const MAX_SCRATCH: u64 = 256 << 20;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    c: u32,
    c0: u32,
    cc: u32,
    h: u32,
    w: u32,
    pad_h: u32,
    pad_w: u32,
    th: u32,
    tw: u32,
    item0: u32,
    flags: u32,
    ty0: u32,
    _pad: [u32; 3],
}

impl Params {
    /// The input transform's over `piece` (`tw` tiles across) of channels `range` of a
    /// tensor of `c` channels, planes `hw` and padding `pad`.
    fn input(
        piece: &Piece,
        tw: usize,
        (c, range): (usize, std::ops::Range<usize>),
        hw: (usize, usize),
        pad: (usize, usize),
    ) -> Params {
        Params {
            n: piece.count as u32,
            c: c as u32,
            c0: range.start as u32,
            cc: range.len() as u32,
            h: hw.0 as u32,
            w: hw.1 as u32,
            pad_h: pad.0 as u32,
            pad_w: pad.1 as u32,
            th: piece.th as u32,
            tw: tw as u32,
            item0: piece.item0 as u32,
            flags: 0,
            ty0: piece.ty0 as u32,
            _pad: [0; 3],
        }
    }
}

/// A launch's share of the work: items [item0, item0 + count), tile rows [ty0, ty0 + th).
#[derive(Clone, Copy)]
struct Piece {
    item0: usize,
    count: usize,
    ty0: usize,
    th: usize,
}

/// How the work on `n` items of (`th`, `tw`) tiles runs, its transformed tensors holding
/// `w`'s chunks' rows or `c` channels, whichever is wider: groups of whole items within
/// the scratch bound, or where one item passes it, strips of tile rows an item (None: not
/// even one row fits). A tile's sums are the same bits either way.
fn pieces(
    ctx: &Context,
    w: &WeightBuffer,
    c: usize,
    (th, tw): (usize, usize),
    n: usize,
) -> Option<Vec<Piece>> {
    let widest = w.chunks.iter().map(|ch| ch.rows).fold(c, usize::max);
    let row_bytes = POINTS * tw * widest * 4;
    let limit = MAX_SCRATCH.min(ctx.max_binding());
    let item = (row_bytes * th).max(1) as u64;
    if item <= limit {
        let group = ((limit / item) as usize).min(n).max(1);
        let piece = |item0| Piece {
            item0,
            count: group.min(n - item0),
            ty0: 0,
            th,
        };
        return Some((0..n).step_by(group).map(piece).collect());
    }
    let rows = (limit / row_bytes.max(1) as u64) as usize;
    if rows == 0 {
        return None;
    }
    let strips = (0..n).flat_map(|item0| {
        (0..th).step_by(rows).map(move |ty0| Piece {
            item0,
            count: 1,
            ty0,
            th: rows.min(th - ty0),
        })
    });
    Some(strips.collect())
}

/// Whether the context runs the convolution `g` with weights `w`, whose transform makes an
/// output of `out` pixels an item (the forward's output, or the input gradient), by
/// Winograd: the tiled GEMMs with f32 3x3 kernels at stride 1, padding at most 2 (the
/// input gradient's is 2 minus it), channels and tiles as `Context::winograd` asks, and
/// transformed weights within a binding. Nothing here depends on the batch, so an item's
/// outputs do not either.
pub(crate) fn applies(
    ctx: &Context,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    out: (usize, usize),
) -> bool {
    let tiles = out.0.div_ceil(2) * out.1.div_ceil(2);
    let wanted = match ctx.winograd() {
        Winograd::Off => return false,
        Winograd::Auto => g.cin.min(g.cout) >= WINOGRAD_MIN_CHANNELS && tiles >= MIN_TILES,
        Winograd::All => true,
    };
    wanted
        && w.packing == Packing::Rows
        && !w.half
        && w.kind == WeightKind::Conv { taps: 9 }
        && g.kernel == (3, 3)
        && g.stride == (1, 1)
        && g.padding.0 <= 2
        && g.padding.1 <= 2
        && w.chunks
            .iter()
            .all(|c| (POINTS * c.rows * g.cin * 4) as u64 <= ctx.max_binding())
}

/// y (channels of each weight chunk) = conv2d(x, w) by Winograd, with `flags` (conv2d's
/// bit0 ReLU, bit2 accumulate; the bias from `w`). x [n, cin, h, wd] gives the output
/// (oh, ow). False (nothing recorded) where one tile row is too large: convolve directly.
pub(crate) fn forward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    ([n, c, h, wd], (oh, ow)): ([usize; 4], (usize, usize)),
    flags: u32,
    y: &Tensor,
) -> Result<bool> {
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let Some(pieces) = pieces(rec.ctx(), w, c, (th, tw), n) else {
        return Ok(false);
    };
    for piece in pieces {
        let tiles = piece.th * tw;
        let count = piece.count;
        let v = Tensor::empty(rec.ctx(), &[POINTS, count, c, tiles], "Winograd input")?;
        let p = Params::input(&piece, tw, (c, 0..c), (h, wd), g.padding);
        let binds = [Binding::Tensor(x), Binding::Tensor(&v)];
        rec.launch_1d(Kernel::WinogradInput, &p, &binds, count * c * tiles);
        for (i, ch) in w.chunks.iter().enumerate() {
            let u = w.winograd_buffer(rec.ctx(), i, false)?;
            let m = Tensor::empty(rec.ctx(), &[POINTS, count, ch.rows, tiles], "Winograd sums")?;
            let shape = Shape {
                items: count,
                tiles,
                plan: th * tw,
                k: c,
                rows: ch.rows,
            };
            gemm(rec, &v, &u, &ch.bias, &m, shape, 0)?;
            let out = Params {
                c: g.cout as u32,
                c0: ch.start as u32,
                cc: ch.rows as u32,
                h: oh as u32,
                w: ow as u32,
                flags: flags | ((w.has_bias as u32) << 1),
                ..p
            };
            let binds = [
                Binding::Tensor(&m),
                Binding::Raw(&ch.bias),
                Binding::Tensor(y),
            ];
            rec.launch_1d(
                Kernel::WinogradOutput,
                &out,
                &binds,
                count * ch.rows * tiles,
            );
        }
    }
    Ok(true)
}

/// dx [n, cin, h, wd] = the input gradient of the convolution `g` for dy [n, cout, oh,
/// ow] by Winograd (a 3x3 stride-1 convolution of dy with the flipped, transposed kernels
/// and padding 2 minus g's), times `scale` where given. False (nothing recorded) where one
/// tile row is too large.
pub(crate) fn backward_input(
    rec: &mut Recorder,
    dy: &Tensor,
    w: &WeightBuffer,
    g: &Conv2dGeom,
    (h, wd): (usize, usize),
    scale: Option<&Tensor>,
    dx: &Tensor,
) -> Result<bool> {
    let [n, cout, oh, ow] = super::dims4(&dy.shape, "conv2d backward")?;
    let (th, tw) = (h.div_ceil(2), wd.div_ceil(2));
    let Some(pieces) = pieces(rec.ctx(), w, g.cin, (th, tw), n) else {
        return Ok(false);
    };
    for piece in pieces {
        let tiles = piece.th * tw;
        let count = piece.count;
        let m = Tensor::empty(rec.ctx(), &[POINTS, count, g.cin, tiles], "Winograd sums")?;
        let pad = (2 - g.padding.0, 2 - g.padding.1);
        let mut p = Params::input(&piece, tw, (cout, 0..0), (oh, ow), pad);
        for (i, ch) in w.chunks.iter().enumerate() {
            p.c0 = ch.start as u32;
            p.cc = ch.rows as u32;
            let v = Tensor::empty(
                rec.ctx(),
                &[POINTS, count, ch.rows, tiles],
                "Winograd input",
            )?;
            let binds = [Binding::Tensor(dy), Binding::Tensor(&v)];
            rec.launch_1d(Kernel::WinogradInput, &p, &binds, count * ch.rows * tiles);
            let u = w.winograd_buffer(rec.ctx(), i, true)?;
            let shape = Shape {
                items: count,
                tiles,
                plan: th * tw,
                k: ch.rows,
                rows: g.cin,
            };
            // later chunks add their sums to the first's
            gemm(rec, &v, &u, &ch.bias, &m, shape, if i > 0 { 4 } else { 0 })?;
        }
        let out = Params {
            c: g.cin as u32,
            c0: 0,
            cc: g.cin as u32,
            h: h as u32,
            w: wd as u32,
            pad_h: 0,
            pad_w: 0,
            flags: if scale.is_some() { SCALE } else { 0 },
            ..p
        };
        let zeros = &w.chunks[0].bias; // never read without a bias flag
        let binds = [
            Binding::Tensor(&m),
            scale.map_or(Binding::Raw(zeros), Binding::Tensor),
            Binding::Tensor(dx),
        ];
        rec.launch_1d(Kernel::WinogradOutput, &out, &binds, count * g.cin * tiles);
    }
    Ok(true)
}

/// winograd_output.wgsl's flags bit6: the output times the tensor bound as the bias.
const SCALE: u32 = 64;

/// The 16 GEMMs of one launch's shape: `items` items of `tiles` tiles (split-K planned
/// for a whole item's `plan` tiles), a reduction of `k`, `rows` outputs.
#[derive(Clone, Copy)]
struct Shape {
    items: usize,
    tiles: usize,
    plan: usize,
    k: usize,
    rows: usize,
}

/// The 16 GEMMs of one launch: m[p] (+)= v[p] u[p]ᵀ for v [16][items][k][tiles] and u
/// [16][rows][k], into m [16][items][rows][tiles] (`flags` bit2: add to it).
fn gemm(
    rec: &mut Recorder,
    v: &Tensor,
    u: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    m: &Tensor,
    s: Shape,
    flags: u32,
) -> Result<()> {
    let p = Conv2dParams::pointwise(s.items, s.k, s.tiles, s.rows, flags)?;
    let groups = Groups {
        count: POINTS,
        items: s.items,
        w_stride: s.rows * s.k,
        plan_plane: s.plan,
    };
    let binds = [
        Binding::Tensor(v),
        Binding::Raw(u),
        Binding::Raw(bias),
        Binding::Tensor(m),
    ];
    u32s(
        POINTS * s.items * s.rows.max(s.k) * s.tiles,
        "Winograd tensor",
    )?;
    let mnk = (s.items * s.tiles, s.rows, s.k);
    launch_tiled(
        rec,
        Kernel::Conv2dForwardPointwise,
        false,
        p,
        false,
        mnk,
        groups,
        binds,
    )
}
