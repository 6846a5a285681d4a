//! Kernel variants chosen per adapter: the GEMMs (conv, linear and their input gradients,
//! which LRP also runs) come in a shape for GPUs and one for CPU-backed adapters.

use std::str::FromStr;

use crate::error::{Error, Result};

/// How a weight matrix is laid out on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// PyTorch's: [rows, cin, taps] (the tiled kernels).
    Rows,
    /// vec4s of 4 reduction channels, [row][tap][ci/4] (the CPU-shaped variants).
    Vec4,
}

/// The shape of GEMM kernels a device runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gemm {
    /// Shared-memory tiles and barriers: for GPUs.
    Tiled,
    /// No shared memory or barriers, two pixels per lane and a channel block per
    /// workgroup: for software adapters (lavapipe, llvmpipe, WARP, SwiftShader).
    Cpu,
    /// `Cpu` with the packed weights and the input in read-only storage textures: for
    /// software adapters on CPUs without AVX-512, where lavapipe's storage-buffer loads
    /// stall (about 3x slower).
    CpuTex,
    /// `CpuTex` without subgroups: every lane loads every pixel's inputs itself where
    /// `CpuTex` shares them by broadcasts. For software adapters whose subgroups are not
    /// 8 wide or missing (llvmpipe through GL).
    CpuFetch,
}

impl Gemm {
    /// The variant for a device: for a CPU-backed adapter whose subgroups are 8 lanes
    /// wide (the kernel shares inputs across exactly 8) `Cpu`, or `CpuTex` on an x86
    /// CPU without AVX-512; for another CPU-backed adapter `CpuFetch`; `Tiled` otherwise.
    pub fn for_device(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Self {
        if info.device_type != wgpu::DeviceType::Cpu {
            Gemm::Tiled
        } else if Self::cpu_supported(info, features) {
            if Self::textures_faster() {
                Gemm::CpuTex
            } else {
                Gemm::Cpu
            }
        } else {
            Gemm::CpuFetch
        }
    }

    /// Whether a device runs this variant.
    pub fn supported(self, info: &wgpu::AdapterInfo, features: wgpu::Features) -> bool {
        match self {
            Gemm::Tiled | Gemm::CpuFetch => true,
            Gemm::Cpu | Gemm::CpuTex => Self::cpu_supported(info, features),
        }
    }

    /// What a device lacks for this variant, for error messages.
    pub fn needs(self) -> &'static str {
        match self {
            Gemm::Tiled | Gemm::CpuFetch => "nothing",
            Gemm::Cpu | Gemm::CpuTex => "subgroups of exactly 8 lanes",
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

    /// Whether the variant's kernels read weights and input from textures (`CpuTex`,
    /// `CpuFetch`).
    pub fn reads_textures(self) -> bool {
        matches!(self, Gemm::CpuTex | Gemm::CpuFetch)
    }

    /// How the variant's kernels read weights.
    pub fn packing(self) -> Packing {
        match self {
            Gemm::Tiled => Packing::Rows,
            Gemm::Cpu | Gemm::CpuTex | Gemm::CpuFetch => Packing::Vec4,
        }
    }

    /// Whether the CPU-shaped kernels can run: subgroups enabled, exactly 8 lanes.
    pub fn cpu_supported(info: &wgpu::AdapterInfo, features: wgpu::Features) -> bool {
        features.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == 8
            && info.subgroup_max_size == 8
    }

    /// `NETLENS_GEMM` (`cpu`, `cpu-tex`, `cpu-fetch`, `tiled`, or `auto`/unset for the
    /// adapter's choice).
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
            Gemm::CpuFetch => "cpu-fetch",
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
            "cpu-fetch" | "cpufetch" => Ok(Gemm::CpuFetch),
            other => Err(Error::Other(format!(
                "unknown GEMM variant '{other}' (NETLENS_GEMM): use auto, tiled, cpu, cpu-tex or cpu-fetch"
            ))),
        }
    }
}
