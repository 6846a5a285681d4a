//! Weight matrices on the device: split by rows under the binding limit, stored as f32 or
//! f16, and laid out for the context's GEMM kernels (the tiled kernels read PyTorch's
//! layout; the CPU-shaped ones read vec4 groups of 4 reduction channels).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::context::Context;
use super::kernels::Kernel;
use super::recorder::{grid, Binding, Recorder};
use super::upload::{buffer_packed, HostRows};
use super::variant::Packing;
use super::weight_texture::{buffer_from, texture_from, texture_packed, weight_texture};
use crate::error::{Error, Result};

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

/// What a weight matrix [rows, row_len] feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightKind {
    /// rows = output features, a row = the input features.
    Linear,
    /// rows = output channels, a row = [cin, taps], taps = kernel height x width.
    Conv { taps: usize },
}

/// How to store a weight matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightLayout {
    pub kind: WeightKind,
    pub precision: Precision,
    /// Bytes per buffer; `None`: the device's binding limit (tests force splits with it).
    pub limit: Option<u64>,
    /// Weights only input gradients read (LRP's modified weights of a backward step): the
    /// CPU-shaped variants get their transposed packing from the host and no forward one.
    pub backward_only: bool,
}

impl WeightLayout {
    pub fn linear() -> Self {
        WeightLayout {
            kind: WeightKind::Linear,
            precision: Precision::F32,
            limit: None,
            backward_only: false,
        }
    }
    pub fn conv(taps: usize) -> Self {
        WeightLayout {
            kind: WeightKind::Conv { taps },
            ..Self::linear()
        }
    }
    pub fn precision(self, precision: Precision) -> Self {
        WeightLayout { precision, ..self }
    }
    pub fn limit(self, bytes: u64) -> Self {
        WeightLayout {
            limit: Some(bytes),
            ..self
        }
    }
    pub fn backward_only(self) -> Self {
        WeightLayout {
            backward_only: true,
            ..self
        }
    }
    fn taps(&self) -> usize {
        match self.kind {
            WeightKind::Linear => 1,
            WeightKind::Conv { taps } => taps,
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
    pub kind: WeightKind,
    /// false: the bias buffers hold zeros and kernels skip them.
    pub has_bias: bool,
    /// true: f16 values packed two to a 32-bit word (`Precision::F16`).
    pub half: bool,
    /// The layout the context's GEMM kernels read.
    pub packing: Packing,
    /// The context (`Context::id`) whose device holds the buffers.
    pub(crate) ctx: u64,
    /// Items whose input gradients have been asked of this matrix so far (linear layers).
    strip_items: AtomicUsize,
    /// Only the transposed packing is held (`WeightLayout::backward_only`).
    backward_only: bool,
}

/// Items whose input gradients a linear layer takes from its forward packing (the GEMV's
/// strips twin, at any batch) before its transposed one is made. On lavapipe (AVX2) that
/// GEMV took 63-65 ms an item on fc6, the one over the transposed rows 28-30 ms, and
/// transposing fc6-fc8 about 1.6 s in a cold run (about 45 items' difference): a loop pays
/// for the copy well before its end, a single pass of a few items never does.
pub(crate) const STRIP_ITEMS: usize = 32;

pub struct WeightChunk {
    /// Rows [start, start + rows) as `Packing` says; `None` on the texture-reading
    /// variants (`Gemm::CpuTex`, `Gemm::CpuFetch`), which hold weights only as textures.
    buffer: Option<wgpu::Buffer>,
    /// The transposed packing for the CPU-shaped input-gradient GEMMs (their GEMVs read
    /// the forward one), made on first use.
    backward: OnceLock<wgpu::Buffer>,
    /// The forward and transposed packings as textures for the texture-reading variants:
    /// weights are written into `texture` at upload (f16 as pairs of halves in
    /// rgba16float); `backward_texture` is made from it on first use.
    texture: OnceLock<wgpu::TextureView>,
    backward_texture: OnceLock<wgpu::TextureView>,
    /// The tiled GEMMs' Winograd weights of a 3x3 convolution (`ops::winograd`), made on
    /// the device from `buffer` on first use: forward [16][rows][cin], input gradient
    /// [16][cin][rows].
    winograd: [OnceLock<wgpu::Buffer>; 2],
    pub bias: wgpu::Buffer,
    pub start: usize,
    pub rows: usize,
}

impl WeightChunk {
    /// The chunk's buffer: every chunk has one but those on the texture-reading variants,
    /// whose kernels never ask for it.
    pub fn buffer(&self) -> Result<&wgpu::Buffer> {
        self.buffer
            .as_ref()
            .ok_or_else(|| Error::Other("these weights are held as a texture, not a buffer".into()))
    }
}

impl WeightBuffer {
    /// Uploads a linear layer's `data` ([rows, row_len]) and its optional bias as f32.
    pub fn upload(
        ctx: &Context,
        name: &str,
        data: &[f32],
        rows: usize,
        row_len: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        Self::upload_with(ctx, name, data, rows, row_len, bias, WeightLayout::linear())
    }

    /// Uploads a convolution's weights [cout, cin, kh, kw] and optional bias as f32.
    pub fn upload_conv(
        ctx: &Context,
        name: &str,
        data: &[f32],
        cout: usize,
        taps: usize,
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        let row_len = data.len() / cout.max(1);
        Self::upload_with(
            ctx,
            name,
            data,
            cout,
            row_len,
            bias,
            WeightLayout::conv(taps),
        )
    }

    /// Uploads `data` ([rows, row_len]) as `layout` says, split by rows to fit.
    pub fn upload_with(
        ctx: &Context,
        name: &str,
        data: &[f32],
        rows: usize,
        row_len: usize,
        bias: Option<&[f32]>,
        layout: WeightLayout,
    ) -> Result<Self> {
        let data = HostRows::Borrowed(data);
        Self::upload_rows(ctx, name, data, rows, row_len, bias, layout)
    }

    /// As `upload_with`, giving `data` back to the allocator from its end as its rows are
    /// written (the rows go last first), so that a large matrix and its device copy are not
    /// both whole in host memory (on lavapipe the device's memory is the host's).
    pub fn upload_owned(
        ctx: &Context,
        name: &str,
        data: Vec<f32>,
        rows: usize,
        row_len: usize,
        bias: Option<&[f32]>,
        layout: WeightLayout,
    ) -> Result<Self> {
        let data = HostRows::Owned(data);
        Self::upload_rows(ctx, name, data, rows, row_len, bias, layout)
    }

    pub(crate) fn upload_rows(
        ctx: &Context,
        name: &str,
        mut data: HostRows,
        rows: usize,
        row_len: usize,
        bias: Option<&[f32]>,
        layout: WeightLayout,
    ) -> Result<Self> {
        let taps = layout.taps();
        if data.len() != rows * row_len
            || bias.is_some_and(|b| b.len() != rows)
            || taps == 0
            || !row_len.is_multiple_of(taps)
        {
            return Err(Error::Shape(format!(
                "{name}: {} values for {rows}x{row_len} ({taps} taps)",
                data.len()
            )));
        }
        let half = layout.precision == Precision::F16;
        let packing = ctx.gemm().packing();
        let pack = Pack {
            cin: row_len / taps,
            taps,
            half,
        };
        let elem = if half { 2 } else { 4 };
        let bytes = |n: usize| -> u64 {
            let (fwd, bwd) = pack.lens(packing, n);
            (fwd.max(bwd) * elem) as u64
        };
        let limit = layout
            .limit
            .unwrap_or(ctx.max_binding())
            .min(ctx.max_binding());
        let unit = 4;
        let mut per_chunk = rows;
        while per_chunk > 0 && bytes(per_chunk) > limit {
            // shrink towards what fits, then keep whole units (no padding inside a split)
            let guess = (per_chunk as u64 * limit / bytes(per_chunk).max(1)) as usize;
            per_chunk = if guess >= unit {
                (guess.min(per_chunk - 1) / unit) * unit
            } else {
                per_chunk - 1
            };
        }
        if per_chunk == 0 {
            return Err(Error::TooLarge {
                what: format!("one row of {name}"),
                bytes: bytes(1),
                limit,
                hint: "a single output channel's weights cannot be split further".into(),
            });
        }
        // weights on the texture-reading variants go straight into their texture
        let textured = ctx.gemm().reads_textures();
        // the tiled kernels' input gradients read the forward layout
        let backward_only = layout.backward_only && packing == Packing::Vec4;
        // fills chunk `ch` (rows [start, start + n) of `data`) with what it holds from the
        // upload on; the rest is made on first use. Rows past `start` are not read again.
        let store = |ch: &mut WeightChunk, data: &mut HostRows| -> Result<()> {
            let (start, n) = (ch.start, ch.rows);
            let row_len = pack.taps * pack.cin;
            if backward_only {
                let part = data.rows(start * row_len, n * row_len)?;
                let lines = pack.cin * pack.taps;
                let line = n.div_ceil(4) * 4;
                if textured {
                    let bytes = (pack.lens(packing, n).1 * elem) as u64;
                    let t = texture_packed(ctx, bytes, lines, line, half, |l0, k| {
                        Ok(pack.backward_lines(&part, n, l0, k))
                    })?;
                    ch.backward_texture = OnceLock::from(t);
                } else {
                    let buf = create_packed(ctx, name, &pack.backward(packing, &part, n), half);
                    ch.backward = OnceLock::from(buf);
                }
                drop(part);
                data.release_from(start * row_len);
                return Ok(());
            }
            if textured && packing != Packing::Vec4 {
                return Err(Error::Other(
                    "weight textures hold the CPU-shaped kernels' Vec4 packing only".into(),
                ));
            }
            let line = pack.line(packing);
            let bytes = (pack.lens(packing, n).0 * elem) as u64;
            // rows [r, r + k) of the chunk, packed; the rows from them on are given back
            let piece = |r: usize, k: usize| {
                let from = (start + r) * row_len;
                let v = pack.forward_rows(packing, &data.rows(from, k * row_len)?, k);
                data.release_from(from);
                Ok(v)
            };
            if textured {
                ch.texture = OnceLock::from(texture_packed(ctx, bytes, n, line, half, piece)?);
            } else {
                ch.buffer = Some(buffer_packed(ctx, name, bytes, n, line, half, piece)?);
            }
            Ok(())
        };
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < rows {
            let n = per_chunk.min(rows - start);
            let bias = match bias {
                Some(b) => create_init(ctx, name, &b[start..start + n]),
                None => create_init(ctx, name, &vec![0.0f32; n]),
            };
            chunks.push(WeightChunk {
                buffer: None,
                backward: OnceLock::new(),
                texture: OnceLock::new(),
                backward_texture: OnceLock::new(),
                winograd: Default::default(),
                bias,
                start,
                rows: n,
            });
            start += n;
        }
        // the last chunk first, so that owned rows are given back from their end
        for ch in chunks.iter_mut().rev() {
            store(ch, &mut data)?;
            // hand this chunk's staged writes to the queue and wait for them, so that one
            // chunk's staging memory is alive at a time (fc6's four chunks would hold 411 MB)
            ctx.queue.submit([]);
            ctx.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::DeviceLost(format!("uploading {name}: {e}")))?;
        }
        data.release_from(0);
        Ok(WeightBuffer {
            chunks,
            rows,
            row_len,
            kind: layout.kind,
            has_bias: bias.is_some(),
            half,
            packing,
            ctx: ctx.id,
            strip_items: AtomicUsize::new(0),
            backward_only,
        })
    }

    /// Reduction channels per tap (the conv's cin, the linear layer's inputs).
    pub fn cin(&self) -> usize {
        self.row_len / self.taps()
    }

    fn taps(&self) -> usize {
        match self.kind {
            WeightKind::Linear => 1,
            WeightKind::Conv { taps } => taps,
        }
    }

    /// What a forward launch over chunk `i` binds as its weights: the chunk's buffer, or
    /// under `Gemm::CpuTex` and `Gemm::CpuFetch` its texture, written at upload.
    pub(crate) fn forward_source(&self, ctx: &Context, i: usize) -> Result<WeightSource> {
        if self.backward_only {
            return Err(Error::Other(
                "these weights were uploaded for input gradients only (backward_only)".into(),
            ));
        }
        let ch = &self.chunks[i];
        if !ctx.gemm().reads_textures() {
            return Ok(WeightSource::Buffer(ch.buffer()?.clone()));
        }
        let t = ch.texture.get().cloned().ok_or_else(|| {
            Error::Other("these weights were uploaded for a GEMM that reads buffers".into())
        })?;
        Ok(WeightSource::Texture(t))
    }

    /// As `forward_source`, for an input-gradient GEMM launch (`backward_buffer`'s layout),
    /// made from the forward texture on first use and kept. f32 weights are transposed
    /// from texture to texture; f16 ones are copied out to a buffer, transposed as bits
    /// into another and copied into the new texture (a store through rgba16float might not
    /// keep subnormal halves), and the buffers dropped.
    pub(crate) fn backward_source(&self, ctx: &Context, i: usize) -> Result<WeightSource> {
        if !ctx.gemm().reads_textures() {
            return Ok(WeightSource::Buffer(self.backward_buffer(ctx, i)?));
        }
        let ch = &self.chunks[i];
        let t = cached(&ch.backward_texture, || {
            let WeightSource::Texture(from) = self.forward_source(ctx, i)? else {
                return Err(Error::Other(
                    "a texture-reading GEMM read a weight buffer".into(),
                ));
            };
            if self.half {
                let bytes = (self.pack().lens(self.packing, ch.rows).0 * 2) as u64;
                let src = buffer_from(ctx, &from, bytes, true);
                texture_from(ctx, &self.transpose(ctx, ch, &src)?, true)
            } else {
                self.transpose_to_texture(ctx, ch, &from)
            }
        })?;
        Ok(WeightSource::Texture(t))
    }

    /// What an input-gradient launch of a linear layer over chunk `i` for `items` items
    /// reads: the forward packing (true: through the GEMV's strips twin) until
    /// `STRIP_ITEMS` items have asked, else the transposed one, made here if need be.
    /// Either way the sums are the same bits.
    pub(crate) fn gemv_backward_source(
        &self,
        ctx: &Context,
        i: usize,
        items: usize,
    ) -> Result<(WeightSource, bool)> {
        let seen = if i == 0 {
            self.strip_items.fetch_add(items, Ordering::Relaxed) + items
        } else {
            self.strip_items.load(Ordering::Relaxed)
        };
        if seen > STRIP_ITEMS || self.backward_only {
            return Ok((self.backward_source(ctx, i)?, false));
        }
        Ok((self.forward_source(ctx, i)?, true))
    }

    /// The buffer an input-gradient launch reads for chunk `i`: the chunk itself, or for
    /// packed weights their transpose, made on the device at first use and kept.
    pub(crate) fn backward_buffer(&self, ctx: &Context, i: usize) -> Result<wgpu::Buffer> {
        let ch = &self.chunks[i];
        if self.packing == Packing::Rows {
            return Ok(ch.buffer()?.clone());
        }
        cached(&ch.backward, || self.transpose(ctx, ch, ch.buffer()?))
    }

    /// Chunk `i`'s Winograd weights (G g G^T of each 3x3 kernel g, f32) for the forward
    /// GEMMs, [16][rows][cin], or with `backward` of the flipped kernels for the input
    /// gradient's, [16][cin][rows]; made on the device from the chunk's f32 rows on first
    /// use and kept.
    pub(crate) fn winograd_buffer(
        &self,
        ctx: &Context,
        i: usize,
        backward: bool,
    ) -> Result<wgpu::Buffer> {
        let ch = &self.chunks[i];
        if self.packing != Packing::Rows || self.half || self.taps() != 9 {
            return Err(Error::Other(
                "Winograd weights come from f32 3x3 kernels in rows (the tiled GEMMs)".into(),
            ));
        }
        cached(&ch.winograd[backward as usize], || {
            let cin = self.cin();
            let dst = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("netlens Winograd weights"),
                size: (16 * ch.rows * cin * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let p = [ch.rows as u32, cin as u32, backward as u32, 0];
            let mut rec = Recorder::new(ctx, "Winograd weights");
            let io = [Binding::Raw(ch.buffer()?), Binding::Raw(&dst)];
            rec.launch_1d(Kernel::WinogradWeights, &p, &io, ch.rows * cin);
            rec.submit()?;
            Ok(dst)
        })
    }

    /// Chunk `ch`'s f32 weights transposed on the device from their forward texture `from`
    /// into a new texture.
    fn transpose_to_texture(
        &self,
        ctx: &Context,
        ch: &WeightChunk,
        from: &wgpu::TextureView,
    ) -> Result<wgpu::TextureView> {
        let bytes = (self.pack().lens(self.packing, ch.rows).1 * 4) as u64;
        let (texture, width) = weight_texture(ctx, bytes, false)?;
        let view = texture.create_view(&Default::default());
        let io = [Binding::Texture(from), Binding::Texture(&view)];
        let shifts = (
            width.trailing_zeros(),
            from.texture().width().trailing_zeros(),
        );
        self.transpose_into(ctx, ch, Kernel::TransposePackedTexture, io, shifts)?;
        Ok(view)
    }

    /// Chunk `ch`'s packed weights, held in `src`, transposed on the device into a new
    /// buffer.
    fn transpose(
        &self,
        ctx: &Context,
        ch: &WeightChunk,
        src: &wgpu::Buffer,
    ) -> Result<wgpu::Buffer> {
        let values = self.pack().lens(self.packing, ch.rows).1;
        let dst = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("netlens transposed weights"),
            size: (values * if self.half { 2 } else { 4 }) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let io = [Binding::Raw(src), Binding::Raw(&dst)];
        self.transpose_into(ctx, ch, Kernel::TransposePacked, io, (0, 0))?;
        Ok(dst)
    }

    fn pack(&self) -> Pack {
        Pack {
            cin: self.cin(),
            taps: self.taps(),
            half: self.half,
        }
    }

    /// Runs `kernel` (repack.wgsl) on chunk `ch`: its `Vec4` packing in `io[0]`
    /// transposed to [ci][tap][row/4] in `io[1]` (`shifts`: the widths' logarithms where
    /// those are textures, output first).
    fn transpose_into(
        &self,
        ctx: &Context,
        ch: &WeightChunk,
        kernel: Kernel,
        io: [Binding; 2],
        shifts: (u32, u32),
    ) -> Result<()> {
        let (cin, taps) = (self.cin(), self.taps());
        let p = RepackParams {
            rows: ch.rows as u32,
            cin: cin as u32,
            taps: taps as u32,
            c4: (cin.div_ceil(4) * 4) as u32,
            r4: (ch.rows.div_ceil(4) * 4) as u32,
            // tiles of 32 rows x 32 channels, one a workgroup
            tiles: crate::ops::u32s(ch.rows.div_ceil(32) * taps * cin.div_ceil(32), "tiles")?,
            shift: shifts.0,
            src_shift: shifts.1,
        };
        let mut rec = Recorder::new(ctx, "transposing packed weights");
        rec.launch_gemm(kernel, self.half, &p, &io, grid(p.tiles));
        rec.submit()
    }
}

/// What a GEMM launch binds as its weights.
pub(crate) enum WeightSource {
    Buffer(wgpu::Buffer),
    Texture(wgpu::TextureView),
}

impl WeightSource {
    pub(crate) fn binding(&self) -> Binding<'_> {
        match self {
            WeightSource::Buffer(b) => Binding::Raw(b),
            WeightSource::Texture(t) => Binding::Texture(t),
        }
    }
}

/// The value in `cell`, made by `make` on first use (an error leaves the cell empty).
fn cached<T: Clone>(cell: &OnceLock<T>, make: impl FnOnce() -> Result<T>) -> Result<T> {
    if let Some(v) = cell.get() {
        return Ok(v.clone());
    }
    let v = make()?;
    Ok(cell.get_or_init(|| v).clone())
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RepackParams {
    rows: u32,
    cin: u32,
    taps: u32,
    c4: u32,
    r4: u32,
    tiles: u32,
    shift: u32,
    src_shift: u32,
}

/// The layouts of rows [s, s + n) of a [rows, cin, taps] matrix.
struct Pack {
    cin: usize,
    taps: usize,
    half: bool,
}

impl Pack {
    /// (forward, backward) lengths in values for n rows, padded to whole 16-byte words.
    fn lens(&self, packing: Packing, n: usize) -> (usize, usize) {
        let (taps, cin) = (self.taps, self.cin);
        let (fwd, bwd) = match packing {
            Packing::Rows => (n * cin * taps, 0),
            Packing::Vec4 => (
                n * taps * cin.div_ceil(4) * 4,
                cin * taps * n.div_ceil(4) * 4,
            ),
        };
        (padded(fwd, self.half), padded(bwd, self.half))
    }

    /// Values a row takes in the forward layout.
    fn line(&self, packing: Packing) -> usize {
        match packing {
            Packing::Rows => self.cin * self.taps,
            Packing::Vec4 => self.taps * self.cin.div_ceil(4) * 4,
        }
    }

    /// The forward layout of `part` (n rows, `line` values each): PyTorch's; [row][tap][ci]
    /// with ci zero-padded to a multiple of 4 (`Vec4`).
    fn forward_rows(&self, packing: Packing, part: &[f32], n: usize) -> Vec<f32> {
        if packing == Packing::Rows {
            return part.to_vec();
        }
        let (taps, cin) = (self.taps, self.cin);
        let c4 = cin.div_ceil(4) * 4;
        let mut out = vec![0.0; n * self.line(packing)];
        for r in 0..n {
            for ci in 0..cin {
                for t in 0..taps {
                    out[(r * taps + t) * c4 + ci] = part[(r * cin + ci) * taps + t];
                }
            }
        }
        out
    }

    /// The input-gradient layout of `part` (n rows; `Vec4`): [ci][tap][row] with the rows
    /// zero-padded to a multiple of 4, as repack.wgsl transposes the forward one. Padded
    /// to `lens`.
    fn backward(&self, packing: Packing, part: &[f32], n: usize) -> Vec<f32> {
        let mut out = self.backward_lines(part, n, 0, self.cin * self.taps);
        out.resize(self.lens(packing, n).1, 0.0);
        out
    }

    /// Lines [l0, l0 + k) of `backward`, a line (ci, tap) at l = ci * taps + tap.
    fn backward_lines(&self, part: &[f32], n: usize, l0: usize, k: usize) -> Vec<f32> {
        let (r4, row) = (n.div_ceil(4) * 4, self.cin * self.taps);
        let mut out = vec![0.0; k * r4];
        // 16 rows at a time: each line's 16 values are one cache line written whole
        for rb in (0..n).step_by(16) {
            for l in 0..k {
                for r in rb..(rb + 16).min(n) {
                    out[l * r4 + r] = part[r * row + l0 + l];
                }
            }
        }
        out
    }
}

/// Values a buffer of `len` holds once padded to whole 16-byte words (f16: 8 values).
fn padded(len: usize, half: bool) -> usize {
    let per = if half { 8 } else { 4 };
    len.div_ceil(per).max(1) * per
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

/// A buffer of packed f32 values `v`, as f16 pairs when `half`.
fn create_packed(ctx: &Context, name: &str, v: &[f32], half: bool) -> wgpu::Buffer {
    if half {
        create_init(ctx, name, &pack_f16(v))
    } else {
        create_init(ctx, name, v)
    }
}

fn create_init<T: bytemuck::Pod>(ctx: &Context, name: &str, data: &[T]) -> wgpu::Buffer {
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(name),
        size: (std::mem::size_of_val(data) as u64).max(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    ctx.queue
        .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{Gemm, Tensor};

    /// `words` 32-bit words of `src` (a buffer, or a texture `width` texels of `texel`
    /// bytes wide), read back.
    fn words_of(ctx: &Context, src: &WeightSource, words: usize, texel: u64) -> Vec<u32> {
        let t = Tensor::empty_u32(ctx, &[words], "read back").unwrap();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        match src {
            WeightSource::Buffer(b) => {
                enc.copy_buffer_to_buffer(b, 0, t.buffer(), 0, Some(words as u64 * 4))
            }
            WeightSource::Texture(v) => {
                let tex = v.texture();
                let (w, bytes) = (tex.width() as u64, words as u64 * 4);
                let rows = bytes.div_ceil(w * texel);
                assert!(rows * w * texel == bytes, "whole rows only");
                enc.copy_texture_to_buffer(
                    tex.as_image_copy(),
                    wgpu::TexelCopyBufferInfo {
                        buffer: t.buffer(),
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: 0,
                            bytes_per_row: Some((w * texel) as u32),
                            rows_per_image: None,
                        },
                    },
                    wgpu::Extent3d {
                        width: w as u32,
                        height: rows as u32,
                        depth_or_array_layers: 1,
                    },
                );
            }
        }
        ctx.queue.submit([enc.finish()]);
        t.read_u32(ctx).unwrap()
    }

    /// The words of `src` up to `want`'s length, against `want` (f32 values, or halves).
    fn check(ctx: &Context, src: &WeightSource, want: &[f32], half: bool, what: &str) {
        let want: Vec<u32> = if half {
            pack_f16(want)
        } else {
            want.iter().map(|v| v.to_bits()).collect()
        };
        let texel = if half { 8 } else { 16 };
        let mut words = want.len().next_multiple_of(if half { 2 } else { 4 });
        if let WeightSource::Texture(v) = src {
            words = words.next_multiple_of(v.texture().width() as usize * texel as usize / 4);
        }
        let got = words_of(ctx, src, words, texel);
        assert_eq!(&got[..want.len()], &want[..], "{what}");
    }

    /// Both packings of every chunk, as buffers (`cpu`) or textures (`cpu-tex`,
    /// `cpu-fetch`: written at upload and transposed from that texture), bit for bit the
    /// host's (f16: their halves, subnormal ones too), padding zero.
    #[test]
    fn packings_hold_the_weights_bit_for_bit() {
        // (rows, cin, taps); the last one's chunks fill textures of more than one row
        let shapes: [(usize, usize, usize); 7] = [
            (5, 3, 9),
            (37, 33, 1),
            (64, 40, 9),
            (1, 1, 1),
            (130, 7, 9),
            (96, 64, 1),
            (70, 520, 9),
        ];
        for gemm in [Gemm::Cpu, Gemm::CpuTex, Gemm::CpuFetch] {
            let ctx = Context::from_env().unwrap().with_gemm(gemm);
            if ctx.gemm() != gemm {
                continue; // subgroups not 8 wide
            }
            for (rows, cin, taps) in shapes {
                for precision in [Precision::F32, Precision::F16] {
                    // with subnormals (f32's, and f16's: 3e-6 and -5e-7) and negative
                    // zeros, which must keep their bits
                    let data: Vec<f32> = (0..rows * cin * taps)
                        .map(|i| match i % 97 {
                            5 => 1e-40,
                            6 => -0.0,
                            7 => 3e-6,
                            8 => -5e-7,
                            _ => ((i * 7919 % 1013) as f32 - 506.0) / 64.0,
                        })
                        .collect();
                    let half = precision == Precision::F16;
                    // chunks of about 18 rows, some not a multiple of 4
                    let c4 = cin.div_ceil(4) * 4;
                    let layout = WeightLayout::conv(taps)
                        .precision(precision)
                        .limit(((c4 * taps * 4 * 18) as u64).max(256));
                    let upload = |layout| {
                        WeightBuffer::upload_with(&ctx, "t", &data, rows, cin * taps, None, layout)
                            .unwrap()
                    };
                    let (wb, bo) = (upload(layout), upload(layout.backward_only()));
                    // uploaded from an owned copy, given back as it goes: the same bits
                    let ow = WeightBuffer::upload_owned(
                        &ctx,
                        "t",
                        data.clone(),
                        rows,
                        cin * taps,
                        None,
                        layout,
                    )
                    .unwrap();
                    assert_eq!(wb.chunks.len(), bo.chunks.len());
                    assert_eq!(wb.chunks.len(), ow.chunks.len());
                    assert!(bo.chunks.iter().all(|c| c.buffer.is_none()));
                    // the texture-reading variants hold no weight buffers at all
                    let textured = ctx.gemm().reads_textures();
                    assert!(wb.chunks.iter().all(|c| c.buffer.is_none() == textured));
                    for (i, ch) in wb.chunks.iter().enumerate() {
                        let at = |r: usize, ci: usize, t: usize| {
                            data[((ch.start + r) * cin + ci) * taps + t]
                        };
                        let r4 = ch.rows.div_ceil(4) * 4;
                        let (mut fwd, mut bwd) = (
                            vec![0.0f32; ch.rows * taps * c4],
                            vec![0.0f32; cin * taps * r4],
                        );
                        for r in 0..ch.rows {
                            for ci in 0..cin {
                                for t in 0..taps {
                                    fwd[(r * taps + t) * c4 + ci] = at(r, ci, t);
                                    bwd[(ci * taps + t) * r4 + r] = at(r, ci, t);
                                }
                            }
                        }
                        let what = format!("{gemm:?} {rows}x{cin}x{taps} {precision:?} chunk {i}");
                        let src = wb.forward_source(&ctx, i).unwrap();
                        check(&ctx, &src, &fwd, half, &format!("{what} forward"));
                        let src = wb.backward_source(&ctx, i).unwrap();
                        check(&ctx, &src, &bwd, half, &format!("{what} transposed"));
                        let src = ow.forward_source(&ctx, i).unwrap();
                        check(&ctx, &src, &fwd, half, &format!("{what} owned forward"));
                        let src = ow.backward_source(&ctx, i).unwrap();
                        check(&ctx, &src, &bwd, half, &format!("{what} owned transposed"));
                        // packed on the host for input gradients only: the same bits
                        let src = bo.backward_source(&ctx, i).unwrap();
                        check(&ctx, &src, &bwd, half, &format!("{what} backward only"));
                        assert!(bo.forward_source(&ctx, i).is_err(), "{what}");
                        assert!(bo.chunks[i].texture.get().is_none(), "{what}");
                    }
                }
            }
        }
    }

    /// The tiled kernels' buffers hold PyTorch's layout, written a piece at a time from the
    /// last (pieces of an even number of rows, so that f16 pairs of odd-length rows stay
    /// whole words), borrowed or owned, bit for bit.
    #[test]
    fn row_buffers_hold_the_weights_bit_for_bit() {
        let ctx = Context::from_env().unwrap().with_gemm(Gemm::Tiled);
        for (rows, row_len) in [(5, 27), (37, 33), (70, 301), (1, 1), (130, 63)] {
            let data: Vec<f32> = (0..rows * row_len)
                .map(|i| match i % 97 {
                    5 => 1e-40,
                    7 => 3e-6,
                    _ => ((i * 7919 % 1013) as f32 - 506.0) / 64.0,
                })
                .collect();
            for precision in [Precision::F32, Precision::F16] {
                let half = precision == Precision::F16;
                let layout = WeightLayout::linear()
                    .precision(precision)
                    .limit(((row_len * 4 * 18) as u64).max(256));
                let borrowed =
                    WeightBuffer::upload_with(&ctx, "fc", &data, rows, row_len, None, layout);
                let owned = WeightBuffer::upload_owned(
                    &ctx,
                    "fc",
                    data.clone(),
                    rows,
                    row_len,
                    None,
                    layout,
                );
                for wb in [borrowed.unwrap(), owned.unwrap()] {
                    for (i, ch) in wb.chunks.iter().enumerate() {
                        let want = &data[ch.start * row_len..(ch.start + ch.rows) * row_len];
                        let what = format!("{rows}x{row_len} {precision:?} chunk {i}");
                        let src = wb.forward_source(&ctx, i).unwrap();
                        check(&ctx, &src, want, half, &what);
                    }
                }
            }
        }
    }

    /// A linear layer's input gradient reads the forward packing (no transposed copy is
    /// made) until `STRIP_ITEMS` items have asked, at any batch (GEMV or GEMM sized), then
    /// the transposed one, every item's dx the same bits throughout.
    #[test]
    fn linear_gemvs_read_the_forward_packing_until_it_pays_to_transpose() {
        let (out, k) = (70, 301);
        let w: Vec<f32> = (0..out * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let dy_host: Vec<f32> = (0..out)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 3.0)
            .collect();
        for gemm in [Gemm::Cpu, Gemm::CpuTex, Gemm::CpuFetch] {
            let ctx = Context::from_env().unwrap().with_gemm(gemm);
            if ctx.gemm() != gemm {
                continue;
            }
            let dy = Tensor::upload(&ctx, &dy_host, &[1, out]).unwrap();
            let pass_of = |wb: &WeightBuffer, dy: &Tensor| {
                let mut rec = crate::gpu::Recorder::new(&ctx, "linear backward");
                let dx = crate::ops::linear_backward_input(&mut rec, dy, wb).unwrap();
                rec.submit().unwrap();
                let ch = &wb.chunks[0];
                let made = ch.backward.get().is_some() || ch.backward_texture.get().is_some();
                (dx.read(&ctx).unwrap(), made)
            };
            let pass = |wb: &WeightBuffer| pass_of(wb, &dy);
            for precision in [Precision::F32, Precision::F16] {
                let what = format!("{gemm:?} {precision:?}");
                let upload = || {
                    let layout = WeightLayout::linear().precision(precision);
                    WeightBuffer::upload_with(&ctx, "fc", &w, out, k, None, layout).unwrap()
                };
                let wb = upload();
                let (first, made) = pass(&wb);
                assert!(!made, "{what}: transposed at the first pass");
                // weights for input gradients only: their GEMV reads the transposed packing
                let layout = WeightLayout::linear().precision(precision).backward_only();
                let bo = WeightBuffer::upload_with(&ctx, "fc", &w, out, k, None, layout).unwrap();
                assert_eq!(pass(&bo), (first.clone(), true), "{what} backward only");
                for i in 2..=STRIP_ITEMS + 1 {
                    let (dx, made) = pass(&wb);
                    assert_eq!(made, i > STRIP_ITEMS, "{what} pass {i}");
                    assert_eq!(dx, first, "{what} pass {i}");
                }
                // passes at a GEMM's batch count their items the same way
                let wb = upload();
                let n = crate::ops::CPU_GEMV_BATCH + 1;
                let dyn_host: Vec<f32> = dy_host.repeat(n);
                let dyn_ = Tensor::upload(&ctx, &dyn_host, &[n, out]).unwrap();
                let mut seen = 0;
                while seen <= STRIP_ITEMS {
                    let (dx, made) = pass_of(&wb, &dyn_);
                    seen += n;
                    assert_eq!(made, seen > STRIP_ITEMS, "{what} after {seen} items");
                    for (r, row) in dx.chunks(k).enumerate() {
                        assert_eq!(row, &first[..], "{what} item {r} after {seen} items");
                    }
                }
                assert_eq!(wb.strip_items.load(Ordering::Relaxed), seen, "{what}");
            }
        }
    }
}
