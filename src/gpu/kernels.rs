//! The WGSL kernels, named by an enum; pipelines and bind-group layouts are built once
//! per device and cached. Shapes reach kernels through a uniform, never the shader text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One shader file per kernel family, embedded at build time.
pub const SOURCES: &[(&str, &str)] = &[
    ("conv2d.wgsl", include_str!("../../kernels/conv2d.wgsl")),
    (
        "conv2d_cpu.wgsl",
        include_str!("../../kernels/conv2d_cpu.wgsl"),
    ),
    ("repack.wgsl", include_str!("../../kernels/repack.wgsl")),
    ("linear.wgsl", include_str!("../../kernels/linear.wgsl")),
    ("pool.wgsl", include_str!("../../kernels/pool.wgsl")),
    (
        "elementwise.wgsl",
        include_str!("../../kernels/elementwise.wgsl"),
    ),
    ("perturb.wgsl", include_str!("../../kernels/perturb.wgsl")),
    ("lrp.wgsl", include_str!("../../kernels/lrp.wgsl")),
];

/// How a kernel sees a binding (binding 0 is always the uniform parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Conv2dForward,
    Conv2dBackwardInput,
    Conv2dForwardCpu,
    Conv2dBackwardInputCpu,
    TransposePacked,
    LinearForward,
    LinearBackwardInput,
    MaxPool2dForward,
    MaxPool2dBackward,
    AvgPool2dForward,
    AvgPool2dBackward,
    AdaptiveAvgPool2dForward,
    AdaptiveAvgPool2dBackward,
    ReluForward,
    ReluBackward,
    SoftmaxForward,
    Occlude,
    LrpRatio,
    LrpCombine,
    LrpClamp,
}

use Access::{Read as R, ReadWrite as W};

impl Kernel {
    pub const ALL: &'static [Kernel] = &[
        Kernel::Conv2dForward,
        Kernel::Conv2dBackwardInput,
        Kernel::Conv2dForwardCpu,
        Kernel::Conv2dBackwardInputCpu,
        Kernel::TransposePacked,
        Kernel::LinearForward,
        Kernel::LinearBackwardInput,
        Kernel::MaxPool2dForward,
        Kernel::MaxPool2dBackward,
        Kernel::AvgPool2dForward,
        Kernel::AvgPool2dBackward,
        Kernel::AdaptiveAvgPool2dForward,
        Kernel::AdaptiveAvgPool2dBackward,
        Kernel::ReluForward,
        Kernel::ReluBackward,
        Kernel::SoftmaxForward,
        Kernel::Occlude,
        Kernel::LrpRatio,
        Kernel::LrpCombine,
        Kernel::LrpClamp,
    ];

    /// (shader file, entry point, storage bindings after the uniform)
    pub fn spec(self) -> (&'static str, &'static str, &'static [Access]) {
        match self {
            Kernel::Conv2dForward => ("conv2d.wgsl", "conv2d_forward", &[R, R, R, W]),
            Kernel::Conv2dBackwardInput => ("conv2d.wgsl", "conv2d_backward_input", &[R, R, R, W]),
            Kernel::Conv2dForwardCpu => ("conv2d_cpu.wgsl", "conv2d_forward_cpu", &[R, R, R, W]),
            Kernel::Conv2dBackwardInputCpu => (
                "conv2d_cpu.wgsl",
                "conv2d_backward_input_cpu",
                &[R, R, R, W],
            ),
            Kernel::TransposePacked => ("repack.wgsl", "transpose_packed", &[R, W]),
            Kernel::LinearForward => ("linear.wgsl", "linear_forward", &[R, R, R, W]),
            Kernel::LinearBackwardInput => ("linear.wgsl", "linear_backward_input", &[R, R, R, W]),
            Kernel::MaxPool2dForward => ("pool.wgsl", "max_pool2d_forward", &[R, W, W]),
            Kernel::MaxPool2dBackward => ("pool.wgsl", "max_pool2d_backward", &[R, W, W]),
            Kernel::AvgPool2dForward => ("pool.wgsl", "avg_pool2d_forward", &[R, W, W]),
            Kernel::AvgPool2dBackward => ("pool.wgsl", "avg_pool2d_backward", &[R, W, W]),
            Kernel::AdaptiveAvgPool2dForward => {
                ("pool.wgsl", "adaptive_avg_pool2d_forward", &[R, W, W])
            }
            Kernel::AdaptiveAvgPool2dBackward => {
                ("pool.wgsl", "adaptive_avg_pool2d_backward", &[R, W, W])
            }
            Kernel::ReluForward => ("elementwise.wgsl", "relu_forward", &[R, W]),
            Kernel::ReluBackward => ("elementwise.wgsl", "relu_backward", &[R, W, W]),
            Kernel::SoftmaxForward => ("elementwise.wgsl", "softmax_forward", &[R, W]),
            Kernel::Occlude => ("perturb.wgsl", "occlude", &[R, W]),
            Kernel::LrpRatio => ("lrp.wgsl", "lrp_ratio", &[R, R, R, R, W]),
            Kernel::LrpCombine => ("lrp.wgsl", "lrp_combine", &[R, R, R, R, W]),
            Kernel::LrpClamp => ("lrp.wgsl", "lrp_clamp", &[R, R, R, R, W]),
        }
    }

    pub fn source(self) -> &'static str {
        let file = self.spec().0;
        SOURCES
            .iter()
            .find(|(f, _)| *f == file)
            .map(|(_, s)| *s)
            .expect("kernel file listed in SOURCES")
    }
}

/// Whether kernels keep wgpu's injected runtime checks (bounds, loop bounding, division
/// guards): off by default, on with `NETLENS_CHECKED_SHADERS=1` (for debugging a kernel).
/// Vulkan drivers' robust buffer access applies either way.
pub fn checked_shaders() -> bool {
    std::env::var("NETLENS_CHECKED_SHADERS").is_ok_and(|v| !v.is_empty() && v != "0")
}

pub struct Compiled {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Shader modules per file and pipelines per kernel, created on first use.
#[derive(Default)]
pub struct KernelCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(Kernel, bool), Arc<Compiled>>>,
}

impl KernelCache {
    /// The pipeline of `kernel`; `half` sets the GEMM kernels' HALF constant (f16 weights).
    pub fn get(&self, device: &wgpu::Device, kernel: Kernel, half: bool) -> Arc<Compiled> {
        if let Some(c) = self.pipelines.lock().unwrap().get(&(kernel, half)) {
            return c.clone();
        }
        let (file, entry, access) = kernel.spec();
        let module = {
            let mut modules = self.modules.lock().unwrap();
            modules
                .entry(file)
                .or_insert_with(|| {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(file),
                        source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
                    };
                    if checked_shaders() {
                        device.create_shader_module(desc)
                    } else {
                        // SAFETY: these are netlens's own kernels, not user input. Every
                        // storage index is guarded or clamped in the WGSL (the kernel tests
                        // run odd, padded, strided, batched and split shapes on both GEMM
                        // variants), every loop runs to a bound from the uniform, and every
                        // integer divisor is a size the launchers check to be non-zero.
                        unsafe {
                            device.create_shader_module_trusted(
                                desc,
                                wgpu::ShaderRuntimeChecks::unchecked(),
                            )
                        }
                    }
                })
                .clone()
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, a) in access.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *a == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &entries,
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: if half { &[("HALF", 1.0)] } else { &[] },
                ..Default::default()
            },
            cache: None,
        });
        let c = Arc::new(Compiled { pipeline, layout });
        self.pipelines
            .lock()
            .unwrap()
            .insert((kernel, half), c.clone());
        c
    }
}
