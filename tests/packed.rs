//! Conv outputs stored packed four channels a texel (conv2d_cpu.wgsl's TEXELS,
//! `ops::conv2d_act` and `ops::conv2d_pool_act`) for the next conv to read without a
//! packing pass: the same values in the layout the packing pass makes, on odd, batched,
//! split, pooled and f16 shapes; refused where a launch cannot store them; run by forward
//! passes that keep nothing between two convs.

mod common;
use common::{assert_close, bits, gemm_ctxs, rand_vec};

use netlens::gpu::{Context, Kernel, Precision, Recorder, Tensor, WeightBuffer, WeightLayout};
use netlens::graph::Keep;
use netlens::ops::{self, Act, Conv2dGeom, Pool2d};

fn geom(cin: usize, cout: usize, k: usize, s: usize, p: usize) -> Conv2dGeom {
    Conv2dGeom {
        cin,
        cout,
        kernel: (k, k),
        stride: (s, s),
        padding: (p, p),
    }
}

/// One case: input dims, conv, weight binding limit (bytes), f16 weights.
struct Case {
    dims: [usize; 4],
    g: Conv2dGeom,
    limit: Option<u64>,
    half: bool,
}

fn cases() -> Vec<Case> {
    let case = |dims, g| Case {
        dims,
        g,
        limit: None,
        half: false,
    };
    vec![
        // 9 x 13 outputs of 3 items, 72 channels: a block of 64 and one of 8 (two lanes)
        case([3, 5, 9, 13], geom(5, 72, 3, 1, 1)),
        // 96 channels: the second block of 32 sums only its lanes' first four rows
        case([2, 7, 6, 10], geom(7, 96, 3, 1, 1)),
        // stride 2, no padding: 7 x 8
        case([2, 4, 15, 17], geom(4, 16, 3, 2, 0)),
        // weights split over bindings (chunks starting at multiples of 4 channels)
        Case {
            limit: Some(16 * 16 * 9 * 4),
            ..case([2, 16, 8, 12], geom(16, 48, 3, 1, 1))
        },
        Case {
            half: true,
            ..case([2, 16, 8, 12], geom(16, 48, 3, 1, 1))
        },
    ]
}

fn upload(c: &Context, g: &Conv2dGeom, limit: Option<u64>, half: bool, seed: u64) -> WeightBuffer {
    let taps = g.kernel.0 * g.kernel.1;
    let w = rand_vec(g.cout * g.cin * taps, seed);
    let b = rand_vec(g.cout, seed + 1);
    let mut layout = WeightLayout::conv(taps);
    if let Some(l) = limit {
        layout = layout.limit(l);
    }
    if half {
        layout = layout.precision(Precision::F16);
    }
    WeightBuffer::upload_with(c, "w", &w, g.cout, g.cin * taps, Some(&b), layout).unwrap()
}

/// A 1x1 conv of weight 1 from channel c to channel c: reads a packed tensor back out.
fn identity(c: &Context, channels: usize) -> (WeightBuffer, Conv2dGeom) {
    let mut w = vec![0.0; channels * channels];
    for k in 0..channels {
        w[k * channels + k] = 1.0;
    }
    let wb = WeightBuffer::upload_conv(c, "identity", &w, channels, 1, None).unwrap();
    (wb, geom(channels, channels, 1, 1, 0))
}

/// The texture-reading GEMM contexts (those that can pack outputs).
fn packing_ctxs() -> Vec<&'static Context> {
    gemm_ctxs()
        .into_iter()
        .filter(|c| c.gemm().reads_textures())
        .collect()
}

/// A conv's output stored packed holds its values: read back through an identity conv,
/// they are the unpacked output's; and the next conv gives the same bits reading it as
/// reading the unpacked output (packed by the packing pass). With and without a pool after
/// the conv (its argmax the same too).
#[test]
fn packed_outputs_hold_the_conv_outputs() {
    let ctxs = packing_ctxs();
    assert!(!ctxs.is_empty(), "a texture-reading GEMM variant");
    for (k, case) in cases().iter().enumerate() {
        let (dims, g) = (case.dims, &case.g);
        let x = rand_vec(dims.iter().product(), 20 + k as u64);
        for &c in &ctxs {
            let what = format!("{dims:?} {g:?} {:?}", c.gemm());
            let wb = upload(c, g, case.limit, case.half, 30);
            if case.limit.is_some() {
                assert!(
                    wb.chunks.len() > 1,
                    "{what}: the limit should split the weights"
                );
            }
            let next_g = geom(g.cout, 12, 3, 1, 1);
            let next = upload(c, &next_g, None, false, 40);
            let (id, id_g) = identity(c, g.cout);
            let xt = Act::Tensor(Tensor::upload(c, &x, &dims).unwrap());
            let pool = Pool2d::square(2, 2);
            let mut rec = Recorder::new(c, "packed");
            let packed = ops::conv2d_act(&mut rec, &xt, &wb, g, true, true).unwrap();
            assert!(matches!(packed, Act::Packed(_)), "{what}");
            let plain = ops::conv2d_act(&mut rec, &xt, &wb, g, true, false).unwrap();
            let (pooled, arg) =
                ops::conv2d_pool_act(&mut rec, &xt, &wb, g, true, &pool, true, true).unwrap();
            let (pooled_plain, arg_plain) =
                ops::conv2d_pool_act(&mut rec, &xt, &wb, g, true, &pool, true, false).unwrap();
            let mut outs = Vec::new();
            for (a, b) in [(&packed, &plain), (&pooled, &pooled_plain)] {
                assert_eq!(a.shape(), b.shape(), "{what}");
                let back = ops::conv2d_act(&mut rec, a, &id, &id_g, false, false).unwrap();
                let y_a = ops::conv2d_act(&mut rec, a, &next, &next_g, false, false).unwrap();
                let y_b = ops::conv2d_act(&mut rec, b, &next, &next_g, false, false).unwrap();
                outs.push([back, b.clone(), y_a, y_b]);
            }
            rec.submit().unwrap();
            let read = |a: &Act| match a {
                Act::Tensor(t) => t.read(c).unwrap(),
                Act::Packed(_) => panic!("{what}: a packed result"),
            };
            for (o, name) in outs.iter().zip(["conv", "conv + pool"]) {
                let back = read(&o[0]);
                assert!(back.iter().any(|v| *v > 0.0), "{what} {name}: all zero");
                assert_close(&back, &read(&o[1]), 0.0, 1e-6, &format!("{what} {name}"));
                let (y_a, y_b) = (read(&o[2]), read(&o[3]));
                assert!(bits(&y_a) == bits(&y_b), "{what} {name}: next conv's bits");
            }
            let read_u32 = |t: &Option<Tensor>| t.as_ref().unwrap().read_u32(c).unwrap();
            assert_eq!(read_u32(&arg), read_u32(&arg_plain), "{what}: argmax");
        }
    }
}

/// Launches that cannot store texels are refused before anything runs, with an error
/// that says to run the conv unpacked; so is a packed input on GEMMs that read buffers.
#[test]
fn outputs_it_cannot_pack_are_refused() {
    for c in gemm_ctxs() {
        let tex = c.gemm().reads_textures();
        let x = Act::Tensor(Tensor::upload(c, &rand_vec(2 * 4 * 36, 3), &[2, 4, 6, 6]).unwrap());
        // 64 channels packs where the GEMM reads textures; 70 (not whole texels) and 8
        // (the narrow kernel) never do
        for (cout, fits) in [(64, tex), (70, false), (8, false)] {
            let g = geom(4, cout, 3, 1, 1);
            let wb = upload(c, &g, None, false, 5);
            let what = format!("{:?} {cout} channels", c.gemm());
            assert_eq!(
                ops::conv2d_packs_output(c, &wb, &g, 2, (6, 6)),
                fits,
                "{what}"
            );
            let mut rec = Recorder::new(c, "refused");
            let r = ops::conv2d_act(&mut rec, &x, &wb, &g, true, true);
            match r {
                Ok(_) => assert!(fits, "{what}: packed"),
                Err(e) => {
                    assert!(!fits, "{what}: {e}");
                    assert!(e.to_string().contains("unpacked"), "{what}: {e}");
                }
            }
            let pool = Pool2d::square(2, 2);
            let r = ops::conv2d_pool_act(&mut rec, &x, &wb, &g, true, &pool, false, true);
            assert_eq!(r.is_ok(), fits, "{what}: pooled");
        }
        // a 1x1 conv of 1x1 images at batch 2 runs the matrix-vector kernel
        let g = geom(4, 64, 1, 1, 0);
        let wb = upload(c, &g, None, false, 6);
        assert!(!ops::conv2d_packs_output(c, &wb, &g, 2, (1, 1)));
    }
    // a packed input on the GEMMs that read tensors
    let tex = packing_ctxs();
    let buf: Vec<_> = gemm_ctxs()
        .into_iter()
        .filter(|c| !c.gemm().reads_textures())
        .collect();
    if let (Some(&t), Some(&b)) = (tex.first(), buf.first()) {
        let g = geom(4, 64, 3, 1, 1);
        let wt = upload(t, &g, None, false, 8);
        let x = Act::Tensor(Tensor::upload(t, &rand_vec(4 * 36, 9), &[1, 4, 6, 6]).unwrap());
        let mut rec = Recorder::new(t, "packed");
        let packed = ops::conv2d_act(&mut rec, &x, &wt, &g, true, true).unwrap();
        rec.submit().unwrap();
        let g2 = geom(64, 16, 3, 1, 1);
        let wb = upload(b, &g2, None, false, 10);
        let mut rec = Recorder::new(b, "refused");
        assert!(ops::conv2d_act(&mut rec, &packed, &wb, &g2, true, false).is_err());
    }
}

/// The demo model: a forward that keeps nothing packs only its input (every conv stores
/// its output, or its pool's, packed for the next conv; the last conv block feeds the
/// classifier, unpacked); one that keeps a conv block's output packs that output again;
/// the logits and the kept output are the same bits as a tape that keeps every layer.
#[test]
fn forward_passes_pack_conv_outputs_for_the_next_conv() {
    let net = common::demo();
    // three items: the linear layers run their matrix-vector kernel, not a conv launch
    let x = common::samples(&net, &["star", "ring", "cross"]);
    let xt = Tensor::upload(net.ctx(), &x.data, &x.shape).unwrap();
    let model = net.model();
    let convs: Vec<usize> = (0..model.layers.len())
        .filter(|&i| {
            matches!(
                model.layers[i].kind,
                netlens::model::LayerKind::Conv2d { .. }
            )
        })
        .collect();
    assert_eq!(convs.len(), 6);
    let tex = net.ctx().gemm().reads_textures();
    // the ReLU after the third conv (read by the fourth)
    let kept = convs[2] + 1;
    let all = net.forward_gpu(&xt, &Keep::All).unwrap();
    let read = |t: &Tensor| bits(&t.read(net.ctx()).unwrap());
    for (keep, packs) in [(Keep::Nothing, 1), (Keep::Layers(vec![kept]), 2)] {
        let mut rec = Recorder::new(net.ctx(), "forward");
        let tape = net.record_forward(&mut rec, &xt, &keep, None).unwrap();
        let kernels = rec.kernels();
        rec.submit().unwrap();
        let n = kernels
            .iter()
            .filter(|k| matches!(k, Kernel::PackTexture | Kernel::PackTexture4))
            .count();
        let convs_run = kernels
            .iter()
            .filter(|k| format!("{k:?}").starts_with("Conv2dForward"))
            .count();
        assert_eq!(convs_run, 6, "{keep:?}: {kernels:?}");
        if tex {
            // and one for each of the three linear layers' inputs
            assert_eq!(n, packs + 3, "{keep:?}: packing passes in {kernels:?}");
        } else {
            assert_eq!(n, 0, "{keep:?}");
        }
        assert_eq!(read(&tape.logits), read(&all.logits), "{keep:?}: logits");
        if let Keep::Layers(v) = &keep {
            let k = tape.outputs[v[0]].as_ref().expect("the kept layer");
            assert_eq!(read(k), read(all.outputs[v[0]].as_ref().unwrap()), "kept");
        }
    }
}

/// A conv's input gradient made from the max-pool over its ReLU (`conv2d_backward_pooled`:
/// the pool + ReLU gradient made as the GEMM packs its input, never stored) is the same
/// bits as `max_pool2d_relu_backward` then `conv2d_backward_input`, for every ReLU rule;
/// shapes it cannot pack are refused.
#[test]
fn pooled_gradients_pack_into_the_conv_backward() {
    use ops::ReluRule;
    let pool = Pool2d::square(2, 2);
    // (conv input dims, conv, weight limit, f16): 72 channels (a block of 64 and one of 8)
    // on 6 x 12 outputs; 48 split over bindings; f16 weights
    let cases = [
        ([2, 5, 6, 12], geom(5, 72, 3, 1, 1), None, false),
        (
            [1, 16, 8, 8],
            geom(16, 48, 3, 1, 1),
            Some(16 * 16 * 9 * 4),
            false,
        ),
        ([2, 16, 8, 8], geom(16, 48, 3, 1, 1), None, true),
    ];
    for c in packing_ctxs() {
        for (k, (dims, g, limit, half)) in cases.iter().enumerate() {
            let what = format!("{dims:?} {g:?} {:?}", c.gemm());
            let wb = upload(c, g, *limit, *half, 50);
            let (oh, ow) = g.out_hw(dims[2], dims[3]).unwrap();
            let conv_out = [dims[0], g.cout, oh, ow];
            let z = Tensor::upload(
                c,
                &rand_vec(conv_out.iter().product(), 60 + k as u64),
                &conv_out,
            )
            .unwrap();
            let mut rec = Recorder::new(c, "pooled");
            let y = ops::relu(&mut rec, &z).unwrap();
            let (pooled, arg) = ops::max_pool2d(&mut rec, &y, &pool).unwrap();
            rec.submit().unwrap();
            let dy = Tensor::upload(c, &rand_vec(pooled.len(), 70), &pooled.shape).unwrap();
            for rule in [ReluRule::Gradient, ReluRule::Guided, ReluRule::Deconv] {
                let pg = ops::PoolGrad {
                    dy: &dy,
                    argmax: &arg,
                    pooled: &pooled,
                    pool: &pool,
                    rule,
                };
                assert!(pg.packs(&conv_out), "{what}");
                let hw = (dims[2], dims[3]);
                let mut rec = Recorder::new(c, "pooled");
                let fused = ops::conv2d_backward_pooled(&mut rec, &pg, &wb, g, hw).unwrap();
                let kernels = rec.kernels();
                let gz = ops::max_pool2d_relu_backward(
                    &mut rec, &dy, &arg, &pooled, &pool, &conv_out, rule,
                )
                .unwrap();
                let two = ops::conv2d_backward_input(&mut rec, &gz, &wb, g, hw).unwrap();
                rec.submit().unwrap();
                assert!(
                    kernels.contains(&Kernel::PackPoolGradTexture4),
                    "{what}: {kernels:?}"
                );
                let (a, b) = (fused.read(c).unwrap(), two.read(c).unwrap());
                assert!(a.iter().any(|v| *v != 0.0), "{what} {rule:?}: all zero");
                assert!(bits(&a) == bits(&b), "{what} {rule:?}: not the same bits");
            }
        }
        // rows of 6 pixels: not two whole windows a quad
        let g = geom(4, 16, 3, 1, 1);
        let wb = upload(c, &g, None, false, 80);
        let dy = Tensor::upload(c, &rand_vec(16 * 9, 81), &[1, 16, 3, 3]).unwrap();
        let arg = Tensor::upload_u32(c, &[0; 16 * 9], &[1, 16, 3, 3]).unwrap();
        let pg = ops::PoolGrad {
            dy: &dy,
            argmax: &arg,
            pooled: &dy,
            pool: &pool,
            rule: ReluRule::Gradient,
        };
        assert!(!pg.packs(&[1, 16, 6, 6]));
        let mut rec = Recorder::new(c, "refused");
        assert!(ops::conv2d_backward_pooled(&mut rec, &pg, &wb, &g, (6, 6)).is_err());
        // a gradient of the wrong rank: an error, not a panic
        let flat = dy.reshape(&[16 * 9]).unwrap();
        let pg = ops::PoolGrad { dy: &flat, ..pg };
        assert!(ops::conv2d_backward_pooled(&mut rec, &pg, &wb, &g, (8, 8)).is_err());
    }
}

/// On the demo model a gradient walk makes each conv block's output gradient from the
/// pool after it as the conv's GEMM packs it (no pool + ReLU backward pass), and gives
/// the same bits as a walk that stores it (each such conv's output gradient wanted), for
/// every ReLU rule.
#[test]
fn walks_pack_pool_gradients_for_the_convs() {
    use ops::ReluRule;
    let net = common::demo();
    if !net.ctx().gemm().reads_textures() {
        return;
    }
    let x = common::samples(&net, &["star", "ring"]);
    let xt = Tensor::upload(net.ctx(), &x.data, &x.shape).unwrap();
    let model = net.model();
    let last = model.layers.len() - 1;
    let pools = common::max_pool_layers(model);
    let tape = net.forward_gpu(&xt, &Keep::Gradient(vec![])).unwrap();
    let seed = Tensor::upload(net.ctx(), &rand_vec(2 * 8, 4), &[2, 8]).unwrap();
    let read = |t: &Tensor| bits(&t.read(net.ctx()).unwrap());
    for rule in [ReluRule::Gradient, ReluRule::Guided, ReluRule::Deconv] {
        let walk = |want: &[usize]| {
            let mut rec = Recorder::new(net.ctx(), "walk");
            let g = net
                .record_backward(&mut rec, &tape, last, &seed, rule, want)
                .unwrap();
            let kernels = rec.kernels();
            rec.submit().unwrap();
            let count = |k: Kernel| kernels.iter().filter(|&&x| x == k).count();
            let counts = (
                count(Kernel::PackPoolGradTexture4),
                count(Kernel::MaxPool2dReluBackwardPairs)
                    + count(Kernel::MaxPool2dReluBackwardTiling),
            );
            (read(&g.input), counts)
        };
        // every pool's conv (two layers below it) packs its gradient
        let (fused, n) = walk(&[]);
        assert_eq!(n, (pools.len(), 0), "{rule:?}");
        let convs: Vec<usize> = pools.iter().map(|p| p - 2).collect();
        let (stored, m) = walk(&convs);
        assert_eq!(m, (0, pools.len()), "{rule:?}");
        assert!(fused == stored, "{rule:?}: input gradients");
    }
}
