//! Extremal perturbations against TorchRay itself (tools/extremal_reference.py): masks and
//! energies of the first 5 iterations of each variant, three areas in one batch; and the
//! kernels against the plain-Rust reference.
//!
//! Why only 5 iterations: TorchRay starts every mask at 1, a plateau of values equal up to
//! rounding, and its area regulariser ranks them; which of the near-equal values fall on
//! either side of the area's threshold depends on the last bits of float arithmetic, and
//! the trajectories part after some tens of steps (rows whose threshold lies off the
//! plateau still agree to 1e-6 after 100 steps). Observed differences at 5 steps: under
//! 1e-3 relative L2.

mod common;
use common::{demo, fixture, load_tensors, rel_l2, samples};

use netlens::explain::mask::extremal::{extremal_perturbation, ExtremalSettings, Variant};
use netlens::explain::Target;

#[test]
fn twenty_iterations_match_torchray() {
    let net = demo();
    let want = load_tensors(&fixture("extremal.safetensors"));
    let x = samples(&net, &["star"]);
    let target = want["target"].data[0] as usize;
    for (variant, key) in [
        (Variant::Preserve, "preserve"),
        (Variant::Delete, "delete"),
        (Variant::Dual, "dual"),
    ] {
        let s = ExtremalSettings {
            areas: vec![0.05, 0.1, 0.2],
            step: 2,
            sigma: 6.0,
            max_blur: 20.0,
            iterations: 5,
            explainable_below: 1.0,
            ..ExtremalSettings::torchray(variant, (64, 64))
        };
        let r = extremal_perturbation(
            &net,
            &x,
            &Target::Class(target),
            &s,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        for it in &r.items {
            // five steps from all ones: most of each mask (input and margin) is still near 1
            let (a, h) = (it.area.unwrap(), it.area_above_half.unwrap());
            assert!(
                a > 0.5 && a <= 1.0 && h >= a - 0.05 && h <= 1.0,
                "{key}: {a} {h}"
            );
        }
        let torchray = &want[&format!("{key}.mask")].data;
        let mut mask = r.mask.data.clone();
        if variant == Variant::Delete {
            mask.iter_mut().for_each(|v| *v = 1.0 - *v); // netlens: 1 = kept; TorchRay: deleted
        }
        let e = rel_l2(&mask, torchray);
        assert!(e < 2e-3, "{key}: masks differ, relative L2 {e:.2e}");
        let energy = &want[&format!("{key}.energy")].data; // [areas, steps]
        let got: Vec<f32> = r
            .items
            .iter()
            .flat_map(|i| i.loss.iter().map(|l| -l))
            .collect();
        let e = rel_l2(&got, energy);
        assert!(e < 2e-3, "{key}: energies differ, relative L2 {e:.2e}");
    }
}

fn up(v: &[f32], shape: &[usize]) -> netlens::gpu::Tensor {
    netlens::gpu::Tensor::upload(common::ctx(), v, shape).unwrap()
}

/// d f / d x_i by central differences with step h, for every i.
fn central_differences(x: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[i] += h;
            b[i] -= h;
            ((f(&a) - f(&b)) / (2.0 * h)) as f32
        })
        .collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

#[test]
fn smooth_masks_and_their_gradient_match_the_reference() {
    use netlens::gpu::Recorder;
    use netlens::ops::extremal::{smooth_mask, smooth_mask_grad, MaskGeometry};
    use netlens::reference::extremal as cpu;
    let ctx = common::ctx();
    // odd sizes, a step that does not divide them, σ not a multiple of the step
    let g = MaskGeometry::new(13, 11, 3, 4.5).unwrap();
    let k = 2;
    let pm: Vec<f32> = common::rand_vec(k * g.hin * g.win, 4)
        .iter()
        .map(|v| 0.5 + 0.6 * v)
        .collect();
    let gf = common::rand_vec(k * g.oh * g.ow, 5);
    let mut rec = Recorder::new(ctx, "smooth mask");
    let pmt = up(&pm, &[k, 1, g.hin, g.win]);
    let (full, stats) = smooth_mask(&mut rec, &g, &pmt).unwrap();
    let gp = smooth_mask_grad(&mut rec, &g, &pmt, &stats, &up(&gf, &[k, 1, g.oh, g.ow])).unwrap();
    rec.submit().unwrap();
    let want = cpu::smooth_mask(&f64s(&pm), k, &g);
    let got = full.read(ctx).unwrap();
    let e = rel_l2(&got, &want.iter().map(|v| *v as f32).collect::<Vec<_>>());
    assert!(e < 1e-5, "smooth mask: relative L2 {e:.2e}");
    // central differences of <g, full(pm)> in f64
    let gp = gp.read(ctx).unwrap();
    let base = f64s(&pm);
    let dot = |p: &[f64]| -> f64 {
        cpu::smooth_mask(p, k, &g)
            .iter()
            .zip(&gf)
            .map(|(a, b)| a * *b as f64)
            .sum()
    };
    let h = 1e-5;
    let num = central_differences(&base, h, dot);
    let e = rel_l2(&gp, &num);
    assert!(
        e < 1e-3,
        "smooth mask gradient vs finite differences: {e:.2e}"
    );
}

#[test]
fn area_ranking_with_ties_matches_a_stable_sort() {
    use netlens::gpu::Recorder;
    use netlens::ops::extremal::{area_regulariser, area_zeros, MaskGeometry};
    use netlens::reference::extremal as cpu;
    let ctx = common::ctx();
    let g = MaskGeometry::new(9, 10, 2, 2.5).unwrap();
    let k = 4;
    let n = g.oh * g.ow;
    // values on a grid of eighths: wide ties, including 0 and 1, at every threshold
    let full: Vec<f32> = common::rand_vec(k * n, 8)
        .iter()
        .map(|v| ((v * 0.5 + 0.5) * 8.0).round() / 8.0)
        .collect();
    let areas = [0.05f32, 0.5];
    let g0: Vec<f32> = common::rand_vec(k * n, 9);
    let gt = up(&g0, &[k, 1, g.oh, g.ow]);
    let mut rec = Recorder::new(ctx, "area");
    let zeros = area_zeros(ctx, &g, &areas).unwrap();
    let loss = area_regulariser(
        &mut rec,
        &g,
        &up(&full, &[k, 1, g.oh, g.ow]),
        &zeros,
        300.0,
        &gt,
    )
    .unwrap();
    rec.submit().unwrap();
    let (wl, wg) = cpu::area_regulariser(&f64s(&full), k, &[0.05, 0.5], 300.0);
    let got = loss.read(ctx).unwrap();
    let e = rel_l2(&got, &wl.iter().map(|v| *v as f32).collect::<Vec<_>>());
    assert!(e < 1e-5, "area loss: {e:.2e}");
    let want: Vec<f32> = wg
        .iter()
        .zip(&g0)
        .map(|(a, b)| (*a + *b as f64) as f32)
        .collect();
    let e = rel_l2(&gt.read(ctx).unwrap(), &want);
    assert!(e < 1e-5, "area gradient added to g: {e:.2e}");
    assert!(area_zeros(ctx, &g, &[0.0]).is_err() && area_zeros(ctx, &g, &[1.5]).is_err());
}

#[test]
fn pyramid_blend_and_its_gradient_match_the_reference() {
    use netlens::gpu::Recorder;
    use netlens::ops::extremal::{pyramid_mix, pyramid_mix_grad, Blend, MaskGeometry};
    use netlens::reference::extremal as cpu;
    let ctx = common::ctx();
    let g = MaskGeometry::new(7, 9, 2, 2.0).unwrap();
    let (levels, n, areas, c) = (5, 2, 2, 3);
    let k = n * areas;
    let full: Vec<f32> = common::rand_vec(k * g.oh * g.ow, 10)
        .iter()
        .map(|v| 0.5 + 0.45 * v)
        .collect();
    let pyr = common::rand_vec(levels * n * c * 63, 11);
    let dims = [levels, n, c, 7, 9];
    let (ft, pt) = (up(&full, &[k, 1, g.oh, g.ow]), up(&pyr, &dims));
    for blend in [Blend::Preserve, Blend::Delete, Blend::Dual] {
        let rows = if blend == Blend::Dual { 2 * k } else { k };
        let gb = common::rand_vec(rows * c * 63, 12);
        let mut rec = Recorder::new(ctx, "blend");
        let out = pyramid_mix(&mut rec, &g, &ft, &pt, areas, blend).unwrap();
        let gm = pyramid_mix_grad(
            &mut rec,
            &g,
            &ft,
            &pt,
            areas,
            blend,
            &up(&gb, &[rows, c, 7, 9]),
        )
        .unwrap();
        rec.submit().unwrap();
        let pyr64 = f64s(&pyr);
        let mix = |f: &[f64]| -> Vec<f64> {
            let d = |inv| cpu::pyramid_mix(f, &pyr64, dims, areas, &g, inv);
            match blend {
                Blend::Preserve => d(false),
                Blend::Delete => d(true),
                Blend::Dual => [d(false), d(true)].concat(),
            }
        };
        let want: Vec<f32> = mix(&f64s(&full)).iter().map(|v| *v as f32).collect();
        let e = rel_l2(&out.read(ctx).unwrap(), &want);
        assert!(e < 1e-6, "{blend:?} blend: {e:.2e}");
        let gm = gm.read(ctx).unwrap();
        let h = 1e-6;
        let dot = |f: &[f64]| -> f64 { mix(f).iter().zip(&gb).map(|(a, b)| a * *b as f64).sum() };
        let base = f64s(&full);
        let num = central_differences(&base, h, dot);
        let e = rel_l2(&gm, &num);
        assert!(
            e < 1e-4,
            "{blend:?} blend gradient vs finite differences: {e:.2e}"
        );
    }
}

#[test]
fn flip_zero_padded_blur_and_sgd() {
    use netlens::gpu::Recorder;
    use netlens::ops::map::{sgd_step, Sgd};
    use netlens::ops::resample::{blur_zero, flip_x};
    let ctx = common::ctx();
    let (h, w) = (6, 5);
    let x = common::rand_vec(2 * 3 * h * w, 13);
    let xt = up(&x, &[2, 3, h, w]);
    let mut rec = Recorder::new(ctx, "flip blur");
    let f = flip_x(&mut rec, &xt).unwrap();
    let b = blur_zero(&mut rec, &xt, 1.7, 7).unwrap();
    rec.submit().unwrap();
    let want: Vec<f32> = (0..x.len())
        .map(|i| x[i - i % w + (w - 1 - i % w)])
        .collect();
    assert_eq!(f.read(ctx).unwrap(), want, "flip");
    // zero padding: the separable sum over taps inside the plane, normalised over all taps
    let k: Vec<f64> = (-7..=7)
        .map(|d: i32| (-(d * d) as f64 / (2.0 * 1.7f64.powi(2))).exp())
        .collect();
    let s: f64 = k.iter().sum();
    let pass = |v: &[f64], along_x: bool| -> Vec<f64> {
        (0..v.len())
            .map(|i| {
                let (pl, y, xx) = (i / (h * w), (i / w) % h, i % w);
                (-7i32..=7)
                    .map(|d| {
                        let (yy, xs) = if along_x {
                            (y as i32, xx as i32 + d)
                        } else {
                            (y as i32 + d, xx as i32)
                        };
                        if yy < 0 || xs < 0 || yy >= h as i32 || xs >= w as i32 {
                            0.0
                        } else {
                            k[(d + 7) as usize] * v[pl * h * w + yy as usize * w + xs as usize] / s
                        }
                    })
                    .sum()
            })
            .collect()
    };
    let want: Vec<f32> = pass(&pass(&f64s(&x), true), false)
        .iter()
        .map(|v| *v as f32)
        .collect();
    let e = rel_l2(&b.read(ctx).unwrap(), &want);
    assert!(e < 1e-6, "zero-padded blur: {e:.2e}");
    // torch.optim.SGD(momentum=0.9, dampening=0.9): buf = g, then 0.9 buf + 0.1 g
    let cfg = Sgd {
        lr: 0.01,
        momentum: 0.9,
        dampening: 0.9,
    };
    let (g1, g2) = (common::rand_vec(10, 14), common::rand_vec(10, 15));
    let (wt, bt) = (up(&[1.0; 10], &[10]), up(&[0.0; 10], &[10]));
    let mut rec = Recorder::new(ctx, "sgd");
    sgd_step(&mut rec, &cfg, true, &wt, &up(&g1, &[10]), &bt).unwrap();
    sgd_step(&mut rec, &cfg, false, &wt, &up(&g2, &[10]), &bt).unwrap();
    rec.submit().unwrap();
    let want: Vec<f32> = (0..10)
        .map(|i| {
            let b2 = 0.9 * g1[i] + 0.1 * g2[i];
            1.0 - 0.01 * g1[i] - 0.01 * b2
        })
        .collect();
    common::assert_close(&wt.read(ctx).unwrap(), &want, 1e-6, 1e-6, "sgd");
    let bad = Sgd {
        momentum: 1.0,
        ..cfg
    };
    let mut rec = Recorder::new(ctx, "bad sgd");
    assert!(sgd_step(&mut rec, &bad, true, &wt, &bt, &up(&[0.0; 10], &[10])).is_err());
}
