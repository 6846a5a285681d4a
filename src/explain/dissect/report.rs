//! NetDissect's report as a static page: a summary chart (detectors per category and per
//! concept, inline SVG) and one panel per unit, sorted by IoU, with its concepts and its
//! top images, the region above its threshold outlined. Images sit next to the page.

use std::fmt::Write as _;
use std::path::Path;

use super::{Concepts, LayerResult, Settings};
use crate::error::{Error, Result};
use crate::model::ModelMeta;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The dataset image as RGB at the model's input size.
fn picture(data: &Concepts, i: usize, meta: &ModelMeta) -> Result<image::RgbImage> {
    let x = data.load(i, i + 1, meta)?;
    let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3]);
    Ok(image::RgbImage::from_fn(w as u32, h as u32, |px, py| {
        let v = |ch: usize| {
            let ch = ch.min(c - 1);
            let z = x.data[(ch * h + py as usize) * w + px as usize];
            let s = meta.std.get(ch).copied().unwrap_or(1.0);
            let m = meta.mean.get(ch).copied().unwrap_or(0.0);
            ((z * s + m) * 255.0).round().clamp(0.0, 255.0) as u8
        };
        image::Rgb([v(0), v(1), v(2)])
    }))
}

/// The image dimmed outside the unit's mask (its map up-sampled to the image and
/// thresholded), with the mask's edge drawn, scaled up by `scale`.
fn outlined(
    img: &image::RgbImage,
    map: &[f32],
    hw: (usize, usize),
    t: f32,
    scale: u32,
) -> image::RgbImage {
    let (w, h) = img.dimensions();
    let up = crate::reference::prim::bilinear(map, [1, 1, hw.0, hw.1], h as usize, w as usize);
    let inside = |x: i64, y: i64| {
        x >= 0 && y >= 0 && x < w as i64 && y < h as i64 && up[(y * w as i64 + x) as usize] > t
    };
    image::RgbImage::from_fn(w * scale, h * scale, |sx, sy| {
        let (x, y) = ((sx / scale) as i64, (sy / scale) as i64);
        let p = img.get_pixel(x as u32, y as u32).0;
        if !inside(x, y) {
            return image::Rgb(p.map(|v| v / 3));
        }
        // an edge pixel: inside, with a 4-neighbour outside, drawn one screen pixel wide
        let (fx, fy) = (sx % scale, sy % scale);
        let edge = (fx == 0 && !inside(x - 1, y))
            || (fx == scale - 1 && !inside(x + 1, y))
            || (fy == 0 && !inside(x, y - 1))
            || (fy == scale - 1 && !inside(x, y + 1));
        if edge {
            image::Rgb([255, 220, 0])
        } else {
            image::Rgb(p)
        }
    })
}

/// Writes `dir/report.html` and `dir/units/unit-NNNN.png` (each unit's top images).
pub fn write_report(
    r: &LayerResult,
    data: &Concepts,
    meta: &ModelMeta,
    dir: &Path,
    settings: &Settings,
) -> Result<()> {
    let units_dir = dir.join("units");
    std::fs::create_dir_all(&units_dir).map_err(|e| Error::io(&units_dir, e))?;
    let (ih, _) = meta.input_size;
    let scale = (128 / ih.max(1)).clamp(1, 4) as u32;
    for u in 0..r.layer.units {
        let tiles: Vec<image::RgbImage> = r.top[u]
            .iter()
            .map(|t| {
                Ok(outlined(
                    &picture(data, t.image, meta)?,
                    &t.map,
                    (r.layer.h, r.layer.w),
                    r.thresholds[u],
                    scale,
                ))
            })
            .collect::<Result<_>>()?;
        let (tw, th) = tiles.first().map_or((1, 1), |t| t.dimensions());
        let mut strip = image::RgbImage::from_pixel(
            (tw + 4) * tiles.len().max(1) as u32,
            th,
            image::Rgb([255, 255, 255]),
        );
        for (k, t) in tiles.iter().enumerate() {
            image::imageops::replace(&mut strip, t, (k as u32 * (tw + 4)) as i64, 0);
        }
        let p = units_dir.join(format!("unit-{u:04}.png"));
        strip
            .save_with_format(&p, image::ImageFormat::Png)
            .map_err(|e| Error::Other(format!("{}: {e}", p.display())))?;
    }
    let summary = super::summary(r, settings);
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>netlens dissection: {name}</title>\n<style>\
body{{font-family:sans-serif;margin:20px;color:#222}} .unit{{display:inline-block;margin:6px;padding:6px;border:1px solid #ccc;vertical-align:top}} \
.unit.detector{{border-color:#2a7}} .unit img{{display:block;image-rendering:pixelated}} .name{{font-weight:bold}} .small{{color:#666;font-size:90%}} \
svg text{{font-size:11px}}</style></head><body>\n<h1>Dissection of {name}</h1>\n<p>{units} units; threshold: the {pct} quantile of each unit's activations; \
a unit is a detector when its best IoU exceeds {iou}. {det} detectors, {uniq} unique concepts.</p>\n",
        name = esc(&r.layer.name),
        units = r.layer.units,
        pct = 1.0 - settings.quantile,
        iou = settings.iou,
        det = summary["detectors"],
        uniq = summary["unique_detectors"],
    );
    // summary chart: unique detectors per category, then detector units per concept
    let mut bars: Vec<(String, String, usize)> = Vec::new();
    if let Some(cats) = summary["categories"].as_object() {
        for (c, v) in cats {
            if let Some(labels) = v["labels"].as_object() {
                let mut ls: Vec<(&String, usize)> = labels
                    .iter()
                    .map(|(k, n)| (k, n.as_u64().unwrap_or(0) as usize))
                    .collect();
                ls.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                for (l, n) in ls {
                    bars.push((c.clone(), l.clone(), n));
                }
            }
        }
    }
    let most = bars.iter().map(|b| b.2).max().unwrap_or(1).max(1);
    let (bw, chart_h) = (22usize, 160usize);
    let _ = write!(
        html,
        "<h2>Detectors per concept</h2>\n<svg id=\"summary-chart\" width=\"{}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
        bars.len().max(1) * bw + 40,
        chart_h + 100
    );
    let palette = [
        "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d",
    ];
    let cat_names: Vec<&String> = data.broden.categories.iter().collect();
    for (k, (c, l, n)) in bars.iter().enumerate() {
        let hgt = n * chart_h / most;
        let x = 30 + k * bw;
        let colour = palette[cat_names.iter().position(|x| *x == c).unwrap_or(0) % palette.len()];
        let _ = writeln!(
            html,
            "<rect class=\"bar\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{hgt}\" fill=\"{colour}\"><title>{} ({}): {n}</title></rect>\
<text x=\"{}\" y=\"{}\">{n}</text><text transform=\"translate({},{}) rotate(60)\">{}</text>",
            20 + chart_h - hgt,
            bw - 4,
            esc(l),
            esc(c),
            x + 4,
            16 + chart_h - hgt,
            x + 4,
            chart_h + 28,
            esc(l)
        );
    }
    html.push_str("</svg>\n<p>");
    for (i, c) in cat_names.iter().enumerate() {
        let _ = write!(
            html,
            "<span style=\"color:{}\">&#9632;</span> {} &nbsp; ",
            palette[i % palette.len()],
            esc(c)
        );
    }
    html.push_str("</p>\n<h2>Units by IoU</h2>\n<div id=\"units\">\n");
    for u in r.order() {
        let b = &r.best[u];
        let (label, cat, iou) = b
            .first()
            .map_or(("-".to_string(), String::new(), 0.0), |x| {
                (x.name.clone(), x.category.clone(), x.iou)
            });
        let others: Vec<String> = b
            .iter()
            .skip(1)
            .map(|x| format!("{} {:.3}", esc(&x.name), x.iou))
            .collect();
        let _ = writeln!(
            html,
            "<div class=\"unit{}\" id=\"unit-{u}\"><div class=\"name\">unit {u}: {} <span class=\"small\">({})</span> IoU {iou:.3}</div>\
<div class=\"small\">also: {}; threshold {:.4}</div><img src=\"units/unit-{u:04}.png\" alt=\"unit {u}'s top images\" onerror=\"this.className='broken'\"></div>",
            if r.is_detector(u) { " detector" } else { "" },
            esc(&label),
            esc(&cat),
            if others.is_empty() { "-".into() } else { others.join(", ") },
            r.thresholds[u]
        );
    }
    html.push_str("</div>\n</body></html>\n");
    let p = dir.join("report.html");
    std::fs::write(&p, html).map_err(|e| Error::io(&p, e))
}
