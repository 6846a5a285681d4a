//! Copies made on the device for integrated gradients and SmoothGrad: the noise is
//! standard normal, seeded and the same under any chunking; interpolation (with and
//! without a ReLU, a value or four a thread) and the weighted sum match the CPU; device SmoothGrad equals SmoothGrad on the same noise
//! given from the host.

mod common;
use common::{arc_ctx, assert_close, ctx, rand_vec, rel_l2};

use netlens::explain::gradient;
use netlens::explain::Target;
use netlens::gpu::{Recorder, Tensor};
use netlens::graph::Net;
use netlens::ops::copies::{lerp_copies, noisy_copies, weighted_sum};

fn noise(shape: &[usize], sigma: f32, seed: u64, first: usize, m: usize) -> Vec<f32> {
    let x = Tensor::upload(ctx(), &vec![0.0; shape.iter().product()], shape).unwrap();
    let mut rec = Recorder::new(ctx(), "noise");
    let y = noisy_copies(&mut rec, &x, sigma, seed, first, m).unwrap();
    rec.submit().unwrap();
    y.read(ctx()).unwrap()
}

#[test]
fn device_noise_is_standard_normal_seeded_and_chunk_independent() {
    let shape = [1, 3, 32, 32];
    let per = 3 * 32 * 32;
    let z = noise(&shape, 1.0, 7, 0, 16);
    let n = z.len() as f64;
    let mean = z.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = z.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    let within = z.iter().filter(|v| v.abs() < 1.0).count() as f64 / n;
    let tail = z.iter().filter(|v| v.abs() > 3.0).count() as f64 / n;
    assert!(mean.abs() < 4.0 / n.sqrt(), "mean {mean}");
    assert!((var.sqrt() - 1.0).abs() < 0.02, "std {}", var.sqrt());
    assert!((within - 0.6827).abs() < 0.01, "P(|z| < 1) = {within}");
    assert!(tail < 0.006, "P(|z| > 3) = {tail}");
    // copies and neighbouring elements are uncorrelated
    let corr = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(p, q)| (*p * *q) as f64).sum::<f64>() / a.len() as f64
    };
    assert!(
        corr(&z[..per], &z[per..2 * per]).abs() < 0.06,
        "copies 0 and 1 correlate"
    );
    assert!(
        corr(&z[..per - 1], &z[1..per]).abs() < 0.06,
        "neighbours correlate"
    );
    // seeded: the same seed repeats, another differs; chunks are rows of the whole
    assert_eq!(noise(&shape, 1.0, 7, 0, 16), z);
    assert!(rel_l2(&noise(&shape, 1.0, 8, 0, 16), &z) > 1.0);
    assert_eq!(noise(&shape, 1.0, 7, 5, 3), z[5 * per..8 * per].to_vec());
    // sigma scales
    let z2 = noise(&shape, 0.25, 7, 0, 2);
    assert_close(
        &z2,
        &z[..2 * per].iter().map(|v| v * 0.25).collect::<Vec<_>>(),
        1e-6,
        1e-6,
        "sigma",
    );
}

#[test]
fn interpolated_copies_and_weighted_sums() {
    // items of 70 values (a thread a value) and of 56 (four a thread)
    for shape in [[1, 2, 5, 7], [1, 2, 4, 7]] {
        lerp_and_sum(&shape);
    }
}

fn lerp_and_sum(shape: &[usize]) {
    let per: usize = shape.iter().product();
    let (x, b) = (rand_vec(per, 1), rand_vec(per, 2));
    let alphas = [0.1f32, 0.5, 0.9, 1.0, 0.0];
    let w = [0.2f32, -1.0, 0.7, 0.25, 3.0];
    let c = ctx();
    let (xt, bt) = (
        Tensor::upload(c, &x, shape).unwrap(),
        Tensor::upload(c, &b, shape).unwrap(),
    );
    let at = Tensor::upload(c, &alphas, &[5]).unwrap();
    let wt = Tensor::upload(c, &w, &[5]).unwrap();
    let acc = Tensor::upload(c, &vec![0.5; per], shape).unwrap();
    let mut rec = Recorder::new(c, "copies");
    let lo = lerp_copies(&mut rec, &xt, &bt, &at, 1, 3, false).unwrap(); // copies 1, 2, 3
    let relu = lerp_copies(&mut rec, &xt, &bt, &at, 1, 3, true).unwrap();
    weighted_sum(&mut rec, &lo, &wt, 1, &acc).unwrap();
    rec.submit().unwrap();
    let mut want = vec![0f32; 3 * per];
    let mut want_acc = vec![0.5f64; per];
    for k in 0..3 {
        for j in 0..per {
            let v = b[j] + alphas[1 + k] * (x[j] - b[j]);
            want[k * per + j] = v;
            want_acc[j] += w[1 + k] as f64 * v as f64;
        }
    }
    assert_close(&lo.read(c).unwrap(), &want, 1e-6, 1e-6, "lerp copies");
    let want_relu: Vec<f32> = want.iter().map(|v| v.max(0.0)).collect();
    assert!(want.iter().any(|v| *v < 0.0));
    assert_close(
        &relu.read(c).unwrap(),
        &want_relu,
        1e-6,
        1e-6,
        "lerp ReLU copies",
    );
    let want_acc: Vec<f32> = want_acc.iter().map(|v| *v as f32).collect();
    assert_close(&acc.read(c).unwrap(), &want_acc, 1e-5, 1e-5, "weighted sum");
    let mut rec = Recorder::new(c, "bad copies");
    assert!(
        lerp_copies(&mut rec, &xt, &bt, &at, 3, 3, false).is_err(),
        "copies past the alphas"
    );
    assert!(weighted_sum(&mut rec, &lo, &wt, 0, &lo).is_err());
}

#[test]
fn smoothgrad_on_the_device_equals_smoothgrad_on_its_noise() {
    let path = format!(
        "{}/models/shapes-vgg.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let net = Net::new(
        arc_ctx(),
        netlens::model::load(std::path::Path::new(&path)).unwrap(),
    )
    .unwrap();
    let img = format!("{}/models/samples/arrow.png", env!("CARGO_MANIFEST_DIR"));
    let x = netlens::io::image::load(std::path::Path::new(&img), &net.model().meta).unwrap();
    let (samples, level, seed) = (6, 0.15f32, 11);
    let sg = gradient::smoothgrad(&net, &x, &Target::Class(6), samples, level, seed).unwrap();
    // the same draws, made explicit and passed in from the host
    let (lo, hi) = x
        .data
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    let z = noise(&x.shape, level * (hi - lo), seed, 0, samples);
    let mut shape = x.shape.clone();
    shape[0] = samples;
    let given = gradient::smoothgrad_with_noise(
        &net,
        &x,
        &Target::Class(6),
        &netlens::Array::new(shape, z).unwrap(),
    )
    .unwrap();
    let err = rel_l2(&sg.map.data, &given.map.data);
    assert!(
        err < 1e-4,
        "device SmoothGrad is {err:.2e} from SmoothGrad on its noise"
    );
    assert!(sg.map.data.iter().any(|v| *v != 0.0));
}
