//! Weight textures for the texture-reading GEMM variants (`cpu-tex`, `cpu-fetch`): their
//! extents, the buffer-to-texture copies and the piecewise writes of packed weights.

use super::context::Context;
use super::upload::write_pieces;
use super::weights::pack_f16;
use crate::error::{Error, Result};

/// The 2-D extent that holds `texels` texels in rows of a power-of-two width (at least
/// `min_width`, at most the adapter's largest dimension, capped at 16384), texel g at
/// (g mod width, g / width); or, where they do not fit, the most texels that would.
pub(crate) fn texel_grid(
    ctx: &Context,
    texels: u64,
    min_width: u64,
) -> std::result::Result<(u64, u64), u64> {
    let max = ctx.limits.max_texture_dimension_2d.min(16384) as u64;
    grid_within(texels, min_width, max)
}

/// [`texel_grid`] for a largest dimension `max`. The height is never a power of two
/// (one or two spare rows where it would be, unless that passes `max`): llvmpipe and
/// lavapipe compile a kernel again for each combination of power-of-two and other
/// extents among the images it binds, which cost the README's first command about 20
/// extra compiles on a cold shader cache.
fn grid_within(texels: u64, min_width: u64, max: u64) -> std::result::Result<(u64, u64), u64> {
    let max_w = 1u64 << (63 - max.leading_zeros()); // the largest power of two <= max
    let width = texels
        .next_power_of_two()
        .clamp(min_width, max_w.max(min_width));
    let mut height = texels.div_ceil(width);
    if height > max {
        return Err(max_w * max);
    }
    while height.is_power_of_two() && height < max {
        height += 1;
    }
    Ok((width, height))
}

/// An empty weight texture for `bytes` of packed weights, one vec4 group per texel
/// (rgba32float, or rgba16float for f16 pairs), and its power-of-two width.
pub(super) fn weight_texture(
    ctx: &Context,
    bytes: u64,
    half: bool,
) -> Result<(wgpu::Texture, u64)> {
    let texel: u64 = if half { 8 } else { 16 };
    // at least 32 texels a row: a row of a multi-row copy must be a multiple of 256 bytes
    let (width, height) = texel_grid(ctx, bytes / texel, 32).map_err(|max| Error::TooLarge {
        what: "a weight texture".into(),
        bytes,
        limit: max * texel,
        hint: "the weights of one chunk exceed the adapter's largest texture; use \
               NETLENS_GEMM=tiled (or cpu, where subgroups are 8 wide)"
            .into(),
    })?;
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("netlens weight texture"),
        size: wgpu::Extent3d {
            width: width as u32,
            height: height as u32,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: if half {
            wgpu::TextureFormat::Rgba16Float
        } else {
            wgpu::TextureFormat::Rgba32Float
        },
        // COPY_SRC: tests read them back
        usage: wgpu::TextureUsages::STORAGE_BINDING
            | wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    Ok((texture, width))
}

/// The copies that lay `count` texels of `texel` bytes, in order from byte 0 of a source,
/// into `texture` (`width` texels a row) from texel `first` on: the rest of a partial first
/// row, the whole rows, then a partial last row (a multi-row copy's rows are whole), each as
/// (destination, source layout, extent).
pub(super) fn texel_copies(
    texture: &wgpu::Texture,
    width: u64,
    first: u64,
    count: u64,
    texel: u64,
) -> Vec<(
    wgpu::TexelCopyTextureInfo<'_>,
    wgpu::TexelCopyBufferLayout,
    wgpu::Extent3d,
)> {
    let mut copies = Vec::new();
    let (mut at, end) = (first, first + count);
    while at < end {
        let (x, y) = (at % width, at / width);
        let (w, rows) = match (x, (end - at) / width) {
            (0, rows) if rows > 0 => (width, rows),
            _ => ((width - x).min(end - at), 1),
        };
        let dst = wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d {
                x: x as u32,
                y: y as u32,
                z: 0,
            },
            aspect: wgpu::TextureAspect::All,
        };
        let layout = wgpu::TexelCopyBufferLayout {
            offset: (at - first) * texel,
            // a buffer copy's row pitch must be a multiple of 256 bytes: whole rows only
            bytes_per_row: (rows > 1).then_some((w * texel) as u32),
            rows_per_image: None,
        };
        let extent = wgpu::Extent3d {
            width: w as u32,
            height: rows as u32,
            depth_or_array_layers: 1,
        };
        copies.push((dst, layout, extent));
        at += w * rows;
    }
    copies
}

/// A new weight texture for `bytes` of packed values (f32, or f16 pairs when `half`):
/// `lines` lines of `line` values (whole texels) written by `upload::write_pieces`,
/// `piece(l, k)` packing lines [l, l + k) as f32 (values past them, padding, are not
/// written). Halves are rounded on the host and copied in as bits, so a subnormal half
/// keeps its value.
pub(super) fn texture_packed(
    ctx: &Context,
    bytes: u64,
    lines: usize,
    line: usize,
    half: bool,
    piece: impl FnMut(usize, usize) -> Result<Vec<f32>>,
) -> Result<wgpu::TextureView> {
    let (texture, width) = weight_texture(ctx, bytes, half)?;
    write_pieces(ctx, lines, line, piece, |first, v| {
        write_texels(ctx, &texture, width, first as u64 / 4, v, half)
    })?;
    Ok(texture.create_view(&Default::default()))
}

/// Writes values `v` (whole texels of 4; as f16 pairs when `half`) into `texture`
/// (`width` texels a row) from texel `first` on.
fn write_texels(
    ctx: &Context,
    texture: &wgpu::Texture,
    width: u64,
    first: u64,
    v: &[f32],
    half: bool,
) {
    let halves;
    let (data, texel): (&[u8], u64) = if half {
        halves = pack_f16(v);
        (bytemuck::cast_slice(&halves), 8)
    } else {
        (bytemuck::cast_slice(v), 16)
    };
    for (dst, layout, extent) in texel_copies(texture, width, first, v.len() as u64 / 4, texel) {
        ctx.queue.write_texture(dst, data, layout, extent);
    }
}

/// The first `bytes` of weight texture `view`'s texels (f32, or f16 pairs when `half`),
/// copied as bits into a new storage buffer.
pub(super) fn buffer_from(
    ctx: &Context,
    view: &wgpu::TextureView,
    bytes: u64,
    half: bool,
) -> wgpu::Buffer {
    let texel: u64 = if half { 8 } else { 16 };
    let texture = view.texture();
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("netlens weights from a texture"),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("netlens weight texture read"),
        });
    let width = texture.width() as u64;
    for (src, layout, extent) in texel_copies(texture, width, 0, bytes / texel, texel) {
        let to = wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout,
        };
        enc.copy_texture_to_buffer(src, to, extent);
    }
    ctx.queue.submit([enc.finish()]);
    buffer
}

/// A packed weight buffer as a 2-D texture, one vec4 group per texel (rgba32float, or
/// rgba16float for f16 pairs), group g at (g mod W, g / W) for a power-of-two width W.
pub(super) fn texture_from(
    ctx: &Context,
    buf: &wgpu::Buffer,
    half: bool,
) -> Result<wgpu::TextureView> {
    let texel: u64 = if half { 8 } else { 16 };
    let (texture, width) = weight_texture(ctx, buf.size(), half)?;
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("netlens weight texture"),
        });
    for (dst, layout, extent) in texel_copies(&texture, width, 0, buf.size() / texel, texel) {
        let from = wgpu::TexelCopyBufferInfo {
            buffer: buf,
            layout,
        };
        enc.copy_buffer_to_texture(from, dst, extent);
    }
    ctx.queue.submit([enc.finish()]);
    Ok(texture.create_view(&wgpu::TextureViewDescriptor::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texel_grids_hold_their_texels_in_heights_that_are_not_powers_of_two() {
        for max in [8192u64, 16384] {
            for texels in (1..5000u64).chain([16384, 16385, 1 << 20, (1 << 20) + 7, 3 << 22]) {
                for min_width in [1u64, 32] {
                    let (w, h) = grid_within(texels, min_width, max).unwrap();
                    assert!(
                        w.is_power_of_two() && w >= min_width && w <= max,
                        "{texels}: {w}"
                    );
                    assert!(w * h >= texels && h <= max, "{texels}: {w}x{h}");
                    assert!(!h.is_power_of_two(), "{texels}: {w}x{h}");
                    // a spare row or two at most: 1 -> 3, 2 -> 3, 4 -> 5, ...
                    assert!(h <= (texels.div_ceil(w) + 2), "{texels}: {w}x{h}");
                }
            }
        }
        // the largest grid is kept whole, power of two or not; past it is an error
        assert_eq!(grid_within(16384 * 16384, 1, 16384), Ok((16384, 16384)));
        assert_eq!(grid_within(16384 * 16384 + 1, 1, 16384), Err(16384 * 16384));
    }
}
