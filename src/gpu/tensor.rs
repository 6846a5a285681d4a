//! GPU tensors: pooled activation buffers and (possibly split) weight buffers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::context::{scope_error, Context};
use crate::error::{Error, Result};

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Default bound on the bytes a pool keeps in free buffers ([`BufferPool::set_limit`]).
pub const DEFAULT_POOL_LIMIT: u64 = 1 << 30;

/// The pool's free buffers by (size class, usage bits), and its byte counts.
#[derive(Default)]
struct Free {
    lists: HashMap<(u64, u32), Vec<wgpu::Buffer>>,
    free_bytes: u64,
    live_bytes: u64,
    limit: u64,
}

/// Buffers freed by dropped tensors, by (size class, usage), ready for reuse. The free
/// ones hold at most the pool's limit in bytes: a buffer coming back over it is dropped.
pub struct BufferPool {
    free: Arc<Mutex<Free>>,
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool {
            free: Arc::new(Mutex::new(Free {
                limit: DEFAULT_POOL_LIMIT,
                ..Free::default()
            })),
        }
    }
}

/// A pool's byte counts: buffers handed out and not yet back, and free ones kept; and the
/// bytes of packed-input textures kept (at most `TEXTURE_POOL_LIMIT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub live_bytes: u64,
    pub free_bytes: u64,
    pub free_buffers: usize,
    pub limit: u64,
    pub texture_bytes: u64,
}

/// Size classes: 4 steps per power of two, so reuse wastes at most 25%.
fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(256);
    let top = 63 - b.leading_zeros() as u64; // floor(log2)
    let step = (1u64 << top) / 4;
    b.div_ceil(step) * step
}

impl BufferPool {
    pub(crate) fn take(
        &self,
        device: &wgpu::Device,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> PooledBuffer {
        let class = size_class(bytes);
        let key = (class, usage.bits());
        let reused = {
            let mut f = self.free.lock().unwrap();
            f.live_bytes += class;
            let b = f.lists.get_mut(&key).and_then(|v| v.pop());
            if b.is_some() {
                f.free_bytes -= class;
            }
            b
        };
        let buffer = reused.unwrap_or_else(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("netlens pooled"),
                size: class,
                usage,
                mapped_at_creation: false,
            })
        });
        PooledBuffer {
            buffer,
            key,
            home: Arc::downgrade(&self.free),
        }
    }

    /// Whether `b` came from this pool (so from its context's device).
    pub(crate) fn owns(&self, b: &PooledBuffer) -> bool {
        std::ptr::eq(b.home.as_ptr(), Arc::as_ptr(&self.free))
    }

    /// Drops every free buffer.
    pub(crate) fn clear(&self) {
        let mut f = self.free.lock().unwrap();
        f.lists.clear();
        f.free_bytes = 0;
    }

    /// Bounds the bytes kept in free buffers (dropping free ones over it now).
    pub(crate) fn set_limit(&self, bytes: u64) {
        let mut f = self.free.lock().unwrap();
        f.limit = bytes;
        while f.free_bytes > f.limit {
            let Some(key) = f.lists.iter().find(|(_, v)| !v.is_empty()).map(|(k, _)| *k) else {
                break;
            };
            if f.lists.get_mut(&key).and_then(|v| v.pop()).is_some() {
                f.free_bytes -= key.0;
            }
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let f = self.free.lock().unwrap();
        PoolStats {
            live_bytes: f.live_bytes,
            free_bytes: f.free_bytes,
            free_buffers: f.lists.values().map(Vec::len).sum(),
            limit: f.limit,
            texture_bytes: 0,
        }
    }
}

/// Bytes of packed-input textures a context keeps for reuse ([`TexturePool`]).
pub const TEXTURE_POOL_LIMIT: u64 = 256 << 20;

/// The CPU-shaped GEMMs' packed-input textures (rgba32float storage textures), kept by
/// extent for reuse up to `TEXTURE_POOL_LIMIT` bytes: a texture is free when only the
/// pool holds it, i.e. no recording that bound it is still unsubmitted (recorders keep
/// theirs until submit; submitted work runs in order, so a later writer waits for it).
#[derive(Default)]
pub(crate) struct TexturePool {
    kept: Mutex<Kept>,
}

/// The pool's textures by (width, height), and their bytes.
#[derive(Default)]
struct Kept {
    lists: HashMap<(u32, u32), Vec<Arc<wgpu::TextureView>>>,
    bytes: u64,
}

impl TexturePool {
    /// A free texture of this extent, or a new one (kept if the pool has room).
    pub(crate) fn take(
        &self,
        device: &wgpu::Device,
        width: u32,
        height: u32,
    ) -> Arc<wgpu::TextureView> {
        let mut kept = self.kept.lock().unwrap();
        let Kept { lists, bytes } = &mut *kept;
        let list = lists.entry((width, height)).or_default();
        if let Some(v) = list.iter().find(|v| Arc::strong_count(v) == 1) {
            return v.clone();
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("netlens packed input"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::STORAGE_BINDING,
            view_formats: &[],
        });
        let view = Arc::new(texture.create_view(&Default::default()));
        let size = width as u64 * height as u64 * 16;
        if *bytes + size <= TEXTURE_POOL_LIMIT {
            *bytes += size;
            list.push(view.clone());
        }
        view
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.kept.lock().unwrap().bytes
    }

    /// Drops every kept texture (those still bound live until their recording is done).
    pub(crate) fn clear(&self) {
        *self.kept.lock().unwrap() = Default::default();
    }
}

/// A buffer that goes back to its pool when dropped.
pub struct PooledBuffer {
    pub(crate) buffer: wgpu::Buffer,
    key: (u64, u32),
    home: std::sync::Weak<Mutex<Free>>,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let Some(home) = self.home.upgrade() else {
            return;
        };
        let mut f = home.lock().unwrap();
        f.live_bytes -= self.key.0;
        if f.free_bytes + self.key.0 > f.limit {
            // over the bound: dropped, wgpu frees it once queued work is done with it
            return;
        }
        f.free_bytes += self.key.0;
        f.lists
            .entry(self.key)
            .or_default()
            .push(self.buffer.clone());
    }
}

/// A tensor's element type: f32 values, or u32 indices and counts (4 bytes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

/// A tensor on the GPU (NCHW or [N, features]), f32 unless made as u32. Cloning shares
/// the buffer.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) buf: Arc<PooledBuffer>,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

impl Tensor {
    /// An uninitialised tensor from the pool; fails if one binding could not hold it.
    pub fn empty(ctx: &Context, shape: &[usize], what: &str) -> Result<Tensor> {
        let bytes = bytes_of(shape)?;
        check_binding(ctx, what, bytes)?;
        let buf = ctx.pool.take(&ctx.device, bytes, USAGE);
        Ok(Tensor {
            buf: Arc::new(buf),
            shape: shape.to_vec(),
            dtype: DType::F32,
        })
    }

    /// An uninitialised u32 tensor (indices, counts).
    pub fn empty_u32(ctx: &Context, shape: &[usize], what: &str) -> Result<Tensor> {
        Ok(Tensor {
            dtype: DType::U32,
            ..Self::empty(ctx, shape, what)?
        })
    }

    /// A u32 tensor holding `data`.
    pub fn upload_u32(ctx: &Context, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(Error::Shape(format!(
                "{} values do not fill shape {shape:?}",
                data.len()
            )));
        }
        let t = Self::empty_u32(ctx, shape, "input tensor")?;
        ctx.queue
            .write_buffer(&t.buf.buffer, 0, bytemuck::cast_slice(data));
        Ok(t)
    }

    pub fn upload(ctx: &Context, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Shape(format!(
                "{} values do not fill shape {shape:?}",
                data.len()
            )));
        }
        let t = Self::empty(ctx, shape, "input tensor")?;
        ctx.queue
            .write_buffer(&t.buf.buffer, 0, bytemuck::cast_slice(data));
        Ok(t)
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> u64 {
        (self.len() * 4) as u64
    }
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.buf.buffer
    }

    /// Whether both tensors are views of one buffer.
    pub fn shares_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// The same buffer seen with another shape of equal size (flatten, views).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(Error::Shape(format!(
                "cannot view {:?} as {shape:?}",
                self.shape
            )));
        }
        Ok(Tensor {
            buf: self.buf.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// Copies an f32 tensor to the host (waits for the GPU).
    pub fn read(&self, ctx: &Context) -> Result<Vec<f32>> {
        if self.dtype != DType::F32 {
            return Err(Error::Shape(
                "this tensor holds u32 values: use read_u32".into(),
            ));
        }
        Ok(read_all(ctx, &[self])?.remove(0))
    }

    /// Copies a u32 tensor to the host (waits for the GPU).
    pub fn read_u32(&self, ctx: &Context) -> Result<Vec<u32>> {
        if self.dtype != DType::U32 {
            return Err(Error::Shape(
                "this tensor holds f32 values: use read".into(),
            ));
        }
        Ok(read_all(ctx, &[self])?
            .remove(0)
            .into_iter()
            .map(f32::to_bits)
            .collect())
    }
}

/// Copies several tensors to the host with one submission and one wait (a loop's
/// progress values, a result and its statistics). u32 tensors come back as their bits in
/// f32s (`f32::to_bits` recovers them).
pub fn read_all(ctx: &Context, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
    if tensors.iter().any(|t| !ctx.pool.owns(&t.buf)) {
        return Err(Error::Other(
            "a tensor of another context (another device) cannot be read through this one: \
             read it with the context that made it"
                .into(),
        ));
    }
    let offsets: Vec<u64> = tensors
        .iter()
        .scan(0u64, |at, t| {
            let o = *at;
            *at += t.bytes();
            Some(o)
        })
        .collect();
    let bytes = tensors.iter().map(|t| t.bytes()).sum::<u64>().max(4);
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let staging = ctx.pool.take(
        &ctx.device,
        bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    for (t, o) in tensors.iter().zip(&offsets) {
        if t.bytes() > 0 {
            enc.copy_buffer_to_buffer(&t.buf.buffer, 0, &staging.buffer, *o, Some(t.bytes()));
        }
    }
    ctx.queue.submit([enc.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    staging
        .buffer
        .map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            let _ = tx.send(r);
        });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(scope_error("reading tensors back", e));
    }
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::DeviceLost(e.to_string()))?;
    rx.recv()
        .map_err(|_| Error::DeviceLost("map callback dropped".into()))?
        .map_err(|e| Error::DeviceLost(format!("mapping tensors for reading failed: {e}")))?;
    let out = {
        let view = staging
            .buffer
            .get_mapped_range(0..bytes)
            .map_err(|e| Error::DeviceLost(format!("mapped range: {e}")))?;
        let all = bytemuck::cast_slice::<u8, f32>(&view);
        tensors
            .iter()
            .zip(&offsets)
            .map(|(t, o)| all[(*o / 4) as usize..(*o / 4) as usize + t.len()].to_vec())
            .collect()
    };
    staging.buffer.unmap();
    ctx.check("reading tensors back")?;
    Ok(out)
}

pub(crate) fn bytes_of(shape: &[usize]) -> Result<u64> {
    shape
        .iter()
        .try_fold(4u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| Error::Shape(format!("shape {shape:?} overflows")))
}

pub(crate) fn check_binding(ctx: &Context, what: &str, bytes: u64) -> Result<()> {
    let limit = ctx.max_binding();
    if bytes > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            bytes,
            limit,
            hint: "use a smaller input image or batch".into(),
        });
    }
    Ok(())
}
