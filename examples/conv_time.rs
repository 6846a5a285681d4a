//! Quick GFLOP/s of conv2d forward and input-gradient on VGG16 shapes, for the context's
//! GEMM variant (NETLENS_GEMM=cpu|tiled): cargo run --release --example conv_time [reps]
use std::time::Instant;

use netlens::gpu::{Context, Recorder, Tensor, WeightBuffer};
use netlens::ops::{self, Conv2dGeom};

#[path = "../benches/common.rs"]
mod common;
use common::fill;

fn main() -> netlens::Result<()> {
    let reps: usize = std::env::args().nth(1).map_or(2, |s| s.parse().unwrap());
    let only = std::env::args().nth(2);
    let ctx = Context::from_env()?;
    println!("{} gemm={}", ctx.adapter_name(), ctx.gemm().name());
    for (name, d, cout) in common::VGG16_CONVS {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let g = Conv2dGeom {
            cin: d[1],
            cout: *cout,
            kernel: (3, 3),
            stride: (1, 1),
            padding: (1, 1),
        };
        let w = WeightBuffer::upload_conv(
            &ctx,
            name,
            &fill(cout * d[1] * 9),
            *cout,
            9,
            Some(&fill(*cout)),
        )?;
        let x = Tensor::upload(&ctx, &fill(d.iter().product()), d)?;
        let flops = 2.0 * (d[0] * d[2] * d[3] * cout * d[1] * 9) as f64;
        for backward in [false, true] {
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t = Instant::now();
                let mut rec = Recorder::new(&ctx, "conv_time");
                let _y = if backward {
                    let dy = Tensor::upload(
                        &ctx,
                        &fill(d[0] * cout * d[2] * d[3]),
                        &[d[0], *cout, d[2], d[3]],
                    )?;
                    let t2 = Instant::now();
                    let dx = ops::conv2d_backward_input(&mut rec, &dy, &w, &g, (d[2], d[3]))?;
                    rec.submit()?;
                    ctx.wait()?;
                    best = best.min(t2.elapsed().as_secs_f64());
                    dx
                } else {
                    let y = ops::conv2d(&mut rec, &x, &w, &g, true)?;
                    rec.submit()?;
                    ctx.wait()?;
                    best = best.min(t.elapsed().as_secs_f64());
                    y
                };
            }
            let dir = if backward { "backward" } else { "forward " };
            println!(
                "{name:12} {dir} {:9.1} ms {:7.2} GFLOP/s",
                best * 1e3,
                flops / best / 1e9
            );
        }
    }
    for (name, n, k, out) in common::LINEARS {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let w = WeightBuffer::upload(&ctx, name, &fill(out * k), *out, *k, Some(&fill(*out)))?;
        let x = Tensor::upload(&ctx, &fill(n * k), &[*n, *k])?;
        let dy = Tensor::upload(&ctx, &fill(n * out), &[*n, *out])?;
        let flops = 2.0 * (n * k * out) as f64;
        for backward in [false, true] {
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t = Instant::now();
                let mut rec = Recorder::new(&ctx, "linear_time");
                let _y = if backward {
                    ops::linear_backward_input(&mut rec, &dy, &w)?
                } else {
                    ops::linear(&mut rec, &x, &w, false)?
                };
                rec.submit()?;
                ctx.wait()?;
                best = best.min(t.elapsed().as_secs_f64());
            }
            let dir = if backward { "backward" } else { "forward " };
            println!(
                "{name:12} {dir} {:9.1} ms {:7.2} GFLOP/s",
                best * 1e3,
                flops / best / 1e9
            );
        }
    }
    Ok(())
}
