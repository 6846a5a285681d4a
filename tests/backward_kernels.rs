//! Every input-gradient kernel against the plain-Rust reference on odd, padded, batched
//! and split shapes.

mod common;
use common::{assert_close, bits, ctx, gemm_ctxs, rand_vec};

use netlens::gpu::{Recorder, Tensor, WeightBuffer, WeightLayout};
use netlens::ops::{self, Conv2dGeom, Pool2d, ReluRule, Windows};
use netlens::reference as cpu;

fn conv_back(dims: [usize; 4], g: Conv2dGeom, limit: Option<u64>) {
    for c in gemm_ctxs() {
        let k = g.cin * g.kernel.0 * g.kernel.1;
        let w = rand_vec(g.cout * k, 21);
        let wb = match limit {
            Some(l) => {
                let layout = WeightLayout::conv(g.kernel.0 * g.kernel.1).limit(l);
                WeightBuffer::upload_with(c, "w", &w, g.cout, k, None, layout).unwrap()
            }
            None => WeightBuffer::upload_conv(c, "w", &w, g.cout, g.kernel.0 * g.kernel.1, None)
                .unwrap(),
        };
        let (oh, ow) = g.out_hw(dims[2], dims[3]).unwrap();
        let dy = rand_vec(dims[0] * g.cout * oh * ow, 22);
        let dyt = Tensor::upload(c, &dy, &[dims[0], g.cout, oh, ow]).unwrap();
        let mut rec = Recorder::new(c, "test");
        let dx = ops::conv2d_backward_input(&mut rec, &dyt, &wb, &g, (dims[2], dims[3])).unwrap();
        rec.submit().unwrap();
        assert_eq!(dx.shape, dims.to_vec());
        let want = cpu::conv2d_backward_input(&dy, dims, &w, &g);
        assert_close(
            &dx.read(c).unwrap(),
            &want,
            1e-4,
            1e-4,
            &format!("conv backward {dims:?} {g:?} {:?}", c.gemm()),
        );
        // the same from an LRP ratio dy / s(c0 za + c1 zb), kept by the sign of z0 (packed
        // into the GEMM's input texture on cpu-tex and cpu-fetch): mixed where cout is odd
        let shape = [dims[0], g.cout, oh, ow];
        let (za, zb, z0) = (
            rand_vec(dy.len(), 23),
            rand_vec(dy.len(), 24),
            rand_vec(dy.len(), 25),
        );
        let up = |v: &[f32]| Tensor::upload(c, v, &shape).unwrap();
        let (zat, zbt, z0t) = (up(&za), up(&zb), up(&z0));
        let keep = [
            ops::LrpKeep::All,
            ops::LrpKeep::Positive,
            ops::LrpKeep::Negative,
        ][g.cout % 3];
        let (c0, c1) = if g.cout % 2 == 1 {
            (1.25, -0.5)
        } else {
            (1.0, 0.0)
        };
        let mut q = ops::LrpRatio::new(&dyt, &zat, &z0t, keep, 0.01);
        if c1 != 0.0 {
            q = q.mixed(c0, &zbt, c1);
        }
        let mut rec = Recorder::new(c, "test");
        let dx = ops::conv2d_backward_ratio(&mut rec, &q, &wb, &g, (dims[2], dims[3])).unwrap();
        rec.submit().unwrap();
        let ratio: Vec<f32> = (0..dy.len())
            .map(|i| {
                let z = c0 * za[i] + c1 * zb[i];
                let kept = match keep {
                    ops::LrpKeep::All => true,
                    ops::LrpKeep::Positive => z0[i] > 0.0,
                    ops::LrpKeep::Negative => z0[i] < 0.0,
                };
                if kept {
                    dy[i] / (z + if z >= 0.0 { 0.01 } else { -0.01 })
                } else {
                    0.0
                }
            })
            .collect();
        let want = cpu::conv2d_backward_input(&ratio, dims, &w, &g);
        assert_close(
            &dx.read(c).unwrap(),
            &want,
            1e-3,
            1e-4,
            &format!(
                "conv backward of a ratio {dims:?} {g:?} {keep:?} {:?}",
                c.gemm()
            ),
        );
    }
}

fn geom(
    cin: usize,
    cout: usize,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
) -> Conv2dGeom {
    Conv2dGeom {
        cin,
        cout,
        kernel: k,
        stride: s,
        padding: p,
    }
}

#[test]
fn conv2d_backward_odd_strided_padded_batched() {
    conv_back([3, 5, 11, 9], geom(5, 7, (3, 5), (2, 1), (1, 2)), None);
    conv_back([2, 3, 12, 13], geom(3, 8, (3, 3), (1, 1), (1, 1)), None);
    conv_back([1, 70, 6, 5], geom(70, 9, (1, 1), (1, 1), (0, 0)), None);
    conv_back([2, 4, 10, 10], geom(4, 6, (4, 4), (3, 3), (0, 0)), None); // rows the stride skips
    conv_back([1, 2, 7, 7], geom(2, 3, (5, 5), (2, 2), (2, 2)), None);
    // planes of a multiple of 4 (the packs' four-pixel path) with the ratio kept where
    // z0 > 0 (cout % 3 == 1), mixed (odd cout) and not
    conv_back([2, 5, 8, 6], geom(5, 7, (3, 3), (1, 1), (1, 1)), None);
    conv_back([1, 6, 4, 4], geom(6, 10, (3, 3), (1, 1), (1, 1)), None);
}

/// Strided input gradients of more than 4 input channels, which the tiled kernels run a
/// launch per stride phase: 1x1 at stride 2 (three phases without taps), 4x4 at stride 3
/// (rows no tap reaches), 5x5 at stride 2 with padding 2, a plane smaller than the stride
/// (a phase without pixels), and weight chunks that accumulate.
#[test]
fn conv2d_backward_stride_phases() {
    conv_back([2, 6, 9, 7], geom(6, 5, (1, 1), (2, 2), (0, 0)), None);
    conv_back([2, 6, 10, 10], geom(6, 5, (4, 4), (3, 3), (0, 0)), None);
    conv_back([1, 9, 7, 8], geom(9, 4, (5, 5), (2, 2), (2, 2)), None);
    conv_back([2, 6, 2, 5], geom(6, 3, (3, 3), (3, 2), (1, 1)), None);
    conv_back(
        [1, 8, 9, 9],
        geom(8, 70, (3, 3), (2, 2), (1, 1)),
        Some(288 * 16),
    );
}

/// Input gradients of 32, 96 (64 + 32) and 40 channels: blocks of at most 32 channels are
/// summed half (conv2d_cpu.wgsl), a block of 40 whole.
#[test]
fn conv2d_backward_half_channel_blocks() {
    for cin in [32, 96, 40] {
        conv_back([2, cin, 5, 6], geom(cin, 5, (3, 3), (1, 1), (1, 1)), None);
    }
}

#[test]
fn conv2d_backward_split_weights_accumulate() {
    conv_back([2, 3, 9, 8], geom(3, 9, (3, 3), (1, 1), (1, 1)), Some(600));
    conv_back(
        [1, 4, 6, 6],
        geom(4, 70, (3, 3), (2, 2), (1, 1)),
        Some(144 * 10),
    );
    // 1x1 at stride 1 (the tiled pointwise entry), chunks of 16 rows (two reduction
    // slices: the second's loads are the pointwise ones) reading their own channels of dY
    conv_back(
        [2, 5, 7, 6],
        geom(5, 40, (1, 1), (1, 1), (0, 0)),
        Some(16 * 5 * 4),
    );
}

/// Split-K on the tiled input-gradient kernel (450 reduction steps in 4 slices), also with
/// weight chunks accumulating into dx.
#[test]
fn conv2d_backward_split_k() {
    let (splits, _) = ops::tiled_split(2 * 6 * 7, 20, 450, 64 << 20);
    assert!(splits > 1);
    conv_back([2, 20, 6, 7], geom(20, 50, (3, 3), (1, 1), (1, 1)), None);
    conv_back(
        [2, 20, 6, 7],
        geom(20, 50, (3, 3), (1, 1), (1, 1)),
        Some(20 * 9 * 4 * 30),
    );
}

fn lin_back(n: usize, k: usize, out: usize, limit: Option<u64>) {
    for c in gemm_ctxs() {
        let w = rand_vec(out * k, 23);
        let wb = match limit {
            Some(l) => WeightBuffer::upload_with(
                c,
                "fc",
                &w,
                out,
                k,
                None,
                WeightLayout::linear().limit(l),
            )
            .unwrap(),
            None => WeightBuffer::upload(c, "fc", &w, out, k, None).unwrap(),
        };
        let dy = rand_vec(n * out, 24);
        let dyt = Tensor::upload(c, &dy, &[n, out]).unwrap();
        let mut rec = Recorder::new(c, "test");
        let dx = ops::linear_backward_input(&mut rec, &dyt, &wb).unwrap();
        rec.submit().unwrap();
        assert_eq!(dx.shape, vec![n, k]);
        let want = cpu::linear_backward_input(&dy, n, &w, out);
        assert_close(
            &dx.read(c).unwrap(),
            &want,
            1e-4,
            1e-4,
            &format!("linear backward n={n} k={k} out={out}"),
        );
    }
}

#[test]
fn linear_backward_gemv_gemm_and_split() {
    lin_back(1, 37, 11, None);
    lin_back(2, 130, 65, None); // GEMV on the CPU-shaped kernels: 3 blocks of 64 rows
    lin_back(9, 130, 65, None);
    lin_back(17, 50, 70, None);
    lin_back(3, 100, 13, Some(400 * 4)); // 4 rows per chunk
    lin_back(20, 100, 13, Some(400 * 4));
}

fn pool_back(dims: [usize; 4], p: Pool2d, quantize: bool) {
    let c = ctx();
    let mut x = rand_vec(dims.iter().product(), 25);
    if quantize {
        x.iter_mut().for_each(|v| *v = (*v * 2.0).round().max(0.0));
    }
    let xt = Tensor::upload(c, &x, &dims).unwrap();
    let mut rec = Recorder::new(c, "test");
    let (y, arg) = ops::max_pool2d(&mut rec, &xt, &p).unwrap();
    let dy = rand_vec(y.len(), 26);
    let dyt = Tensor::upload(c, &dy, &y.shape).unwrap();
    let dxm = ops::max_pool2d_backward(&mut rec, &dyt, &arg, &p, &dims).unwrap();
    let dxa = ops::avg_pool2d_backward(&mut rec, &dyt, &p, &dims).unwrap();
    rec.submit().unwrap();
    let (_, warg, oh, ow) = cpu::max_pool2d(&x, dims, &p);
    let want = cpu::max_pool2d_backward(&dy, &warg, dims, oh * ow);
    assert_close(
        &dxm.read(c).unwrap(),
        &want,
        1e-6,
        1e-5,
        &format!("max-pool backward {dims:?} {p:?}"),
    );
    let want = cpu::avg_pool2d_backward(&dy, dims, &p);
    assert_close(
        &dxa.read(c).unwrap(),
        &want,
        1e-6,
        1e-5,
        &format!("avg-pool backward {dims:?} {p:?}"),
    );
}

#[test]
fn pool_backward_overlapping_padded_ties() {
    // windows tiling the input run a thread a window: square, oblong, and an odd size
    // (the last row in no window: the thread-per-input kernel)
    pool_back([2, 3, 8, 8], Pool2d::square(2, 2), true);
    // two windows a thread (rows of a multiple of 4), and a width that is not
    pool_back([3, 2, 6, 12], Pool2d::square(2, 2), true);
    pool_back([1, 2, 6, 6], Pool2d::square(2, 2), true);
    let oblong = Pool2d {
        kernel: (3, 2),
        stride: (3, 2),
        ..Pool2d::square(2, 2)
    };
    pool_back([2, 3, 9, 8], oblong, true);
    pool_back([2, 3, 9, 8], oblong, false);
    pool_back([1, 2, 7, 6], Pool2d::square(2, 2), false);
    pool_back([1, 2, 9, 7], Pool2d::square(3, 2), true); // overlapping windows share inputs
    let padded = Pool2d {
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
        ceil_mode: false,
        count_include_pad: true,
    };
    pool_back([3, 2, 7, 9], padded, false);
    pool_back(
        [3, 2, 7, 9],
        Pool2d {
            count_include_pad: false,
            ..padded
        },
        true,
    );
    let ceil = Pool2d {
        kernel: (2, 3),
        stride: (2, 2),
        padding: (1, 1),
        ceil_mode: true,
        count_include_pad: false,
    };
    pool_back([2, 1, 6, 5], ceil, false);
}

#[test]
fn adaptive_avg_pool_backward() {
    let c = ctx();
    for (dims, out) in [
        ([2, 3, 3, 3], (7, 7)),
        ([1, 2, 10, 13], (3, 4)),
        ([2, 1, 7, 7], (7, 7)),
        ([1, 2, 5, 7], (2, 9)),
    ] {
        let dy = rand_vec(dims[0] * dims[1] * out.0 * out.1, 27);
        let dyt = Tensor::upload(c, &dy, &[dims[0], dims[1], out.0, out.1]).unwrap();
        let mut rec = Recorder::new(c, "test");
        let dx = ops::adaptive_avg_pool2d_backward(&mut rec, &dyt, &dims).unwrap();
        rec.submit().unwrap();
        let want = cpu::adaptive_avg_pool2d_backward(&dy, dims, out);
        assert_close(
            &dx.read(c).unwrap(),
            &want,
            1e-6,
            1e-5,
            &format!("adaptive backward {dims:?} {out:?}"),
        );
    }
}

/// Every rule, four elements a thread (1000) and one (999).
#[test]
fn relu_backward_rules() {
    for n in [1000, 999] {
        relu_back(n);
    }
}

fn relu_back(n: usize) {
    let c = ctx();
    let y: Vec<f32> = rand_vec(n, 28).iter().map(|v| v.max(0.0)).collect();
    let dy = rand_vec(n, 29);
    let yt = Tensor::upload(c, &y, &[1, n]).unwrap();
    let dyt = Tensor::upload(c, &dy, &[1, n]).unwrap();
    for (rule, mode) in [
        (ReluRule::Gradient, 0),
        (ReluRule::Guided, 1),
        (ReluRule::Deconv, 2),
    ] {
        let mut rec = Recorder::new(c, "test");
        let dx = ops::relu_backward(&mut rec, &yt, &dyt, rule).unwrap();
        rec.submit().unwrap();
        assert_close(
            &dx.read(c).unwrap(),
            &cpu::relu_backward(&y, &dy, mode),
            0.0,
            0.0,
            &format!("{rule:?} over {n}"),
        );
    }
}

#[test]
fn occluded_copies_match_captum_windows() {
    let c = ctx();
    let (n, ch, h, w) = (2, 3, 11, 9);
    let x = rand_vec(n * ch * h * w, 30);
    let xt = Tensor::upload(c, &x, &[n, ch, h, w]).unwrap();
    let win = Windows::new(h, w, (4, 3), (3, 2)).unwrap();
    assert_eq!(
        (win.ny, win.nx),
        (4, 4),
        "ceil((11-4)/3)+1, ceil((9-3)/2)+1"
    );
    let base = rand_vec(n * ch * h * w, 31);
    let bt = Tensor::upload(c, &base, &[n, ch, h, w]).unwrap();
    let mut rec = Recorder::new(c, "test");
    let y = ops::occlude(&mut rec, &xt, &bt, 1, &win, 2, 9).unwrap();
    rec.submit().unwrap();
    let got = y.read(c).unwrap();
    for j in 0..9 {
        let (y0, y1, x0, x1) = win.rect(j + 2, h, w);
        for cc in 0..ch {
            for yy in 0..h {
                for xx in 0..w {
                    let inside = (y0..y1).contains(&yy) && (x0..x1).contains(&xx);
                    let want = if inside {
                        base[((ch + cc) * h + yy) * w + xx]
                    } else {
                        x[((ch + cc) * h + yy) * w + xx]
                    };
                    assert_eq!(
                        got[((j * ch + cc) * h + yy) * w + xx],
                        want,
                        "copy {j} ({cc},{yy},{xx})"
                    );
                }
            }
        }
    }
}

#[test]
fn lrp_elementwise_kernels() {
    // 1000: the four-a-thread twins (lrp4.wgsl); 999: one element a thread
    for n in [1000, 999] {
        lrp_elementwise(n);
    }
}

fn lrp_elementwise(n: usize) {
    let c = ctx();
    let mut z = rand_vec(n, 31);
    z[0] = 0.0; // s(0) = +eps
    z[1] = -0.0;
    let r = rand_vec(n, 32);
    let z0 = rand_vec(n, 33);
    let (rt, zt, z0t) = (
        Tensor::upload(c, &r, &[n]).unwrap(),
        Tensor::upload(c, &z, &[n]).unwrap(),
        Tensor::upload(c, &z0, &[n]).unwrap(),
    );
    let eps = 0.01f32;
    let s = |v: f32| v + if v >= 0.0 { eps } else { -eps };
    for (keep, f) in [
        (
            ops::LrpKeep::All,
            Box::new(|_: f32| true) as Box<dyn Fn(f32) -> bool>,
        ),
        (ops::LrpKeep::Positive, Box::new(|v: f32| v > 0.0)),
        (ops::LrpKeep::Negative, Box::new(|v: f32| v < 0.0)),
    ] {
        let mut rec = Recorder::new(c, "test");
        let g = ops::lrp_ratio(&mut rec, &rt, &zt, &z0t, keep, eps).unwrap();
        // R / s(1.5 z - 0.75 R)
        let q = ops::LrpRatio::new(&rt, &zt, &z0t, keep, eps).mixed(1.5, &rt, -0.75);
        let gm = ops::lrp_ratio_of(&mut rec, &q).unwrap();
        rec.submit().unwrap();
        let want: Vec<f32> = (0..n)
            .map(|i| if f(z0[i]) { r[i] / s(z[i]) } else { 0.0 })
            .collect();
        assert_close(
            &g.read(c).unwrap(),
            &want,
            1e-6,
            1e-6,
            &format!("lrp_ratio {keep:?}, {n} elements"),
        );
        let want: Vec<f32> = (0..n)
            .map(|i| {
                let zm = 1.5 * z[i] - 0.75 * r[i];
                if f(z0[i]) {
                    r[i] / s(zm)
                } else {
                    0.0
                }
            })
            .collect();
        assert_close(
            &gm.read(c).unwrap(),
            &want,
            1e-5,
            1e-5,
            &format!("mixed lrp_ratio {keep:?}, {n} elements"),
        );
    }
    let mut rec = Recorder::new(c, "test");
    let pos = ops::lrp_clamp(&mut rec, &zt, false).unwrap();
    let neg = ops::lrp_clamp(&mut rec, &zt, true).unwrap();
    let comb = ops::lrp_combine(&mut rec, 2.0, &rt, &zt, -0.5, &z0t, &pos, None).unwrap();
    let acc = ops::lrp_combine(&mut rec, 1.0, &rt, &rt, 0.0, &rt, &rt, Some(&comb)).unwrap();
    let ax = ops::lrp_axpby(&mut rec, 1.25, &zt, -0.25, &rt).unwrap();
    rec.submit().unwrap();
    let want_ax: Vec<f32> = (0..n).map(|i| 1.25 * z[i] - 0.25 * r[i]).collect();
    assert_close(
        &ax.read(c).unwrap(),
        &want_ax,
        1e-7,
        1e-6,
        &format!("lrp_axpby, {n} elements"),
    );
    let pz: Vec<f32> = z.iter().map(|v| v.max(0.0)).collect();
    assert_close(
        &pos.read(c).unwrap(),
        &pz,
        0.0,
        0.0,
        &format!("clamp +, {n} elements"),
    );
    assert_close(
        &neg.read(c).unwrap(),
        &z.iter().map(|v| v.min(0.0)).collect::<Vec<_>>(),
        0.0,
        0.0,
        &format!("clamp -, {n} elements"),
    );
    let want: Vec<f32> = (0..n)
        .map(|i| 2.0 * r[i] * z[i] - 0.5 * z0[i] * pz[i] + r[i] * r[i])
        .collect();
    assert_close(
        &acc.read(c).unwrap(),
        &want,
        1e-6,
        1e-5,
        &format!("lrp_combine with accumulate, {n} elements"),
    );
    // a sum's rule in one pass: the same bits as the ratio and a combine for each input
    // (z[0] and z[1] are zeros: s(±0) = +eps)
    let x2: Vec<f32> = rand_vec(n, 34);
    let x2t = Tensor::upload(c, &x2, &[n]).unwrap();
    let mut rec = Recorder::new(c, "test");
    let [s1, s2] = ops::lrp_sum_rule(&mut rec, &rt, &zt, [&z0t, &x2t], eps).unwrap();
    let g = ops::lrp_ratio(&mut rec, &rt, &zt, &zt, ops::LrpKeep::All, eps).unwrap();
    let c1 = ops::lrp_combine(&mut rec, 1.0, &z0t, &g, 0.0, &z0t, &g, None).unwrap();
    let c2 = ops::lrp_combine(&mut rec, 1.0, &x2t, &g, 0.0, &x2t, &g, None).unwrap();
    rec.submit().unwrap();
    let bits = |t: &Tensor| bits(&t.read(c).unwrap());
    assert_eq!(
        bits(&s1),
        bits(&c1),
        "lrp_sum_rule's first input, {n} elements"
    );
    assert_eq!(
        bits(&s2),
        bits(&c2),
        "lrp_sum_rule's second input, {n} elements"
    );
    let want: Vec<f32> = (0..n).map(|i| x2[i] * (r[i] / s(z[i]))).collect();
    assert_close(
        &s2.read(c).unwrap(),
        &want,
        1e-6,
        1e-5,
        &format!("lrp_sum_rule, {n} elements"),
    );
}

#[test]
fn forward_accumulate_adds_into_the_target() {
    for c in gemm_ctxs() {
        let g = geom(3, 5, (3, 3), (1, 1), (1, 1));
        let (x1, x2) = (rand_vec(2 * 3 * 6 * 7, 34), rand_vec(2 * 3 * 6 * 7, 35));
        let (w1, w2) = (rand_vec(5 * 27, 36), rand_vec(5 * 27, 37));
        let b = rand_vec(5, 38);
        let wb1 = WeightBuffer::upload_conv(c, "a", &w1, 5, 9, Some(&b)).unwrap();
        let split = WeightLayout::conv(9).limit(28 * 4 * 4);
        let wb2 = WeightBuffer::upload_with(c, "b", &w2, 5, 27, None, split).unwrap();
        assert!(wb2.chunks.len() > 1);
        let d = [2, 3, 6, 7];
        let (t1, t2) = (
            Tensor::upload(c, &x1, &d).unwrap(),
            Tensor::upload(c, &x2, &d).unwrap(),
        );
        let mut rec = Recorder::new(c, "test");
        let y = ops::conv2d(&mut rec, &t1, &wb1, &g, false).unwrap();
        let y = ops::conv2d_acc(&mut rec, &t2, &wb2, &g, false, Some(&y)).unwrap();
        // the same matrices as linear layers (their own layout on the CPU-shaped kernels)
        let lw1 = WeightBuffer::upload(c, "la", &w1, 5, 27, Some(&b)).unwrap();
        let split = WeightLayout::linear().limit(28 * 4 * 4);
        let lw2 = WeightBuffer::upload_with(c, "lb", &w2, 5, 27, None, split).unwrap();
        assert!(lw2.chunks.len() > 1);
        let lx = Tensor::upload(c, &x1[..2 * 27], &[2, 27]).unwrap();
        let l = ops::linear(&mut rec, &lx, &lw1, false).unwrap();
        let l = ops::linear_acc(&mut rec, &lx, &lw2, false, Some(&l)).unwrap();
        rec.submit().unwrap();
        let (a, _, _) = cpu::conv2d(&x1, d, &w1, Some(&b), &g, false);
        let (bb, _, _) = cpu::conv2d(&x2, d, &w2, None, &g, false);
        let want: Vec<f32> = a.iter().zip(&bb).map(|(p, q)| p + q).collect();
        assert_close(&y.read(c).unwrap(), &want, 1e-4, 1e-4, "conv2d accumulate");
        let la = cpu::linear(&x1[..54], 2, &w1, Some(&b), 5, false);
        let lb = cpu::linear(&x1[..54], 2, &w2, None, 5, false);
        let want: Vec<f32> = la.iter().zip(&lb).map(|(p, q)| p + q).collect();
        assert_close(&l.read(c).unwrap(), &want, 1e-4, 1e-4, "linear accumulate");
    }
}

/// The fused max-pool + ReLU backward (windows tiling the input) gives the same bits as
/// the two passes, for every rule, with ties and zeros as after a ReLU; a pool that does
/// not tile its input is refused.
#[test]
fn max_pool_relu_backward_equals_the_two_passes() {
    let c = ctx();
    let oblong = Pool2d {
        kernel: (2, 3),
        stride: (2, 3),
        ..Pool2d::square(2, 2)
    };
    // 2x2 over rows of 8 runs two windows a thread; over rows of 6, one
    let cases = [
        ([2, 3, 8, 6], Pool2d::square(2, 2)),
        ([2, 3, 8, 6], oblong),
        ([2, 3, 6, 8], Pool2d::square(2, 2)),
    ];
    for (dims, p) in cases {
        // a ReLU's output: zeros and ties
        let y: Vec<f32> = rand_vec(dims.iter().product(), 71)
            .iter()
            .map(|v| (*v * 2.0).round().max(0.0))
            .collect();
        let yt = Tensor::upload(c, &y, &dims).unwrap();
        for rule in [ReluRule::Gradient, ReluRule::Guided, ReluRule::Deconv] {
            let mut rec = Recorder::new(c, "fused");
            let (pooled, arg) = ops::max_pool2d(&mut rec, &yt, &p).unwrap();
            let dy = Tensor::upload(c, &rand_vec(pooled.len(), 72), &pooled.shape).unwrap();
            let g = ops::max_pool2d_backward(&mut rec, &dy, &arg, &p, &dims).unwrap();
            let two = ops::relu_backward(&mut rec, &yt, &g, rule).unwrap();
            let one = ops::max_pool2d_relu_backward(&mut rec, &dy, &arg, &pooled, &p, &dims, rule)
                .unwrap();
            rec.submit().unwrap();
            let (two, one) = (two.read(c).unwrap(), one.read(c).unwrap());
            assert_eq!(two, one, "{p:?} {rule:?}");
            assert!(one.iter().any(|v| *v != 0.0) && one.contains(&0.0));
        }
    }
    let mut rec = Recorder::new(c, "not tiling");
    let x = Tensor::upload(c, &rand_vec(2 * 3 * 7 * 6, 73), &[2, 3, 7, 6]).unwrap();
    let (pooled, arg) = ops::max_pool2d(&mut rec, &x, &Pool2d::square(2, 2)).unwrap();
    let e = ops::max_pool2d_relu_backward(
        &mut rec,
        &pooled,
        &arg,
        &pooled,
        &Pool2d::square(2, 2),
        &[2, 3, 7, 6],
        ReluRule::Gradient,
    );
    assert!(e.is_err());
}

/// A ratio whose tensors disagree in length is an error on every variant (the texture
/// variants check it before they pack, the others before the ratio kernel).
#[test]
fn mismatched_ratio_tensors_are_refused() {
    for c in gemm_ctxs() {
        let g = geom(3, 4, (3, 3), (1, 1), (1, 1));
        let wb = WeightBuffer::upload_conv(c, "w", &rand_vec(4 * 3 * 9, 41), 4, 9, None).unwrap();
        let dy = Tensor::upload(c, &rand_vec(2 * 4 * 5 * 5, 42), &[2, 4, 5, 5]).unwrap();
        let short = Tensor::upload(c, &rand_vec(4 * 5 * 5, 43), &[1, 4, 5, 5]).unwrap();
        let q = ops::LrpRatio::new(&dy, &dy, &dy, ops::LrpKeep::All, 0.01).mixed(1.0, &short, 0.5);
        let mut rec = Recorder::new(c, "test");
        let Err(e) = ops::conv2d_backward_ratio(&mut rec, &q, &wb, &g, (5, 5)) else {
            panic!("{:?}: a mismatched ratio was accepted", c.gemm());
        };
        assert!(e.to_string().contains("lrp ratio"), "{:?}: {e}", c.gemm());
    }
}

/// Two LRP ratios' input gradients through one GEMM over stacked weights
/// (`conv2d_backward_ratios`) against two GEMMs (`conv2d_backward_ratio`) summed on the
/// host, on every variant: planes of 4k pixels and not, a batch of 3, and stacked weights
/// split into chunks of 8 rows, one of them holding rows of both ratios.
#[test]
fn stacked_ratios_match_two_gemms() {
    let cases = [
        ([3, 5, 11, 9], geom(5, 8, (3, 5), (2, 1), (1, 2)), None),
        (
            [2, 6, 8, 8],
            geom(6, 12, (3, 3), (1, 1), (1, 1)),
            Some(8 * 8 * 9 * 4),
        ),
        ([1, 70, 6, 5], geom(70, 4, (1, 1), (1, 1), (0, 0)), None),
    ];
    for c in gemm_ctxs() {
        for (i, (dims, g, limit)) in cases.into_iter().enumerate() {
            let (oh, ow) = g.out_hw(dims[2], dims[3]).unwrap();
            let shape = [dims[0], g.cout, oh, ow];
            let len = shape.iter().product::<usize>();
            let up = |seed: u64| Tensor::upload(c, &rand_vec(len, seed), &shape).unwrap();
            let (r, za, z0, zb) = (up(81 + i as u64), up(82), up(83), up(84));
            let q1 = ops::LrpRatio::new(&r, &za, &z0, ops::LrpKeep::Positive, 0.01)
                .mixed(1.0, &zb, 0.25);
            let q2 =
                ops::LrpRatio::new(&r, &z0, &z0, ops::LrpKeep::All, 0.01).mixed(1.0, &za, -1.0);
            let taps = g.kernel.0 * g.kernel.1;
            let k = g.cin * taps;
            let (w1, w2) = (rand_vec(g.cout * k, 85), rand_vec(g.cout * k, 86));
            let (c1, c2) = (2.0f32, -1.0f32);
            let stacked: Vec<f32> = w1
                .iter()
                .map(|v| c1 * v)
                .chain(w2.iter().map(|v| c2 * v))
                .collect();
            let mut layout = WeightLayout::conv(taps).backward_only();
            if let Some(l) = limit {
                layout = layout.limit(l);
            }
            let ws =
                WeightBuffer::upload_with(c, "w", &stacked, 2 * g.cout, k, None, layout).unwrap();
            if limit.is_some() {
                assert_eq!(ws.chunks.len(), 3, "{:?}", c.gemm());
            }
            let g2 = Conv2dGeom {
                cout: 2 * g.cout,
                ..g
            };
            let hw = (dims[2], dims[3]);
            let mut rec = Recorder::new(c, "test");
            let dx = ops::conv2d_backward_ratios(&mut rec, (&q1, &q2), &ws, &g2, hw, None).unwrap();
            let wb1 = WeightBuffer::upload_conv(c, "w1", &w1, g.cout, taps, None).unwrap();
            let wb2 = WeightBuffer::upload_conv(c, "w2", &w2, g.cout, taps, None).unwrap();
            let t1 = ops::conv2d_backward_ratio(&mut rec, &q1, &wb1, &g, hw).unwrap();
            let t2 = ops::conv2d_backward_ratio(&mut rec, &q2, &wb2, &g, hw).unwrap();
            rec.submit().unwrap();
            let (t1, t2) = (t1.read(c).unwrap(), t2.read(c).unwrap());
            let want: Vec<f32> = t1.iter().zip(&t2).map(|(a, b)| c1 * a + c2 * b).collect();
            assert_eq!(dx.shape, dims.to_vec());
            assert_close(
                &dx.read(c).unwrap(),
                &want,
                1e-4,
                1e-4,
                &format!("stacked ratios {dims:?} {g:?} {:?}", c.gemm()),
            );
        }
        // packed into one texture, each ratio's channels must fill whole texels
        if c.gemm().reads_textures() {
            let g = geom(3, 6, (3, 3), (1, 1), (1, 1));
            let t = Tensor::upload(c, &rand_vec(6 * 25, 87), &[1, 6, 5, 5]).unwrap();
            let q = ops::LrpRatio::new(&t, &t, &t, ops::LrpKeep::All, 0.01);
            let ws =
                WeightBuffer::upload_conv(c, "w", &rand_vec(12 * 27, 88), 12, 9, None).unwrap();
            let g2 = Conv2dGeom { cout: 12, ..g };
            let mut rec = Recorder::new(c, "test");
            assert!(
                ops::conv2d_backward_ratios(&mut rec, (&q, &q), &ws, &g2, (5, 5), None).is_err()
            );
        }
    }
}

/// LRP's a ⊙ Wᵀq stored as products by the tiled input-gradient GEMM (one launch) is the
/// same bits as the GEMM and then the product pass, which the other launches (the
/// CPU-shaped kernels, weights in several chunks) keep: every variant, planes of a
/// multiple of 4 pixels and not, a batch (split-K on the tiled one), a strided conv.
#[test]
fn scaled_input_gradients_are_the_products_of_the_plain_ones() {
    for c in gemm_ctxs() {
        let cases = [
            // (input dims, geom, weight chunk limit)
            ([2, 16, 8, 8], geom(16, 12, (3, 3), (1, 1), (1, 1)), None),
            ([1, 40, 7, 9], geom(40, 8, (3, 3), (2, 2), (1, 1)), None),
            ([1, 3, 9, 8], geom(3, 16, (3, 3), (1, 1), (1, 1)), None), // the narrow twin
            (
                [1, 12, 6, 6],
                geom(12, 10, (3, 3), (1, 1), (1, 1)),
                Some(2 * 1728),
            ),
        ];
        for (i, (dims, g, limit)) in cases.into_iter().enumerate() {
            let (oh, ow) = g.out_hw(dims[2], dims[3]).unwrap();
            let shape = [dims[0], g.cout, oh, ow];
            let len = shape.iter().product::<usize>();
            let up = |n: usize, seed: u64, s: &[usize]| {
                Tensor::upload(c, &rand_vec(n, seed), s).unwrap()
            };
            let (r, z) = (up(len, 91 + i as u64, &shape), up(len, 92, &shape));
            let a = up(dims.iter().product(), 93, &dims);
            let q = ops::LrpRatio::new(&r, &z, &z, ops::LrpKeep::All, 0.01);
            let taps = g.kernel.0 * g.kernel.1;
            let mut layout = WeightLayout::conv(taps);
            if let Some(l) = limit {
                layout = layout.limit(l);
            }
            let w = rand_vec(g.cout * g.cin * taps, 94);
            let wb =
                WeightBuffer::upload_with(c, "w", &w, g.cout, g.cin * taps, None, layout).unwrap();
            if limit.is_some() {
                assert!(wb.chunks.len() > 1, "{:?}", c.gemm());
            }
            let hw = (dims[2], dims[3]);
            let mut rec = Recorder::new(c, "test");
            let fused =
                ops::conv2d_backward_ratio_scaled(&mut rec, &q, &wb, &g, hw, Some(&a)).unwrap();
            let t = ops::conv2d_backward_ratio(&mut rec, &q, &wb, &g, hw).unwrap();
            let apart = ops::lrp_combine(&mut rec, 1.0, &a, &t, 0.0, &a, &t, None).unwrap();
            rec.submit().unwrap();
            let bits = |t: &Tensor| bits(&t.read(c).unwrap());
            assert_eq!(bits(&fused), bits(&apart), "{dims:?} {g:?} {:?}", c.gemm());
            // and it is a product: a ⊙ t
            let (tv, av) = (t.read(c).unwrap(), a.read(c).unwrap());
            let want: Vec<f32> = tv.iter().zip(&av).map(|(t, a)| t * a).collect();
            assert_close(&fused.read(c).unwrap(), &want, 0.0, 0.0, "a ⊙ t");
            // a scale of another shape is refused
            let mut rec = Recorder::new(c, "test");
            assert!(
                ops::conv2d_backward_ratio_scaled(&mut rec, &q, &wb, &g, hw, Some(&r)).is_err()
            );
        }
    }
}
