//! A device-resident loop: forward, objective, backward and an Adam update recorded into
//! one submission per step, nothing read back until the end; the first steps against the
//! same loop run on the CPU reference network.

mod common;
use common::{arc_ctx, demo, rel_l2, samples};

use netlens::gpu::{read_all, Recorder, Tensor};
use netlens::graph::{Keep, Net};
use netlens::ops::map::{self, Adam};
use netlens::ops::objective::{objective, Objective, Targets};
use netlens::ops::ReluRule;
use netlens::reference::{net as cpu_net, prim as cpu};

/// One ascent step of each item's target log-probability, recorded into `rec`; returns
/// the objective's value before the step.
fn step(
    net: &Net,
    rec: &mut Recorder,
    cfg: &Adam,
    t: u32,
    state: [&Tensor; 3],
    targets: &Targets,
) -> Tensor {
    let [x, m, v] = state;
    let tape = net.record_forward(rec, x, &Keep::All, None).unwrap();
    let (seed, value) = objective(rec, &tape.logits, targets, Objective::LogProb).unwrap();
    let last = net.model().layers.len() - 1;
    let g = net
        .record_backward(rec, &tape, last, &seed, ReluRule::Gradient, &[])
        .unwrap();
    map::adam_step(rec, cfg, t, x, &g.input, m, v).unwrap();
    value
}

#[test]
fn adam_ascent_on_the_device_matches_the_cpu_loop_then_runs_300_steps() {
    let net = demo();
    let ctx = net.ctx().clone();
    let x0 = samples(&net, &["star", "cross"]);
    let targets_host = [5usize, 1]; // ring, triangle: far from each input's own class
    let targets = Targets::classes(&ctx, &targets_host, &[8]).unwrap();
    // eps 1e-6 rather than torch's 1e-8: Adam's first steps move a pixel by about ±lr
    // whatever its gradient's size, so with eps far below the float noise of a near-zero
    // gradient, two correct implementations (GEMMs summing in different orders) can step
    // such a pixel in opposite directions. At 1e-6 the loops agree to ~5e-7 on both
    // GEMM variants.
    let cfg = Adam {
        lr: 0.05,
        eps: 1e-6,
        maximize: true,
        ..Default::default()
    };
    let n = x0.data.len();
    let x = Tensor::upload(&ctx, &x0.data, &x0.shape).unwrap();
    let (m, v) = (
        Tensor::upload(&ctx, &vec![0.0; n], &x0.shape).unwrap(),
        Tensor::upload(&ctx, &vec![0.0; n], &x0.shape).unwrap(),
    );
    // the CPU reference loop, step by step
    let model = net.model();
    let (mut xc, mut mc, mut vc) = (x0.data.clone(), vec![0f32; n], vec![0f32; n]);
    let mut first = None;
    for t in 1..=5u32 {
        let mut rec = Recorder::new(&ctx, "ascent step");
        let value = step(&net, &mut rec, &cfg, t, [&x, &m, &v], &targets);
        rec.submit().unwrap();
        let trace = cpu_net::forward(model, &xc, &x0.shape);
        let (vals, seed) = cpu_net::log_prob(&trace.out.0, 8, &targets_host);
        let g = cpu_net::backward(model, &trace, &seed);
        cpu::adam_step(&cfg, t, &mut xc, &g, &mut mc, &mut vc);
        let got = x.read(&ctx).unwrap();
        let err = rel_l2(&got, &xc);
        assert!(
            err < 1e-4,
            "step {t}: the device loop is {err:.2e} (relative L2) from the CPU loop"
        );
        // and the updates themselves agree, not only the images
        let du: Vec<f32> = got.iter().zip(&x0.data).map(|(p, q)| p - q).collect();
        let dc: Vec<f32> = xc.iter().zip(&x0.data).map(|(p, q)| p - q).collect();
        let uerr = rel_l2(&du, &dc);
        assert!(uerr < 1e-2, "step {t}: updates differ by {uerr:.2e}");
        let val = value.read(&ctx).unwrap();
        assert!(
            rel_l2(&val, &vals) < 1e-4,
            "step {t}: objective {val:?} vs {vals:?}"
        );
        first.get_or_insert(val);
    }
    // 295 more steps with nothing read back, then one read
    let mut value = None;
    for t in 6..=300u32 {
        let mut rec = Recorder::new(&ctx, "ascent step");
        value = Some(step(&net, &mut rec, &cfg, t, [&x, &m, &v], &targets));
        rec.submit().unwrap();
    }
    // the objective and the image in one read
    let mut got = read_all(&ctx, &[&value.unwrap(), &x]).unwrap();
    let (last, image) = (got.remove(0), got.remove(0));
    assert_eq!(image.len(), n);
    let first = first.unwrap();
    for (i, (a, z)) in first.iter().zip(&last).enumerate() {
        assert!(z > a, "item {i}: log-probability went from {a} to {z}");
        assert!(z.exp() > 0.9, "item {i}: after 300 steps p = {}", z.exp());
    }
    assert!(image.iter().all(|v| v.is_finite()));
}

#[test]
fn objectives_at_a_layer_seed_the_walk_from_there() {
    let net = demo();
    let ctx = net.ctx().clone();
    let x0 = samples(&net, &["ring"]);
    let layer = net.model().find("features.8").unwrap(); // a conv in block 3: [96, 16, 16]
    let x = Tensor::upload(&ctx, &x0.data, &x0.shape).unwrap();
    let model = net.model();
    let trace = cpu_net::forward(model, &x0.data, &x0.shape);
    for kind in [Objective::Unit, Objective::ChannelMean] {
        let mut rec = Recorder::new(&ctx, "layer objective");
        let tape = net
            .record_forward(&mut rec, &x, &Keep::All, Some(layer))
            .unwrap();
        let shape = tape.logits.shape.clone();
        assert_eq!(shape, [1, 96, 16, 16]);
        let targets = match kind {
            Objective::Unit => Targets::units(&ctx, &[(7, 5, 9)], &shape[1..]).unwrap(),
            _ => Targets::classes(&ctx, &[11], &shape[1..]).unwrap(),
        };
        let (seed, value) = objective(&mut rec, &tape.logits, &targets, kind).unwrap();
        let g = net
            .record_backward(&mut rec, &tape, layer, &seed, ReluRule::Gradient, &[])
            .unwrap();
        rec.submit().unwrap();
        // the CPU: the same seed at that layer, walked back through the layers below it
        let mut sub = model.clone();
        sub.layers.truncate(layer + 1);
        let t2 = cpu_net::forward(&sub, &x0.data, &x0.shape);
        let z = &t2.out.0;
        let mut s = vec![0f32; z.len()];
        let want_value = match kind {
            Objective::Unit => {
                s[7 * 256 + 5 * 16 + 9] = 1.0;
                z[7 * 256 + 5 * 16 + 9]
            }
            _ => {
                s[11 * 256..12 * 256]
                    .iter_mut()
                    .for_each(|v| *v = 1.0 / 256.0);
                z[11 * 256..12 * 256].iter().sum::<f32>() / 256.0
            }
        };
        let want = cpu_net::backward(&sub, &t2, &s);
        let got = g.input.read(&ctx).unwrap();
        assert!(
            rel_l2(&got, &want) < 1e-4,
            "{kind:?}: gradient {:.2e} from the CPU",
            rel_l2(&got, &want)
        );
        let v = value.read(&ctx).unwrap();
        assert!(
            (v[0] - want_value).abs() <= 1e-4 * want_value.abs().max(1.0),
            "{kind:?}: value {} vs {want_value}",
            v[0]
        );
    }
    let _ = trace;
    // targets outside the output are refused before anything runs
    assert!(Targets::units(&ctx, &[(96, 0, 0)], &[96, 16, 16]).is_err());
    assert!(Targets::classes(&ctx, &[8], &[8]).is_err());
}

#[test]
fn softmax_objectives_match_their_definitions() {
    let ctx = arc_ctx();
    let k = 7;
    let z = common::rand_vec(3 * k, 41)
        .iter()
        .map(|v| v * 4.0)
        .collect::<Vec<f32>>();
    let zt = Tensor::upload(&ctx, &z, &[3, k]).unwrap();
    let t = [2usize, 6, 0];
    let targets = Targets::classes(&ctx, &t, &[k]).unwrap();
    let (lv, ls) = cpu_net::log_prob(&z, k, &t);
    for kind in [
        Objective::Logit,
        Objective::LogitTimesOnehot,
        Objective::Prob,
        Objective::LogProb,
    ] {
        let mut rec = Recorder::new(&ctx, "objective");
        let (seed, value) = objective(&mut rec, &zt, &targets, kind).unwrap();
        rec.submit().unwrap();
        let (seed, value) = (seed.read(&ctx).unwrap(), value.read(&ctx).unwrap());
        let mut want_s = vec![0f32; 3 * k];
        let mut want_v = vec![0f32; 3];
        for (r, &c) in t.iter().enumerate() {
            let p = lv[r].exp();
            want_v[r] = match kind {
                Objective::Logit | Objective::LogitTimesOnehot => z[r * k + c],
                Objective::Prob => p,
                _ => lv[r],
            };
            for j in 0..k {
                want_s[r * k + j] = match kind {
                    Objective::Logit => (j == c) as u8 as f32,
                    Objective::LogitTimesOnehot => {
                        if j == c {
                            z[r * k + c]
                        } else {
                            0.0
                        }
                    }
                    Objective::Prob => p * ls[r * k + j],
                    _ => ls[r * k + j],
                };
            }
        }
        common::assert_close(&seed, &want_s, 1e-6, 1e-5, &format!("{kind:?} seed"));
        common::assert_close(&value, &want_v, 1e-6, 1e-5, &format!("{kind:?} value"));
    }
}

#[test]
fn argmax_objectives_take_the_first_maximum() {
    let ctx = arc_ctx();
    // rows: a clear maximum, a tie (first wins), a maximum past the first 64 entries
    let k = 70;
    let mut z = vec![0f32; 3 * k];
    z[3] = 2.0;
    z[k + 5] = 1.5;
    z[k + 40] = 1.5;
    z[2 * k + 66] = 0.5;
    let zt = Tensor::upload(&ctx, &z, &[3, k]).unwrap();
    let mut rec = Recorder::new(&ctx, "argmax");
    let (seed, value) = netlens::ops::objective::argmax_objective(&mut rec, &zt).unwrap();
    // LRP's start: one-hot times the top logit
    let (lrp_seed, lrp_value) =
        netlens::ops::objective::argmax_times_logit_objective(&mut rec, &zt).unwrap();
    rec.submit().unwrap();
    assert_eq!(value.read(&ctx).unwrap(), vec![3.0, 5.0, 66.0]);
    assert_eq!(lrp_value.read(&ctx).unwrap(), vec![3.0, 5.0, 66.0]);
    let (s, ls) = (seed.read(&ctx).unwrap(), lrp_seed.read(&ctx).unwrap());
    for (r, t) in [3usize, 5, 66].iter().enumerate() {
        for j in 0..k {
            assert_eq!(s[r * k + j], (j == *t) as u8 as f32, "row {r} class {j}");
            let want = if j == *t { z[r * k + j] } else { 0.0 };
            assert_eq!(ls[r * k + j], want, "LRP seed row {r} class {j}");
        }
    }
}

/// A gradient tape (`Keep::Gradient`) runs each conv/linear with its ReLU fused and keeps
/// no pre-activation, and gives the same bits as the unfused tape (`Keep::All`); a layer
/// it names stays unfused.
#[test]
fn a_gradient_tape_fuses_relus_and_gives_the_same_gradient() {
    let net = demo();
    let ctx = net.ctx().clone();
    let x0 = samples(&net, &["star", "cross"]);
    let x = Tensor::upload(&ctx, &x0.data, &x0.shape).unwrap();
    let targets = Targets::classes(&ctx, &[3, 1], &[8]).unwrap();
    let last = net.model().layers.len() - 1;
    let run_wanting = |keep: &Keep, want: &[usize]| {
        let mut rec = Recorder::new(&ctx, "tape");
        let tape = net.record_forward(&mut rec, &x, keep, None).unwrap();
        let (seed, _) = objective(&mut rec, &tape.logits, &targets, Objective::Logit).unwrap();
        let g = net
            .record_backward(&mut rec, &tape, last, &seed, ReluRule::Gradient, want)
            .unwrap();
        rec.submit().unwrap();
        let kept: Vec<bool> = tape.outputs.iter().map(Option::is_some).collect();
        let layer0 = &g
            .layers
            .iter()
            .find(|l| l.0 == 0)
            .expect("layer 0 wanted")
            .1;
        let got = read_all(&ctx, &[&g.input, layer0, &tape.logits]).unwrap();
        (got, kept)
    };
    let run = |keep: &Keep| run_wanting(keep, &[0]);
    let (all, kept_all) = run(&Keep::All);
    let (fused, kept_fused) = run(&Keep::Gradient(vec![]));
    assert!(
        all == fused,
        "input gradient, layer 0's gradient, logits differ"
    );
    assert!(kept_all.iter().all(|k| *k));
    // the demo model's convs and first two linears each feed a ReLU: not kept; on the
    // CPU-shaped GEMMs neither are the ReLUs before its five max-pools (each conv + ReLU
    // + pool is one pass, tests/conv_pool.rs)
    let pooled = if ctx.gemm().tiled() { 0 } else { 5 };
    let convs_and_linears = net
        .model()
        .layers
        .iter()
        .filter(|l| matches!(l.kind, netlens::model::LayerKind::Conv2d { .. }))
        .count()
        + 2;
    let dropped = kept_fused.iter().filter(|k| !**k).count();
    assert_eq!(dropped, convs_and_linears + pooled, "{kept_fused:?}");
    assert!(!kept_fused[0] && kept_fused[1] == (pooled == 0) && kept_fused[2]);
    let (_, kept_named) = run(&Keep::Gradient(vec![0]));
    assert!(kept_named[0], "a named layer keeps its pre-activation");
    // the walk runs a max-pool's backward and its ReLU's as one pass, and where the
    // ReLU's gradient is wanted the pool's backward alone for it: the same bits
    let relus: Vec<usize> = (0..net.model().layers.len())
        .filter(|&i| matches!(net.model().layers[i].kind, netlens::model::LayerKind::Relu))
        .collect();
    let mut want = vec![0];
    want.extend(&relus);
    let (unfused, _) = run_wanting(&Keep::Gradient(vec![]), &want);
    assert!(unfused[0] == fused[0], "input gradient differs");
    assert!(unfused[1] == fused[1], "layer 0's gradient differs");
    // where a conv packs its input (cpu-tex, cpu-fetch), its input-gradient GEMM applies
    // the ReLU after it (features.6 -> features.7 here) unless the conv's gradient is
    // wanted: the same bits either way
    let convs: Vec<usize> = (0..net.model().layers.len())
        .filter(|&i| {
            matches!(
                net.model().layers[i].kind,
                netlens::model::LayerKind::Conv2d { .. }
            )
        })
        .collect();
    let (unmasked, _) = run_wanting(&Keep::Gradient(vec![]), &convs);
    assert!(
        unmasked[0] == fused[0],
        "input gradient differs with the convs wanted"
    );
    // a walk from a layer the tape fused away is refused, saying what to do; named, it runs
    let walk_from_0 = |keep: &Keep| {
        let mut rec = Recorder::new(&ctx, "from a fused conv");
        let tape = net.record_forward(&mut rec, &x, keep, None).unwrap();
        let seed = Tensor::upload(&ctx, &vec![1.0; 2 * 32 * 64 * 64], &[2, 32, 64, 64]);
        let r = net.record_backward(&mut rec, &tape, 0, &seed.unwrap(), ReluRule::Gradient, &[]);
        r.map(|_| rec.submit().unwrap())
    };
    let e = walk_from_0(&Keep::Gradient(vec![]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("did not keep") && e.contains("Keep::Gradient"),
        "{e}"
    );
    walk_from_0(&Keep::Gradient(vec![0])).unwrap();
}
