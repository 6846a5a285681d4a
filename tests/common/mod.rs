#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::sync::OnceLock;

use netlens::gpu::{Context, Gemm, Winograd};

/// One device for the whole test binary (pipelines compile once).
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| Context::from_env().expect("a wgpu adapter (install mesa-vulkan-drivers)"))
}

/// One device per GEMM variant this adapter runs (the tiled and the subgroup-free CPU-shaped
/// one always; the tiled one with subgroup broadcasts where subgroups are 8 to 32 lanes;
/// the CPU-shaped ones with buffer and texture weights where subgroups are 8 wide), so
/// kernel tests cover every variant on one machine; last, the tiled one again
/// with Winograd's transforms at any channel count (`winograd_all`).
pub fn gemm_ctxs() -> Vec<&'static Context> {
    static CTXS: OnceLock<Vec<Context>> = OnceLock::new();
    CTXS.get_or_init(|| {
        let mut ctxs: Vec<Context> = [
            Gemm::Tiled,
            Gemm::TiledSubgroup,
            Gemm::Cpu,
            Gemm::CpuTex,
            Gemm::CpuFetch,
        ]
        .into_iter()
        .filter_map(|g| {
            let c = Context::from_env()
                .expect("a wgpu adapter (install mesa-vulkan-drivers)")
                .with_gemm(g);
            (c.gemm() == g).then_some(c)
        })
        .collect();
        ctxs.push(winograd_all());
        ctxs
    })
    .iter()
    .collect()
}

/// The tiled GEMMs with every 3x3 stride-1 convolution by Winograd, whatever its channels.
pub fn winograd_all() -> Context {
    Context::from_env()
        .expect("a wgpu adapter (install mesa-vulkan-drivers)")
        .with_gemm(Gemm::Tiled)
        .with_winograd(Winograd::All)
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// ||a - b|| / ||b||  (b the reference).
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((*x - *y) as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Element-wise |a - b| <= atol + rtol * |b|, with the first failure in the message.
pub fn assert_close(a: &[f32], b: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length mismatch");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= atol + rtol * y.abs(),
            "{what}: element {i}: got {x}, expected {y}"
        );
    }
}

/// All tensors of a safetensors file as f32 arrays, by name.
pub fn load_tensors(path: &str) -> std::collections::BTreeMap<String, netlens::Array> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(name, v)| {
            assert_eq!(v.dtype(), safetensors::Dtype::F32, "{name}");
            let data = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (
                name.to_string(),
                netlens::Array::new(v.shape().to_vec(), data).unwrap(),
            )
        })
        .collect()
}

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A shared device for tests that need an Arc.
pub fn arc_ctx() -> std::sync::Arc<Context> {
    static CTX: OnceLock<std::sync::Arc<Context>> = OnceLock::new();
    CTX.get_or_init(|| std::sync::Arc::new(Context::from_env().expect("a wgpu adapter")))
        .clone()
}

/// The shipped demo model on the shared device.
pub fn demo() -> netlens::graph::Net {
    let path = format!(
        "{}/models/shapes-vgg.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    netlens::graph::Net::new(
        arc_ctx(),
        netlens::model::load(std::path::Path::new(&path)).unwrap(),
    )
    .unwrap()
}

/// Shipped samples (models/samples/NAME.png) preprocessed for `net`, as one batch.
pub fn samples(net: &netlens::graph::Net, names: &[&str]) -> netlens::Array {
    let items: Vec<netlens::Array> = names
        .iter()
        .map(|n| {
            let p = format!("{}/models/samples/{n}.png", env!("CARGO_MANIFEST_DIR"));
            netlens::io::image::load(std::path::Path::new(&p), &net.model().meta).unwrap()
        })
        .collect();
    netlens::Array::concat(&items).unwrap()
}

/// Asserts a host application's device still works after netlens ran on it: a buffer is
/// made, written and submitted, and the queue drains.
pub fn host_device_still_works(device: &wgpu::Device, queue: &wgpu::Queue) {
    let buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&buf, 0, &[0u8; 16]);
    queue.submit([]);
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("the host's device drains its queue");
}

/// The indices of `model`'s max-pool layers.
pub fn max_pool_layers(model: &netlens::model::Model) -> Vec<usize> {
    (0..model.layers.len())
        .filter(|&i| {
            matches!(
                model.layers[i].kind,
                netlens::model::LayerKind::MaxPool2d(_)
            )
        })
        .collect()
}

/// The bits of `a` (NaNs compare by their bits).
pub fn bits(a: &[f32]) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

/// A fixture's `target.<b>` as class indices.
pub fn targets(io: &std::collections::BTreeMap<String, netlens::Array>, b: &str) -> Vec<usize> {
    io[&format!("target.{b}")]
        .data
        .iter()
        .map(|v| *v as usize)
        .collect()
}
