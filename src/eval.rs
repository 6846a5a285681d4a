//! Model evaluation over labelled image sets.

use std::collections::BTreeMap;
use std::path::Path;

use crate::array::Array;
use crate::data::broden::read_csv;
use crate::error::{Error, Result};
use crate::graph::Net;
use crate::io;

pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
    /// class name -> (correct, total)
    pub per_class: BTreeMap<String, (usize, usize)>,
}

impl Accuracy {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
}

/// Classifies every image listed in `dir/labels.csv` (image, class, name; image paths
/// under `dir/images`) and counts the top-1 hits.
pub fn accuracy(net: &Net, dir: &Path, batch: usize, progress: bool) -> Result<Accuracy> {
    let path = dir.join("labels.csv");
    let rows = read_csv(&path)?;
    if rows.is_empty() {
        return Err(Error::input(
            path.display(),
            "lists no images; an accuracy over none would mean nothing",
        ));
    }
    if batch == 0 {
        return Err(Error::input("--batch", "must be at least 1"));
    }
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    if !progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut acc = Accuracy {
        correct: 0,
        total: 0,
        per_class: BTreeMap::new(),
    };
    for chunk in rows.chunks(batch) {
        let mut items = Vec::new();
        let mut want = Vec::new();
        for row in chunk {
            let image = row
                .get("image")
                .ok_or_else(|| Error::input(path.display(), "no 'image' column"))?;
            let class: usize = row
                .get("class")
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| Error::input(path.display(), format!("bad class for {image}")))?;
            items.push(io::image::load(
                &dir.join("images").join(image),
                &net.model().meta,
            )?);
            want.push(class);
        }
        let x = Array::concat(&items)?;
        let out = net.forward(&x, &[])?;
        let k = out.logits.shape[1];
        for (i, &w) in want.iter().enumerate() {
            let row = &out.logits.data[i * k..(i + 1) * k];
            let got = (0..k)
                .max_by(|a, b| row[*a].total_cmp(&row[*b]))
                .unwrap_or(0);
            let e = acc.per_class.entry(net.model().class_name(w)).or_default();
            e.1 += 1;
            acc.total += 1;
            if got == w {
                e.0 += 1;
                acc.correct += 1;
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(acc)
}
