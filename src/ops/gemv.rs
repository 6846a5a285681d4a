//! Linear layers at small batches on the CPU-shaped GEMM variants (cpu, cpu-tex): a
//! matrix-vector kernel per batch item over the packed conv weights
//! (kernels/linear_cpu.wgsl). The conv GEMM shares each weight between 16 pixels, so at
//! batch 1 it does 16 times the work; this reads each weight once per item, and sums
//! each output in the GEMM's order (the same bits whichever runs).

use super::conv::{Conv2dParams, CPU_GEMV_BATCH};
use super::{pack::pack_texture, u32s, Conv2dGeom};
use crate::error::Result;
use crate::gpu::recorder::{grid, Binding};
use crate::gpu::{Gemm, Kernel, Packing, Recorder, Tensor, WeightBuffer};

/// Rows a workgroup of the kernel owns.
const ROWS: usize = 32;

/// Whether a linear layer over `n` items with weights `w` runs here.
pub(crate) fn fits(rec: &Recorder, w: &WeightBuffer, n: usize) -> bool {
    w.packing == Packing::Vec4 && n < CPU_GEMV_BATCH && rec.ctx().gemm().packing() == w.packing
}

/// The 1x1 convolution a linear layer of `w` is.
fn geom(w: &WeightBuffer) -> Conv2dGeom {
    Conv2dGeom {
        cin: w.row_len,
        cout: w.rows,
        kernel: (1, 1),
        stride: (1, 1),
        padding: (0, 0),
    }
}

fn kernel(rec: &Recorder, buffer: Kernel, texture: Kernel) -> Kernel {
    match rec.ctx().gemm() {
        Gemm::CpuTex => texture,
        _ => buffer,
    }
}

/// y [n, out] (+)= x [n, in] W^T + b into `y`, `flags` as the conv kernels' (ReLU, bias,
/// accumulate). Shapes are the caller's to check.
pub(crate) fn forward(
    rec: &mut Recorder,
    x: &Tensor,
    w: &WeightBuffer,
    y: &Tensor,
    flags: u32,
) -> Result<()> {
    let n = x.shape[0];
    let k = kernel(rec, Kernel::LinearForwardCpu, Kernel::LinearForwardCpuTex);
    let packed = match rec.ctx().gemm() {
        Gemm::CpuTex => Some(pack_texture(rec, x, 0, w.row_len)?),
        _ => None,
    };
    for (i, ch) in w.chunks.iter().enumerate() {
        let p = Conv2dParams::new(&geom(w), n, (1, 1), (1, 1), ch, flags)?;
        let weights = w.forward_source(rec.ctx(), i)?;
        let binds = [
            packed.as_ref().map_or(Binding::Tensor(x), Binding::Texture),
            weights.binding(),
            Binding::Raw(&ch.bias),
            Binding::Tensor(y),
        ];
        let mut g = grid(u32s(ch.rows.div_ceil(ROWS), "linear row blocks")?);
        g[1] = n as u32;
        rec.launch_gemm(k, w.half, &p, &binds, g);
    }
    Ok(())
}

/// dx [n, in] of dy [n, out]. Shapes are the caller's to check.
pub(crate) fn backward(rec: &mut Recorder, dy: &Tensor, w: &WeightBuffer) -> Result<Tensor> {
    let n = dy.shape[0];
    let dx = Tensor::empty(rec.ctx(), &[n, w.row_len], "linear input gradient")?;
    let k = kernel(
        rec,
        Kernel::LinearBackwardInputCpu,
        Kernel::LinearBackwardInputCpuTex,
    );
    let blocks = u32s(w.row_len.div_ceil(ROWS), "linear row blocks")?;
    for (i, ch) in w.chunks.iter().enumerate() {
        let p = Conv2dParams::new(&geom(w), n, (1, 1), (1, 1), ch, if i > 0 { 4 } else { 0 })?;
        let weights = w.backward_source(rec.ctx(), i)?;
        let packed = match rec.ctx().gemm() {
            Gemm::CpuTex => Some(pack_texture(rec, dy, ch.start, ch.rows)?),
            _ => None,
        };
        let binds = [
            packed
                .as_ref()
                .map_or(Binding::Tensor(dy), Binding::Texture),
            weights.binding(),
            Binding::Raw(&ch.bias),
            Binding::Tensor(&dx),
        ];
        let mut g = grid(blocks);
        g[1] = n as u32;
        rec.launch_gemm(k, w.half, &p, &binds, g);
    }
    Ok(dx)
}
