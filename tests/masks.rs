//! Meaningful-perturbation masks: the first iterations against the PyTorch loop of
//! tools/mask_reference.py (float64), the objective's gradient against finite differences,
//! unexplainable items, batching and bad settings.

mod common;
use common::{arc_ctx, demo, fixture, load_tensors, rel_l2, samples};

use netlens::explain::mask::{
    filler, meaningful_perturbation, objective_gradient, Game, MaskSettings, Perturbation, Score,
    UNSHIFTED_EVERY,
};
use netlens::explain::Target;
use netlens::gpu::Tensor;
use netlens::graph::Net;
use netlens::reference::prim as cpu;
use netlens::Array;

fn hidden() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}

#[test]
fn first_ten_iterations_match_the_pytorch_loop() {
    let net = demo();
    let want = load_tensors(&fixture("mask_2017.safetensors"));
    let x = samples(&net, &["star", "cross", "triangle"]);
    let targets: Vec<usize> = want["target"].data.iter().map(|t| *t as usize).collect();
    // the blur filler is the reference's η
    let s = MaskSettings::new(Game::Deletion, (64, 64));
    let xt = Tensor::upload(net.ctx(), &x.data, &x.shape).unwrap();
    let eta = filler(&net, &x, &xt, &s.perturbation, 0).unwrap();
    let e = rel_l2(&eta.read(net.ctx()).unwrap(), &want["eta"].data);
    assert!(e < 1e-6, "blurred η: relative L2 {e:.2e}");
    for game in [Game::Deletion, Game::Preservation] {
        let key = if game == Game::Deletion {
            "deletion"
        } else {
            "preservation"
        };
        let masks = &want[&format!("{key}.masks")];
        let losses = &want[&format!("{key}.loss")];
        let per = 3 * 256; // three items of 16 x 16 cells per iteration
        for k in 1..=10 {
            let s = MaskSettings {
                iterations: k,
                jitter: 0,
                keep_best: false, // the reference returns the last iterate
                lr: 0.05,         // the reference's rate for both games
                ..MaskSettings::new(game, (64, 64))
            };
            let r =
                meaningful_perturbation(&net, &x, &Target::Each(targets.clone()), &s, &hidden())
                    .unwrap();
            assert!(r.items.iter().all(|i| i.explainable));
            let low = &masks.data[(k - 1) * per..k * per];
            let up = cpu::bilinear(low, [3, 1, 16, 16], 64, 64);
            let e = rel_l2(&r.mask.data, &up);
            assert!(e < 1e-3, "{key}, iteration {k}: mask relative L2 {e:.2e}");
            if k == 10 {
                let got: Vec<f32> = (0..10)
                    .flat_map(|t| r.items.iter().map(move |i| i.loss[t]))
                    .collect();
                let e = rel_l2(&got, &losses.data);
                assert!(e < 1e-3, "{key}: loss curve relative L2 {e:.2e}");
            }
        }
    }
}

/// Central differences of the whole objective at a few mask cells.
fn check_gradient(net: &Net, x: &Array, s: &MaskSettings, targets: &[usize]) {
    let (n, side) = (x.batch(), s.mask_size);
    let xt = Tensor::upload(net.ctx(), &x.data, &x.shape).unwrap();
    let eta = filler(net, x, &xt, &s.perturbation, s.seed).unwrap();
    let eta = Array::new(x.shape.clone(), eta.read(net.ctx()).unwrap()).unwrap();
    let m0: Vec<f32> = common::rand_vec(n * side * side, 17)
        .iter()
        .map(|v| 0.5 + 0.3 * v)
        .collect();
    let m = Array::new(vec![n, 1, side, side], m0.clone()).unwrap();
    let (_, g) = objective_gradient(net, x, &eta, targets, &m, s).unwrap();
    let h = 2e-3f32;
    let (mut num, mut ana) = (Vec::new(), Vec::new());
    for cell in [0, 5, side * side / 2 + 1, side * side - 1] {
        for item in 0..n {
            let i = item * side * side + cell;
            let at = |d: f32| {
                let mut v = m0.clone();
                v[i] += d;
                let m = Array::new(vec![n, 1, side, side], v).unwrap();
                objective_gradient(net, x, &eta, targets, &m, s).unwrap().0[item] as f64
            };
            num.push(((at(h) - at(-h)) / (2.0 * h as f64)) as f32);
            ana.push(g.data[i]);
        }
    }
    let e = rel_l2(&ana, &num);
    assert!(
        e < 2e-2,
        "{:?}/{:?}: gradient vs finite differences, relative L2 {e:.2e}\n{ana:?}\n{num:?}",
        s.game,
        s.score
    );
}

#[test]
fn the_objective_gradient_matches_finite_differences() {
    let net = Net::new(
        arc_ctx(),
        netlens::model::load(std::path::Path::new(&fixture("small.safetensors"))).unwrap(),
    )
    .unwrap();
    let shape = [2, 3, 17, 15];
    let x = Array::new(shape.to_vec(), common::rand_vec(2 * 3 * 17 * 15, 3)).unwrap();
    for (game, score, p) in [
        (Game::Deletion, Score::Prob, Perturbation::Blur(2.0)),
        (
            Game::Preservation,
            Score::LogProb,
            Perturbation::Constant(Some(0.3)),
        ),
        (Game::Deletion, Score::Logit, Perturbation::Noise(0.5)),
    ] {
        let s = MaskSettings {
            score,
            perturbation: p,
            mask_size: 5,
            l1: 0.7,
            tv: 1.3,
            ..MaskSettings::new(game, (17, 15))
        };
        check_gradient(&net, &x, &s, &[1, 2]);
    }
}

#[test]
fn unexplainable_items_are_reported_and_batches_split_like_single_items() {
    let net = demo().with_max_batch(2);
    // a blurred circle is still a circle: not explainable by blur deletion
    let x = samples(&net, &["star", "circle", "cross"]);
    let s = MaskSettings {
        iterations: 12,
        ..MaskSettings::new(Game::Deletion, (64, 64))
    };
    let r = meaningful_perturbation(&net, &x, &Target::Argmax, &s, &hidden()).unwrap();
    assert_eq!(
        r.items.iter().map(|i| i.explainable).collect::<Vec<_>>(),
        [true, false, true]
    );
    let circle = &r.items[1];
    assert!(circle.p_baseline >= 0.5 && circle.loss.is_empty());
    assert!(r.mask.data[4096..8192].iter().all(|v| *v == 1.0));
    assert_eq!(
        &r.perturbed.data[3 * 4096..6 * 4096],
        &x.data[3 * 4096..6 * 4096]
    );
    // the cross alone: the same mask (its jitter depends on its index, not the pass)
    let alone = meaningful_perturbation(
        &net,
        &x,
        &Target::Each(r.items.iter().map(|i| i.target).collect()),
        &s,
        &hidden(),
    )
    .unwrap();
    let e = rel_l2(&alone.mask.data[8192..], &r.mask.data[8192..]);
    assert!(e < 1e-5, "same item, same mask: {e:.2e}");
    assert!(r.mask.data.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(r.items[0].loss.len() == 12 && r.items[0].prob.len() == 12);
}

#[test]
fn the_best_iterate_is_chosen_among_unshifted_steps_only() {
    let net = demo();
    let x = samples(&net, &["star", "cross"]);
    let t = Target::Each(vec![3, 4]);
    let run = |iterations, keep_best| {
        let s = MaskSettings {
            iterations,
            keep_best,
            jitter: 2,
            ..MaskSettings::new(Game::Deletion, (64, 64))
        };
        meaningful_perturbation(&net, &x, &t, &s, &hidden()).unwrap()
    };
    // six steps: 0 and 4 are unshifted, 1-3 and 5 jittered
    assert_eq!(UNSHIFTED_EVERY, 4);
    let best = run(6, true);
    let fourth = run(4, false); // the iterate step 4 starts from
    for it in &best.items {
        // from all deleted, L1 lowers the objective every step: a jittered step 5 would win
        assert!(
            it.loss[5] < it.loss[4] && it.loss[4] < it.loss[0],
            "{:?}",
            it.loss
        );
    }
    let e = rel_l2(&best.mask.data, &fourth.mask.data);
    assert!(
        e < 1e-6,
        "the best iterate is not step 4's: relative L2 {e:.2e}"
    );
}

#[test]
fn bad_settings_and_inputs_are_refused_before_any_work() {
    let net = demo();
    let x = samples(&net, &["star"]);
    let base = MaskSettings::new(Game::Preservation, (64, 64));
    let bad = [
        MaskSettings {
            mask_size: 0,
            ..base.clone()
        },
        MaskSettings {
            mask_size: 65,
            ..base.clone()
        },
        MaskSettings {
            l1: f32::NAN,
            ..base.clone()
        },
        MaskSettings {
            tv: -1.0,
            ..base.clone()
        },
        MaskSettings {
            tv_beta: 0.5,
            ..base.clone()
        },
        MaskSettings {
            lr: 0.0,
            ..base.clone()
        },
        MaskSettings {
            iterations: 0,
            ..base.clone()
        },
        MaskSettings {
            jitter: 40,
            ..base.clone()
        },
        MaskSettings {
            init: 1.5,
            ..base.clone()
        },
        MaskSettings {
            explainable_below: 0.0,
            ..base.clone()
        },
        MaskSettings {
            perturbation: Perturbation::Blur(0.0),
            ..base.clone()
        },
        MaskSettings {
            perturbation: Perturbation::Noise(f32::INFINITY),
            ..base.clone()
        },
    ];
    for s in bad {
        let e = meaningful_perturbation(&net, &x, &Target::Argmax, &s, &hidden());
        assert!(e.is_err(), "{s:?} was accepted");
    }
    let mut nan = x.clone();
    nan.data[7] = f32::NAN;
    assert!(meaningful_perturbation(&net, &nan, &Target::Argmax, &base, &hidden()).is_err());
    assert!(
        meaningful_perturbation(&net, &x, &Target::Class(99), &base, &hidden()).is_err(),
        "a class the model does not have"
    );
    assert!("extremal?".parse::<Game>().is_err() && "nope".parse::<Score>().is_err());
}
