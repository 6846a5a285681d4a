//! Copies between an image's row bands and the whole (kernels/bands.wgsl): a network's
//! first layers run on one band of rows at a time when one item's activations exceed a
//! storage binding (`graph::bands`).

use bytemuck::{Pod, Zeroable};

use super::{dims4, u32s};
use crate::error::{Error, Result};
use crate::gpu::{Kernel, Recorder, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BandParams {
    channels: u32,
    width: u32,
    src_rows: u32,
    dst_rows: u32,
    src_row: u32,
    dst_row: u32,
    rows: u32,
    zero_rest: u32,
}

/// Copies `rows` rows of one item `src` [1, C, Hs, W], from row `src_row` on, into rows
/// `dst_row..` of `dst` [1, C, Hd, W]; with `zero_rest`, dst's other rows are set to 0.
pub fn band_rows(
    rec: &mut Recorder,
    src: &Tensor,
    dst: &Tensor,
    (src_row, dst_row, rows): (usize, usize, usize),
    zero_rest: bool,
) -> Result<()> {
    let [n, c, hs, w] = dims4(&src.shape, "band source")?;
    let [nd, cd, hd, wd] = dims4(&dst.shape, "band destination")?;
    if n != 1 || nd != 1 || c != cd || w != wd || src_row + rows > hs || dst_row + rows > hd {
        return Err(Error::Shape(format!(
            "cannot copy rows {src_row}..{} of {:?} to rows {dst_row}..{} of {:?}",
            src_row + rows,
            src.shape,
            dst_row + rows,
            dst.shape
        )));
    }
    let p = BandParams {
        channels: u32s(c, "channels")?,
        width: u32s(w, "width")?,
        src_rows: u32s(hs, "rows")?,
        dst_rows: u32s(hd, "rows")?,
        src_row: src_row as u32,
        dst_row: dst_row as u32,
        rows: rows as u32,
        zero_rest: zero_rest as u32,
    };
    u32s(dst.len(), "values")?;
    rec.launch_1d(
        Kernel::BandRows,
        &p,
        &[
            crate::gpu::recorder::Binding::Tensor(src),
            crate::gpu::recorder::Binding::Tensor(dst),
        ],
        if zero_rest { dst.len() } else { c * rows * w },
    );
    Ok(())
}
