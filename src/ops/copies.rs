//! Generated copies of one item for integrated gradients and SmoothGrad, and their
//! weighted reduction, on the device (kernels/copies.wgsl): the copies never exist on the
//! host and the per-copy gradients are never read back.

use bytemuck::{Pod, Zeroable};

use super::map::distinct;
use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct CopyParams {
    per: u32,
    m: u32,
    first: u32,
    seed_lo: u32,
    seed_hi: u32,
    sigma: f32,
    relu: u32,
    _pad: u32,
}

fn one_item(x: &Tensor, what: &str) -> Result<Vec<usize>> {
    if x.shape.first() != Some(&1) || x.is_empty() {
        return Err(Error::Shape(format!(
            "{what} takes one item [1, ...], got {:?}",
            x.shape
        )));
    }
    Ok(x.shape.clone())
}

fn copies_shape(item: &[usize], m: usize) -> Vec<usize> {
    let mut s = item.to_vec();
    s[0] = m;
    s
}

/// Copies k = first .. first + m of b + alpha_k (x - b), for x, b one item each and
/// alphas [count]; with `relu`, each value's ReLU max(0, .).
pub fn lerp_copies(
    rec: &mut Recorder,
    x: &Tensor,
    b: &Tensor,
    alphas: &Tensor,
    first: usize,
    m: usize,
    relu: bool,
) -> Result<Tensor> {
    let item = one_item(x, "lerp copies")?;
    if b.shape != x.shape || alphas.shape.len() != 1 || first + m > alphas.len() || m == 0 {
        return Err(Error::Shape(format!(
            "lerp copies: baseline {:?}, alphas {:?}, copies {first}..{} do not fit input {:?}",
            b.shape,
            alphas.shape,
            first + m,
            x.shape
        )));
    }
    let out = Tensor::empty(rec.ctx(), &copies_shape(&item, m), "interpolated copies")?;
    let p = CopyParams {
        per: u32s(x.len(), "values")?,
        m: u32s(m, "copies")?,
        first: u32s(first, "copy")?,
        relu: relu as u32,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(x),
        Binding::Tensor(b),
        Binding::Tensor(alphas),
        Binding::Tensor(&out),
    ];
    // four values a thread, a copy a z, where an item is whole vec4s
    if x.len().is_multiple_of(4) && m <= 65535 {
        let [gx, _, gy] = grid((x.len() / 4).div_ceil(64) as u32);
        rec.launch(Kernel::LerpCopies4, &p, &bind, [gx, gy, m as u32]);
    } else {
        rec.launch_1d(Kernel::LerpCopies, &p, &bind, out.len());
    }
    Ok(out)
}

/// Copies k = first .. first + m of x + sigma · N(0, 1); the draws depend only on
/// (seed, k, element), so an item gets the same noise in any batch.
pub fn noisy_copies(
    rec: &mut Recorder,
    x: &Tensor,
    sigma: f32,
    seed: u64,
    first: usize,
    m: usize,
) -> Result<Tensor> {
    let item = one_item(x, "noisy copies")?;
    if !(sigma.is_finite() && sigma >= 0.0) || m == 0 {
        return Err(Error::Shape(format!(
            "noisy copies need sigma >= 0 and at least one copy, got {sigma}, {m}"
        )));
    }
    let out = Tensor::empty(rec.ctx(), &copies_shape(&item, m), "noisy copies")?;
    let p = CopyParams {
        per: u32s(x.len(), "values")?,
        m: u32s(m, "copies")?,
        first: u32s(first, "copy")?,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        sigma,
        ..Default::default()
    };
    rec.launch_1d(
        Kernel::NoisyCopies,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(&out)],
        out.len(),
    );
    Ok(out)
}

/// acc += Σ_k w[first + k] · g[k] over the m rows of g [m, ...]; acc is one item.
pub fn weighted_sum(
    rec: &mut Recorder,
    g: &Tensor,
    weights: &Tensor,
    first: usize,
    acc: &Tensor,
) -> Result<()> {
    let m = g.shape.first().copied().unwrap_or(0);
    distinct("weighted sum", &[g, weights, acc])?;
    if m == 0 || acc.len() * m != g.len() || first + m > weights.len() {
        return Err(Error::Shape(format!(
            "weighted sum: rows {:?} with weights {:?} from {first} do not fit {:?}",
            g.shape, weights.shape, acc.shape
        )));
    }
    let p = CopyParams {
        per: u32s(acc.len(), "values")?,
        m: u32s(m, "rows")?,
        first: u32s(first, "row")?,
        ..Default::default()
    };
    // four values a thread where an item is whole vec4s
    let (kernel, threads) = match acc.len().is_multiple_of(4) {
        true => (Kernel::WeightedSum4, acc.len() / 4),
        false => (Kernel::WeightedSum, acc.len()),
    };
    let bind = [
        Binding::Tensor(g),
        Binding::Tensor(weights),
        Binding::Tensor(acc),
    ];
    rec.launch_1d(kernel, &p, &bind, threads);
    Ok(())
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StemParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    first: u32,
    m: u32,
    _pad: u32,
}

/// Whether `lerp_pool_copies` and `weighted_pool_grad_sum` run over a stem output of shape
/// `item` [1, c, h, w] with `pool` after its ReLU: 2 × 2, stride 2 windows without padding
/// that tile it, rows of a multiple of 4, under 2^24 window pairs and vec4s an item.
pub fn stem_pool_fits(item: &[usize], pool: &super::Pool2d) -> bool {
    let &[1, c, h, w] = item else {
        return false;
    };
    pool.kernel == (2, 2)
        && pool.stride == (2, 2)
        && pool.padding == (0, 0)
        && h.is_multiple_of(2)
        && w.is_multiple_of(4)
        && h > 0
        && c * h * w / 4 < 1 << 24
}

fn stem_params(item: &[usize], first: usize, m: usize) -> Result<StemParams> {
    let [_, c, h, w] = super::dims4(item, "a stem output")?;
    Ok(StemParams {
        planes: u32s(c, "channels")?,
        h: h as u32,
        w: w as u32,
        oh: (h / 2) as u32,
        ow: (w / 2) as u32,
        first: u32s(first, "copy")?,
        m: u32s(m, "copies")?,
        _pad: 0,
    })
}

/// `lerp_copies` with the ReLU of stem outputs x, b (one item each), max-pooled by `pool`
/// (where `stem_pool_fits`) in the same pass: copies k = first .. first + m pooled
/// [m, c, h / 2, w / 2] and the pool's argmax, the same bits as `lerp_copies` then
/// `max_pool2d`. The full-size copies are never stored.
pub fn lerp_pool_copies(
    rec: &mut Recorder,
    x: &Tensor,
    b: &Tensor,
    alphas: &Tensor,
    pool: &super::Pool2d,
    (first, m): (usize, usize),
) -> Result<(Tensor, Tensor)> {
    let item = one_item(x, "lerp pool copies")?;
    let fits = stem_pool_fits(&item, pool) && m <= 65535;
    if !fits || b.shape != x.shape || alphas.shape.len() != 1 || first + m > alphas.len() || m == 0
    {
        return Err(Error::Shape(format!(
            "lerp pool copies: baseline {:?}, alphas {:?}, copies {first}..{} and pool {pool:?} \
             do not fit input {:?} (run lerp_copies, then max_pool2d)",
            b.shape,
            alphas.shape,
            first + m,
            x.shape
        )));
    }
    let p = stem_params(&item, first, m)?;
    let out_shape = [m, item[1], item[2] / 2, item[3] / 2];
    let out = Tensor::empty(rec.ctx(), &out_shape, "pooled interpolated copies")?;
    let arg = Tensor::empty_u32(rec.ctx(), &out_shape, "pooled copies' argmax")?;
    let bind = [
        Binding::Tensor(x),
        Binding::Tensor(b),
        Binding::Tensor(alphas),
        Binding::Tensor(&out),
        Binding::Tensor(&arg),
    ];
    let pairs = item[1] * item[2] / 2 * item[3] / 4;
    let [gx, _, gz] = grid(pairs.div_ceil(64) as u32);
    rec.launch(Kernel::LerpPoolCopies, &p, &bind, [gx, m as u32, gz]);
    Ok((out, arg))
}

/// `weighted_sum` of the gradients at the input of a ReLU and the max-pool after it
/// (`stem_pool_fits`), from the pool's: g at its output [m, c, h / 2, w / 2], its argmax
/// and output from `lerp_pool_copies`; acc [1, c, h, w] += Σ_k w[first + k] · (the
/// gradient rule's pool + ReLU backward of g[k]), the same bits as
/// `max_pool2d_relu_backward` then `weighted_sum`, with nothing full-size stored.
pub fn weighted_pool_grad_sum(
    rec: &mut Recorder,
    g: &Tensor,
    argmax: &Tensor,
    pooled: &Tensor,
    weights: &Tensor,
    first: usize,
    acc: &Tensor,
) -> Result<()> {
    let m = g.shape.first().copied().unwrap_or(0);
    distinct("weighted pool gradient sum", &[g, pooled, weights, acc])?;
    let item = &acc.shape;
    let [_, c, h, w] = super::dims4(item, "weighted pool gradient sum")?;
    let fits = stem_pool_fits(item, &super::Pool2d::square(2, 2))
        && g.shape == [m, c, h / 2, w / 2]
        && argmax.shape == g.shape
        && pooled.shape == g.shape;
    if m == 0 || !fits || first + m > weights.len() {
        return Err(Error::Shape(format!(
            "weighted pool gradient sum: gradients {:?}, argmax {:?}, pooled {:?} and weights \
             {:?} from {first} do not fit {item:?}",
            g.shape, argmax.shape, pooled.shape, weights.shape
        )));
    }
    let p = stem_params(item, first, m)?;
    let bind = [
        Binding::Tensor(g),
        Binding::Tensor(argmax),
        Binding::Tensor(pooled),
        Binding::Tensor(weights),
        Binding::Tensor(acc),
    ];
    rec.launch_1d(Kernel::WeightedPoolGradSum, &p, &bind, acc.len() / 4);
    Ok(())
}
