//! Quick GFLOP/s of conv2d forward and input-gradient on VGG16's and the demo model's
//! shapes, for the context's GEMM variant (NETLENS_GEMM=cpu|cpu-tex|tiled): cargo run
//! --release --example conv_time [reps] [shape] (a part of a name: `conv3`, `demo`).
//! With NETLENS_DUMP_JIT=DIR (Linux) it then copies the process's anonymous executable
//! mappings, a CPU driver's compiled kernels, to DIR/<address>.bin for
//! tools/jit_profile.py.
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
    for (name, d, cout) in common::VGG16_CONVS.iter().chain(common::DEMO_CONVS) {
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
    if let Ok(dir) = std::env::var("NETLENS_DUMP_JIT") {
        dump_jit(std::path::Path::new(&dir)).expect("NETLENS_DUMP_JIT: cannot copy the mappings");
    }
    Ok(())
}

/// Copies every anonymous executable mapping of this process (JIT code) to dir/<start>.bin.
fn dump_jit(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    std::fs::create_dir_all(dir)?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut mem = std::fs::File::open("/proc/self/mem")?;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // start-end perms offset dev inode [path]: no path means anonymous
        if f.len() != 5 || !f[1].contains('x') {
            continue;
        }
        let Some((a, b)) = f[0].split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let mut buf = vec![0u8; (b - a) as usize];
        mem.seek(SeekFrom::Start(a))?;
        if mem.read_exact(&mut buf).is_ok() {
            std::fs::write(dir.join(format!("{a:x}.bin")), &buf)?;
        }
    }
    Ok(())
}
