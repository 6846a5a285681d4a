//! Every forward kernel against the plain-Rust reference, on odd, padded, batched and
//! split shapes.

mod common;
use common::{assert_close, ctx, gemm_ctxs, rand_vec};

use netlens::gpu::{Gemm, Recorder, Tensor, WeightBuffer, WeightLayout};
use netlens::ops::{self, Conv2dGeom, Pool2d};
use netlens::reference as cpu;

fn run_conv(dims: [usize; 4], g: Conv2dGeom, relu: bool, bias: bool, limit: Option<u64>) {
    for c in gemm_ctxs() {
        let x = rand_vec(dims.iter().product(), 1);
        let wlen = g.cout * g.cin * g.kernel.0 * g.kernel.1;
        let w = rand_vec(wlen, 2);
        let b = rand_vec(g.cout, 3);
        let b = bias.then_some(b.as_slice());
        let wb = match limit {
            Some(l) => {
                let layout = WeightLayout::conv(g.kernel.0 * g.kernel.1).limit(l);
                WeightBuffer::upload_with(c, "w", &w, g.cout, wlen / g.cout, b, layout).unwrap()
            }
            None => {
                WeightBuffer::upload_conv(c, "w", &w, g.cout, g.kernel.0 * g.kernel.1, b).unwrap()
            }
        };
        if let Some(l) = limit {
            assert!(wb.chunks.len() > 1, "limit {l} should split the weight");
        }
        let xt = Tensor::upload(c, &x, &dims).unwrap();
        let mut rec = Recorder::new(c, "test conv");
        let y = ops::conv2d(&mut rec, &xt, &wb, &g, relu).unwrap();
        rec.submit().unwrap();
        let got = y.read(c).unwrap();
        let (want, oh, ow) = cpu::conv2d(&x, dims, &w, b, &g, relu);
        assert_eq!(y.shape, vec![dims[0], g.cout, oh, ow]);
        assert_close(
            &got,
            &want,
            1e-4,
            1e-4,
            &format!("conv {dims:?} {g:?} {:?}", c.gemm()),
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
fn conv2d_odd_padded_batched() {
    run_conv(
        [3, 5, 11, 9],
        geom(5, 7, (3, 5), (2, 1), (1, 2)),
        false,
        true,
        None,
    );
    run_conv(
        [1, 3, 13, 13],
        geom(3, 8, (3, 3), (1, 1), (1, 1)),
        true,
        true,
        None,
    );
    run_conv(
        [2, 4, 7, 10],
        geom(4, 70, (1, 1), (1, 1), (0, 0)),
        false,
        false,
        None,
    );
    run_conv(
        [2, 17, 20, 19],
        geom(17, 65, (3, 3), (1, 1), (1, 1)),
        true,
        true,
        None,
    );
    run_conv(
        [1, 2, 5, 5],
        geom(2, 3, (5, 5), (3, 3), (2, 2)),
        false,
        true,
        None,
    );
}

/// Channel blocks of at most 32 (the CPU-shaped kernels sum only half of such a block):
/// 32 channels, 96 (a block of 64 and one of 32) and 40 (one block of 40, summed whole).
#[test]
fn conv2d_half_channel_blocks() {
    for (cout, relu) in [(32, true), (96, false), (40, true)] {
        run_conv(
            [2, 6, 6, 5],
            geom(6, cout, (3, 3), (1, 1), (1, 1)),
            relu,
            true,
            None,
        );
    }
}

#[test]
fn conv2d_split_weights() {
    // 9 output channels of 3*3*3*4 bytes (144 packed for the CPU kernels, which also
    // keep a transposed copy): 600 bytes split them into 5 + 4 or 4 + 4 + 1.
    run_conv(
        [2, 3, 9, 8],
        geom(3, 9, (3, 3), (1, 1), (1, 1)),
        true,
        true,
        Some(600),
    );
    run_conv(
        [1, 4, 6, 6],
        geom(4, 70, (3, 3), (2, 2), (1, 1)),
        false,
        true,
        Some(144 * 10),
    );
}

/// Weights of more than one texture row (18432 vec4 groups, rows of 16384 on most
/// adapters) for the texture variant, and of one odd partial row.
#[test]
fn conv_weights_over_one_texture_row() {
    run_conv(
        [2, 128, 5, 6],
        geom(128, 64, (3, 3), (1, 1), (1, 1)),
        true,
        true,
        None,
    );
    run_conv(
        [1, 7, 5, 5],
        geom(7, 3, (3, 3), (1, 1), (0, 0)),
        false,
        true,
        None,
    );
}

/// The tiled kernels' split-K plan: every split non-empty, a multiple of the 8-step slice,
/// covering the reduction once; no split where the tiles fill the device; the scratch bound
/// holds.
#[test]
fn tiled_split_plans() {
    for (m, n, k) in [
        (42, 40, 648),
        (1, 4096, 25088),
        (196, 512, 4608),
        (60, 64, 1152),
    ] {
        let (splits, chunk) = ops::tiled_split(m, n, k, 64 << 20);
        assert!(splits > 1, "{m}x{n}x{k} should split");
        assert_eq!(chunk % 8, 0);
        assert!(
            (splits - 1) * chunk < k && splits * chunk >= k,
            "{m}x{n}x{k}"
        );
    }
    // one item of VGG16's conv1_2 fills the device; of conv5 (14x14), 16 splits of 288;
    // of conv4 (28x28), 4
    assert_eq!(ops::tiled_split(224 * 224, 64, 576, 64 << 20).0, 1);
    assert_eq!(ops::tiled_split(196, 512, 4608, 64 << 20), (16, 288));
    assert_eq!(ops::tiled_split(784, 512, 4608, 64 << 20).0, 4);
    // short reductions stay whole; the scratch bound caps splits
    assert_eq!(ops::tiled_split(42, 40, 200, 64 << 20).0, 1);
    assert_eq!(ops::tiled_split(196, 512, 4608, 3 * 196 * 512 * 4).0, 3);
    assert_eq!(ops::tiled_split(1, 1, 1, 0), (1, 8));
}

/// Split-K on the tiled kernels: a last split shorter than the others, bias and ReLU applied
/// once after the sum, weight chunks, and accumulation into an existing tensor.
#[test]
fn tiled_split_k_forward() {
    let (splits, chunk) = ops::tiled_split(42, 40, 648, 64 << 20);
    assert!(splits > 1 && 648 % chunk != 0, "{splits} x {chunk}");
    run_conv(
        [1, 72, 7, 6],
        geom(72, 40, (3, 3), (1, 1), (1, 1)),
        true,
        true,
        None,
    );
    run_conv(
        [1, 72, 7, 6],
        geom(72, 40, (3, 3), (1, 1), (1, 1)),
        true,
        true,
        Some(648 * 4 * 16),
    );
    let c = gemm_ctxs()[0];
    assert_eq!(c.gemm(), Gemm::Tiled);
    let g = geom(72, 40, (3, 3), (2, 2), (1, 1));
    let dims = [2, 72, 9, 8];
    let x = rand_vec(dims.iter().product(), 31);
    let w = rand_vec(40 * 648, 32);
    let b = rand_vec(40, 33);
    let wb = WeightBuffer::upload_conv(c, "w", &w, 40, 9, Some(&b)).unwrap();
    let (want, oh, ow) = cpu::conv2d(&x, dims, &w, Some(&b), &g, false);
    let base = rand_vec(want.len(), 34);
    let xt = Tensor::upload(c, &x, &dims).unwrap();
    let acc = Tensor::upload(c, &base, &[2, 40, oh, ow]).unwrap();
    let mut rec = Recorder::new(c, "test conv acc");
    let y = ops::conv2d_acc(&mut rec, &xt, &wb, &g, false, Some(&acc)).unwrap();
    rec.submit().unwrap();
    let want: Vec<f32> = want.iter().zip(&base).map(|(a, b)| a + b).collect();
    assert_close(&y.read(c).unwrap(), &want, 1e-4, 1e-4, "split-K accumulate");
}

fn run_linear(n: usize, k: usize, out: usize, relu: bool, limit: Option<u64>) {
    for c in gemm_ctxs() {
        let x = rand_vec(n * k, 4);
        let w = rand_vec(out * k, 5);
        let b = rand_vec(out, 6);
        let wb = match limit {
            Some(l) => {
                let layout = WeightLayout::linear().limit(l);
                WeightBuffer::upload_with(c, "fc", &w, out, k, Some(&b), layout).unwrap()
            }
            None => WeightBuffer::upload(c, "fc", &w, out, k, Some(&b)).unwrap(),
        };
        let xt = Tensor::upload(c, &x, &[n, k]).unwrap();
        let mut rec = Recorder::new(c, "test linear");
        let y = ops::linear(&mut rec, &xt, &wb, relu).unwrap();
        rec.submit().unwrap();
        assert_eq!(y.shape, vec![n, out]);
        let want = cpu::linear(&x, n, &w, Some(&b), out, relu);
        assert_close(
            &y.read(c).unwrap(),
            &want,
            1e-4,
            1e-4,
            &format!("linear n={n} k={k} out={out} {:?}", c.gemm()),
        );
    }
}

/// The tiled variant runs linear layers through a GEMV at any batch: the subgroup kernel
/// where the adapter has subgroups (lavapipe), the shared-memory one where not (GL); CI
/// runs this file on both. Below batch 4 the CPU-shaped variants run theirs
/// (linear_cpu.wgsl), the GEMM from there.
#[test]
fn linear_gemv_and_gemm_paths() {
    let name = ctx().adapter_name().to_string();
    if name.contains("llvmpipe") && name.contains("Vulkan") {
        assert_eq!(ctx().subgroup_size(), Some(8), "{name}");
    }
    run_linear(1, 37, 11, false, None);
    run_linear(3, 300, 129, true, None);
    run_linear(9, 65, 5, false, None); // two 8-row groups
    run_linear(17, 50, 70, true, None); // GEMM on the CPU-shaped variants, 3 GEMV groups
}

/// An item's outputs do not depend on its batch, on any variant: the CPU-shaped ones run a
/// small batch through their GEMV and a large one through the GEMM, both summing each output
/// in the same order; the tiled one runs its GEMV at any batch. Forward and input gradient,
/// bit for bit.
#[test]
fn linear_items_do_not_depend_on_their_batch() {
    let (n, k, out) = (20, 301, 70);
    for c in gemm_ctxs() {
        let x = rand_vec(n * k, 41);
        let dy = rand_vec(n * out, 42);
        let w = rand_vec(out * k, 43);
        let b = rand_vec(out, 44);
        let wb = WeightBuffer::upload(c, "fc", &w, out, k, Some(&b)).unwrap();
        let all = Tensor::upload(c, &x, &[n, k]).unwrap();
        let one = Tensor::upload(c, &x[k..2 * k], &[1, k]).unwrap();
        let dy_all = Tensor::upload(c, &dy, &[n, out]).unwrap();
        let dy_one = Tensor::upload(c, &dy[out..2 * out], &[1, out]).unwrap();
        let mut rec = Recorder::new(c, "batch of 20 vs 1");
        let ya = ops::linear(&mut rec, &all, &wb, true).unwrap();
        let y1 = ops::linear(&mut rec, &one, &wb, true).unwrap();
        let da = ops::linear_backward_input(&mut rec, &dy_all, &wb).unwrap();
        let d1 = ops::linear_backward_input(&mut rec, &dy_one, &wb).unwrap();
        rec.submit().unwrap();
        let what = format!("{:?}", c.gemm());
        assert_eq!(
            ya.read(c).unwrap()[out..2 * out],
            y1.read(c).unwrap(),
            "{what} forward"
        );
        assert_eq!(
            da.read(c).unwrap()[k..2 * k],
            d1.read(c).unwrap(),
            "{what} backward"
        );
    }
}

/// An item's convolution (forward and input gradient) does not depend on its batch, on any
/// variant. The tiled one plans split-K per item: at batch 5 the first shape's 1024 x 900
/// output fills 128 tiles, one item's 1024 x 180 only 32, and it splits either way; with a
/// small binding limit, a batch runs in groups of items that fit the scratch.
#[test]
fn conv_items_do_not_depend_on_their_batch() {
    assert_eq!(ops::tiled_split(180, 1024, 256, 64 << 20).0, 2);
    assert_eq!(ops::tiled_split(42, 40, 648, 64 << 20).0, 5);
    let small = netlens::gpu::Context::from_env()
        .unwrap()
        .with_gemm(Gemm::Tiled)
        .with_binding_limit(70_000); // the scratch of 3 items (5 x 27 x 42 floats each)
    let ctxs = gemm_ctxs();
    conv_item_alone(
        &ctxs,
        [5, 256, 12, 15],
        geom(256, 1024, (1, 1), (1, 1), (0, 0)),
    );
    let mut ctxs = ctxs;
    ctxs.push(&small);
    conv_item_alone(&ctxs, [5, 72, 7, 6], geom(72, 40, (3, 3), (1, 1), (1, 1)));
}

/// The CPU-shaped variants (`cpu`, `cpu-tex`, `cpu-fetch`: buffers or textures, inputs
/// shared by broadcasts or loaded by every lane) sum in the same order, so on one device
/// their outputs are the same bits: the 64-channel kernels (a partial block, stride 2,
/// padding, an odd batch), their narrow twins (3 outputs) and matrix-vector twins (a
/// linear layer at batch 2), forward and input gradient.
#[test]
fn cpu_shaped_variants_agree_bit_for_bit() {
    let ctxs: Vec<_> = gemm_ctxs()
        .into_iter()
        .filter(|c| !c.gemm().tiled())
        .collect();
    assert!(ctxs.iter().any(|c| c.gemm() == Gemm::CpuFetch));
    let cases = [
        ([3, 70, 9, 8], geom(70, 130, (3, 3), (2, 2), (1, 1))),
        ([2, 16, 7, 5], geom(16, 3, (3, 3), (1, 1), (1, 1))),
        ([2, 300, 1, 1], geom(300, 40, (1, 1), (1, 1), (0, 0))),
    ];
    for (dims, g) in cases {
        let taps = g.kernel.0 * g.kernel.1;
        let (oh, ow) = g.out_hw(dims[2], dims[3]).unwrap();
        let x = rand_vec(dims.iter().product(), 61);
        let w = rand_vec(g.cout * g.cin * taps, 62);
        let b = rand_vec(g.cout, 63);
        let dy = rand_vec(dims[0] * g.cout * oh * ow, 64);
        let mut first: Option<(Gemm, Vec<f32>, Vec<f32>)> = None;
        for &c in &ctxs {
            let (y, dx) = conv_and_dx(c, dims, g, [&x, &w, &b, &dy]);
            let (want, _, _) = cpu::conv2d(&x, dims, &w, Some(&b), &g, true);
            assert_close(&y, &want, 1e-4, 1e-4, &format!("{dims:?} {:?}", c.gemm()));
            match &first {
                None => first = Some((c.gemm(), y, dx)),
                Some((v, y0, dx0)) => {
                    assert!(y == *y0, "{dims:?}: {:?} and {v:?} differ", c.gemm());
                    assert!(dx == *dx0, "{dims:?}: {:?} and {v:?} differ (dx)", c.gemm());
                }
            }
        }
    }
}

/// A conv's forward (bias and ReLU) and input gradient on context `c`, read back: input
/// x of shape `dims`, weights w, bias b, output gradient dy.
fn conv_and_dx(
    c: &netlens::gpu::Context,
    dims: [usize; 4],
    g: Conv2dGeom,
    [x, w, b, dy]: [&[f32]; 4],
) -> (Vec<f32>, Vec<f32>) {
    let taps = g.kernel.0 * g.kernel.1;
    let (oh, ow) = g.out_hw(dims[2], dims[3]).unwrap();
    let wb = WeightBuffer::upload_conv(c, "w", w, g.cout, taps, Some(b)).unwrap();
    let xt = Tensor::upload(c, x, &dims).unwrap();
    let dyt = Tensor::upload(c, dy, &[dims[0], g.cout, oh, ow]).unwrap();
    let mut rec = Recorder::new(c, "conv and dx");
    let y = ops::conv2d(&mut rec, &xt, &wb, &g, true).unwrap();
    let dx = ops::conv2d_backward_input(&mut rec, &dyt, &wb, &g, (dims[2], dims[3])).unwrap();
    rec.submit().unwrap();
    (y.read(c).unwrap(), dx.read(c).unwrap())
}

/// The tiled kernels through workgroup memory and through subgroup broadcasts sum in the
/// same order, so their outputs are the same bits: direct (stride 2, padding, a partial
/// channel tile), pointwise (1x1), split-K (a long reduction over few pixels), Winograd's
/// grouped GEMMs and the gathered first-layer input gradient, forward and input gradient.
/// Adapters with subgroups of 8 to 32 lanes (lavapipe's 8) must run both.
#[test]
fn tiled_variants_agree_bit_for_bit() {
    use netlens::gpu::{Context, Winograd};
    let open = |g: Gemm, w: Winograd| Context::from_env().unwrap().with_gemm(g).with_winograd(w);
    let probe = open(Gemm::TiledSubgroup, Winograd::Off);
    let info = probe.device().adapter_info();
    if probe.gemm() != Gemm::TiledSubgroup {
        assert!(
            !probe.device().features().contains(wgpu::Features::SUBGROUP)
                || !(8..=32).contains(&info.subgroup_min_size)
                || !(8..=32).contains(&info.subgroup_max_size),
            "{} has subgroups of 8 to 32 lanes but not the subgroup variant",
            info.name
        );
        eprintln!("{}: no subgroups of 8 to 32 lanes; skipped", info.name);
        return;
    }
    let cases = [
        ([3, 70, 9, 8], geom(70, 130, (3, 3), (2, 2), (1, 1))),
        ([2, 40, 11, 7], geom(40, 36, (1, 1), (1, 1), (0, 0))),
        ([2, 36, 9, 10], geom(36, 33, (3, 3), (1, 1), (1, 1))),
        ([1, 300, 5, 5], geom(300, 20, (3, 3), (1, 1), (1, 1))),
        ([2, 3, 12, 9], geom(3, 17, (3, 3), (1, 1), (1, 1))),
    ];
    for w_mode in [Winograd::Off, Winograd::All] {
        let ctxs = [open(Gemm::Tiled, w_mode), open(Gemm::TiledSubgroup, w_mode)];
        for (dims, g) in cases {
            let taps = g.kernel.0 * g.kernel.1;
            let (oh, ow) = g.out_hw(dims[2], dims[3]).unwrap();
            let x = rand_vec(dims.iter().product(), 81);
            let w = rand_vec(g.cout * g.cin * taps, 82);
            let b = rand_vec(g.cout, 83);
            let dy = rand_vec(dims[0] * g.cout * oh * ow, 84);
            let (want, _, _) = cpu::conv2d(&x, dims, &w, Some(&b), &g, true);
            let want_dx = cpu::conv2d_backward_input(&dy, dims, &w, &g);
            let mut outs = vec![];
            for c in &ctxs {
                let (y, dx) = conv_and_dx(c, dims, g, [&x, &w, &b, &dy]);
                let what = format!("{dims:?} {:?} {w_mode:?}", c.gemm());
                assert_close(&y, &want, 1e-4, 1e-4, &what);
                assert_close(&dx, &want_dx, 1e-4, 1e-4, &format!("{what} dx"));
                outs.push((y, dx));
            }
            assert!(
                outs[0].0 == outs[1].0,
                "{dims:?} {w_mode:?}: the tiled variants differ"
            );
            assert!(
                outs[0].1 == outs[1].1,
                "{dims:?} {w_mode:?}: the tiled variants differ (dx)"
            );
        }
    }
}

/// The texture-reading variants pack each conv's input into a pooled texture: a second
/// recording of the same shape reuses it (no more texture bytes kept, the same bits); two
/// packs of one extent in one recording get two textures (the first is held until
/// submit), and both results are right; trim_pool lets them go.
#[test]
fn packed_inputs_reuse_their_textures() {
    let g = geom(20, 24, (3, 3), (1, 1), (1, 1));
    let dims = [2, 20, 9, 7];
    let x = rand_vec(dims.iter().product(), 71);
    let w = rand_vec(24 * 20 * 9, 72);
    let (want, _, _) = cpu::conv2d(&x, dims, &w, None, &g, false);
    for v in [Gemm::CpuTex, Gemm::CpuFetch] {
        // a context of its own: the other tests' packs would change the counts
        let c = &netlens::gpu::Context::from_env().unwrap().with_gemm(v);
        if c.gemm() != v {
            continue;
        }
        let wb = WeightBuffer::upload_conv(c, "w", &w, 24, 9, None).unwrap();
        let xt = Tensor::upload(c, &x, &dims).unwrap();
        let run = |twice: bool| -> Vec<Vec<f32>> {
            let mut rec = Recorder::new(c, "pooled textures");
            let mut ys = vec![ops::conv2d(&mut rec, &xt, &wb, &g, false).unwrap()];
            if twice {
                ys.push(ops::conv2d(&mut rec, &xt, &wb, &g, false).unwrap());
            }
            rec.submit().unwrap();
            ys.iter().map(|y| y.read(c).unwrap()).collect()
        };
        let first = run(false);
        let kept = c.pool_stats().texture_bytes;
        assert!(kept > 0, "{:?}", c.gemm());
        assert_eq!(run(false), first, "{:?}", c.gemm());
        assert_eq!(c.pool_stats().texture_bytes, kept, "{:?}", c.gemm());
        let both = run(true);
        assert_eq!(c.pool_stats().texture_bytes, 2 * kept, "{:?}", c.gemm());
        for y in &both {
            assert_close(y, &want, 1e-4, 1e-4, &format!("{:?}", c.gemm()));
        }
        c.trim_pool();
        assert_eq!(c.pool_stats().texture_bytes, 0);
    }
}

/// Item 3 of a batch `dims` through conv `g` alone and in its batch: the same bits, and the
/// batch right, on each context.
fn conv_item_alone(ctxs: &[&netlens::gpu::Context], dims: [usize; 4], g: Conv2dGeom) {
    let [n, cin, h, wd] = dims;
    let taps = g.kernel.0 * g.kernel.1;
    let (oh, ow) = g.out_hw(h, wd).unwrap();
    let (item, out) = (cin * h * wd, g.cout * oh * ow);
    let x = rand_vec(n * item, 51);
    let w = rand_vec(g.cout * cin * taps, 52);
    let b = rand_vec(g.cout, 53);
    let dy = rand_vec(n * out, 54);
    let (want_y, _, _) = cpu::conv2d(&x, dims, &w, Some(&b), &g, true);
    let want_dx = cpu::conv2d_backward_input(&dy, dims, &w, &g);
    for &c in ctxs {
        conv_item_check(c, (&x, &w, &b, &dy), dims, g, (&want_y, &want_dx));
    }
}

fn conv_item_check(
    c: &netlens::gpu::Context,
    (x, w, b, dy): (&[f32], &[f32], &[f32], &[f32]),
    dims: [usize; 4],
    g: Conv2dGeom,
    (want_y, want_dx): (&[f32], &[f32]),
) {
    let [n, cin, h, wd] = dims;
    let taps = g.kernel.0 * g.kernel.1;
    let (oh, ow) = g.out_hw(h, wd).unwrap();
    let (item, out) = (cin * h * wd, g.cout * oh * ow);
    let wb = WeightBuffer::upload_conv(c, "w", w, g.cout, taps, Some(b)).unwrap();
    let xa = Tensor::upload(c, x, &dims).unwrap();
    let x3 = Tensor::upload(c, &x[3 * item..4 * item], &[1, cin, h, wd]).unwrap();
    let da = Tensor::upload(c, dy, &[n, g.cout, oh, ow]).unwrap();
    let d3 = Tensor::upload(c, &dy[3 * out..4 * out], &[1, g.cout, oh, ow]).unwrap();
    let mut rec = Recorder::new(c, "batch of 5 vs 1");
    let ya = ops::conv2d(&mut rec, &xa, &wb, &g, true).unwrap();
    let y3 = ops::conv2d(&mut rec, &x3, &wb, &g, true).unwrap();
    let ga = ops::conv2d_backward_input(&mut rec, &da, &wb, &g, (h, wd)).unwrap();
    let g3 = ops::conv2d_backward_input(&mut rec, &d3, &wb, &g, (h, wd)).unwrap();
    rec.submit().unwrap();
    let what = format!("{dims:?} {:?} limit {}", c.gemm(), c.max_binding());
    let (ya, ga) = (ya.read(c).unwrap(), ga.read(c).unwrap());
    assert_eq!(ya[3 * out..4 * out], y3.read(c).unwrap(), "{what} forward");
    assert_eq!(
        ga[3 * item..4 * item],
        g3.read(c).unwrap(),
        "{what} backward"
    );
    assert_close(&ya, want_y, 1e-4, 1e-4, &format!("{what} forward values"));
    assert_close(&ga, want_dx, 1e-4, 1e-4, &format!("{what} backward values"));
}

#[test]
fn linear_split_weights() {
    run_linear(2, 100, 13, false, Some(400 * 4)); // 4 rows per chunk
    run_linear(20, 100, 13, true, Some(400 * 4)); // GEMM path, split
}

fn run_pool(dims: [usize; 4], p: Pool2d, quantize: bool) {
    let c = ctx();
    let mut x = rand_vec(dims.iter().product(), 7);
    if quantize {
        // few distinct values: ties everywhere, as after a ReLU
        x.iter_mut().for_each(|v| *v = (*v * 2.0).round().max(0.0));
    }
    let xt = Tensor::upload(c, &x, &dims).unwrap();
    let mut rec = Recorder::new(c, "test pool");
    let (ym, am) = ops::max_pool2d(&mut rec, &xt, &p).unwrap();
    let ya = ops::avg_pool2d(&mut rec, &xt, &p).unwrap();
    rec.submit().unwrap();
    let (wm, warg, oh, ow) = cpu::max_pool2d(&x, dims, &p);
    assert_eq!(ym.shape, vec![dims[0], dims[1], oh, ow]);
    assert_close(&ym.read(c).unwrap(), &wm, 0.0, 0.0, "max_pool2d values");
    let got_arg: Vec<u32> = am.read_u32(c).unwrap();
    assert_eq!(got_arg, warg, "max_pool2d argmax for {dims:?} {p:?}");
    let (wa, _, _) = cpu::avg_pool2d(&x, dims, &p);
    assert_close(
        &ya.read(c).unwrap(),
        &wa,
        1e-6,
        1e-5,
        &format!("avg_pool2d {dims:?} {p:?}"),
    );
}

#[test]
fn pools_odd_padded_ties() {
    run_pool([2, 3, 8, 8], Pool2d::square(2, 2), true);
    // 2x2 at stride 2 runs two outputs an invocation where rows hold a multiple of 4:
    // an odd height, a width that is not, a batch
    run_pool([3, 5, 7, 12], Pool2d::square(2, 2), true);
    run_pool([2, 3, 7, 12], Pool2d::square(2, 2), false);
    run_pool([1, 2, 6, 6], Pool2d::square(2, 2), true);
    run_pool([1, 2, 9, 7], Pool2d::square(3, 2), false);
    let padded = Pool2d {
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
        ceil_mode: false,
        count_include_pad: true,
    };
    run_pool([3, 2, 7, 9], padded, true);
    run_pool(
        [3, 2, 7, 9],
        Pool2d {
            count_include_pad: false,
            ..padded
        },
        false,
    );
    let ceil = Pool2d {
        kernel: (2, 3),
        stride: (2, 2),
        padding: (1, 1),
        ceil_mode: true,
        count_include_pad: true,
    };
    run_pool([2, 1, 6, 5], ceil, true);
    run_pool(
        [1, 1, 5, 5],
        Pool2d {
            ceil_mode: true,
            ..Pool2d::square(2, 2)
        },
        false,
    );
}

/// Max-pooling keeps the first maximum in row-major order and the last NaN of a window
/// (PyTorch's loop: `val > max || isnan(val)`), with windows that tile the input (3x2, stride 3x2 on 9x8) and overlapping
/// padded ones (3x3, stride 2, padding 1): values and argmaxes against the reference, on
/// ties and NaNs (two in one window, one after the maximum). lavapipe folds `v != v` to
/// false, which once made the kernel miss every NaN.
#[test]
fn max_pools_keep_the_first_maximum_and_the_last_nan() {
    let c = ctx();
    let dims = [2, 3, 9, 8];
    let mut x = rand_vec(dims.iter().product(), 9);
    x.iter_mut().for_each(|v| *v = (*v * 2.0).round());
    for i in [5, 13, 14, 70, 71, 79, 200, 431] {
        x[i] = f32::NAN;
    }
    let tiling = Pool2d {
        kernel: (3, 2),
        stride: (3, 2),
        ..Pool2d::square(2, 2)
    };
    let general = Pool2d {
        padding: (1, 1),
        ..Pool2d::square(3, 2)
    };
    // torch.nn.functional.max_pool2d(x, 2, return_indices=True) gives indices 3 and 2
    let two = [1.0, f32::NAN, 2.0, f32::NAN, f32::NAN, 5.0, f32::NAN, 1.0];
    let xt = Tensor::upload(c, &two, &[2, 1, 2, 2]).unwrap();
    let mut rec = Recorder::new(c, "max pool nan, PyTorch's");
    let (y, arg) = ops::max_pool2d(&mut rec, &xt, &Pool2d::square(2, 2)).unwrap();
    rec.submit().unwrap();
    assert_eq!(arg.read_u32(c).unwrap(), [3, 2]);
    assert!(y.read(c).unwrap().iter().all(|v| v.is_nan()));
    for p in [tiling, general, Pool2d::square(2, 2)] {
        let xt = Tensor::upload(c, &x, &dims).unwrap();
        let mut rec = Recorder::new(c, "max pool nan");
        let (y, arg) = ops::max_pool2d(&mut rec, &xt, &p).unwrap();
        rec.submit().unwrap();
        let (want, want_arg, _, _) = cpu::max_pool2d(&x, dims, &p);
        assert_eq!(arg.read_u32(c).unwrap(), want_arg, "{p:?}");
        let got = y.read(c).unwrap();
        assert!(want.iter().any(|v| v.is_nan()), "{p:?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "{p:?} {i}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn adaptive_avg_pool_up_and_down() {
    let c = ctx();
    for (dims, out) in [
        ([2, 3, 3, 3], (7, 7)),
        ([1, 4, 7, 7], (7, 7)),
        ([2, 2, 10, 13], (3, 4)),
        ([1, 1, 1, 1], (7, 7)),
        ([3, 2, 5, 7], (2, 9)),
    ] {
        let x = rand_vec(dims.iter().product(), 8);
        let xt = Tensor::upload(c, &x, &dims).unwrap();
        let mut rec = Recorder::new(c, "test adaptive");
        let y = ops::adaptive_avg_pool2d(&mut rec, &xt, out).unwrap();
        rec.submit().unwrap();
        let want = cpu::adaptive_avg_pool2d(&x, dims, out);
        assert_close(
            &y.read(c).unwrap(),
            &want,
            1e-6,
            1e-5,
            &format!("adaptive {dims:?} -> {out:?}"),
        );
    }
}

#[test]
fn relu_and_softmax() {
    let c = ctx();
    let x: Vec<f32> = rand_vec(3 * 1001, 9).iter().map(|v| v * 20.0).collect();
    let xt = Tensor::upload(c, &x, &[3, 1001]).unwrap();
    let mut rec = Recorder::new(c, "test elementwise");
    let r = ops::relu(&mut rec, &xt).unwrap();
    let s = ops::softmax(&mut rec, &xt).unwrap();
    rec.submit().unwrap();
    assert_close(&r.read(c).unwrap(), &cpu::relu(&x), 0.0, 0.0, "relu");
    // four elements a thread where the length allows
    let xt = Tensor::upload(c, &x[..3000], &[3, 1000]).unwrap();
    let mut rec = Recorder::new(c, "test relu4");
    let r = ops::relu(&mut rec, &xt).unwrap();
    rec.submit().unwrap();
    assert_close(
        &r.read(c).unwrap(),
        &cpu::relu(&x[..3000]),
        0.0,
        0.0,
        "relu4",
    );
    assert_close(
        &s.read(c).unwrap(),
        &cpu::softmax(&x, 1001),
        1e-7,
        1e-4,
        "softmax",
    );
}

#[test]
fn wrong_shapes_are_errors() {
    let c = ctx();
    let xt = Tensor::upload(c, &rand_vec(2 * 3 * 4 * 4, 1), &[2, 3, 4, 4]).unwrap();
    let w = WeightBuffer::upload_conv(c, "w", &rand_vec(8 * 4 * 9, 2), 8, 9, None).unwrap();
    let mut rec = Recorder::new(c, "bad");
    let g = geom(4, 8, (3, 3), (1, 1), (1, 1));
    assert!(ops::conv2d(&mut rec, &xt, &w, &g, false).is_err());
    let g = geom(3, 8, (9, 9), (1, 1), (0, 0));
    assert!(ops::conv2d(&mut rec, &xt, &w, &g, false).is_err());
    assert!(ops::max_pool2d(&mut rec, &xt, &Pool2d::square(5, 1)).is_err());
    assert!(ops::linear(&mut rec, &xt, &w, false).is_err());
    assert!(Tensor::upload(c, &[1.0, 2.0], &[3]).is_err());
}

/// f16 weight storage: every GEMM kernel (both variants) reads the packed halves exactly,
/// i.e. matches the reference run on the f16-rounded weights; split chunks with odd
/// lengths (a zero half at each chunk's end) included.
#[test]
fn f16_weights_match_the_rounded_reference() {
    use netlens::gpu::Precision;
    let round =
        |v: &[f32]| -> Vec<f32> { v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect() };
    for c in gemm_ctxs() {
        for (dims, g, limit) in [
            ([2, 5, 9, 11], geom(5, 19, (3, 3), (1, 1), (1, 1)), 1 << 20),
            // a few rows per chunk, with odd lengths (a zero half ends each chunk)
            ([1, 3, 8, 7], geom(3, 21, (3, 3), (2, 2), (1, 1)), 600),
        ] {
            let k = g.cin * 9;
            let w = rand_vec(g.cout * k, 31);
            let b = rand_vec(g.cout, 32);
            let x = rand_vec(dims.iter().product(), 33);
            let wb = WeightBuffer::upload_with(
                c,
                "w",
                &w,
                g.cout,
                k,
                Some(&b),
                WeightLayout::conv(9).precision(Precision::F16).limit(limit),
            )
            .unwrap();
            assert!(wb.half);
            let wr = round(&w);
            let xt = Tensor::upload(c, &x, &dims).unwrap();
            let mut rec = Recorder::new(c, "f16 conv");
            let y = ops::conv2d(&mut rec, &xt, &wb, &g, false).unwrap();
            let dy = rand_vec(y.len(), 34);
            let dyt = Tensor::upload(c, &dy, &y.shape).unwrap();
            let dx =
                ops::conv2d_backward_input(&mut rec, &dyt, &wb, &g, (dims[2], dims[3])).unwrap();
            rec.submit().unwrap();
            let (want, _, _) = cpu::conv2d(&x, dims, &wr, Some(&b), &g, false);
            let what = format!(
                "f16 conv {dims:?} {:?} chunks {}",
                c.gemm(),
                wb.chunks.len()
            );
            assert_close(&y.read(c).unwrap(), &want, 1e-4, 1e-4, &what);
            let want = cpu::conv2d_backward_input(&dy, dims, &wr, &g);
            assert_close(
                &dx.read(c).unwrap(),
                &want,
                1e-4,
                1e-4,
                &format!("{what} backward"),
            );
        }
        for (n, k, out) in [(1, 37, 11), (3, 301, 9), (17, 50, 13)] {
            let w = rand_vec(out * k, 35);
            let b = rand_vec(out, 36);
            let x = rand_vec(n * k, 37);
            let layout = WeightLayout::linear()
                .precision(Precision::F16)
                .limit(((k + 8) * 8) as u64); // 4 rows per chunk
            let wb = WeightBuffer::upload_with(c, "fc", &w, out, k, Some(&b), layout).unwrap();
            assert!(wb.chunks.len() > 1);
            let xt = Tensor::upload(c, &x, &[n, k]).unwrap();
            let mut rec = Recorder::new(c, "f16 linear");
            let y = ops::linear(&mut rec, &xt, &wb, false).unwrap();
            let dy = rand_vec(n * out, 38);
            let dyt = Tensor::upload(c, &dy, &[n, out]).unwrap();
            let dx = ops::linear_backward_input(&mut rec, &dyt, &wb).unwrap();
            rec.submit().unwrap();
            let want = cpu::linear(&x, n, &round(&w), Some(&b), out, false);
            let what = format!("f16 linear n={n} k={k} {:?}", c.gemm());
            assert_close(&y.read(c).unwrap(), &want, 1e-4, 1e-4, &what);
            let want = cpu::linear_backward_input(&dy, n, &round(&w), out);
            assert_close(
                &dx.read(c).unwrap(),
                &want,
                1e-4,
                1e-4,
                &format!("{what} backward"),
            );
        }
    }
}

/// Partial channel blocks and chunks, f32 and f16 weights, on every variant: 130 outputs
/// (blocks of 64, the last partial) of 70 input channels (not a multiple of 4) x 9 taps,
/// in chunks under a forced limit; forward with bias and ReLU, and the input gradient,
/// stride 2 on an odd batch. Then a linear layer of 1100 inputs. Against the reference on
/// the stored (for f16, rounded) weights.
#[test]
fn partial_blocks_chunks_and_f16() {
    use netlens::gpu::Precision;
    let round =
        |v: &[f32]| -> Vec<f32> { v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect() };
    let (dims, g) = ([3, 70, 9, 8], geom(70, 130, (3, 3), (2, 2), (1, 1)));
    let k = 70 * 9;
    let w = rand_vec(130 * k, 41);
    let b = rand_vec(130, 42);
    let x = rand_vec(dims.iter().product(), 43);
    for c in gemm_ctxs() {
        for precision in [Precision::F32, Precision::F16] {
            let limit = if precision == Precision::F16 {
                75_000
            } else {
                150_000
            };
            let layout = WeightLayout::conv(9).precision(precision).limit(limit);
            let wb = WeightBuffer::upload_with(c, "w", &w, 130, k, Some(&b), layout).unwrap();
            let rows: Vec<usize> = wb.chunks.iter().map(|ch| ch.rows).collect();
            assert!(
                rows.len() > 2 && rows.iter().sum::<usize>() == 130,
                "{rows:?}"
            );
            let wr = if precision == Precision::F16 {
                round(&w)
            } else {
                w.clone()
            };
            let xt = Tensor::upload(c, &x, &dims).unwrap();
            let mut rec = Recorder::new(c, "partial blocks");
            let y = ops::conv2d(&mut rec, &xt, &wb, &g, true).unwrap();
            let dy = rand_vec(y.len(), 44);
            let dyt = Tensor::upload(c, &dy, &y.shape).unwrap();
            let dx = ops::conv2d_backward_input(&mut rec, &dyt, &wb, &g, (9, 8)).unwrap();
            rec.submit().unwrap();
            let what = format!("{:?} {precision:?}", c.gemm());
            let (want, _, _) = cpu::conv2d(&x, dims, &wr, Some(&b), &g, true);
            assert_close(&y.read(c).unwrap(), &want, 1e-4, 1e-4, &what);
            let want = cpu::conv2d_backward_input(&dy, dims, &wr, &g);
            let what = format!("{what} backward");
            assert_close(&dx.read(c).unwrap(), &want, 1e-4, 1e-4, &what);

            let (n, k, out) = (5, 1100, 70);
            let lw = rand_vec(out * k, 45);
            let lx = rand_vec(n * k, 46);
            let layout = WeightLayout::linear().precision(precision);
            let wb = WeightBuffer::upload_with(c, "fc", &lw, out, k, None, layout).unwrap();
            let xt = Tensor::upload(c, &lx, &[n, k]).unwrap();
            let dy = rand_vec(n * out, 47);
            let dyt = Tensor::upload(c, &dy, &[n, out]).unwrap();
            let mut rec = Recorder::new(c, "partial blocks linear");
            let y = ops::linear(&mut rec, &xt, &wb, false).unwrap();
            let dx = ops::linear_backward_input(&mut rec, &dyt, &wb).unwrap();
            rec.submit().unwrap();
            let lwr = if precision == Precision::F16 {
                round(&lw)
            } else {
                lw.clone()
            };
            let want = cpu::linear(&lx, n, &lwr, None, out, false);
            let what = format!("linear {:?} {precision:?}", c.gemm());
            assert_close(&y.read(c).unwrap(), &want, 1e-4, 1e-4, &what);
            let want = cpu::linear_backward_input(&dy, n, &lwr, out);
            assert_close(
                &dx.read(c).unwrap(),
                &want,
                1e-4,
                1e-4,
                &format!("{what} backward"),
            );
        }
    }
}

/// Weights and tensors of one context (one device) given to another are refused with a
/// message that says so (wgpu panics on a resource of another device), whatever the two
/// contexts' GEMM layouts; a context's own run.
#[test]
fn weights_and_tensors_of_another_context_are_refused() {
    let ctxs = gemm_ctxs();
    let g = geom(3, 5, (3, 3), (1, 1), (1, 1));
    let x = rand_vec(3 * 36, 1);
    for a in &ctxs {
        let w = WeightBuffer::upload_conv(a, "w", &rand_vec(5 * 27, 2), 5, 9, None).unwrap();
        let xa = Tensor::upload(a, &x, &[1, 3, 6, 6]).unwrap();
        for b in &ctxs {
            let xt = Tensor::upload(b, &x, &[1, 3, 6, 6]).unwrap();
            let mut rec = Recorder::new(b, "mixed");
            let r = ops::conv2d(&mut rec, &xt, &w, &g, false);
            if std::ptr::eq(*a, *b) {
                assert!(r.is_ok(), "{:?}", a.gemm());
                rec.submit().unwrap();
                continue;
            }
            let e = r.err().expect("weights of another context").to_string();
            assert!(e.contains("another context"), "{e}");
            let lw = WeightBuffer::upload(a, "fc", &rand_vec(15, 3), 5, 3, None).unwrap();
            let lx = Tensor::upload(b, &x[..6], &[2, 3]).unwrap();
            let mut rec = Recorder::new(b, "mixed linear");
            let e = ops::linear(&mut rec, &lx, &lw, false)
                .err()
                .expect("linear");
            assert!(e.to_string().contains("another context"), "{e}");
            let dy = Tensor::upload(b, &x[..10], &[2, 5]).unwrap();
            let e = ops::linear_backward_input(&mut rec, &dy, &lw)
                .err()
                .expect("backward");
            assert!(e.to_string().contains("another context"), "{e}");
            // a tensor of another context: the recording fails at submit
            let mut rec = Recorder::new(b, "mixed tensor");
            ops::relu(&mut rec, &xa).unwrap();
            let e = rec.submit().expect_err("a tensor of another context");
            assert!(e.to_string().contains("another context"), "{e}");
            let e = xa.read(b).expect_err("read through another context");
            assert!(e.to_string().contains("another context"), "{e}");
        }
    }
}

/// A profiling context (`NETLENS_PROFILE`, or `with_profile`) times each launch under its
/// kernel's name and computes the same bits as a plain one.
#[test]
fn profiled_runs_time_each_kernel_and_change_nothing() {
    let plain = ctx();
    let profiled = netlens::gpu::Context::from_env()
        .unwrap()
        .with_gemm(plain.gemm())
        .with_profile();
    assert_eq!(plain.profile(), None);
    let g = geom(5, 7, (3, 3), (1, 1), (1, 1));
    let dims = [2, 5, 9, 8];
    let x = rand_vec(dims.iter().product(), 61);
    let w = rand_vec(7 * 45, 62);
    let run = |c: &netlens::gpu::Context| {
        let wb = WeightBuffer::upload_conv(c, "w", &w, 7, 9, None).unwrap();
        let xt = Tensor::upload(c, &x, &dims).unwrap();
        let mut rec = Recorder::new(c, "profiled");
        let y = ops::conv2d(&mut rec, &xt, &wb, &g, false).unwrap();
        let y = ops::relu(&mut rec, &y).unwrap();
        let y = ops::relu(&mut rec, &y).unwrap();
        rec.submit().unwrap();
        y.read(c).unwrap()
    };
    assert_eq!(run(plain), run(&profiled));
    let times = profiled.profile().unwrap();
    let relu = times
        .iter()
        .find(|t| t.0.starts_with("ReluForward"))
        .expect("ReluForward timed");
    assert_eq!(relu.1.launches, 2, "{times:?}");
    assert!(
        times.iter().any(|t| t.0.starts_with("Conv2dForward")),
        "{times:?}"
    );
    assert!(times.iter().all(|t| t.1.seconds > 0.0), "{times:?}");
    let report = profiled.profile_report().unwrap();
    assert!(
        report.contains("ReluForward") && report.contains("share"),
        "{report}"
    );
}

#[test]
fn band_rows_copy_rows_and_clear_the_rest() {
    let c = ctx();
    let (ch, hs, hd, w) = (3, 7, 5, 9);
    let src = rand_vec(ch * hs * w, 41);
    let old = rand_vec(ch * hd * w, 42);
    for (src_row, dst_row, rows, zero) in [(2, 1, 4, false), (0, 0, 5, true), (6, 3, 1, true)] {
        let s = Tensor::upload(c, &src, &[1, ch, hs, w]).unwrap();
        let d = Tensor::upload(c, &old, &[1, ch, hd, w]).unwrap();
        let mut rec = Recorder::new(c, "test");
        ops::bands::band_rows(&mut rec, &s, &d, (src_row, dst_row, rows), zero).unwrap();
        rec.submit().unwrap();
        let mut want = old.clone();
        for k in 0..ch {
            for r in 0..hd {
                for x in 0..w {
                    let i = (k * hd + r) * w + x;
                    want[i] = if (dst_row..dst_row + rows).contains(&r) {
                        src[(k * hs + r - dst_row + src_row) * w + x]
                    } else if zero {
                        0.0
                    } else {
                        old[i]
                    };
                }
            }
        }
        assert_eq!(
            d.read(c).unwrap(),
            want,
            "{src_row} {dst_row} {rows} {zero}"
        );
    }
    // rows past either end are an error, not a launch
    let s = Tensor::upload(c, &src, &[1, ch, hs, w]).unwrap();
    let d = Tensor::upload(c, &old, &[1, ch, hd, w]).unwrap();
    let mut rec = Recorder::new(c, "test");
    assert!(ops::bands::band_rows(&mut rec, &s, &d, (4, 2, 4), false).is_err());
}

/// Winograd's GEMMs with a split reduction (few tiles, a long reduction), forward and
/// input gradient, against the reference and alone against in a batch.
#[test]
fn winograd_split_k() {
    let c = common::winograd_all();
    conv_item_alone(
        &[&c],
        [5, 256, 14, 13],
        geom(256, 96, (3, 3), (1, 1), (1, 1)),
    );
}

/// An item whose transformed tensors pass the binding runs in strips of tile rows: the
/// same bits as in one piece, forward and input gradient, and right.
#[test]
fn winograd_strips_of_tile_rows() {
    let whole = common::winograd_all();
    // a tile row's 16 points of 10 tiles x 8 channels: 5120 bytes; the item's 15 rows
    // 76800, so 3 rows a strip
    let strips = common::winograd_all().with_binding_limit(20_000);
    let (dims, g) = ([1, 8, 30, 20], geom(8, 8, (3, 3), (1, 1), (1, 1)));
    let x = rand_vec(8 * 30 * 20, 71);
    let w = rand_vec(8 * 8 * 9, 72);
    let b = rand_vec(8, 73);
    let dy = rand_vec(8 * 30 * 20, 74);
    let (want_y, _, _) = cpu::conv2d(&x, dims, &w, Some(&b), &g, true);
    let want_dx = cpu::conv2d_backward_input(&dy, dims, &w, &g);
    let run = |c: &netlens::gpu::Context| {
        let wb = WeightBuffer::upload_conv(c, "w", &w, 8, 9, Some(&b)).unwrap();
        let xt = Tensor::upload(c, &x, &dims).unwrap();
        let dt = Tensor::upload(c, &dy, &[1, 8, 30, 20]).unwrap();
        let mut rec = Recorder::new(c, "strips");
        let y = ops::conv2d(&mut rec, &xt, &wb, &g, true).unwrap();
        let dx = ops::conv2d_backward_input(&mut rec, &dt, &wb, &g, (30, 20)).unwrap();
        rec.submit().unwrap();
        (y.read(c).unwrap(), dx.read(c).unwrap())
    };
    let (y1, dx1) = run(&whole);
    let (y2, dx2) = run(&strips);
    assert_eq!(common::bits(&y1), common::bits(&y2), "forward");
    assert_eq!(common::bits(&dx1), common::bits(&dx2), "input gradient");
    assert_close(&y2, &want_y, 1e-4, 1e-4, "strips forward");
    assert_close(&dx2, &want_dx, 1e-4, 1e-4, "strips input gradient");
}
