//! Faithfulness scoring throughput, in (images × methods × forwards) per second: on the 8
//! samples, the gradient and input × gradient maps of each sample's class, scored by AOPC
//! MoRF (region 16: 16 patches, 17 forwards per curve, constant 0) and by deletion (256
//! pixels a step: 17 forwards, constant 0). The same workload in PyTorch,
//! `python3 tools/eval_reference.py --time`, runs at the end of this bench on the same
//! machine (skipped, with a note, where python3 or torch is missing) and the ratio is
//! printed.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netlens::explain::faithfulness::{aopc, deletion_insertion, Order, Score, Substrate};
use netlens::explain::method::{attribute, Settings};
use netlens::explain::Target;
use netlens::Array;

/// The demo model's classes, in class order (tools/train_demo.py).
const SHAPES: [&str; 8] = [
    "circle", "triangle", "square", "star", "cross", "ring", "arrow", "crescent",
];
const METHODS: [&str; 2] = ["gradient", "input-x-gradient"];
const REGION: usize = 16;
const STEP: usize = 256;

fn bench(c: &mut Criterion) {
    let (_ctx, net) = common::demo_net();
    let x = common::samples(&net, &SHAPES);
    let targets: Vec<usize> = (0..SHAPES.len()).collect();
    let bar = indicatif::ProgressBar::hidden();
    let maps: Vec<Array> = METHODS
        .iter()
        .map(|m| {
            let t = Target::Each(targets.clone());
            attribute(&net, m, &x, &t, &Settings::default(), &bar)
                .unwrap()
                .map
        })
        .collect();
    let forwards = |curve_len: usize| (SHAPES.len() * METHODS.len() * curve_len) as u64;
    let zero = Substrate::Constant(0.0);
    let run_aopc = || {
        for m in &maps {
            let r = aopc(
                &net,
                &x,
                m,
                &targets,
                REGION,
                100,
                Order::Morf,
                &zero,
                Score::Prob,
                &bar,
            )
            .unwrap();
            assert_eq!(r[0].curve.len(), 17);
        }
    };
    let run_deletion = || {
        for m in &maps {
            let r = deletion_insertion(&net, &x, m, &targets, STEP, false, &zero, &bar).unwrap();
            assert_eq!(r[0].curve.len(), 17);
        }
    };
    let mut g = c.benchmark_group("evaluate_8x2");
    g.sample_size(10);
    g.throughput(Throughput::Elements(forwards(17)));
    g.bench_function("aopc morf, region 16", |b| b.iter(run_aopc));
    g.bench_function("deletion, step 256", |b| b.iter(run_deletion));
    g.finish();
    // One more timed run of each, for the ratio against the reference below.
    let rate = |f: &dyn Fn()| {
        let t = std::time::Instant::now();
        f();
        forwards(17) as f64 / t.elapsed().as_secs_f64()
    };
    let ours = [("aopc", rate(&run_aopc)), ("deletion", rate(&run_deletion))];
    reference(&ours);
}

/// Runs the PyTorch reference on the same workload and prints both rates and their ratio.
fn reference(ours: &[(&str, f64)]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("python3")
        .arg(format!("{root}/tools/eval_reference.py"))
        .arg("--time")
        .output();
    let o = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().last().unwrap_or("").to_string();
            return eprintln!("reference not run (tools/eval_reference.py --time: {last})");
        }
        Err(e) => return eprintln!("reference not run (python3: {e})"),
    };
    let text = String::from_utf8_lossy(&o.stdout);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
        return eprintln!("reference printed no JSON: {text}");
    };
    eprintln!("reference (same machine, this run): {v}");
    for (metric, rate) in ours {
        if let Some(r) = v[metric]["forwards_per_second"].as_f64() {
            eprintln!(
                "{metric}: netlens {rate:.1} forwards/s, PyTorch {r:.1} forwards/s, netlens / PyTorch time {:.2}x",
                r / rate
            );
        }
    }
}

criterion_group!(evaluate, bench);
criterion_main!(evaluate);
