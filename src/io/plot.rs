//! Line plots as PNG: one panel per quantity, one line per item (loss and probability
//! curves of mask runs, evaluation curves).

use super::font;

/// Matplotlib's tab10 colours, for lines and classes.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// One panel: a title and its lines (each a series of y values at x = 0, 1, ...).
pub struct Panel {
    pub title: String,
    pub lines: Vec<Vec<f32>>,
}

fn fmt(v: f32) -> String {
    if v != 0.0 && (v.abs() < 0.01 || v.abs() >= 1e4) {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// Panels side by side, each 320 × 220 px with its y range and x count written on it;
/// line k has colour k (mod 8) in every panel. Non-finite values are skipped.
pub fn panels(panels: &[Panel]) -> image::RgbImage {
    let (pw, ph, pad) = (320u32, 220u32, 36u32);
    let mut img = image::RgbImage::from_pixel(
        panels.len().max(1) as u32 * (pw + pad) + pad,
        ph + 2 * pad,
        image::Rgb([255, 255, 255]),
    );
    for (k, p) in panels.iter().enumerate() {
        let x0 = pad + k as u32 * (pw + pad);
        let y0 = pad;
        let vals = p.lines.iter().flatten().filter(|v| v.is_finite());
        let (lo, hi) = vals.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
        let (lo, hi) = if lo.is_finite() {
            (lo, if hi > lo { hi } else { lo + 1.0 })
        } else {
            (0.0, 1.0)
        };
        let len = p.lines.iter().map(Vec::len).max().unwrap_or(0).max(2);
        for i in 0..=pw {
            img.put_pixel(x0 + i, y0 + ph, image::Rgb([0, 0, 0]));
        }
        for j in 0..=ph {
            img.put_pixel(x0, y0 + j, image::Rgb([0, 0, 0]));
        }
        let to_px = |t: usize, v: f32| -> (f32, f32) {
            (
                x0 as f32 + t as f32 / (len - 1) as f32 * pw as f32,
                y0 as f32 + (hi - v) / (hi - lo) * ph as f32,
            )
        };
        for (li, line) in p.lines.iter().enumerate() {
            let color = image::Rgb(PALETTE[li % PALETTE.len()]);
            for t in 1..line.len() {
                let (a, b) = (line[t - 1], line[t]);
                if !(a.is_finite() && b.is_finite()) {
                    continue;
                }
                let ((xa, ya), (xb, yb)) = (to_px(t - 1, a), to_px(t, b));
                let steps = ((xb - xa).abs().max((yb - ya).abs()).ceil() as usize).max(1);
                for s in 0..=steps {
                    let f = s as f32 / steps as f32;
                    let (x, y) = (xa + f * (xb - xa), ya + f * (yb - ya));
                    let (x, y) = (x.round() as u32, y.round() as u32);
                    if x < img.width() && y < img.height() {
                        img.put_pixel(x, y, color);
                    }
                }
            }
        }
        let ink = [20, 20, 20];
        font::draw(&mut img, &p.title, x0, 8, 2, ink);
        font::draw(&mut img, &fmt(hi), x0 + 4, y0 + 2, 1, ink);
        font::draw(&mut img, &fmt(lo), x0 + 4, y0 + ph - 10, 1, ink);
        let steps = format!("{len} steps");
        let sw = font::width(&steps, 1);
        font::draw(&mut img, &steps, x0 + pw - sw, y0 + ph + 6, 1, ink);
    }
    img
}

/// PNG bytes of an image.
pub fn png(img: &image::RgbImage) -> crate::error::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| crate::error::Error::Other(format!("encoding a PNG: {e}")))?;
    Ok(bytes)
}
