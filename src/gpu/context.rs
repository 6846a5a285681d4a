//! The device context: opens a wgpu backend or wraps a host application's device.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use super::kernels::KernelCache;
use super::profile::{self, KernelTime, Profiler};
use super::tensor::{BufferPool, TexturePool};
use super::variant::{Gemm, Winograd};
use crate::error::{Error, Result};

/// Which wgpu backend to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// The best adapter any backend offers (high-performance first).
    #[default]
    Auto,
    Vulkan,
    Gl,
    Metal,
    Dx12,
}

impl Backend {
    fn backends(self) -> wgpu::Backends {
        match self {
            Backend::Auto => wgpu::Backends::all(),
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Gl => wgpu::Backends::GL,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
        }
    }

    /// The backend named by `NETLENS_BACKEND`, or `Auto` when it is unset.
    pub fn from_env() -> Result<Self> {
        match std::env::var("NETLENS_BACKEND") {
            Ok(v) if !v.is_empty() => v.parse(),
            _ => Ok(Backend::Auto),
        }
    }
}

impl FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Backend::Auto),
            "vulkan" | "vk" => Ok(Backend::Vulkan),
            "gl" | "opengl" | "gles" => Ok(Backend::Gl),
            "metal" | "mtl" => Ok(Backend::Metal),
            "dx12" | "d3d12" => Ok(Backend::Dx12),
            other => Err(Error::Other(format!(
                "unknown backend '{other}': use one of auto, vulkan, gl, metal, dx12"
            ))),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Backend::Auto => "auto",
            Backend::Vulkan => "vulkan",
            Backend::Gl => "gl",
            Backend::Metal => "metal",
            Backend::Dx12 => "dx12",
        };
        f.write_str(s)
    }
}

/// Errors seen outside any error scope, and device loss, kept until the next check.
#[derive(Default)]
pub(crate) struct Health {
    pub uncaptured: Mutex<Vec<String>>,
    pub lost: Mutex<Option<String>>,
}

/// A GPU device with netlens's kernels, pipeline cache and buffer pool.
pub struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) kernels: KernelCache,
    subgroup: Option<u32>,
    pub(crate) pool: BufferPool,
    pub(crate) textures: TexturePool,
    pub(crate) health: Arc<Health>,
    adapter_name: String,
    binding_cap: Option<u64>,
    gemm: Gemm,
    winograd: Winograd,
    pub(crate) profiler: Option<Profiler>,
    /// This context's number in the process: what its weight buffers carry.
    pub(crate) id: u64,
}

/// Numbers for contexts (`Context::id`).
static CONTEXTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Context {
    /// Opens the backend from `NETLENS_BACKEND` (default: best available).
    pub fn from_env() -> Result<Self> {
        Self::new(Backend::from_env()?)
    }

    /// Opens a device on the given backend, with the adapter's full limits.
    pub fn new(backend: Backend) -> Result<Self> {
        // Auto tries the native APIs first and GL only when none of them has an adapter.
        let tries: &[wgpu::Backends] = match backend {
            Backend::Auto => &[
                wgpu::Backends::VULKAN
                    .union(wgpu::Backends::METAL)
                    .union(wgpu::Backends::DX12),
                wgpu::Backends::GL,
            ],
            _ => &[backend.backends()],
        };
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        };
        let mut found = None;
        for backends in tries {
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
            desc.backends = *backends;
            let instance = wgpu::Instance::new(desc);
            found = Some(pollster::block_on(instance.request_adapter(&options)));
            if matches!(found, Some(Ok(_))) {
                break;
            }
        }
        let adapter = found.expect("at least one backend tried").map_err(|e| Error::NoAdapter {
            backend: backend.to_string(),
            hint: format!(
                "{e}. Install a GPU driver, or Mesa's software Vulkan (apt-get install mesa-vulkan-drivers), \
                 or pick another backend with --backend / NETLENS_BACKEND"
            ),
        })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let dd = wgpu::DeviceDescriptor {
            label: Some("netlens"),
            required_features: adapter.features() & wanted_features(),
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&dd))
            .map_err(|e| Error::Device(format!("{} ({:?}): {e}", info.name, info.backend)))?;
        let health = Arc::new(Health::default());
        let h = health.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            h.uncaptured.lock().unwrap().push(e.to_string());
        }));
        let h = health.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *h.lost.lock().unwrap() = Some(format!("{reason:?}: {msg}"));
        });
        let name = format!("{} ({:?}, {})", info.name, info.backend, info.driver);
        Self::build(device, queue, name, health, &info)
    }

    /// Wraps a host application's device and queue (a game engine, a graphics tool).
    /// netlens leaves the device's error handler and lost callback alone; its own work
    /// runs inside error scopes.
    /// The GEMM variant follows the device's adapter type (or `NETLENS_GEMM`).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Self> {
        let info = device.adapter_info();
        let name = format!("host device: {} ({:?})", info.name, info.backend);
        Self::build(device, queue, name, Arc::new(Health::default()), &info)
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_name: String,
        health: Arc<Health>,
        info: &wgpu::AdapterInfo,
    ) -> Result<Self> {
        let limits = device.limits();
        let features = device.features();
        let gemm = match Gemm::from_env()? {
            Some(g) if !g.supported(info, features) => {
                return Err(Error::Other(format!(
                    "NETLENS_GEMM={} needs {}; {} has subgroups of {}..{} lanes ({}): unset \
                     NETLENS_GEMM, or use {}, which needs no subgroups",
                    g.name(),
                    g.needs(),
                    info.name,
                    info.subgroup_min_size,
                    info.subgroup_max_size,
                    if features.contains(wgpu::Features::SUBGROUP) {
                        "on"
                    } else {
                        "off"
                    },
                    g.fallback().name(),
                )))
            }
            Some(g) => g,
            None => Gemm::for_device(info, features),
        };
        let winograd = Winograd::from_env()?;
        let subgroup = Self::subgroup_of(info, features);
        let profiler = profile::requested().then(|| Profiler::for_device(&device, &queue));
        Ok(Context {
            kernels: KernelCache::new(subgroup.unwrap_or(0)),
            subgroup,
            pool: BufferPool::default(),
            textures: TexturePool::default(),
            device,
            queue,
            limits,
            health,
            adapter_name,
            binding_cap: None,
            gemm,
            winograd,
            profiler,
            id: CONTEXTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }
    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// Caps the bytes netlens puts in one binding below the device's limit (tests use it
    /// to force splits; it also bounds single allocations).
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        self.binding_cap = Some(bytes.max(4));
        self
    }

    /// The smallest subgroup size where the device has subgroups (4 to 128 lanes): a
    /// workgroup of that many invocations is one subgroup, which the subgroup kernels
    /// (`linear_forward_subgroup`) rely on.
    pub fn subgroup_size(&self) -> Option<u32> {
        self.subgroup
    }

    fn subgroup_of(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Option<u32> {
        let n = info.subgroup_min_size;
        (features.contains(wgpu::Features::SUBGROUP) && (4..=128).contains(&n)).then_some(n)
    }

    /// The GEMM kernels this context runs.
    pub fn gemm(&self) -> Gemm {
        self.gemm
    }

    /// Forces a GEMM variant (tests and benches run each on one adapter), where the
    /// device supports it; else the context keeps its own.
    pub fn with_gemm(mut self, gemm: Gemm) -> Self {
        let info = self.device.adapter_info();
        if gemm.supported(&info, self.device.features()) {
            self.gemm = gemm;
        }
        self
    }

    /// When the tiled GEMMs convolve by Winograd's F(2x2, 3x3) (`NETLENS_WINOGRAD`).
    pub fn winograd(&self) -> Winograd {
        self.winograd
    }

    /// Sets when the tiled GEMMs convolve by Winograd's F(2x2, 3x3).
    pub fn with_winograd(mut self, winograd: Winograd) -> Self {
        self.winograd = winograd;
        self
    }

    /// The largest storage binding netlens uses on this device, in bytes.
    pub fn max_binding(&self) -> u64 {
        let device = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        self.binding_cap.map_or(device, |c| c.min(device))
    }

    /// Turns pending uncaptured errors and device loss into a typed error.
    pub fn check(&self, context: &str) -> Result<()> {
        if let Some(msg) = self.health.lost.lock().unwrap().clone() {
            return Err(Error::DeviceLost(msg));
        }
        let mut errs = self.health.uncaptured.lock().unwrap();
        if let Some(first) = errs.first().cloned() {
            errs.clear();
            return Err(classify(context, first));
        }
        Ok(())
    }

    /// Times every launch from now on, as `NETLENS_PROFILE=1` does from the start (with
    /// the device's timestamps only where it opened with them).
    pub fn with_profile(mut self) -> Self {
        if self.profiler.is_none() {
            self.profiler = Some(Profiler::for_device(&self.device, &self.queue));
        }
        self
    }

    /// Device time per kernel so far, the longest first, when `NETLENS_PROFILE` was set as
    /// the context opened (else `None`).
    pub fn profile(&self) -> Option<Vec<(String, KernelTime)>> {
        self.profiler.as_ref().map(Profiler::times)
    }

    /// `profile` as a table (printed to stderr when a profiling context closes).
    pub fn profile_report(&self) -> Option<String> {
        let p = self.profiler.as_ref()?;
        Some(p.report(&self.adapter_name))
    }

    /// Blocks until the queue is idle.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::DeviceLost(e.to_string()))?;
        self.check("wait")
    }

    /// Frees the pooled buffers and packed-input textures not in use.
    pub fn trim_pool(&self) {
        self.pool.clear();
        self.textures.clear();
    }

    /// Bounds the bytes the buffer pool keeps in free buffers (default
    /// [`DEFAULT_POOL_LIMIT`](super::tensor::DEFAULT_POOL_LIMIT), 1 GiB); buffers freed
    /// over it go back to the driver. A host application sharing its device lowers it.
    pub fn with_pool_limit(self, bytes: u64) -> Self {
        self.pool.set_limit(bytes);
        self
    }

    /// The buffer pool's byte counts: in use by tensors, and kept free for reuse; and the
    /// packed-input textures kept.
    pub fn pool_stats(&self) -> super::tensor::PoolStats {
        super::tensor::PoolStats {
            texture_bytes: self.textures.bytes(),
            ..self.pool.stats()
        }
    }
}

pub(crate) fn classify(context: &str, message: String) -> Error {
    let lower = message.to_ascii_lowercase();
    if lower.contains("out of memory") || lower.contains("outofmemory") {
        Error::OutOfMemory {
            context: context.into(),
            message,
        }
    } else if lower.contains("lost") {
        Error::DeviceLost(message)
    } else {
        Error::Validation {
            context: context.into(),
            message,
        }
    }
}

pub(crate) fn scope_error(context: &str, e: wgpu::Error) -> Error {
    match e {
        wgpu::Error::OutOfMemory { source } => Error::OutOfMemory {
            context: context.into(),
            message: source.to_string(),
        },
        other => classify(context, other.to_string()),
    }
}

/// Device features netlens asks for where the adapter has them: subgroups (the GEMV and
/// CPU-shaped kernels), and timestamps when profiling.
fn wanted_features() -> wgpu::Features {
    if profile::requested() {
        wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY
    } else {
        wgpu::Features::SUBGROUP
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(r) = self.profile_report() {
            if self.profile().is_some_and(|t| !t.is_empty()) {
                eprint!("{r}");
            }
        }
    }
}
