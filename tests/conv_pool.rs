//! A conv layer and the 2 x 2 max-pool after it in one pass (`ops::conv2d_pool`, the
//! CPU-shaped GEMMs): the same bits as the conv then the pool, and close to the plain-Rust
//! reference, on odd, padded, strided, batched, split and f16 shapes; forward passes that
//! keep no conv output run it, and walked tapes do not.

mod common;
use common::{assert_close, bits, gemm_ctxs, rand_vec};

use std::sync::Arc;

use netlens::gpu::{Context, Gemm, Precision, Recorder, Tensor, WeightBuffer, WeightLayout};
use netlens::graph::{Keep, Net};
use netlens::ops::{self, Conv2dGeom, Pool2d, ReluRule};
use netlens::reference as cpu;

fn geom(cin: usize, cout: usize, s: usize, p: usize) -> Conv2dGeom {
    Conv2dGeom {
        cin,
        cout,
        kernel: (3, 3),
        stride: (s, s),
        padding: (p, p),
    }
}

/// One case: input dims, conv, ReLU, bias, weight binding limit (bytes), f16 weights.
struct Case {
    dims: [usize; 4],
    g: Conv2dGeom,
    relu: bool,
    bias: bool,
    limit: Option<u64>,
    half: bool,
}

fn cases() -> Vec<Case> {
    let case = |dims, g, relu, bias| Case {
        dims,
        g,
        relu,
        bias,
        limit: None,
        half: false,
    };
    vec![
        // 9 x 13 output: a last row and column the pool drops, 6 windows a row (a tile of
        // 2 beside a whole one), 70 channels (a block of 64 and one of 6)
        case([3, 5, 9, 13], geom(5, 70, 1, 1), true, true),
        // 16 x 16: 8 windows a row, each channel's four stored as one vec4; 32 channels
        case([2, 3, 16, 16], geom(3, 32, 1, 1), true, true),
        // no padding, no ReLU, no bias: 8 x 18, 9 windows a row
        case([1, 8, 10, 20], geom(8, 72, 1, 0), false, false),
        // stride 2: 8 x 9, 4 windows a row whose tile holds a dropped column
        case([2, 4, 15, 17], geom(4, 16, 2, 1), true, true),
        // a 2 x 2 output: one window
        case([4, 6, 2, 2], geom(6, 9, 1, 1), true, true),
        // weights split over bindings (chunks at channel offsets), and f16 weights
        Case {
            limit: Some(4096),
            ..case([2, 16, 8, 12], geom(16, 40, 1, 1), true, true)
        },
        Case {
            half: true,
            ..case([2, 16, 8, 12], geom(16, 40, 1, 1), true, true)
        },
    ]
}

fn upload(c: &Context, case: &Case, w: &[f32], b: Option<&[f32]>) -> WeightBuffer {
    let g = &case.g;
    let mut layout = WeightLayout::conv(9);
    if let Some(l) = case.limit {
        layout = layout.limit(l);
    }
    if case.half {
        layout = layout.precision(Precision::F16);
    }
    let wb = WeightBuffer::upload_with(c, "w", w, g.cout, w.len() / g.cout, b, layout).unwrap();
    if case.limit.is_some() {
        assert!(wb.chunks.len() > 1, "the limit should split the weights");
    }
    wb
}

#[test]
fn conv_pool_matches_conv_then_pool() {
    let ctxs: Vec<_> = gemm_ctxs()
        .into_iter()
        .filter(|c| !c.gemm().tiled())
        .collect();
    assert!(!ctxs.is_empty(), "a CPU-shaped variant");
    let pool = Pool2d::square(2, 2);
    for (k, case) in cases().iter().enumerate() {
        let (dims, g) = (case.dims, &case.g);
        let mut x = rand_vec(dims.iter().product(), 11 + k as u64);
        // a NaN in the case without a ReLU (which would clear it): the pool keeps it
        // where the two passes do
        if !case.relu {
            x[40] = f32::NAN;
        }
        let w = rand_vec(g.cout * g.cin * 9, 12);
        let b = rand_vec(g.cout, 13);
        let b = case.bias.then_some(b.as_slice());
        for &c in &ctxs {
            let what = format!("{dims:?} {g:?} {:?}", c.gemm());
            let wb = upload(c, case, &w, b);
            let xt = Tensor::upload(c, &x, &dims).unwrap();
            let mut rec = Recorder::new(c, "conv pool");
            let r = ops::conv2d_pool(&mut rec, &xt, &wb, g, case.relu, &pool, true).unwrap();
            let (fused, arg) = (r.0, r.1.expect("an argmax"));
            let (alone, none) =
                ops::conv2d_pool(&mut rec, &xt, &wb, g, case.relu, &pool, false).unwrap();
            assert!(none.is_none());
            let y = ops::conv2d(&mut rec, &xt, &wb, g, case.relu).unwrap();
            let (two, two_arg) = ops::max_pool2d(&mut rec, &y, &pool).unwrap();
            rec.submit().unwrap();
            assert_eq!(fused.shape, two.shape, "{what}");
            let read_u32 = |t: &Tensor| t.read_u32(c).unwrap();
            assert_eq!(read_u32(&arg), read_u32(&two_arg), "{what}: argmax");
            let alone = alone.read(c).unwrap();
            let (fused, two) = (fused.read(c).unwrap(), two.read(c).unwrap());
            assert!(bits(&fused) == bits(&two), "{what}: not the same bits");
            assert!(
                bits(&alone) == bits(&two),
                "{what}: not the same bits without argmax"
            );
            if !case.relu {
                assert!(fused.iter().any(|v| v.is_nan()), "{what}: the NaN is lost");
            }
            if case.half {
                continue; // the reference has f32 weights
            }
            let (yc, oh, ow) = cpu::conv2d(&x, dims, &w, b, g, case.relu);
            let (want, _, ph, pw) = cpu::max_pool2d(&yc, [dims[0], g.cout, oh, ow], &pool);
            assert_eq!(fused.len(), dims[0] * g.cout * ph * pw, "{what}");
            let finite = |v: &[f32]| -> Vec<f32> {
                v.iter()
                    .map(|v| if v.is_nan() { 0.0 } else { *v })
                    .collect()
            };
            assert_close(&finite(&fused), &finite(&want), 1e-4, 1e-4, &what);
        }
    }
}

#[test]
fn pools_it_cannot_run_are_refused() {
    let square = Pool2d::square(2, 2);
    let ceil = Pool2d {
        ceil_mode: true,
        ..square
    };
    for c in gemm_ctxs() {
        let cpu = !c.gemm().tiled();
        assert_eq!(ops::conv2d_pool_fits(c, &square, 9, 13), cpu);
        assert_eq!(ops::conv2d_pool_fits(c, &ceil, 8, 12), cpu);
        assert!(
            !ops::conv2d_pool_fits(c, &ceil, 9, 12),
            "a ceil-mode partial window"
        );
        assert!(!ops::conv2d_pool_fits(c, &Pool2d::square(3, 2), 9, 9));
        assert!(!ops::conv2d_pool_fits(c, &Pool2d::square(2, 1), 9, 9));
        let padded = Pool2d {
            padding: (1, 1),
            ..square
        };
        assert!(!ops::conv2d_pool_fits(c, &padded, 9, 9));
        assert!(!ops::conv2d_pool_fits(c, &square, 1, 9), "one row");
        let g = geom(3, 8, 1, 1);
        let wb = WeightBuffer::upload_conv(c, "w", &rand_vec(8 * 27, 1), 8, 9, None).unwrap();
        let xt = Tensor::upload(c, &rand_vec(3 * 25, 2), &[1, 3, 5, 5]).unwrap();
        let mut rec = Recorder::new(c, "refused");
        let r = ops::conv2d_pool(&mut rec, &xt, &wb, &g, true, &Pool2d::square(3, 2), false);
        assert!(r.is_err(), "{:?}: a 3x3 pool", c.gemm());
        if !cpu {
            assert!(ops::conv2d_pool(&mut rec, &xt, &wb, &g, true, &square, true).is_err());
        }
    }
}

/// On the demo model: a forward that keeps nothing runs each conv block's pool inside its
/// conv (no argmax) and gives the same logits, bit for bit, as the tape that keeps every
/// layer; a kept pool output is the same too. A gradient tape runs them with the argmax
/// and keeps no ReLU output before a pool, and its walks give the same input gradients,
/// for each ReLU rule; a ReLU named in `Keep::Gradient` stays unfused. The tiled GEMMs
/// never fuse.
#[test]
fn forward_passes_fuse_the_pools_and_keep_their_bits() {
    let path = format!(
        "{}/models/shapes-vgg.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let model = netlens::model::load(std::path::Path::new(&path)).unwrap();
    let pools = common::max_pool_layers(&model);
    assert_eq!(pools.len(), 5);
    let last = model.layers.len() - 1;
    for g in [Gemm::CpuTex, Gemm::CpuFetch, Gemm::Tiled] {
        let ctx = Context::from_env().unwrap().with_gemm(g);
        if ctx.gemm() != g {
            continue;
        }
        let fused = !g.tiled();
        let net = Net::new(Arc::new(ctx), model.clone()).unwrap();
        let x = common::samples(&net, &["star", "ring", "cross"]);
        let xt = Tensor::upload(net.ctx(), &x.data, &x.shape).unwrap();
        let all = net.forward_gpu(&xt, &Keep::All).unwrap();
        let nothing = net.forward_gpu(&xt, &Keep::Nothing).unwrap();
        let some = net.forward_gpu(&xt, &Keep::Layers(vec![pools[1]])).unwrap();
        let read = |t: &Tensor| bits(&t.read(net.ctx()).unwrap());
        assert_eq!(read(&nothing.logits), read(&all.logits), "{g:?} logits");
        let kept = some.outputs[pools[1]].as_ref().expect("the kept pool");
        let whole = all.outputs[pools[1]].as_ref().unwrap();
        assert_eq!(read(kept), read(whole), "{g:?} kept pool");
        for &p in &pools {
            assert!(all.argmax[p].is_some(), "{g:?}: the tape's pool {p}");
            assert_eq!(nothing.argmax[p].is_none(), fused, "{g:?}: pool {p}");
        }
        // walks: the ReLU before the second pool wanted (unfused) or not
        let seed = Tensor::upload(net.ctx(), &rand_vec(3 * 8, 4), &[3, 8]).unwrap();
        let relu = pools[1] - 1;
        for want in [vec![], vec![relu]] {
            let grad = net.forward_gpu(&xt, &Keep::Gradient(want.clone())).unwrap();
            for &p in &pools {
                assert!(
                    grad.argmax[p].is_some(),
                    "{g:?}: the gradient tape's pool {p}"
                );
                let unfused = !fused || want.contains(&(p - 1));
                assert_eq!(
                    grad.outputs[p - 1].is_some(),
                    unfused,
                    "{g:?} {want:?}: {p}"
                );
            }
            for rule in [ReluRule::Gradient, ReluRule::Guided, ReluRule::Deconv] {
                let walk = |tape| {
                    let mut rec = Recorder::new(net.ctx(), "walk");
                    let g = net.record_backward(&mut rec, tape, last, &seed, rule, &want);
                    let g = g.unwrap();
                    rec.submit().unwrap();
                    let layers: Vec<_> = g.layers.iter().map(|(i, t)| (*i, read(t))).collect();
                    (read(&g.input), layers)
                };
                assert!(
                    walk(&grad) == walk(&all),
                    "{g:?} {want:?} {rule:?}: gradients"
                );
            }
        }
    }
}

/// A NaN in any corner of a window is that window's maximum, as in `max_pool2d` (a 1x1
/// conv of weight 1 passes each input through; quantised values tie).
#[test]
fn nans_win_from_any_corner() {
    let g = Conv2dGeom {
        cin: 1,
        cout: 1,
        kernel: (1, 1),
        stride: (1, 1),
        padding: (0, 0),
    };
    let dims = [1, 1, 4, 16];
    let mut x: Vec<f32> = rand_vec(64, 5).iter().map(|v| (v * 2.0).round()).collect();
    // windows 0 .. 3 of the first pooled row: top right, bottom left, bottom right, top left
    for (y, xx) in [(0, 1), (1, 2), (1, 5), (0, 6)] {
        x[y * 16 + xx] = f32::NAN;
    }
    for c in gemm_ctxs().into_iter().filter(|c| !c.gemm().tiled()) {
        let wb = WeightBuffer::upload_conv(c, "w", &[1.0], 1, 1, None).unwrap();
        let xt = Tensor::upload(c, &x, &dims).unwrap();
        let pool = Pool2d::square(2, 2);
        let mut rec = Recorder::new(c, "nan corners");
        let (fused, arg) = ops::conv2d_pool(&mut rec, &xt, &wb, &g, false, &pool, true).unwrap();
        let y = ops::conv2d(&mut rec, &xt, &wb, &g, false).unwrap();
        let (two, two_arg) = ops::max_pool2d(&mut rec, &y, &pool).unwrap();
        rec.submit().unwrap();
        let arg = arg.unwrap().read_u32(c).unwrap();
        assert_eq!(arg, two_arg.read_u32(c).unwrap(), "{:?}: argmax", c.gemm());
        let (fused, two) = (fused.read(c).unwrap(), two.read(c).unwrap());
        assert!(bits(&fused) == bits(&two), "{:?}", c.gemm());
        let nan: Vec<bool> = fused.iter().map(|v| v.is_nan()).collect();
        let want: Vec<bool> = (0..16).map(|i| i < 4).collect();
        assert_eq!(nan, want, "{:?}: NaN windows", c.gemm());
    }
}
