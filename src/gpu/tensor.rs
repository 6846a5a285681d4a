//! GPU tensors: pooled activation buffers and (possibly split) weight buffers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::context::{scope_error, Context};
use crate::error::{Error, Result};

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Free buffers by (size class, usage bits).
type FreeLists = Mutex<HashMap<(u64, u32), Vec<wgpu::Buffer>>>;

/// Buffers freed by dropped tensors, by (size class, usage), ready for reuse.
#[derive(Default)]
pub struct BufferPool {
    free: Arc<FreeLists>,
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
        let reused = self
            .free
            .lock()
            .unwrap()
            .get_mut(&key)
            .and_then(|v| v.pop());
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

    pub(crate) fn clear(&self) {
        self.free.lock().unwrap().clear();
    }
}

/// A buffer that goes back to its pool when dropped.
pub struct PooledBuffer {
    pub(crate) buffer: wgpu::Buffer,
    key: (u64, u32),
    home: std::sync::Weak<FreeLists>,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            home.lock()
                .unwrap()
                .entry(self.key)
                .or_default()
                .push(self.buffer.clone());
        }
    }
}

/// An f32 tensor on the GPU (NCHW or [N, features]). Cloning shares the buffer.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) buf: Arc<PooledBuffer>,
    pub shape: Vec<usize>,
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
        })
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
        })
    }

    /// Copies the tensor to the host (waits for the GPU).
    pub fn read(&self, ctx: &Context) -> Result<Vec<f32>> {
        let bytes = self.bytes().max(4);
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let staging = ctx.pool.take(
            &ctx.device,
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&self.buf.buffer, 0, &staging.buffer, 0, Some(bytes));
        ctx.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .buffer
            .map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                let _ = tx.send(r);
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(scope_error("reading a tensor back", e));
        }
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::DeviceLost(e.to_string()))?;
        rx.recv()
            .map_err(|_| Error::DeviceLost("map callback dropped".into()))?
            .map_err(|e| Error::DeviceLost(format!("mapping a tensor for reading failed: {e}")))?;
        let out = {
            let view = staging
                .buffer
                .get_mapped_range(0..bytes)
                .map_err(|e| Error::DeviceLost(format!("mapped range: {e}")))?;
            bytemuck::cast_slice::<u8, f32>(&view)[..self.len()].to_vec()
        };
        staging.buffer.unmap();
        ctx.check("reading a tensor back")?;
        Ok(out)
    }
}

/// How weights are stored on the device; arithmetic is f32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    /// IEEE half, two per 32-bit word: half the memory (biases stay f32).
    F16,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Precision::F32),
            "f16" | "half" | "float16" => Ok(Precision::F16),
            other => Err(Error::Other(format!(
                "unknown weight precision '{other}': use f32 or f16"
            ))),
        }
    }
}

/// A weight matrix [rows, row_len] held in one or more buffers, each under the
/// binding limit; rows are output channels / features, so a kernel launch per chunk
/// writes its own slice of the output.
pub struct WeightBuffer {
    pub chunks: Vec<WeightChunk>,
    pub rows: usize,
    pub row_len: usize,
    /// false: the bias buffers hold zeros and kernels skip them.
    pub has_bias: bool,
    /// true: each chunk holds f16 pairs packed in u32 words (`Precision::F16`).
    pub half: bool,
}

pub struct WeightChunk {
    pub buffer: wgpu::Buffer,
    pub bias: wgpu::Buffer,
    pub start: usize,
    pub rows: usize,
}

impl WeightBuffer {
    /// Uploads `data` ([rows, row_len]) and its optional bias, split by rows to fit.
    pub fn upload(
        ctx: &Context,
        name: &str,
        data: &[f32],
        rows: usize,
        row_len: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        Self::upload_as(
            ctx,
            name,
            data,
            rows,
            row_len,
            bias,
            Precision::F32,
            ctx.max_binding(),
        )
    }

    /// As `upload`, with an explicit per-buffer limit (tests use it to force splits).
    pub fn upload_limited(
        ctx: &Context,
        name: &str,
        data: &[f32],
        rows: usize,
        row_len: usize,
        bias: Option<&[f32]>,
        limit: u64,
    ) -> Result<Self> {
        Self::upload_as(ctx, name, data, rows, row_len, bias, Precision::F32, limit)
    }

    /// As `upload`, storing the weights at `precision`, split under `limit` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_as(
        ctx: &Context,
        name: &str,
        data: &[f32],
        rows: usize,
        row_len: usize,
        bias: Option<&[f32]>,
        precision: Precision,
        limit: u64,
    ) -> Result<Self> {
        if data.len() != rows * row_len || bias.is_some_and(|b| b.len() != rows) {
            return Err(Error::Shape(format!(
                "{name}: {} values for {rows}x{row_len}",
                data.len()
            )));
        }
        let half = precision == Precision::F16;
        let row_bytes = (row_len * if half { 2 } else { 4 }) as u64;
        // a half chunk rounds up to whole words: keep 4 bytes spare
        let room = if half { limit.saturating_sub(4) } else { limit };
        let per_chunk = (room / row_bytes.max(1)) as usize;
        if per_chunk == 0 {
            return Err(Error::TooLarge {
                what: format!("one row of {name}"),
                bytes: row_bytes,
                limit,
                hint: "a single output channel's weights cannot be split further".into(),
            });
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < rows {
            let n = per_chunk.min(rows - start);
            let rows_data = &data[start * row_len..(start + n) * row_len];
            let buffer = if half {
                create_init(ctx, name, &pack_f16(rows_data))
            } else {
                create_init(ctx, name, rows_data)
            };
            let bias = match bias {
                Some(b) => create_init(ctx, name, &b[start..start + n]),
                None => create_init(ctx, name, &vec![0.0; n]),
            };
            chunks.push(WeightChunk {
                buffer,
                bias,
                start,
                rows: n,
            });
            start += n;
        }
        Ok(WeightBuffer {
            chunks,
            rows,
            row_len,
            has_bias: bias.is_some(),
            half,
        })
    }
}

/// f16 values (round to nearest even) two to a word, the first in the low half; an odd
/// count ends with a zero half.
pub fn pack_f16(data: &[f32]) -> Vec<u32> {
    data.chunks(2)
        .map(|p| {
            let lo = half::f16::from_f32(p[0]).to_bits() as u32;
            let hi = p
                .get(1)
                .map_or(0, |v| half::f16::from_f32(*v).to_bits() as u32);
            lo | (hi << 16)
        })
        .collect()
}

fn create_init<T: bytemuck::Pod>(ctx: &Context, name: &str, data: &[T]) -> wgpu::Buffer {
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(name),
        size: (std::mem::size_of_val(data) as u64).max(4),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue
        .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
    buffer
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
