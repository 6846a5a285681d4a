//! Faithfulness metrics against the independent numpy + PyTorch reference of
//! tools/eval_reference.py: AOPC curves (MoRF, LeRF; constant, mean and blur substrates)
//! and deletion / insertion curves, for gradient and random maps on the demo model.

mod common;
use common::{demo, fixture, load_tensors, samples};

use netlens::explain::faithfulness::{
    aopc, deletion_insertion, unit_ranks, Order, Score, Substrate,
};
use netlens::Array;

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: curve length");
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        d < 1e-4,
        "{what}: curves differ by {d:.2e}\n{got:?}\n{want:?}"
    );
}

#[test]
fn curves_match_the_reference() {
    let net = demo();
    let want = load_tensors(&fixture("faithfulness.safetensors"));
    let x = samples(&net, &["star", "cross", "triangle"]);
    let targets: Vec<usize> = want["target"].data.iter().map(|t| *t as usize).collect();
    let bar = indicatif::ProgressBar::hidden();
    for name in ["gradient", "random"] {
        let maps = &want[&format!("map.{name}")];
        for (order, key) in [(Order::Morf, "morf"), (Order::Lerf, "lerf")] {
            for (sub, sk) in [
                (Substrate::Constant(0.0), "constant"),
                (Substrate::Mean, "mean"),
                (Substrate::Blur(5.0), "blur"),
            ] {
                let r = aopc(
                    &net,
                    &x,
                    maps,
                    &targets,
                    8,
                    20,
                    order,
                    &sub,
                    Score::Prob,
                    &bar,
                )
                .unwrap();
                for (i, c) in r.iter().enumerate() {
                    let w = &want[&format!("aopc.{name}.{key}.{sk}.{i}")].data;
                    close(&c.curve, w, &format!("aopc {name} {key} {sk} item {i}"));
                    let v = w.iter().map(|p| (w[0] - p) as f64).sum::<f64>() / w.len() as f64;
                    assert!((c.value - v).abs() < 1e-4, "AOPC {} vs {v}", c.value);
                }
            }
        }
        for (insert, key, sub) in [
            (false, "deletion", Substrate::Constant(0.0)),
            (true, "insertion", Substrate::Blur(5.0)),
        ] {
            let r = deletion_insertion(&net, &x, maps, &targets, 41, insert, &sub, &bar).unwrap();
            for (i, c) in r.iter().enumerate() {
                let w = &want[&format!("{key}.{name}.{i}")].data;
                close(&c.curve, w, &format!("{key} {name} item {i}"));
                let n = (w.len() - 1) as f64;
                let auc = w
                    .windows(2)
                    .map(|p| (p[0] + p[1]) as f64 / 2.0)
                    .sum::<f64>()
                    / n;
                assert!(
                    (c.value - auc).abs() < 1e-4,
                    "{key} AUC {} vs {auc}",
                    c.value
                );
            }
        }
    }
}

#[test]
fn ranks_partial_patches_random_orders_and_bad_maps() {
    // 5 x 3 image, region 2: units 3 x 2 (last row and column partial)
    let v: Vec<f32> = (0..15).map(|i| i as f32).collect();
    let (rank, units) = unit_ranks(&v, 5, 3, 2, Order::Morf);
    assert_eq!(units, 6);
    // unit sums: [0+1+3+4, 2+5, 6+7+9+10, 8+11, 12+13, 14] = [8, 7, 32, 19, 25, 14]
    assert_eq!(rank, vec![4, 4, 5, 4, 4, 5, 0, 0, 2, 0, 0, 2, 1, 1, 3]);
    let (lerf, _) = unit_ranks(&v, 5, 3, 2, Order::Lerf);
    assert_eq!(lerf[0], 1);
    // ties by row-major unit index
    let (tied, _) = unit_ranks(&[1.0; 4], 2, 2, 1, Order::Morf);
    assert_eq!(tied, vec![0, 1, 2, 3]);
    let (a, _) = unit_ranks(&v, 5, 3, 1, Order::Random(7));
    let (b, _) = unit_ranks(&v, 5, 3, 1, Order::Random(7));
    let (c, _) = unit_ranks(&v, 5, 3, 1, Order::Random(8));
    assert_eq!(a, b, "seeded orders are deterministic");
    assert_ne!(a, c);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..15).collect::<Vec<u32>>(), "a permutation");
    // maps that do not fit
    let net = demo();
    let x = Array::new(vec![1, 3, 64, 64], vec![0.1; 3 * 4096]).unwrap();
    let bad = Array::new(vec![1, 2, 64, 64], vec![0.0; 2 * 4096]).unwrap();
    let bar = indicatif::ProgressBar::hidden();
    let s = Substrate::Uniform(1);
    assert!(aopc(
        &net,
        &x,
        &bad,
        &[0],
        8,
        10,
        Order::Morf,
        &s,
        Score::Prob,
        &bar
    )
    .is_err());
    let ok = Array::new(vec![1, 1, 64, 64], vec![0.0; 4096]).unwrap();
    assert!(aopc(
        &net,
        &x,
        &ok,
        &[0],
        0,
        10,
        Order::Morf,
        &s,
        Score::Prob,
        &bar
    )
    .is_err());
    assert!(deletion_insertion(&net, &x, &ok, &[0], 0, false, &s, &bar).is_err());
    // seeded uniform noise: the same curve twice
    let r1 = aopc(
        &net,
        &x,
        &ok,
        &[0],
        16,
        4,
        Order::Random(3),
        &s,
        Score::Logit,
        &bar,
    )
    .unwrap();
    let r2 = aopc(
        &net,
        &x,
        &ok,
        &[0],
        16,
        4,
        Order::Random(3),
        &s,
        Score::Logit,
        &bar,
    )
    .unwrap();
    assert_eq!(r1[0].curve, r2[0].curve);
    assert_eq!(r1[0].curve.len(), 5);
}
