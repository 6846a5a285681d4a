//! Soak: 1,000 explanations (125 batches of 8, seven methods in turn) in one process, with
//! host memory (resident set) and the GPU buffer pool measured after a warm-up; both must
//! stay flat, and the pool within its bound.

mod common;

use std::sync::Arc;

use netlens::explain::method::{attribute, Settings};
use netlens::explain::Target;
use netlens::gpu::{Context, TEXTURE_POOL_LIMIT};
use netlens::graph::Net;

const SAMPLES: &[&str] = &[
    "arrow", "circle", "crescent", "cross", "ring", "square", "star", "triangle",
];
const METHODS: &[&str] = &[
    "gradient",
    "input-x-gradient",
    "smoothgrad",
    "integrated-gradients",
    "grad-cam",
    "occlusion",
    "lrp-epsilon-plus",
];

fn demo(pool_limit: Option<u64>) -> (Arc<Context>, Net) {
    let mut ctx = Context::from_env().expect("a wgpu adapter");
    if let Some(l) = pool_limit {
        ctx = ctx.with_pool_limit(l);
    }
    let ctx = Arc::new(ctx);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    let net = Net::new(ctx.clone(), netlens::model::load(path.as_ref()).unwrap()).unwrap();
    (ctx, net)
}

fn settings() -> Settings {
    Settings {
        samples: 2,
        steps: 2,
        window: 32,
        stride: 32,
        ..Settings::default()
    }
}

/// Resident set size in bytes (Linux); None elsewhere.
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_thousand_explanations_keep_host_memory_and_the_buffer_pool_flat() {
    let (ctx, net) = demo(None);
    let limit = ctx.pool_stats().limit;
    let x = common::samples(&net, SAMPLES);
    let s = settings();
    let bar = indicatif::ProgressBar::hidden();
    let calls = 1000 / SAMPLES.len();
    let warm = 2 * METHODS.len();
    let (mut rss_warm, mut rss_max, mut pool_warm) = (0, 0, Default::default());
    let mut explained = 0;
    for i in 0..calls {
        let m = METHODS[i % METHODS.len()];
        let a = attribute(&net, m, &x, &Target::Argmax, &s, &bar).unwrap();
        assert!(a.map.data.iter().all(|v| v.is_finite()), "{m}");
        explained += a.map.shape[0];
        let pool = ctx.pool_stats();
        assert_eq!(pool.live_bytes, 0, "{m}: tensors left alive after call {i}");
        assert!(
            pool.free_bytes <= limit && pool.texture_bytes <= TEXTURE_POOL_LIMIT,
            "{m}: pool over its bound: {pool:?}"
        );
        let r = rss().unwrap_or(0);
        if i + 1 == warm {
            (rss_warm, pool_warm) = (r, pool);
        } else if i >= warm {
            rss_max = rss_max.max(r);
            assert_eq!(
                pool, pool_warm,
                "{m}: the pool changed after warm-up (call {i})"
            );
        }
    }
    assert_eq!(explained, 1000);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "soak: resident {:.1} MiB after warm-up, at most {:.1} MiB after; pool {:.1} MiB free in {} buffers",
        mib(rss_warm),
        mib(rss_max),
        mib(pool_warm.free_bytes),
        pool_warm.free_buffers
    );
    if rss().is_some() {
        // allocator slack, not growth: 1,000 explanations leaking even 16 KiB each is 16 MiB
        assert!(
            rss_max < rss_warm + (8 << 20),
            "host memory grew from {:.1} to {:.1} MiB",
            mib(rss_warm),
            mib(rss_max)
        );
    }
}

#[test]
fn the_buffer_pool_keeps_no_more_than_its_bound() {
    let limit = 2 << 20;
    let (ctx, net) = demo(Some(limit));
    let x = common::samples(&net, SAMPLES);
    let bar = indicatif::ProgressBar::hidden();
    let mut maps = Vec::new();
    for m in ["gradient", "lrp-epsilon-plus", "gradient"] {
        let a = attribute(&net, m, &x, &Target::Argmax, &settings(), &bar).unwrap();
        let pool = ctx.pool_stats();
        assert!(
            pool.free_bytes <= limit && pool.free_buffers > 0,
            "{m}: {pool:?}"
        );
        assert_eq!(pool.live_bytes, 0);
        maps.push(a.map);
    }
    // buffers dropped over the bound and made again give the same result
    assert_eq!(maps[0], maps[2]);
    let unbounded = demo(None).1;
    let a = attribute(
        &unbounded,
        "gradient",
        &x,
        &Target::Argmax,
        &settings(),
        &bar,
    )
    .unwrap();
    assert_eq!(
        a.map, maps[0],
        "bounded and unbounded pools give different maps"
    );
}
