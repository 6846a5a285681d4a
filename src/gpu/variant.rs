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

/// Intel's PCI vendor id (`wgpu::AdapterInfo::vendor`).
const INTEL: u32 = 0x8086;

/// The shape of GEMM kernels a device runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gemm {
    /// Shared-memory tiles and barriers: for GPUs.
    Tiled,
    /// `Tiled` with the weights handed round by subgroup broadcasts instead of a
    /// shared-memory tile (same sums, same bits): for GPUs whose subgroups are 8 to 32
    /// lanes, chosen for Intel's, where a broadcast is a register read and workgroup
    /// memory the slow path.
    TiledSubgroup,
    /// No shared memory or barriers, two pixels per lane and a channel block per
    /// workgroup, weights and input read from storage buffers: for software adapters with
    /// 8-lane subgroups, chosen only by name (`CpuTex` is faster on every host measured).
    Cpu,
    /// `Cpu` with the packed weights and the input in read-only storage textures, where a
    /// step's four input channels are one texel load: the default for software adapters
    /// with 8-lane subgroups (lavapipe on x86), faster than `Cpu` with AVX2 (about 3x) and
    /// with AVX-512 (1.2–1.5x on VGG16's convs; see the README's kernel variants).
    CpuTex,
    /// `CpuTex` without subgroups: every lane loads every pixel's inputs itself where
    /// `CpuTex` shares them by broadcasts. For software adapters whose subgroups are not
    /// 8 wide or missing (llvmpipe through GL).
    CpuFetch,
}

impl Gemm {
    /// The variant for a device: for a CPU-backed adapter whose subgroups are 8 lanes
    /// wide (the kernel shares inputs across exactly 8) `CpuTex`; for another CPU-backed
    /// adapter `CpuFetch`; for an Intel GPU with subgroups of 8 to 32 lanes
    /// `TiledSubgroup`; `Tiled` otherwise. `Cpu` is chosen only by name.
    pub fn for_device(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Self {
        if info.device_type != wgpu::DeviceType::Cpu {
            let intel = info.vendor == INTEL;
            if intel && Gemm::TiledSubgroup.supported(info, features) {
                Gemm::TiledSubgroup
            } else {
                Gemm::Tiled
            }
        } else if Self::cpu_supported(info, features) {
            Gemm::CpuTex
        } else {
            Gemm::CpuFetch
        }
    }

    /// Whether a device runs this variant.
    pub fn supported(self, info: &wgpu::AdapterInfo, features: wgpu::Features) -> bool {
        match self {
            Gemm::Tiled | Gemm::CpuFetch => true,
            Gemm::Cpu | Gemm::CpuTex => Self::cpu_supported(info, features),
            Gemm::TiledSubgroup => {
                features.contains(wgpu::Features::SUBGROUP)
                    && info.subgroup_min_size >= 8
                    && info.subgroup_max_size <= 32
            }
        }
    }

    /// What a device lacks for this variant, for error messages.
    pub fn needs(self) -> &'static str {
        match self {
            Gemm::Tiled | Gemm::CpuFetch => "nothing",
            Gemm::Cpu | Gemm::CpuTex => "subgroups of exactly 8 lanes",
            Gemm::TiledSubgroup => "subgroups of 8 to 32 lanes",
        }
    }

    /// The variant of the same shape that needs no subgroups, for error messages.
    pub fn fallback(self) -> Self {
        if self.tiled() {
            Gemm::Tiled
        } else {
            Gemm::CpuFetch
        }
    }

    /// Whether the variant runs the tiled GPU kernels (`Tiled`, `TiledSubgroup`).
    pub fn tiled(self) -> bool {
        matches!(self, Gemm::Tiled | Gemm::TiledSubgroup)
    }

    /// Whether the variant's kernels read weights and input from textures (`CpuTex`,
    /// `CpuFetch`).
    pub fn reads_textures(self) -> bool {
        matches!(self, Gemm::CpuTex | Gemm::CpuFetch)
    }

    /// How the variant's kernels read weights.
    pub fn packing(self) -> Packing {
        match self {
            Gemm::Tiled | Gemm::TiledSubgroup => Packing::Rows,
            Gemm::Cpu | Gemm::CpuTex | Gemm::CpuFetch => Packing::Vec4,
        }
    }

    /// Whether the CPU-shaped kernels can run: subgroups enabled, exactly 8 lanes.
    pub fn cpu_supported(info: &wgpu::AdapterInfo, features: wgpu::Features) -> bool {
        features.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == 8
            && info.subgroup_max_size == 8
    }

    /// `NETLENS_GEMM` (`cpu`, `cpu-tex`, `cpu-fetch`, `tiled`, `tiled-subgroup`, or
    /// `auto`/unset for the adapter's choice).
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("NETLENS_GEMM") {
            Ok(v) if !v.is_empty() && !v.eq_ignore_ascii_case("auto") => v.parse().map(Some),
            _ => Ok(None),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Gemm::Tiled => "tiled",
            Gemm::TiledSubgroup => "tiled-subgroup",
            Gemm::Cpu => "cpu",
            Gemm::CpuTex => "cpu-tex",
            Gemm::CpuFetch => "cpu-fetch",
        }
    }
}

/// When the tiled GEMMs run 3x3 stride-1 convolutions (forward and input gradient) by
/// Winograd's F(2x2, 3x3): 2.25x fewer multiply-adds, three passes more
/// (`ops::winograd`). The CPU-shaped variants always convolve directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winograd {
    /// Never.
    Off,
    /// Where the layer has at least `WINOGRAD_MIN_CHANNELS` input and output channels,
    /// f32 weights and padding at most 2 (the default).
    Auto,
    /// As `Auto` at any channel count (tests).
    All,
}

/// Channels in and out from which `Winograd::Auto` transforms a layer: below, the
/// transforms' passes cost more than the multiply-adds they save.
pub const WINOGRAD_MIN_CHANNELS: usize = 32;

impl Winograd {
    /// `NETLENS_WINOGRAD` (`off`, `auto`, `all`; unset: auto).
    pub fn from_env() -> Result<Self> {
        match std::env::var("NETLENS_WINOGRAD") {
            Ok(v) if !v.is_empty() => v.parse(),
            _ => Ok(Winograd::Auto),
        }
    }
}

impl FromStr for Winograd {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "0" => Ok(Winograd::Off),
            "auto" => Ok(Winograd::Auto),
            "all" => Ok(Winograd::All),
            other => Err(Error::Other(format!(
                "unknown Winograd setting '{other}' (NETLENS_WINOGRAD): use off, auto or all"
            ))),
        }
    }
}

impl FromStr for Gemm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tiled" | "gpu" => Ok(Gemm::Tiled),
            "tiled-subgroup" => Ok(Gemm::TiledSubgroup),
            "cpu" => Ok(Gemm::Cpu),
            "cpu-tex" | "cputex" => Ok(Gemm::CpuTex),
            "cpu-fetch" | "cpufetch" => Ok(Gemm::CpuFetch),
            other => Err(Error::Other(format!(
                "unknown GEMM variant '{other}' (NETLENS_GEMM): use auto, tiled, tiled-subgroup, cpu, cpu-tex or cpu-fetch"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(device_type: wgpu::DeviceType, subgroups: u32) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            subgroup_min_size: subgroups,
            subgroup_max_size: subgroups,
            ..wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan)
        }
    }

    #[test]
    fn winograd_settings_parse_and_bad_ones_say_what_to_use() {
        assert_eq!("off".parse::<Winograd>().unwrap(), Winograd::Off);
        assert_eq!("AUTO".parse::<Winograd>().unwrap(), Winograd::Auto);
        assert_eq!("all".parse::<Winograd>().unwrap(), Winograd::All);
        let e = "fast".parse::<Winograd>().unwrap_err().to_string();
        assert!(
            e.contains("'fast'") && e.contains("off, auto or all"),
            "{e}"
        );
    }

    #[test]
    fn variants_by_adapter() {
        use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu};
        let sg = wgpu::Features::SUBGROUP;
        let none = wgpu::Features::empty();
        assert_eq!(Gemm::for_device(&info(DiscreteGpu, 32), sg), Gemm::Tiled);
        assert_eq!(Gemm::for_device(&info(IntegratedGpu, 8), sg), Gemm::Tiled);
        // lavapipe on x86 (AVX2 or AVX-512): 8 lanes
        assert_eq!(Gemm::for_device(&info(Cpu, 8), sg), Gemm::CpuTex);
        // GL (no subgroups), SwiftShader's 4 lanes
        assert_eq!(Gemm::for_device(&info(Cpu, 8), none), Gemm::CpuFetch);
        assert_eq!(Gemm::for_device(&info(Cpu, 4), sg), Gemm::CpuFetch);
        assert!(Gemm::Cpu.supported(&info(Cpu, 8), sg));
        assert!(!Gemm::Cpu.supported(&info(Cpu, 4), sg));
        // Intel GPUs (8 to 32 lanes) take the subgroup broadcasts; not without subgroups
        let intel = |t, min, max| wgpu::AdapterInfo {
            vendor: INTEL,
            subgroup_min_size: min,
            subgroup_max_size: max,
            ..info(t, min)
        };
        let xe = intel(IntegratedGpu, 8, 32);
        assert_eq!(Gemm::for_device(&xe, sg), Gemm::TiledSubgroup);
        assert_eq!(Gemm::for_device(&xe, none), Gemm::Tiled);
        assert_eq!(
            Gemm::for_device(&intel(DiscreteGpu, 16, 32), sg),
            Gemm::TiledSubgroup
        );
        // and no CPU adapter does, whoever made it; nor subgroups of 64 lanes or 4
        assert_eq!(Gemm::for_device(&intel(Cpu, 8, 8), sg), Gemm::CpuTex);
        assert!(!Gemm::TiledSubgroup.supported(&info(DiscreteGpu, 64), sg));
        assert!(!Gemm::TiledSubgroup.supported(&info(Cpu, 4), sg));
        assert!(Gemm::TiledSubgroup.supported(&info(DiscreteGpu, 32), sg));
        assert_eq!(
            "tiled-subgroup".parse::<Gemm>().unwrap(),
            Gemm::TiledSubgroup
        );
        // where a variant is refused, the error names the one of its shape without subgroups
        assert_eq!(Gemm::TiledSubgroup.fallback(), Gemm::Tiled);
        assert_eq!(Gemm::CpuTex.fallback(), Gemm::CpuFetch);
    }
}
