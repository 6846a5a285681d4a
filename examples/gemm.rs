//! GFLOP/s of the conv2d GEMM on a 1x1 conv (a plain matmul): cargo run --release --example gemm M K N
use std::time::Instant;

use netlens::gpu::{Context, Recorder, Tensor, WeightBuffer};
use netlens::ops::{self, Conv2dGeom};

fn main() -> netlens::Result<()> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().unwrap())
        .collect();
    let (m, k, n) = (a[0], a[1], a[2]);
    let ctx = Context::from_env()?;
    let w = WeightBuffer::upload_conv(&ctx, "w", &vec![0.01; n * k], n, 1, None)?;
    let x = Tensor::upload(&ctx, &vec![0.5; m * k], &[1, k, m, 1])?;
    let g = Conv2dGeom {
        cin: k,
        cout: n,
        kernel: (1, 1),
        stride: (1, 1),
        padding: (0, 0),
    };
    for _ in 0..3 {
        let t = Instant::now();
        let mut rec = Recorder::new(&ctx, "gemm");
        let _y = ops::conv2d(&mut rec, &x, &w, &g, false)?;
        rec.submit()?;
        ctx.wait()?;
        let s = t.elapsed().as_secs_f64();
        println!(
            "{m}x{k}x{n}: {:.1} ms, {:.2} GFLOP/s",
            s * 1e3,
            2.0 * (m * k * n) as f64 / s / 1e9
        );
    }
    Ok(())
}
