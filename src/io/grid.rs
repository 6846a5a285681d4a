//! Image grids for people: tiles scaled up by whole pixels, each with a caption.

use super::font;

/// Tiles in rows of `cols`, each scaled by `scale` (nearest neighbour) with its caption
/// under it; tiles may differ in size (cells take the largest).
pub fn grid(tiles: &[(image::RgbImage, String)], cols: usize, scale: u32) -> image::RgbImage {
    let cols = cols.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(cols).max(1);
    let scale = scale.max(1);
    let tw = tiles.iter().map(|t| t.0.width()).max().unwrap_or(1) * scale;
    let th = tiles.iter().map(|t| t.0.height()).max().unwrap_or(1) * scale;
    let cap = tiles
        .iter()
        .map(|t| font::width(&t.1, 1))
        .max()
        .unwrap_or(0);
    let cw = tw.max(cap) + 6;
    let ch = th + 16;
    let mut img = image::RgbImage::from_pixel(
        cols as u32 * cw + 6,
        rows as u32 * ch + 6,
        image::Rgb([255, 255, 255]),
    );
    for (k, (tile, caption)) in tiles.iter().enumerate() {
        let (x0, y0) = (6 + (k % cols) as u32 * cw, 6 + (k / cols) as u32 * ch);
        for y in 0..tile.height() * scale {
            for x in 0..tile.width() * scale {
                img.put_pixel(x0 + x, y0 + y, *tile.get_pixel(x / scale, y / scale));
            }
        }
        font::draw(
            &mut img,
            caption,
            x0,
            y0 + tile.height() * scale + 3,
            1,
            [20, 20, 20],
        );
    }
    img
}

/// A single-channel plane as grey, scaled to its own [min, max] (flat planes are black).
pub fn grey(v: &[f32], h: usize, w: usize) -> image::RgbImage {
    let (lo, hi) = v
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let t = (v[y as usize * w + x as usize] - lo) / span;
        let g = (t * 255.0).round().clamp(0.0, 255.0) as u8;
        image::Rgb([g, g, g])
    })
}
