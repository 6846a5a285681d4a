//! The README's mask numbers: deletion or preservation masks on the demo model for the
//! shipped samples and a freshly generated set, scored against the object masks.
//! cargo run --release --example mask_study -- [deletion|preservation|extremal] [COUNT] [SEED] [k=v ...]
//! (k=v overrides: mask=, l1=, tv=, init=, iters=, lr=, jitter=, seed= (the jitter's), score=;
//! extremal: weight=, growth=, iters=)
use std::sync::Arc;

use netlens::data::synth::render_one;
use netlens::explain::mask::extremal::{extremal_perturbation, ExtremalSettings, Variant};
use netlens::explain::mask::{meaningful_perturbation, Game, MaskSettings};
use netlens::explain::Target;
use netlens::gpu::Context;
use netlens::graph::Net;
use netlens::Array;

struct Item {
    name: String,
    class: usize,
    x: Array,
    object: Vec<bool>,
}

fn samples(net: &Net) -> Vec<Item> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/samples");
    let meta = &net.model().meta;
    let classes = meta.classes.clone().unwrap_or_default();
    classes
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let x = netlens::io::image::load(format!("{dir}/{c}.png").as_ref(), meta).unwrap();
            let obj = image::open(format!("{dir}/{c}_object.png"))
                .unwrap()
                .to_rgb8();
            let object = obj.pixels().map(|p| p.0 != [0, 0, 0]).collect();
            Item {
                name: format!("sample {c}"),
                class: k,
                x,
                object,
            }
        })
        .collect()
}

fn generated(net: &Net, count: usize, seed: u64) -> Vec<Item> {
    let meta = &net.model().meta;
    (0..count)
        .map(|i| {
            let r = render_one(seed, i, 64);
            let img = image::RgbImage::from_raw(64, 64, r.rgb.clone()).unwrap();
            Item {
                name: format!("seed {seed} #{i}"),
                class: r.class,
                x: netlens::io::image::preprocess(&img, meta).unwrap(),
                object: r.object.iter().map(|l| *l != 0).collect(),
            }
        })
        .collect()
}

/// Extremal preserve masks at three areas: the area reached (TorchRay's measure) against
/// the target, and the target's probability on what the mask keeps.
fn extremal(net: &Net, sets: Vec<(&str, Vec<Item>)>, overrides: &[String]) -> netlens::Result<()> {
    let mut s = ExtremalSettings {
        areas: vec![0.05, 0.1, 0.2],
        ..ExtremalSettings::new(Variant::Preserve, (64, 64))
    };
    for kv in overrides {
        let (k, v) = kv.split_once('=').expect("k=v");
        let f: f32 = v.parse().expect("a number");
        match k {
            "weight" => s.regul_weight = f,
            "growth" => s.regul_growth = f,
            "iters" => s.iterations = f as usize,
            o => panic!("unknown setting {o}"),
        }
    }
    println!("{s:?}");
    let names = net.model().meta.classes.clone().unwrap_or_default();
    for (set, items) in sets {
        let x = Array::concat(&items.iter().map(|i| i.x.clone()).collect::<Vec<_>>())?;
        let targets = Target::Each(items.iter().map(|i| i.class).collect());
        let t0 = std::time::Instant::now();
        let r = extremal_perturbation(net, &x, &targets, &s, &indicatif::ProgressBar::hidden())?;
        println!(
            "\n{set} ({} items, {:.1} s)",
            items.len(),
            t0.elapsed().as_secs_f64()
        );
        println!("item              class      area  reached  >=0.5  p(phi)  ok");
        let (mut ok, mut rows) = (0, 0);
        for (k, m) in r.items.iter().enumerate() {
            let it = &items[k / 3];
            if !m.explainable {
                if k % 3 == 0 {
                    println!(
                        "{:<17} {:<9} not explainable (p {:.3} on the blurred input)",
                        it.name,
                        names.get(it.class).map_or("?", |s| s.as_str()),
                        m.p_baseline
                    );
                }
                continue;
            }
            let (t, a) = (m.area_target.unwrap(), m.area.unwrap());
            let pass = (a - t).abs() <= 0.02;
            rows += 1;
            ok += pass as usize;
            println!(
                "{:<17} {:<9} {:>5.2} {:>8.3} {:>6.3} {:>7.3}  {}",
                it.name,
                names.get(it.class).map_or("?", |s| s.as_str()),
                t,
                a,
                m.area_above_half.unwrap(),
                m.p_perturbed,
                if pass { "yes" } else { "NO" }
            );
        }
        println!("{set}: {ok} of {rows} explainable masks within 0.02 of their area");
    }
    Ok(())
}

fn main() -> netlens::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(|s| s.as_str()) == Some("extremal") {
        let count = args.get(1).map_or(8, |s| s.parse().expect("a count"));
        let seed = args.get(2).map_or(2026, |s| s.parse().expect("a seed"));
        let ctx = Arc::new(Context::from_env()?);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
        let net = Net::new(ctx, netlens::model::load(path.as_ref())?)?;
        let sets = vec![
            ("shipped samples", samples(&net)),
            ("generated", generated(&net, count, seed)),
        ];
        return extremal(&net, sets, &args[args.len().min(3)..]);
    }
    let game: Game = args.first().map_or("deletion", |s| s.as_str()).parse()?;
    let count = args.get(1).map_or(32, |s| s.parse().expect("a count"));
    let seed = args.get(2).map_or(2026, |s| s.parse().expect("a seed"));
    let ctx = Arc::new(Context::from_env()?);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    let net = Net::new(ctx, netlens::model::load(path.as_ref())?)?;
    let mut s = MaskSettings::new(game, (64, 64));
    for kv in args.iter().skip(3) {
        let (k, v) = kv.split_once('=').expect("k=v");
        if k == "score" {
            s.score = v.parse()?;
            continue;
        }
        let f: f32 = v.parse().expect("a number");
        match k {
            "mask" => s.mask_size = f as usize,
            "l1" => s.l1 = f,
            "tv" => s.tv = f,
            "init" => s.init = f,
            "iters" => s.iterations = f as usize,
            "lr" => s.lr = f,
            "jitter" => s.jitter = f as usize,
            "seed" => s.seed = f as u64,
            o => panic!("unknown setting {o}"),
        }
    }
    let names = net.model().meta.classes.clone().unwrap_or_default();
    println!("{game:?} {s:?}");
    for (set, items) in [
        ("shipped samples", samples(&net)),
        ("generated", generated(&net, count, seed)),
    ] {
        let x = Array::concat(&items.iter().map(|i| i.x.clone()).collect::<Vec<_>>())?;
        let targets = Target::Each(items.iter().map(|i| i.class).collect());
        let t0 = std::time::Instant::now();
        let r = meaningful_perturbation(&net, &x, &targets, &s, &indicatif::ProgressBar::hidden())?;
        let secs = t0.elapsed().as_secs_f64();
        let (mut ok, mut explainable) = (0, 0);
        println!("\n{set} ({} items, {secs:.1} s)", items.len());
        println!("item              class      p(x0)  p(eta)  p(phi)  region  object  density  ok");
        for (k, (it, m)) in items.iter().zip(&r.items).enumerate() {
            let plane = &r.mask.data[k * 4096..(k + 1) * 4096];
            let mass: Vec<f32> = match game {
                Game::Deletion => plane.iter().map(|v| 1.0 - v).collect(),
                Game::Preservation => plane.to_vec(),
            };
            let region = mass.iter().sum::<f32>() / 4096.0;
            let share = it.object.iter().filter(|o| **o).count() as f32 / 4096.0;
            let on: f32 = mass
                .iter()
                .zip(&it.object)
                .filter(|(_, o)| **o)
                .map(|(v, _)| v)
                .sum();
            let density = on / mass.iter().sum::<f32>().max(1e-12) / share.max(1e-12);
            let pass = match game {
                Game::Deletion => m.p_perturbed < 0.1 && region < 0.15,
                Game::Preservation => m.p_perturbed > 0.9 && region < 0.25,
            } && density >= 1.5;
            if m.explainable {
                explainable += 1;
                ok += pass as usize;
            }
            println!(
                "{:<17} {:<9} {:>6.3} {:>7.3} {:>7.3} {:>6.1}% {:>6.1}% {:>7.2}  {}",
                it.name,
                names.get(it.class).map_or("?", |s| s.as_str()),
                m.p_input,
                m.p_baseline,
                m.p_perturbed,
                100.0 * region,
                100.0 * share,
                density,
                if !m.explainable {
                    "not explainable"
                } else if pass {
                    "yes"
                } else {
                    "NO"
                }
            );
        }
        println!("{set}: {ok} of {explainable} explainable items meet every criterion ({} not explainable)", items.len() - explainable);
    }
    Ok(())
}
