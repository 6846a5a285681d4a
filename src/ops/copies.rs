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
