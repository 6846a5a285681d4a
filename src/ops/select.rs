//! Selection per row on the device (kernels/select.wgsl): histograms into u32 counts (for
//! quantile thresholds) and the k largest values with their indices (top patches).

use bytemuck::{Pod, Zeroable};

use super::u32s;
use crate::error::{Error, Result};
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::{DType, Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct SelectParams {
    rows: u32,
    per: u32,
    bins: u32,
    k: u32,
    lo: f32,
    hi: f32,
    accumulate: u32,
    _pad: u32,
}

/// The most values `top_k` keeps per row.
pub const TOP_K_MAX: usize = 16;

fn rows_of(x: &Tensor, rows: usize, what: &str) -> Result<usize> {
    if x.dtype != DType::F32 || rows == 0 || x.is_empty() || !x.len().is_multiple_of(rows) {
        return Err(Error::Shape(format!(
            "{what}: {} values ({:?}) do not split into {rows} rows",
            x.len(),
            x.dtype
        )));
    }
    Ok(x.len() / rows)
}

/// Adds each row's values into `counts` [rows, bins] (u32): `bins` equal bins over
/// [lo, hi), values below lo in the first, at or above hi in the last. Counts accumulate
/// across calls (streamed data); make them with `Tensor::upload_u32` of zeros.
pub fn histogram(
    rec: &mut Recorder,
    x: &Tensor,
    rows: usize,
    lo: f32,
    hi: f32,
    counts: &Tensor,
) -> Result<()> {
    let per = rows_of(x, rows, "histogram")?;
    let bins = counts.shape.get(1).copied().unwrap_or(0);
    if counts.dtype != DType::U32
        || counts.shape != [rows, bins]
        || bins == 0
        || !(lo.is_finite() && hi.is_finite() && hi > lo)
    {
        return Err(Error::Shape(format!(
            "histogram: counts {:?} ({:?}) over [{lo}, {hi}) do not fit {rows} rows",
            counts.shape, counts.dtype
        )));
    }
    let p = SelectParams {
        rows: u32s(rows, "rows")?,
        per: u32s(per, "row length")?,
        bins: u32s(bins, "bins")?,
        lo,
        hi,
        ..Default::default()
    };
    rec.launch_1d(
        Kernel::Histogram,
        &p,
        &[Binding::Tensor(x), Binding::Tensor(counts)],
        x.len(),
    );
    Ok(())
}

/// Each row's k largest values, largest first (ties: the smaller index first), and their
/// indices in the row: ([rows, k] f32, [rows, k] u32). 1 <= k <= min(TOP_K_MAX, row length).
pub fn top_k(rec: &mut Recorder, x: &Tensor, rows: usize, k: usize) -> Result<(Tensor, Tensor)> {
    let per = rows_of(x, rows, "top-k")?;
    if k == 0 || k > TOP_K_MAX || k > per {
        return Err(Error::Shape(format!(
            "top-k: k = {k} must be in 1..={} and at most the row length {per}",
            TOP_K_MAX
        )));
    }
    let values = Tensor::empty(rec.ctx(), &[rows, k], "top-k values")?;
    let indices = Tensor::empty_u32(rec.ctx(), &[rows, k], "top-k indices")?;
    let p = SelectParams {
        rows: u32s(rows, "rows")?,
        per: u32s(per, "row length")?,
        k: k as u32,
        ..Default::default()
    };
    let bind = [
        Binding::Tensor(x),
        Binding::Tensor(&values),
        Binding::Tensor(&indices),
    ];
    rec.launch(Kernel::TopK, &p, &bind, grid(p.rows));
    Ok((values, indices))
}
