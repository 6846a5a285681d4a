//! `netlens synth`: writes the procedural concept dataset in Broden's layout, plus
//! `labels.csv` (image, class, name) with each image's class.

use std::fmt::Write as _;
use std::path::Path;

use super::broden::{csv_field, mask_image, INDEX_COLUMNS};
use super::render::{render, sample, Rendered};
use super::rng::Rng;
use super::vocab::{self, SHAPES};
use crate::error::{Error, Result};

pub struct Options {
    pub count: usize,
    pub size: usize,
    pub seed: u64,
    pub split: String,
}

/// Renders image `index` of the stream `seed` (independent of the count).
pub fn render_one(seed: u64, index: usize, size: usize) -> Rendered {
    render(&sample(&mut Rng::derive(seed, index as u64), size))
}

#[derive(Default, Clone, Copy)]
struct Stat {
    images: usize,
    coverage: f64,
}

fn save_png(path: &Path, img: &image::RgbImage) -> Result<()> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}

/// Writes `opts.count` images into `out` (which must be empty or absent).
pub fn generate(out: &Path, opts: &Options, progress: &indicatif::ProgressBar) -> Result<()> {
    if !(16..=1024).contains(&opts.size) {
        return Err(Error::input(
            "--size",
            format!("{} is outside 16..=1024", opts.size),
        ));
    }
    if opts.split.contains(['\n', '\r']) {
        return Err(Error::input("--split", "must be one line of text"));
    }
    let split = csv_field(&opts.split);
    let img_dir = out.join("images").join("synth");
    std::fs::create_dir_all(&img_dir).map_err(|e| Error::io(&img_dir, e))?;
    let labels = vocab::all_labels();
    let mut stats = vec![Stat::default(); labels.len()];
    let mut index = INDEX_COLUMNS.join(",") + "\n";
    let mut classes = String::from("image,class,name\n");
    let s = opts.size as u32;
    let px = (opts.size * opts.size) as f64;
    for i in 0..opts.count {
        let r = render_one(opts.seed, i, opts.size);
        let stem = format!("synth/{i:06}");
        let rgb = image::RgbImage::from_raw(s, s, r.rgb.clone()).expect("size matches");
        save_png(&out.join("images").join(format!("{stem}.png")), &rgb)?;
        let mut cols: Vec<String> = Vec::new();
        for (cat, plane) in [
            ("color", &r.color),
            ("object", &r.object),
            ("part", &r.part),
            ("texture", &r.texture),
        ] {
            let mut counts = vec![0usize; labels.len()];
            plane.iter().for_each(|&l| counts[l as usize] += 1);
            if counts.iter().skip(1).all(|&c| c == 0) {
                cols.push(String::new());
                continue;
            }
            for (l, &c) in counts.iter().enumerate().skip(1) {
                if c > 0 {
                    stats[l].images += 1;
                    stats[l].coverage += c as f64 / px;
                }
            }
            let file = format!("{stem}_{cat}.png");
            save_png(&out.join("images").join(&file), &mask_image((s, s), plane))?;
            cols.push(file);
        }
        let _ = writeln!(
            index,
            "{stem}.png,{},{s},{s},{s},{s},{},{},{},,,{}",
            split, cols[0], cols[1], cols[2], cols[3]
        );
        let _ = writeln!(classes, "{stem}.png,{},{}", r.class, SHAPES[r.class]);
        progress.inc(1);
    }
    let mut label_csv = String::from("number,name,category,frequency,coverage,syns\n");
    let mut category_csv = String::from("name,first,last,count,frequency\n");
    for cat in vocab::CATEGORIES {
        let mut c_csv = String::from("code,number,name,frequency,coverage\n");
        let members: Vec<_> = labels.iter().filter(|l| l.2 == *cat).collect();
        for (code, (n, name, _)) in members.iter().enumerate() {
            let st = stats[*n as usize];
            let cov = if st.images > 0 {
                st.coverage / st.images as f64
            } else {
                0.0
            };
            let _ = writeln!(c_csv, "{},{n},{name},{},{cov:.6}", code + 1, st.images);
        }
        let freq: usize = members.iter().map(|l| stats[l.0 as usize].images).sum();
        let _ = writeln!(
            category_csv,
            "{cat},{},{},{},{freq}",
            members[0].0,
            members[members.len() - 1].0,
            members.len()
        );
        write(out, &format!("c_{cat}.csv"), &c_csv)?;
    }
    for (n, name, cat) in &labels {
        if *n == 0 {
            let _ = writeln!(label_csv, "0,-,,0,0.000000,");
            continue;
        }
        let st = stats[*n as usize];
        let cov = if st.images > 0 {
            st.coverage / st.images as f64
        } else {
            0.0
        };
        let _ = writeln!(
            label_csv,
            "{n},{name},{cat}({}),{},{cov:.6},",
            st.images, st.images
        );
    }
    write(out, "index.csv", &index)?;
    write(out, "label.csv", &label_csv)?;
    write(out, "category.csv", &category_csv)?;
    write(out, "labels.csv", &classes)?;
    Ok(())
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
}
