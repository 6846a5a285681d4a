//! Packed weights written to the device a piece at a time, last piece first: a piece's
//! packing and staging memory are alive rather than a whole chunk's (128 MiB on lavapipe),
//! and a host copy the upload owns is given back from its end as its rows are written.

use std::borrow::Cow;

use super::context::Context;
use super::weights::pack_f16;
use crate::error::{Error, Result};

/// Bytes of packed weights (as f32) written at a time.
#[cfg(not(test))]
const PIECE_BYTES: usize = 8 << 20;
/// Small in the unit tests, so that their weights go in several pieces.
#[cfg(test)]
const PIECE_BYTES: usize = 1 << 10;

/// Bytes of an owned host copy given back at a time: a shrink of a large block frees its
/// tail in place where the allocator maps such blocks (glibc: `mremap`); an allocator that
/// copies instead copies a few times per matrix, not once per piece.
#[cfg(not(test))]
const RELEASE_BYTES: usize = 64 << 20;
#[cfg(test)]
const RELEASE_BYTES: usize = 1 << 10;

/// The host values a weight upload reads: borrowed, owned and released from the end, or
/// read a piece at a time by `read(from, count)` (a model file's tensor), `len` in all.
pub enum HostRows<'a> {
    Borrowed(&'a [f32]),
    Owned(Vec<f32>),
    Reader {
        len: usize,
        read: Box<dyn Fn(usize, usize) -> Result<Vec<f32>> + 'a>,
    },
}

impl HostRows<'_> {
    pub fn len(&self) -> usize {
        match self {
            HostRows::Borrowed(v) => v.len(),
            HostRows::Owned(v) => v.len(),
            HostRows::Reader { len, .. } => *len,
        }
    }

    /// Values [from, from + count).
    pub fn rows(&self, from: usize, count: usize) -> Result<Cow<'_, [f32]>> {
        let held = match self {
            HostRows::Borrowed(v) => *v,
            HostRows::Owned(v) => v.as_slice(),
            HostRows::Reader { read, .. } => return Ok(Cow::Owned(read(from, count)?)),
        };
        let err = || {
            let (to, len) = (from + count, held.len());
            Error::Other(format!(
                "values {from}..{to} of {len} asked of a weight upload"
            ))
        };
        held.get(from..from + count)
            .map(Cow::Borrowed)
            .ok_or_else(err)
    }

    /// Gives back the values from `from` on (owned rows only, `RELEASE_BYTES` or more at a
    /// time); the upload reads none of them again.
    pub fn release_from(&mut self, from: usize) {
        if let HostRows::Owned(v) = self {
            if from == 0 || (v.capacity() - from.min(v.len())) * 4 >= RELEASE_BYTES {
                v.truncate(from);
                v.shrink_to_fit();
            }
        }
    }
}

/// Writes `lines` lines of `line` packed values, last piece first: `piece(l, k)` packs lines
/// [l, l + k) as f32 (an error stops the upload), and `write(first, values)` hands them to
/// the queue from value `first` on. Pieces start on even lines (f16 pairs of lines of odd
/// length stay whole words); at most two pieces' copies are in flight.
pub(super) fn write_pieces(
    ctx: &Context,
    lines: usize,
    line: usize,
    mut piece: impl FnMut(usize, usize) -> Result<Vec<f32>>,
    mut write: impl FnMut(usize, &[f32]),
) -> Result<()> {
    let per = ((PIECE_BYTES / (line * 4).max(1)).max(2) / 2) * 2;
    let mut last = None;
    for r in (0..lines).step_by(per).rev() {
        let k = per.min(lines - r);
        let v = piece(r, k)?;
        write(r * line, &v[..k * line]);
        // the last piece's copy ran while this one was packed; wait for it
        if let Some(i) = last.replace(ctx.queue.submit([])) {
            let wait = wgpu::PollType::Wait {
                submission_index: Some(i),
                timeout: None,
            };
            ctx.device
                .poll(wait)
                .map_err(|e| Error::DeviceLost(format!("uploading weights: {e}")))?;
        }
    }
    Ok(())
}

/// A new storage buffer of `bytes` for `lines` lines of `line` packed values (f32, or f16
/// pairs when `half`) written by `write_pieces`; bytes past them stay zero.
pub(super) fn buffer_packed(
    ctx: &Context,
    name: &str,
    bytes: u64,
    lines: usize,
    line: usize,
    half: bool,
    piece: impl FnMut(usize, usize) -> Result<Vec<f32>>,
) -> Result<wgpu::Buffer> {
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(name),
        size: bytes.next_multiple_of(4).max(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    write_pieces(ctx, lines, line, piece, |first, v| {
        if half {
            // `first` is even: pieces start on even lines
            let words = pack_f16(v);
            ctx.queue
                .write_buffer(&buffer, first as u64 * 2, bytemuck::cast_slice(&words));
        } else {
            ctx.queue
                .write_buffer(&buffer, first as u64 * 4, bytemuck::cast_slice(v));
        }
    })?;
    Ok(buffer)
}
