//! Heatmaps: diverging colour maps for signed maps (centred at zero, symmetric scale),
//! sequential ones for magnitudes, optional overlay on the input, and figures that put
//! several methods side by side.

use crate::array::Array;
use crate::model::ModelMeta;

use super::font;

/// Red–blue diverging (negative blue, zero white, positive red).
const DIVERGING: &[[f64; 3]] = &[
    [5.0, 48.0, 97.0],
    [67.0, 147.0, 195.0],
    [247.0, 247.0, 247.0],
    [214.0, 96.0, 77.0],
    [103.0, 0.0, 31.0],
];
/// Black–purple–orange–yellow sequential (inferno-like).
const SEQUENTIAL: &[[f64; 3]] = &[
    [0.0, 0.0, 4.0],
    [87.0, 16.0, 110.0],
    [188.0, 55.0, 84.0],
    [249.0, 142.0, 9.0],
    [252.0, 255.0, 164.0],
];

fn lerp_map(map: &[[f64; 3]], t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0) * (map.len() - 1) as f64;
    let i = (t.floor() as usize).min(map.len() - 2);
    let f = t - i as f64;
    let c = |k: usize| (map[i][k] * (1.0 - f) + map[i + 1][k] * f).round() as u8;
    [c(0), c(1), c(2)]
}

/// How values become colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Signed: diverging map over [-s, s].
    Signed(f32),
    /// Magnitude: sequential map over [0, s].
    Magnitude(f32),
}

/// One item's map summed over channels, [h * w].
pub fn channel_sum(map: &Array, item: usize) -> Vec<f32> {
    let [c, h, w] = [map.shape[1], map.shape[2], map.shape[3]];
    let plane = h * w;
    let mut out = vec![0f32; plane];
    for ch in 0..c {
        let base = (item * c + ch) * plane;
        out.iter_mut()
            .zip(&map.data[base..base + plane])
            .for_each(|(o, v)| *o += v);
    }
    out
}

/// The 99.5th percentile of |v| (robust to a few extreme pixels), at least tiny.
pub fn robust_max(v: &[f32]) -> f32 {
    let mut a: Vec<f32> = v
        .iter()
        .map(|x| x.abs())
        .filter(|x| x.is_finite())
        .collect();
    if a.is_empty() {
        return 1e-12;
    }
    let k = ((a.len() - 1) as f64 * 0.995).round() as usize;
    a.select_nth_unstable_by(k, |x, y| x.total_cmp(y));
    a[k].max(1e-12)
}

/// Chooses the scale: sequential if no value is negative, diverging otherwise.
pub fn auto_scale(v: &[f32]) -> Scale {
    let m = robust_max(v);
    if v.iter().all(|x| *x >= 0.0) {
        Scale::Magnitude(m)
    } else {
        Scale::Signed(m)
    }
}

pub fn colorize(v: &[f32], h: usize, w: usize, scale: Scale) -> image::RgbImage {
    image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let val = v[y as usize * w + x as usize] as f64;
        image::Rgb(match scale {
            Scale::Signed(s) => lerp_map(DIVERGING, 0.5 + 0.5 * val / s as f64),
            Scale::Magnitude(s) => lerp_map(SEQUENTIAL, val / s as f64),
        })
    })
}

/// The input item as an image (undoing the model's normalization; 1-channel as grey).
pub fn input_image(x: &Array, item: usize, meta: &ModelMeta) -> image::RgbImage {
    let [c, h, w] = [x.shape[1], x.shape[2], x.shape[3]];
    let plane = h * w;
    image::RgbImage::from_fn(w as u32, h as u32, |px, py| {
        let i = py as usize * w + px as usize;
        let ch = |k: usize| {
            let k = k.min(c - 1);
            let v = x.data[(item * c + k) * plane + i];
            let v = v * meta.std.get(k).copied().unwrap_or(1.0)
                + meta.mean.get(k).copied().unwrap_or(0.0);
            (v * 255.0).round().clamp(0.0, 255.0) as u8
        };
        image::Rgb([ch(0), ch(1), ch(2)])
    })
}

/// Heat over a greyed input: 0.4 grey + 0.6 heat.
pub fn overlay(heat: &image::RgbImage, base: &image::RgbImage) -> image::RgbImage {
    image::RgbImage::from_fn(heat.width(), heat.height(), |x, y| {
        let b = base.get_pixel(x, y);
        let g = 0.299 * b[0] as f64 + 0.587 * b[1] as f64 + 0.114 * b[2] as f64;
        let h = heat.get_pixel(x, y);
        image::Rgb([0, 1, 2].map(|k| (0.4 * g + 0.6 * h[k] as f64).round() as u8))
    })
}

/// A figure: one row per input item, the input then one column per map, titled.
pub fn figure(
    x: &Array,
    meta: &ModelMeta,
    maps: &[(String, Array)],
    overlay_input: bool,
) -> image::RgbImage {
    let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
    let zoom = (160 / h.max(w)).max(1) as u32;
    let (cw, ch) = (w as u32 * zoom, h as u32 * zoom);
    let gap = 6u32;
    let title = 20u32;
    let cols = 1 + maps.len() as u32;
    let mut img = image::RgbImage::from_pixel(
        cols * (cw + gap) + gap,
        title + n as u32 * (ch + gap) + gap,
        image::Rgb([255, 255, 255]),
    );
    let mut put = |tile: &image::RgbImage, col: u32, row: u32| {
        let big = image::imageops::resize(tile, cw, ch, image::imageops::FilterType::Nearest);
        image::imageops::overlay(
            &mut img,
            &big,
            (gap + col * (cw + gap)) as i64,
            (title + gap + row * (ch + gap)) as i64,
        );
    };
    for b in 0..n {
        let base = input_image(x, b, meta);
        put(&base, 0, b as u32);
        for (k, (_, m)) in maps.iter().enumerate() {
            let v = channel_sum(m, b);
            let heat = colorize(&v, h, w, auto_scale(&v));
            let tile = if overlay_input {
                overlay(&heat, &base)
            } else {
                heat
            };
            put(&tile, k as u32 + 1, b as u32);
        }
    }
    let labels = std::iter::once("input").chain(maps.iter().map(|(n, _)| n.as_str()));
    for (k, label) in labels.enumerate() {
        let x0 = gap + k as u32 * (cw + gap);
        if font::width(label, 2) <= cw {
            font::draw(&mut img, label, x0, 4, 2, [20, 20, 20]);
        } else if font::width(label, 1) <= cw {
            font::draw(&mut img, label, x0, 7, 1, [20, 20, 20]);
        } else {
            // two lines, broken at the '-' nearest the middle
            let mid = label.len() / 2;
            let cut = label
                .match_indices('-')
                .map(|(i, _)| i)
                .min_by_key(|i| i.abs_diff(mid))
                .unwrap_or(mid);
            font::draw(
                &mut img,
                &label[..=cut.min(label.len() - 1)],
                x0,
                1,
                1,
                [20, 20, 20],
            );
            font::draw(
                &mut img,
                &label[(cut + 1).min(label.len())..],
                x0,
                10,
                1,
                [20, 20, 20],
            );
        }
    }
    img
}
