//! Records kernel launches, then submits them in one command buffer and one compute pass
//! (with `NETLENS_PROFILE`, a timed pass each: profile.rs).
//! All launch parameters go into one pooled uniform buffer at aligned offsets.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::context::{scope_error, Context};
use super::kernels::Kernel;
use super::profile::Ready;
use super::tensor::{PooledBuffer, Tensor};
use crate::error::{Error, Result};

/// A resource bound to a launch: a pooled tensor (kept alive until submit), a weight
/// buffer or a texture.
#[derive(Clone, Copy)]
pub enum Binding<'t> {
    Tensor(&'t Tensor),
    Raw(&'t wgpu::Buffer),
    Texture(&'t wgpu::TextureView),
}

enum Resource {
    /// buffer, bytes bound from its start
    Buffer(wgpu::Buffer, u64),
    Texture(wgpu::TextureView),
}

struct Launch {
    kernel: Kernel,
    half: bool,
    params: (u64, u64),
    resources: Vec<Resource>,
    groups: [u32; 3],
}

pub struct Recorder<'c> {
    ctx: &'c Context,
    params: Vec<u8>,
    launches: Vec<Launch>,
    keep: Vec<Arc<PooledBuffer>>,
    /// Pooled textures bound here, held until submit (`TexturePool`).
    textures: Vec<Arc<wgpu::TextureView>>,
    /// A tensor of another context was bound (wgpu would panic on it): submit's error.
    foreign: Option<String>,
    label: String,
}

impl<'c> Recorder<'c> {
    pub fn new(ctx: &'c Context, label: &str) -> Self {
        Recorder {
            ctx,
            params: Vec::new(),
            launches: Vec::new(),
            keep: Vec::new(),
            textures: Vec::new(),
            foreign: None,
            label: label.into(),
        }
    }

    pub fn ctx(&self) -> &'c Context {
        self.ctx
    }

    /// The kernels recorded so far, in launch order.
    pub fn kernels(&self) -> Vec<Kernel> {
        self.launches.iter().map(|l| l.kernel).collect()
    }

    /// Keeps a pooled texture from reuse until this recording is submitted.
    pub(crate) fn hold(&mut self, texture: Arc<wgpu::TextureView>) {
        self.textures.push(texture);
    }

    /// Records one launch of `kernel` with its uniform parameters and storage bindings.
    pub fn launch<P: bytemuck::Pod>(
        &mut self,
        kernel: Kernel,
        params: &P,
        bindings: &[Binding],
        groups: [u32; 3],
    ) {
        self.launch_gemm(kernel, false, params, bindings, groups)
    }

    /// As `launch`, for a GEMM kernel whose weights are f16 pairs when `half`.
    pub fn launch_gemm<P: bytemuck::Pod>(
        &mut self,
        kernel: Kernel,
        half: bool,
        params: &P,
        bindings: &[Binding],
        groups: [u32; 3],
    ) {
        let foreign = bindings.iter().any(|b| match b {
            Binding::Tensor(t) => !self.ctx.pool.owns(&t.buf),
            _ => false,
        });
        if foreign {
            self.foreign.get_or_insert_with(|| {
                format!(
                    "{}: {kernel:?} was given a tensor of another context (another device); \
                     upload or make it with the context that runs the work",
                    self.label
                )
            });
            return;
        }
        let align = self.ctx.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let offset = self.params.len().div_ceil(align) * align;
        self.params.resize(offset, 0);
        self.params.extend_from_slice(bytemuck::bytes_of(params));
        let resources = bindings
            .iter()
            .map(|b| match b {
                Binding::Tensor(t) => {
                    self.keep.push(t.buf.clone());
                    // whole vec4s, for kernels that view a tensor as vec4s (pooled
                    // buffers are multiples of 64 bytes)
                    let size = t.bytes().max(4).next_multiple_of(16).min(t.buffer().size());
                    Resource::Buffer(t.buffer().clone(), size)
                }
                Binding::Raw(buf) => Resource::Buffer((*buf).clone(), buf.size()),
                Binding::Texture(v) => Resource::Texture((*v).clone()),
            })
            .collect();
        self.launches.push(Launch {
            kernel: kernel.for_weights(half),
            half,
            params: (offset as u64, std::mem::size_of::<P>() as u64),
            resources,
            groups,
        });
    }

    /// Records a 1-D launch over `count` threads of workgroup size 64.
    pub fn launch_1d<P: bytemuck::Pod>(
        &mut self,
        kernel: Kernel,
        params: &P,
        bindings: &[Binding],
        count: usize,
    ) {
        let groups = count.div_ceil(64).max(1) as u32;
        let g = grid(groups);
        self.launch(kernel, params, bindings, g);
    }

    /// Encodes and submits everything recorded; validation and out-of-memory errors
    /// come back typed.
    pub fn submit(self) -> Result<()> {
        if let Some(e) = self.foreign {
            return Err(Error::Other(e));
        }
        if self.launches.is_empty() {
            return Ok(());
        }
        let ctx = self.ctx;
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let ubuf = ctx.pool.take(
            &ctx.device,
            self.params.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        ctx.queue.write_buffer(&ubuf.buffer, 0, &self.params);
        let keys: Vec<_> = self.launches.iter().map(|l| (l.kernel, l.half)).collect();
        ctx.kernels.prepare(&ctx.device, &keys);
        let compiled: Vec<_> = self
            .launches
            .iter()
            .map(|l| ctx.kernels.get(&ctx.device, l.kernel, l.half))
            .collect();
        let ready: Vec<Ready> = self
            .launches
            .iter()
            .zip(&compiled)
            .map(|(l, c)| Ready {
                kernel: l.kernel,
                pipeline: &c.pipeline,
                bind_group: bind_group(ctx, l, &c.layout, &ubuf.buffer),
                groups: l.groups,
            })
            .collect();
        if let Some(p) = &ctx.profiler {
            p.run(&ctx.device, &ctx.queue, &self.label, &ready);
        } else {
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(&self.label),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&self.label),
                    timestamp_writes: None,
                });
                for l in &ready {
                    pass.set_pipeline(l.pipeline);
                    pass.set_bind_group(0, &l.bind_group, &[]);
                    pass.dispatch_workgroups(l.groups[0], l.groups[1], l.groups[2]);
                }
            }
            ctx.queue.submit([enc.finish()]);
        }
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(scope_error(&self.label, e));
        }
        drop(self.keep);
        drop(self.textures);
        ctx.check(&self.label)
    }
}

/// The bind group of launch `l`: its slice of the uniform buffer `params`, then its
/// resources in binding order.
fn bind_group(
    ctx: &Context,
    l: &Launch,
    layout: &wgpu::BindGroupLayout,
    params: &wgpu::Buffer,
) -> wgpu::BindGroup {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: params,
            offset: l.params.0,
            size: NonZeroU64::new(l.params.1),
        }),
    }];
    for (i, r) in l.resources.iter().enumerate() {
        let resource = match r {
            Resource::Buffer(buf, size) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: buf,
                offset: 0,
                size: NonZeroU64::new(*size),
            }),
            Resource::Texture(v) => wgpu::BindingResource::TextureView(v),
        };
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource,
        });
    }
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout,
        entries: &entries,
    })
}

/// Splits a workgroup count over x and z so no dimension passes 65535.
pub fn grid(groups: u32) -> [u32; 3] {
    if groups <= 65535 {
        [groups, 1, 1]
    } else {
        [65535, 1, groups.div_ceil(65535)]
    }
}
