//! Kernel variants chosen per adapter: the GEMMs (conv, linear and their input gradients,
//! which LRP also runs) come in a shape for GPUs and one for CPU-backed adapters.

use std::str::FromStr;

use crate::error::{Error, Result};

/// The shape of GEMM kernels a device runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gemm {
    /// Shared-memory tiles and barriers: for GPUs.
    Tiled,
    /// No shared memory or barriers, one pixel per lane and a channel block per
    /// workgroup: for software adapters (lavapipe, llvmpipe, WARP, SwiftShader).
    Cpu,
    /// `Cpu` with the packed weights in textures: for software adapters on CPUs without
    /// AVX-512, where lavapipe's storage-buffer loads stall (about 3x slower).
    CpuTex,
}

impl Gemm {
    /// The variant for a device: for a CPU-backed adapter whose subgroups are 8 lanes
    /// wide (the kernel shares weights across exactly 8) `Cpu`, or `CpuTex` on an x86
    /// CPU without AVX-512; `Tiled` otherwise.
    pub fn for_device(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Self {
        if info.device_type == wgpu::DeviceType::Cpu && Self::cpu_supported(info, features) {
            if Self::textures_faster() {
                Gemm::CpuTex
            } else {
                Gemm::Cpu
            }
        } else {
            Gemm::Tiled
        }
    }

    /// Whether the CPU-shaped kernels read weights faster from textures on this host:
    /// measured on AVX2 without AVX-512 (`NETLENS_GEMM=cpu|cpu-tex cargo bench --bench
    /// kernels -- conv2d/`: 3.3 vs 10.9 GFLOP/s); AVX-512 hosts keep the buffer kernels,
    /// measured at 35–38 GFLOP/s there.
    fn textures_faster() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            !std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether the variant reads packed (CPU-shaped) weights.
    pub fn packed(self) -> bool {
        matches!(self, Gemm::Cpu | Gemm::CpuTex)
    }

    /// Whether the CPU-shaped kernels can run: subgroups enabled, exactly 8 lanes.
    pub fn cpu_supported(info: &wgpu::AdapterInfo, features: wgpu::Features) -> bool {
        features.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == 8
            && info.subgroup_max_size == 8
    }

    /// `NETLENS_GEMM` (`cpu`, `cpu-tex`, `tiled`, or `auto`/unset for the adapter's
    /// choice).
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("NETLENS_GEMM") {
            Ok(v) if !v.is_empty() && !v.eq_ignore_ascii_case("auto") => v.parse().map(Some),
            _ => Ok(None),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Gemm::Tiled => "tiled",
            Gemm::Cpu => "cpu",
            Gemm::CpuTex => "cpu-tex",
        }
    }
}

impl FromStr for Gemm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tiled" | "gpu" => Ok(Gemm::Tiled),
            "cpu" => Ok(Gemm::Cpu),
            "cpu-tex" | "cputex" => Ok(Gemm::CpuTex),
            other => Err(Error::Other(format!(
                "unknown GEMM variant '{other}' (NETLENS_GEMM): use auto, tiled, cpu or cpu-tex"
            ))),
        }
    }
}
