//! The primitive kernels of device-resident loops (map, Adam, bilinear resize, blur, roll,
//! reductions, total variation) against the plain-Rust reference on odd, batched shapes;
//! every adjoint A^T against <Ax, y> = <x, A^T y>.

mod common;
use common::{assert_close, ctx, rand_vec};

use netlens::gpu::{Recorder, Tensor};
use netlens::ops::map::{self, Adam};
use netlens::ops::reduce::{self, Reduction};
use netlens::ops::resample;
use netlens::reference::prim as cpu;

fn up(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::upload(ctx(), v, shape).unwrap()
}

fn read(t: &Tensor) -> Vec<f32> {
    t.read(ctx()).unwrap()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// <Ax, y> = <x, A^T y> within float tolerance.
fn assert_adjoint(ax: &[f32], y: &[f32], x: &[f32], aty: &[f32], what: &str) {
    let (l, r) = (dot(ax, y), dot(x, aty));
    let scale = ax.iter().map(|v| v.abs() as f64).sum::<f64>().max(1.0);
    assert!(
        (l - r).abs() <= 1e-5 * scale,
        "{what}: <Ax, y> = {l} but <x, A^T y> = {r}"
    );
}

#[test]
fn element_wise_maps() {
    let c = ctx();
    let dims = [3, 5, 7, 9];
    let n: usize = dims.iter().product();
    let (x, y) = (rand_vec(n, 1), rand_vec(n, 2));
    let (xt, yt) = (up(&x, &dims), up(&y, &dims));
    let mut rec = Recorder::new(c, "maps");
    map::axpy(&mut rec, 0.75, &xt, &yt).unwrap();
    let af = map::affine(&mut rec, &xt, -2.0, 0.5).unwrap();
    let cl = map::clamp(&mut rec, &xt, -0.25, 0.5).unwrap();
    let big: Vec<f32> = x.iter().map(|v| v * 120.0).collect();
    let sg = map::sigmoid(&mut rec, &up(&big, &dims)).unwrap();
    rec.submit().unwrap();
    let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| 0.75 * a + b).collect();
    assert_close(&read(&yt), &want, 1e-6, 1e-6, "axpy");
    let want: Vec<f32> = x.iter().map(|a| -2.0 * a + 0.5).collect();
    assert_close(&read(&af), &want, 1e-6, 1e-6, "affine");
    let want: Vec<f32> = x.iter().map(|a| a.clamp(-0.25, 0.5)).collect();
    assert_close(&read(&cl), &want, 0.0, 0.0, "clamp");
    let want: Vec<f32> = big
        .iter()
        .map(|a| (1.0 / (1.0 + (-*a as f64).exp())) as f32)
        .collect();
    let got = read(&sg);
    assert!(
        got.iter().all(|v| v.is_finite()),
        "sigmoid of large |x| stays finite"
    );
    assert_close(&got, &want, 1e-6, 1e-5, "sigmoid");
    // bad input: the same tensor read and written, unequal shapes, a reversed range
    let mut rec = Recorder::new(c, "bad maps");
    assert!(map::axpy(&mut rec, 1.0, &xt, &xt).is_err());
    assert!(map::axpy(&mut rec, 1.0, &xt, &up(&x[..840], &[3, 5, 7, 8])).is_err());
    assert!(map::clamp(&mut rec, &xt, 1.0, 0.0).is_err());
    assert!(map::affine(&mut rec, &xt, f32::NAN, 0.0).is_err());
}

#[test]
fn mix_broadcasts_the_mask_over_channels() {
    let dims = [2, 3, 5, 6];
    let n: usize = dims.iter().product();
    let (a, b) = (rand_vec(n, 3), rand_vec(n, 4));
    for mc in [1, 3] {
        let m: Vec<f32> = rand_vec(2 * mc * 30, 5)
            .iter()
            .map(|v| v * 0.5 + 0.5)
            .collect();
        let mut rec = Recorder::new(ctx(), "mix");
        let out = map::mix(
            &mut rec,
            &up(&m, &[2, mc, 5, 6]),
            &up(&a, &dims),
            &up(&b, &dims),
        )
        .unwrap();
        rec.submit().unwrap();
        let want = cpu::mix(&m, &a, &b, dims, mc);
        assert_close(
            &read(&out),
            &want,
            1e-6,
            1e-6,
            &format!("mix, mask channels {mc}"),
        );
    }
    let mut rec = Recorder::new(ctx(), "bad mix");
    let m = up(&rand_vec(2 * 2 * 30, 6), &[2, 2, 5, 6]);
    assert!(map::mix(&mut rec, &m, &up(&a, &dims), &up(&b, &dims)).is_err());
}

#[test]
fn mix_gradient_in_place_clamp_and_history_rows() {
    let dims = [3, 3, 5, 7];
    let n: usize = dims.iter().product();
    let (g, a, b) = (rand_vec(n, 7), rand_vec(n, 8), rand_vec(n, 9));
    let x = rand_vec(35 * 3, 10);
    let xt = up(&x, &[3, 1, 5, 7]);
    let hist = up(&vec![-9.0; 4 * 105], &[4, 105]);
    let mut rec = Recorder::new(ctx(), "mask steps");
    let gm = map::mix_grad(&mut rec, &up(&g, &dims), &up(&a, &dims), &up(&b, &dims)).unwrap();
    map::store_row(&mut rec, &xt, &hist, 2).unwrap();
    map::clamp_in_place(&mut rec, &xt, -0.2, 0.3).unwrap();
    map::store_row(&mut rec, &xt, &hist, 3).unwrap();
    rec.submit().unwrap();
    assert_close(
        &read(&gm),
        &cpu::mix_grad(&g, &a, &b, dims),
        1e-6,
        1e-5,
        "mix gradient",
    );
    // the mix gradient is the adjoint of m -> mix(m, a, b) - b = m (a - b)
    let m = rand_vec(3 * 35, 11);
    let zero = vec![0.0; n];
    let mut rec = Recorder::new(ctx(), "mix as a linear map");
    let am = map::mix(
        &mut rec,
        &up(&m, &[3, 1, 5, 7]),
        &up(&a, &dims),
        &up(&b, &dims),
    )
    .unwrap();
    let bm = map::mix(
        &mut rec,
        &up(&zero[..3 * 35], &[3, 1, 5, 7]),
        &up(&a, &dims),
        &up(&b, &dims),
    )
    .unwrap();
    rec.submit().unwrap();
    let lin: Vec<f32> = read(&am)
        .iter()
        .zip(read(&bm))
        .map(|(p, q)| p - q)
        .collect();
    assert_adjoint(&lin, &g, &m, &read(&gm), "mix gradient");
    let clamped: Vec<f32> = x.iter().map(|v| v.clamp(-0.2, 0.3)).collect();
    assert_close(&read(&xt), &clamped, 0.0, 0.0, "clamp in place");
    let h = read(&hist);
    assert!(h[..210].iter().all(|v| *v == -9.0), "other rows untouched");
    assert_close(&h[210..315], &x, 0.0, 0.0, "history row 2");
    assert_close(&h[315..], &clamped, 0.0, 0.0, "history row 3");
    let mut rec = Recorder::new(ctx(), "bad rows");
    assert!(map::store_row(&mut rec, &xt, &hist, 4).is_err());
    assert!(map::store_row(&mut rec, &hist, &hist, 0).is_err());
    assert!(map::clamp_in_place(&mut rec, &xt, 1.0, 0.0).is_err());
}

#[test]
fn combined_losses_and_the_best_iterate_per_row() {
    let (x, y, z) = (rand_vec(6, 20), rand_vec(6, 21), rand_vec(6, 22));
    let rows = rand_vec(6 * 5, 23);
    let (xt, best_x) = (up(&rows, &[6, 5]), up(&[7.0; 30], &[6, 5]));
    let best = up(&[0.5, -9.0, 0.5, -9.0, 0.5, -9.0], &[6]);
    let mut rec = Recorder::new(ctx(), "best");
    let loss = map::combine3(
        &mut rec,
        [&up(&x, &[6]), &up(&y, &[6]), &up(&z, &[6])],
        [0.5, 2.0, -1.0, 3.0],
    )
    .unwrap();
    map::keep_best(&mut rec, &xt, &loss, &best_x, &best).unwrap();
    rec.submit().unwrap();
    let want: Vec<f32> = (0..6)
        .map(|i| 0.5 + 2.0 * x[i] - y[i] + 3.0 * z[i])
        .collect();
    assert_close(&read(&loss), &want, 1e-6, 1e-6, "combine3");
    let (bx, b) = (read(&best_x), read(&best));
    for r in 0..6 {
        let old = if r % 2 == 0 { 0.5 } else { -9.0 };
        let better = want[r] < old;
        let row = if better {
            &rows[r * 5..r * 5 + 5]
        } else {
            &[7.0; 5][..]
        };
        assert_close(&bx[r * 5..r * 5 + 5], row, 0.0, 0.0, &format!("row {r}"));
        assert_close(&b[r..r + 1], &[want[r].min(old)], 1e-6, 0.0, "best loss");
    }
    let mut rec = Recorder::new(ctx(), "bad best");
    assert!(map::keep_best(&mut rec, &xt, &up(&[0.0; 5], &[5]), &best_x, &best).is_err());
}

#[test]
fn adam_matches_torch_optim_adam() {
    let dims = [2, 3, 4, 5];
    let n: usize = dims.iter().product();
    for cfg in [
        Adam {
            lr: 0.1,
            ..Default::default()
        },
        Adam {
            lr: 0.05,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.01,
            maximize: true,
        },
    ] {
        let mut w = rand_vec(n, 7);
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let (wt, mt, vt) = (up(&w, &dims), up(&m, &dims), up(&v, &dims));
        for t in 1..=4 {
            let g = rand_vec(n, 10 + t as u64);
            let mut rec = Recorder::new(ctx(), "adam");
            map::adam_step(&mut rec, &cfg, t, &wt, &up(&g, &dims), &mt, &vt).unwrap();
            rec.submit().unwrap();
            cpu::adam_step(&cfg, t, &mut w, &g, &mut m, &mut v);
        }
        assert_close(&read(&wt), &w, 1e-6, 1e-5, &format!("adam weights {cfg:?}"));
        assert_close(&read(&mt), &m, 1e-6, 1e-5, "adam first moment");
        assert_close(&read(&vt), &v, 1e-7, 1e-5, "adam second moment");
    }
    let z = up(&vec![0.0; n], &dims);
    let mut rec = Recorder::new(ctx(), "bad adam");
    let bad = Adam {
        beta1: 1.0,
        ..Default::default()
    };
    assert!(map::adam_step(
        &mut rec,
        &bad,
        1,
        &z,
        &up(&vec![0.0; n], &dims),
        &up(&vec![0.0; n], &dims),
        &up(&vec![0.0; n], &dims)
    )
    .is_err());
    assert!(map::adam_step(&mut rec, &Adam::default(), 1, &z, &z, &z, &z).is_err());
}

#[test]
fn bilinear_resize_and_its_adjoint() {
    // up, down, odd ratios and a 1-pixel axis, batched
    for (dims, (oh, ow)) in [
        ([2, 3, 5, 7], (13, 11)),
        ([1, 2, 9, 8], (4, 3)),
        ([3, 1, 1, 6], (5, 17)),
        ([1, 4, 28, 28], (224, 224)),
    ] {
        let [n, c, h, w] = dims;
        let x = rand_vec(dims.iter().product(), 8);
        let y = rand_vec(n * c * oh * ow, 9);
        let mut rec = Recorder::new(ctx(), "bilinear");
        let ax = resample::bilinear(&mut rec, &up(&x, &dims), (oh, ow)).unwrap();
        let aty = resample::bilinear_adjoint(&mut rec, &up(&y, &[n, c, oh, ow]), (h, w)).unwrap();
        rec.submit().unwrap();
        let (ax, aty) = (read(&ax), read(&aty));
        assert_close(
            &ax,
            &cpu::bilinear(&x, dims, oh, ow),
            1e-5,
            1e-5,
            &format!("bilinear {dims:?} -> {oh}x{ow}"),
        );
        let want = cpu::bilinear_adjoint(&y, n, c, h, w, oh, ow);
        assert_close(
            &aty,
            &want,
            1e-4,
            1e-5,
            &format!("bilinear adjoint {dims:?} <- {oh}x{ow}"),
        );
        assert_adjoint(&ax, &y, &x, &aty, "bilinear");
    }
}

#[test]
fn blur_with_reflect_padding_and_its_adjoint() {
    // radii past the plane's size reflect again; 1- and 2-pixel planes included
    for (dims, sigma, radius) in [
        ([2, 3, 9, 11], 1.5, 5),
        ([1, 2, 4, 3], 2.0, 6),
        ([1, 1, 1, 5], 0.8, 3),
        ([2, 1, 2, 7], 3.0, 9),
    ] {
        let x = rand_vec(dims.iter().product(), 12);
        let y = rand_vec(dims.iter().product(), 13);
        let mut rec = Recorder::new(ctx(), "blur");
        let ax = resample::blur(&mut rec, &up(&x, &dims), sigma, radius).unwrap();
        let aty = resample::blur_adjoint(&mut rec, &up(&y, &dims), sigma, radius).unwrap();
        rec.submit().unwrap();
        let (ax, aty) = (read(&ax), read(&aty));
        let what = format!("blur {dims:?} sigma {sigma} radius {radius}");
        assert_close(
            &ax,
            &cpu::blur(&x, dims, sigma, radius, false),
            1e-5,
            1e-5,
            &what,
        );
        assert_close(
            &aty,
            &cpu::blur(&y, dims, sigma, radius, true),
            1e-5,
            1e-5,
            &format!("{what} adjoint"),
        );
        assert_adjoint(&ax, &y, &x, &aty, &what);
    }
    let mut rec = Recorder::new(ctx(), "bad blur");
    let t = up(&rand_vec(12, 1), &[1, 1, 3, 4]);
    assert!(resample::blur(&mut rec, &t, 0.0, 3).is_err());
    assert!(resample::blur(&mut rec, &t, 1.0, 0).is_err());
    assert!(resample::blur(&mut rec, &t, 1.0, resample::MAX_BLUR_RADIUS + 1).is_err());
}

#[test]
fn roll_per_item_and_back() {
    let dims = [3, 2, 5, 7];
    let x = rand_vec(dims.iter().product(), 14);
    let offs = [(2isize, -3isize), (-6, 9), (0, 1)];
    let o: Vec<f32> = offs
        .iter()
        .flat_map(|(a, b)| [*a as f32, *b as f32])
        .collect();
    let ot = up(&o, &[3, 2]);
    let mut rec = Recorder::new(ctx(), "roll");
    let r = resample::roll(&mut rec, &up(&x, &dims), &ot, false).unwrap();
    let back = resample::roll(&mut rec, &r, &ot, true).unwrap();
    rec.submit().unwrap();
    assert_close(
        &read(&r),
        &cpu::roll(&x, dims, &offs, false),
        0.0,
        0.0,
        "roll",
    );
    assert_close(&read(&back), &x, 0.0, 0.0, "roll then its adjoint");
}

#[test]
fn reductions_per_row() {
    let x = rand_vec(6 * 211, 15);
    for how in [
        Reduction::Sum,
        Reduction::Mean,
        Reduction::L1,
        Reduction::L2,
        Reduction::Variance,
    ] {
        for rows in [1, 2, 6] {
            let mut rec = Recorder::new(ctx(), "reduce");
            let r = reduce::reduce(&mut rec, &up(&x, &[6, 211]), rows, how).unwrap();
            rec.submit().unwrap();
            let want = cpu::reduce(&x, rows, how);
            assert_close(
                &read(&r),
                &want,
                1e-4,
                1e-5,
                &format!("{how:?} over {rows} rows"),
            );
        }
    }
    let mut rec = Recorder::new(ctx(), "bad reduce");
    assert!(reduce::reduce(&mut rec, &up(&x, &[6, 211]), 4, Reduction::Sum).is_err());
}

#[test]
fn total_variation_and_its_gradient() {
    for (dims, beta) in [
        ([2, 3, 6, 7], 3.0f32),
        ([1, 1, 5, 4], 1.0),
        ([3, 2, 1, 9], 2.0),
    ] {
        let x = rand_vec(dims.iter().product(), 16);
        let xt = up(&x, &dims);
        let mut rec = Recorder::new(ctx(), "tv");
        let t = reduce::tv(&mut rec, &xt, beta).unwrap();
        let g = reduce::tv_grad(&mut rec, &xt, beta).unwrap();
        rec.submit().unwrap();
        let what = format!("tv {dims:?} beta {beta}");
        assert_close(&read(&t), &cpu::tv(&x, dims, beta), 1e-5, 1e-4, &what);
        let g = read(&g);
        assert_close(
            &g,
            &cpu::tv_grad(&x, dims, beta),
            1e-5,
            1e-4,
            &format!("{what} gradient"),
        );
        // the gradient is the derivative of the value: central differences of the reference
        let per = x.len() / dims[0];
        for i in [0, per / 2 + 1, x.len() - 1] {
            let (mut hi, mut lo) = (x.clone(), x.clone());
            let h = 1e-3;
            hi[i] += h;
            lo[i] -= h;
            let item = i / per;
            let fd = (cpu::tv(&hi, dims, beta)[item] as f64
                - cpu::tv(&lo, dims, beta)[item] as f64)
                / (2.0 * h as f64);
            assert!(
                (fd - g[i] as f64).abs() < 2e-3,
                "{what}: d/dx[{i}] = {} vs finite difference {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn nearest_resize_matches_the_reference() {
    for (dims, (oh, ow)) in [
        ([2, 3, 5, 7], (13, 11)),
        ([1, 2, 9, 8], (4, 3)),
        ([1, 1, 7, 7], (64, 64)),
    ] {
        let x = rand_vec(dims.iter().product(), 17);
        let mut rec = Recorder::new(ctx(), "nearest");
        let y = resample::nearest(&mut rec, &up(&x, &dims), (oh, ow)).unwrap();
        rec.submit().unwrap();
        let want = cpu::nearest(&x, dims, oh, ow);
        assert_close(
            &read(&y),
            &want,
            0.0,
            0.0,
            &format!("nearest {dims:?} -> {oh}x{ow}"),
        );
    }
}

#[test]
fn histograms_accumulate_into_u32_counts() {
    use netlens::ops::select;
    let c = ctx();
    let rows = 3;
    let (a, b) = (rand_vec(rows * 517, 18), rand_vec(rows * 517, 19));
    let counts = Tensor::upload_u32(c, &vec![0; rows * 10], &[rows, 10]).unwrap();
    let mut rec = Recorder::new(c, "histogram");
    select::histogram(&mut rec, &up(&a, &[rows, 517]), rows, -0.8, 0.6, &counts).unwrap();
    select::histogram(&mut rec, &up(&b, &[rows, 517]), rows, -0.8, 0.6, &counts).unwrap();
    rec.submit().unwrap();
    let got = counts.read_u32(c).unwrap();
    let (ha, hb) = (
        cpu::histogram(&a, rows, -0.8, 0.6, 10),
        cpu::histogram(&b, rows, -0.8, 0.6, 10),
    );
    let want: Vec<u32> = ha.iter().zip(&hb).map(|(p, q)| p + q).collect();
    assert_eq!(got, want);
    assert_eq!(got.iter().sum::<u32>() as usize, 2 * rows * 517);
    assert!(counts.read(c).is_err(), "u32 tensors are read as u32");
    let mut rec = Recorder::new(c, "bad histogram");
    assert!(select::histogram(&mut rec, &up(&a, &[rows, 517]), rows, 0.6, -0.8, &counts).is_err());
    let f = up(&vec![0.0; rows * 10], &[rows, 10]);
    assert!(select::histogram(&mut rec, &up(&a, &[rows, 517]), rows, -0.8, 0.6, &f).is_err());
}

#[test]
fn top_k_per_row_with_indices() {
    use netlens::ops::select;
    let c = ctx();
    let rows = 4;
    let per = 1000;
    let mut x = rand_vec(rows * per, 20);
    // ties across invocations' shares: the smaller index ranks first
    x[5] = 2.0;
    x[5 + 64] = 2.0;
    x[per + 999] = 3.0;
    for k in [1, 7, 16] {
        let mut rec = Recorder::new(c, "top-k");
        let (v, i) = select::top_k(&mut rec, &up(&x, &[rows, per]), rows, k).unwrap();
        rec.submit().unwrap();
        let (wv, wi) = cpu::top_k(&x, rows, k);
        assert_eq!(i.read_u32(c).unwrap(), wi, "top-{k} indices");
        assert_close(
            &v.read(c).unwrap(),
            &wv,
            0.0,
            0.0,
            &format!("top-{k} values"),
        );
    }
    let mut rec = Recorder::new(c, "bad top-k");
    assert!(select::top_k(&mut rec, &up(&x, &[rows, per]), rows, 17).is_err());
    assert!(select::top_k(&mut rec, &up(&x[..12], &[4, 3]), 4, 4).is_err());
}

#[test]
fn blur_baseline_on_the_device_equals_the_host_one() {
    use netlens::explain::gradient::Baseline;
    let dims = [2, 3, 11, 8];
    let x = netlens::Array::new(dims.to_vec(), rand_vec(dims.iter().product(), 21)).unwrap();
    for sigma in [0.7f32, 2.0, 5.0] {
        let b = Baseline::Blur(sigma);
        let got = b.on_device(ctx(), &x, &up(&x.data, &dims)).unwrap();
        let want = b.build(&x).unwrap();
        assert_close(
            &read(&got),
            &want.data,
            1e-5,
            1e-5,
            &format!("blur baseline sigma {sigma}"),
        );
    }
}

#[test]
fn visualisation_steps() {
    use netlens::ops::visualize::{clamp_channels, clip_small, pixel_bounds, Clip};
    let c = ctx();
    let dims = [3, 3, 13, 11];
    let n: usize = dims.iter().product();
    let x: Vec<f32> = rand_vec(n, 31).iter().map(|v| 3.0 * v).collect();
    let g = rand_vec(n, 32);
    // the pixel range per channel
    let bounds = pixel_bounds(&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]).unwrap();
    let t = up(&x, &dims);
    let mut rec = Recorder::new(c, "clamp");
    clamp_channels(&mut rec, &t, &up(&bounds, &[3, 2])).unwrap();
    rec.submit().unwrap();
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / (13 * 11)) % 3;
            v.clamp(bounds[2 * ch], bounds[2 * ch + 1])
        })
        .collect();
    assert_close(&read(&t), &want, 0.0, 0.0, "clamp_channels");
    assert!(
        want.iter().zip(&x).any(|(a, b)| a != b),
        "the test clamps nothing"
    );
    // clipping by norm and by contribution, at several percentiles
    for (how, pct) in [
        (Clip::Norm, 50.0),
        (Clip::Norm, 0.0),
        (Clip::Norm, 100.0),
        (Clip::Contribution, 90.0),
        (Clip::Contribution, 33.3),
    ] {
        let t = up(&x, &dims);
        let gt = up(&g, &dims);
        let mut rec = Recorder::new(c, "clip");
        clip_small(&mut rec, &t, how, Some(&gt), pct).unwrap();
        rec.submit().unwrap();
        let mut want = x.clone();
        let gg = (how == Clip::Contribution).then_some(&g[..]);
        cpu::clip_small(&mut want, gg, dims, pct);
        let got = read(&t);
        assert_close(&got, &want, 0.0, 0.0, &format!("clip_small {how:?} {pct}"));
        let zeros = got.iter().filter(|v| **v == 0.0).count();
        let expect = (pct / 100.0 * (13.0 * 11.0 - 1.0)).ceil() as usize * 9;
        assert!(
            zeros.abs_diff(expect) <= 9,
            "{how:?} {pct}: {zeros} zeros, about {expect} expected"
        );
    }
    let t = up(&x, &dims);
    let mut rec = Recorder::new(c, "clip");
    assert!(clip_small(&mut rec, &t, Clip::Contribution, None, 50.0).is_err());
    assert!(clip_small(&mut rec, &t, Clip::Norm, None, 101.0).is_err());
}

#[test]
fn fourier_image_colour_and_warps() {
    use netlens::ops::fourier::{self, Affine};
    let c = ctx();
    // odd and even sizes, batched
    for (n, ch, h, w) in [(2, 3, 8, 8), (1, 3, 7, 9), (3, 2, 5, 4)] {
        let w2 = w / 2 + 1;
        let p = rand_vec(n * ch * h * w2 * 2, 41);
        let scale = fourier::spectrum_scale(h, w, 1.0);
        let (pt, st) = (up(&p, &[n, ch, h, w2, 2]), up(&scale, &[h, w2]));
        let mut rec = Recorder::new(c, "fft");
        let x = fourier::spectrum_image(&mut rec, &pt, &st, (h, w)).unwrap();
        let g = up(&rand_vec(n * ch * h * w, 42), &[n, ch, h, w]);
        let gp = fourier::spectrum_image_adjoint(&mut rec, &g, &st).unwrap();
        rec.submit().unwrap();
        let want = cpu::spectrum_image(&p, &scale, n * ch, h, w);
        assert_close(
            &read(&x),
            &want,
            1e-5,
            1e-4,
            &format!("spectrum image {h}x{w}"),
        );
        assert_adjoint(&read(&x), &read(&g), &p, &read(&gp), "spectrum image");
    }
    // colour: sigmoid(M v) and its adjoint (a linearisation check)
    let dims = [2, 3, 5, 7];
    let len: usize = dims.iter().product();
    let v = rand_vec(len, 43);
    let m = fourier::color_matrix();
    let mt = up(&m, &[3, 3]);
    let g = rand_vec(len, 44);
    let mut rec = Recorder::new(c, "colour");
    let pix = fourier::color_sigmoid(&mut rec, &up(&v, &dims), &mt).unwrap();
    let gv = fourier::color_sigmoid_adjoint(&mut rec, &up(&g, &dims), &pix, &mt).unwrap();
    rec.submit().unwrap();
    let (pix, gv) = (read(&pix), read(&gv));
    let plane = 35;
    for (i, p) in pix.iter().enumerate() {
        let (item, cc, at) = (i / (3 * plane), (i / plane) % 3, i % plane);
        let z: f32 = (0..3)
            .map(|k| m[3 * cc + k] * v[(item * 3 + k) * plane + at])
            .sum();
        assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6, "colour {i}");
    }
    let eps = 1e-3;
    let bumped: Vec<f32> = v.iter().zip(&g).map(|(a, b)| a + eps * b).collect();
    let mut rec = Recorder::new(c, "colour");
    let pix2 = fourier::color_sigmoid(&mut rec, &up(&bumped, &dims), &mt).unwrap();
    rec.submit().unwrap();
    let lin: f64 = dot(&gv, &g);
    let fd: f64 = read(&pix2)
        .iter()
        .zip(&pix)
        .zip(&g)
        .map(|((a, b), gg)| ((a - b) / eps) as f64 * *gg as f64)
        .sum();
    assert!(
        (lin - fd).abs() < 2e-2 * lin.abs().max(1.0),
        "colour adjoint {lin} vs {fd}"
    );
    // warps: shift with a fill, scale down with zero padding, rotation; forward against the
    // reference, adjoint against <Ax, y> = <x, A^T y>
    let dims = [2, 3, 11, 13];
    let len: usize = dims.iter().product();
    let x = rand_vec(len, 45);
    let (cs, sn) = (0.3f32.cos() * 1.07, 0.3f32.sin() * 1.07);
    for (a, out, fill) in [
        (Affine::shift(-3.0, 2.0), (14, 9), 0.5),
        (Affine([1.3, 0.0, -2.2, 0.0, 1.25, -1.4]), (9, 12), 0.0),
        (Affine([cs, -sn, 2.0, sn, cs, -1.0]), (11, 13), 0.0),
    ] {
        let mut rec = Recorder::new(c, "warp");
        let y = fourier::warp(&mut rec, &up(&x, &dims), &a, out, fill).unwrap();
        let gy = rand_vec(2 * 3 * out.0 * out.1, 46);
        let gx =
            fourier::warp_adjoint(&mut rec, &up(&gy, &[2, 3, out.0, out.1]), &a, (11, 13)).unwrap();
        rec.submit().unwrap();
        let want = cpu::warp(&x, 6, (11, 13), out, a.0, fill);
        assert_close(&read(&y), &want, 1e-5, 1e-5, &format!("warp {a:?}"));
        let zero_fill = cpu::warp(&x, 6, (11, 13), out, a.0, 0.0);
        assert_adjoint(
            &zero_fill,
            &gy,
            &x,
            &read(&gx),
            &format!("warp adjoint {a:?}"),
        );
    }
}
