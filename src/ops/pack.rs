//! The cpu-tex and cpu-fetch GEMMs' input: channels of an NCHW tensor packed four to an
//! rgba32float texel (kernels/pack_texture.wgsl), read by the kernels as a read-only
//! storage texture. On lavapipe a texel load is one 16-byte load a lane where four storage
//! loads are four per-lane loops. An LRP ratio can be packed in place of a tensor: it is
//! computed as it is packed and never stored.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use super::backward::PoolGrad;
use super::lrp::Ratio;
use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::weight_texture::texel_grid;
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PackParams {
    n: u32,
    c: u32,
    plane: u32,
    start: u32,
    count: u32,
    c4n: u32,
    shift: u32,
    texels: u32,
    // pack_ratio_texture's ratio (lrp_ratio.wgsl); pack_pool_grad_texture4's ReLU rule
    mode: u32,
    eps: f32,
    c0: f32,
    c1: f32,
    // pack_pool_grad_texture4's row width
    width: u32,
    // the texture's groups an item and the first this launch writes (`pack_ratios_texture`)
    gtotal: u32,
    goff: u32,
    _pad: u32,
}

impl PackParams {
    /// Channels [start, start + count) of n items of c planes of `plane` pixels into a
    /// texture `width` texels wide (a power of two), with no ratio or pool.
    fn new([n, c, plane]: [usize; 3], start: usize, count: usize, width: u64) -> Result<Self> {
        let c4n = count.div_ceil(4);
        Ok(PackParams {
            n: u32s(n, "batch")?,
            c: u32s(c, "channels")?,
            plane: u32s(plane, "pixels")?,
            start: start as u32,
            count: count as u32,
            c4n: c4n as u32,
            shift: width.trailing_zeros(),
            texels: u32s((n * c4n * plane).max(1), "texels")?,
            mode: 0,
            eps: 0.0,
            c0: 0.0,
            c1: 0.0,
            width: 0,
            gtotal: c4n as u32,
            goff: 0,
            _pad: 0,
        })
    }
}

/// Channels [start, start + count) of `x` [n, c, h, w] as a texture of
/// n x ceil(count / 4) x h x w texels, recorded into `rec`: texel
/// g = (b * ceil(count / 4) + c / 4) * h * w + pixel at (g mod W, g / W), W the texture's
/// power-of-two width.
pub(crate) fn pack_texture(
    rec: &mut Recorder,
    x: &Tensor,
    start: usize,
    count: usize,
) -> Result<Arc<wgpu::TextureView>> {
    pack(rec, x, start, count, None, None)
}

/// `pack_texture` of the LRP ratio `q` (of the shape of its R), which is never stored.
pub(crate) fn pack_ratio_texture(
    rec: &mut Recorder,
    q: &Ratio,
    start: usize,
    count: usize,
) -> Result<Arc<wgpu::TextureView>> {
    q.check()?;
    pack(rec, q.r, start, count, Some(q), None)
}

/// `pack_ratio_texture` of channels [start, start + count) of ratios `q1` and `q2` stacked
/// an item (`lrp_ratios_stacked`'s [n, 2c, ...], c a multiple of 4, as `start`), both
/// packed into one texture and never stored.
pub(crate) fn pack_ratios_texture(
    rec: &mut Recorder,
    q1: &Ratio,
    q2: &Ratio,
    start: usize,
    count: usize,
) -> Result<Arc<wgpu::TextureView>> {
    q1.check()?;
    q2.check()?;
    let stacked = super::lrp::stacked_shape(&q2.r.shape)?;
    let (n, c, plane) = (
        stacked[0],
        stacked[1] / 2,
        stacked[2..].iter().product::<usize>(),
    );
    if q1.r.shape != q2.r.shape
        || !c.is_multiple_of(4)
        || !start.is_multiple_of(4)
        || count == 0
        || start + count > 2 * c
    {
        return Err(Error::Shape(format!(
            "channels {start}..{} of two stacked ratios {:?}, {:?} (channels and start a \
             multiple of 4)",
            start + count,
            q1.r.shape,
            q2.r.shape
        )));
    }
    let gtotal = count.div_ceil(4);
    let (view, width) = packed_texture(rec, n * gtotal * plane)?;
    let dst = Dst {
        view: &view,
        width,
        gtotal,
    };
    // q1's channels of the range, then q2's, each at its groups of the texture
    let (lo, hi) = (start.min(c), (start + count).min(c));
    if hi > lo {
        pack(rec, q1.r, lo, hi - lo, Some(q1), Some((&dst, 0)))?;
    }
    let (lo2, hi2) = (start.max(c) - c, start + count - c.min(start + count));
    if hi2 > lo2 {
        pack(
            rec,
            q2.r,
            lo2,
            hi2 - lo2,
            Some(q2),
            Some((&dst, (lo2 + c - start) / 4)),
        )?;
    }
    Ok(view)
}

/// A texture packed in parts: its view, width and groups an item.
struct Dst<'a> {
    view: &'a Arc<wgpu::TextureView>,
    width: u64,
    gtotal: usize,
}

/// `pack_texture` of the gradient at the output of the conv under `pg`'s ReLU and pool
/// (`conv_out` its shape), made from the pool's tensors and never stored; for a `pg` that
/// `PoolGrad::packs` for `conv_out` (its one caller, `conv2d_backward_pooled`, checks).
pub(crate) fn pack_pool_grad_texture(
    rec: &mut Recorder,
    pg: &PoolGrad,
    conv_out: &[usize],
    start: usize,
    count: usize,
) -> Result<Arc<wgpu::TextureView>> {
    let [n, c, h, w] = super::dims4(conv_out, "a pooled gradient")?;
    if count == 0 || start + count > c {
        return Err(Error::Shape(format!(
            "channels {start}..{} of {conv_out:?}",
            start + count
        )));
    }
    let c4n = count.div_ceil(4);
    let plane = h * w;
    let (view, width) = packed_texture(rec, n * c4n * plane)?;
    let p = PackParams {
        mode: pg.rule.code(),
        width: w as u32,
        ..PackParams::new([n, c, plane], start, count, width)?
    };
    let binds = [
        Binding::Tensor(pg.dy),
        Binding::Tensor(pg.argmax),
        Binding::Tensor(pg.pooled),
        Binding::Texture(&view),
    ];
    let groups = [(plane / 4).div_ceil(64) as u32, c4n as u32, n as u32];
    rec.launch(Kernel::PackPoolGradTexture4, &p, &binds, groups);
    Ok(view)
}

/// Packs channels [start, start + count) of `x` (or of the ratio of its shape) into a new
/// texture, or `into` one at a group offset.
fn pack(
    rec: &mut Recorder,
    x: &Tensor,
    start: usize,
    count: usize,
    ratio: Option<&Ratio>,
    into: Option<(&Dst, usize)>,
) -> Result<Arc<wgpu::TextureView>> {
    let (n, c, plane) = match x.shape.as_slice() {
        [n, c, rest @ ..] => (*n, *c, rest.iter().product::<usize>()),
        s => return Err(Error::Shape(format!("cannot pack {s:?} into a texture"))),
    };
    if count == 0 || start + count > c {
        return Err(Error::Shape(format!(
            "channels {start}..{} of {:?}",
            start + count,
            x.shape
        )));
    }
    let c4n = count.div_ceil(4);
    let (view, width, gtotal, goff) = match into {
        Some((d, goff)) => (d.view.clone(), d.width, d.gtotal, goff),
        None => {
            let (view, width) = packed_texture(rec, n * c4n * plane)?;
            (view, width, c4n, 0)
        }
    };
    let p = PackParams {
        gtotal: gtotal as u32,
        goff: goff as u32,
        ..PackParams::new([n, c, plane], start, count, width)?
    };
    // planes of a multiple of 4 pixels: a thread per 4 pixels of a texel row
    let quads = (plane / 4).div_ceil(64);
    let fours = plane % 4 == 0 && quads <= 65535 && c4n <= 65535 && n <= 65535;
    let groups = if fours {
        [quads as u32, c4n as u32, n as u32]
    } else {
        grid(p.texels.div_ceil(64))
    };
    match ratio {
        None => {
            let binds = [Binding::Tensor(x), Binding::Texture(&view)];
            let kernel = [Kernel::PackTexture, Kernel::PackTexture4][fours as usize];
            rec.launch(kernel, &p, &binds, groups);
        }
        Some(q) => {
            let p = PackParams {
                mode: q.mode(),
                eps: q.eps,
                c0: q.c0,
                c1: q.c1(),
                ..p
            };
            let [r, za, z0, zb] = q.bindings();
            let binds = [r, za, z0, zb, Binding::Texture(&view)];
            let kernel = [Kernel::PackRatioTexture, Kernel::PackRatioTexture4][fours as usize];
            rec.launch(kernel, &p, &binds, groups);
        }
    }
    Ok(view)
}

/// A tensor held packed four channels a texel, in the layout `pack_texture` gives all of
/// its channels: what the texture-reading GEMMs read as their input. A conv whose output
/// only the next conv reads can store it so (conv2d_cpu.wgsl's TEXELS), and the next conv
/// reads it without a packing pass (`ops::Act`).
#[derive(Clone)]
pub struct PackedTensor {
    pub(crate) view: Arc<wgpu::TextureView>,
    pub shape: Vec<usize>,
}

/// `x` [n, c, h, w] packed four channels a texel, as a conv reading it would pack it: for
/// several convs that read one tensor (`Act::Packed`), one pass instead of one each.
pub fn pack_tensor(rec: &mut Recorder, x: &Tensor) -> Result<PackedTensor> {
    let [_, c, _, _] = super::dims4(&x.shape, "a packed tensor")?;
    Ok(PackedTensor {
        view: pack_texture(rec, x, 0, c)?,
        shape: x.shape.clone(),
    })
}

/// A texture from the context's pool for `texels` packed texels (n × ⌈c / 4⌉ × plane),
/// held by `rec` until its submission ends, and its width.
pub(crate) fn packed_texture(
    rec: &mut Recorder,
    texels: usize,
) -> Result<(Arc<wgpu::TextureView>, u64)> {
    let texels = texels.max(1) as u64;
    let ctx = rec.ctx();
    let (width, height) = texel_grid(ctx, texels, 1).map_err(|max| Error::TooLarge {
        what: "a conv input packed into a texture".into(),
        bytes: texels * 16,
        limit: max * 16,
        hint: "use a smaller batch, or NETLENS_GEMM=tiled (or cpu, where subgroups are 8 wide)"
            .into(),
    })?;
    let view = ctx.textures.take(&ctx.device, width as u32, height as u32);
    rec.hold(view.clone());
    Ok((view, width))
}

/// A conv layer's input or output: a tensor, or the same values packed (`PackedTensor`).
#[derive(Clone)]
pub enum Act {
    Tensor(Tensor),
    Packed(PackedTensor),
}

impl Act {
    pub fn shape(&self) -> &[usize] {
        match self {
            Act::Tensor(t) => &t.shape,
            Act::Packed(p) => &p.shape,
        }
    }
}

/// An uninitialised packed tensor of `shape` [n, c, h, w] from the pool (held by `rec`).
pub(crate) fn packed_tensor(rec: &mut Recorder, shape: &[usize]) -> Result<PackedTensor> {
    let [n, c, h, w] = super::dims4(shape, "a packed tensor")?;
    let (view, _) = packed_texture(rec, n * c.div_ceil(4) * h * w)?;
    Ok(PackedTensor {
        view,
        shape: shape.to_vec(),
    })
}
