//! IoUs from the merged counts, each unit's best concepts, and the files a dissection
//! writes per layer: iou.npy, thresholds.npy, units.csv, summary.json.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{Concepts, Counts, Layer, Settings, TopImage, Union};
use crate::array::Array;
use crate::error::{Error, Result};

/// One of a unit's concepts.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UnitLabel {
    pub label: u32,
    pub name: String,
    pub category: String,
    pub iou: f32,
}

pub struct LayerResult {
    pub layer: Layer,
    /// [units, labels]; column 0 ("-") is 0.
    pub iou: Vec<f32>,
    pub labels: usize,
    pub thresholds: Vec<f32>,
    /// Per unit: its three best concepts, best first (ties: smaller label number).
    pub best: Vec<Vec<UnitLabel>>,
    pub detector_iou: f64,
    pub top: Vec<Vec<TopImage>>,
}

impl LayerResult {
    /// Whether unit u's best IoU exceeds the detector threshold.
    pub fn is_detector(&self, u: usize) -> bool {
        self.best[u]
            .first()
            .is_some_and(|b| b.iou as f64 > self.detector_iou)
    }

    /// Units ordered by best IoU, highest first (ties: smaller unit).
    pub fn order(&self) -> Vec<usize> {
        let mut o: Vec<usize> = (0..self.best.len()).collect();
        let score = |u: usize| self.best[u].first().map_or(0.0, |b| b.iou);
        o.sort_by(|a, b| score(*b).total_cmp(&score(*a)).then(a.cmp(b)));
        o
    }
}

/// IoU(u, l) = |M_u ∩ L_l| / (Σ_{c ∋ l} |M_u|_c + |L_l| − |M_u ∩ L_l| + 1e-10), as
/// NetDissect-Lite computes it, in f64 from the integer sums.
pub fn results(
    data: &Concepts,
    layers: &[Layer],
    top: &[Vec<Vec<TopImage>>],
    c: &Counts,
    settings: &Settings,
) -> Result<Vec<LayerResult>> {
    let labels = data.labels;
    let cats = data.broden.categories.len().max(1);
    let covered: usize = c.ranges.iter().map(|r| r.1 - r.0).sum();
    if covered != data.len() {
        return Err(Error::input(
            "dissect",
            format!(
                "the counts cover {covered} of the dataset's {} images: merge every shard",
                data.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let units_cat = match settings.union {
            Union::Lite => &c.hit[i],
            Union::Annotated => &c.annotated[i],
        };
        let mut iou = vec![0f32; layer.units * labels];
        for u in 0..layer.units {
            for l in 1..labels {
                let both = c.both[i][u * labels + l] as f64;
                let mut act = 0.0;
                for k in 0..cats {
                    if data.label_cats[l] & (1 << k) != 0 {
                        act += units_cat[u * cats + k] as f64;
                    }
                }
                let v = both / (act + c.pixels[l] as f64 - both + 1e-10);
                iou[u * labels + l] = v as f32;
            }
        }
        let best = (0..layer.units)
            .map(|u| {
                let row = &iou[u * labels..(u + 1) * labels];
                let mut ls: Vec<usize> = (1..labels).filter(|l| row[*l] > 0.0).collect();
                ls.sort_by(|a, b| row[*b].total_cmp(&row[*a]).then(a.cmp(b)));
                ls.truncate(3);
                ls.into_iter()
                    .map(|l| {
                        let lab = data.broden.labels.get(&(l as u32));
                        UnitLabel {
                            label: l as u32,
                            name: lab.map_or("?".into(), |x| x.name.clone()),
                            category: lab
                                .and_then(|x| x.categories.first().cloned())
                                .unwrap_or_default(),
                            iou: row[l],
                        }
                    })
                    .collect()
            })
            .collect();
        out.push(LayerResult {
            layer: layer.clone(),
            iou,
            labels,
            thresholds: c.thresholds[i].clone(),
            best,
            detector_iou: settings.iou,
            top: top.get(i).cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Writes iou.npy, thresholds.npy, units.csv and summary.json into `dir`.
pub fn write_files(r: &LayerResult, dir: &Path, settings: &Settings) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let units = r.layer.units;
    let npy = |name: &str, a: Array| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, crate::io::npy::to_bytes(&a)).map_err(|e| Error::io(&p, e))
    };
    npy("iou.npy", Array::new(vec![units, r.labels], r.iou.clone())?)?;
    npy(
        "thresholds.npy",
        Array::new(vec![units], r.thresholds.clone())?,
    )?;
    let mut csv = String::from("unit,label,category,iou,label2,iou2,label3,iou3\n");
    for u in r.order() {
        let b = &r.best[u];
        let get = |k: usize| {
            b.get(k).map_or((String::new(), String::new()), |x| {
                (x.name.clone(), format!("{:.6}", x.iou))
            })
        };
        let (l1, i1) = get(0);
        let (l2, i2) = get(1);
        let (l3, i3) = get(2);
        let cat = b.first().map_or("", |x| x.category.as_str());
        let _ = writeln!(csv, "{u},{l1},{cat},{i1},{l2},{i2},{l3},{i3}");
    }
    let p = dir.join("units.csv");
    std::fs::write(&p, csv).map_err(|e| Error::io(&p, e))?;
    let p = dir.join("summary.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&summary(r, settings)).unwrap_or_default(),
    )
    .map_err(|e| Error::io(&p, e))
}

/// Detector counts: in all, and per category (units, and unique concepts).
pub fn summary(r: &LayerResult, settings: &Settings) -> serde_json::Value {
    let mut per_cat: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    let mut detectors = 0;
    for u in 0..r.layer.units {
        if r.is_detector(u) {
            detectors += 1;
            let b = &r.best[u][0];
            let e = per_cat.entry(b.category.clone()).or_default();
            e.0 += 1;
            *e.1.entry(b.name.clone()).or_default() += 1;
        }
    }
    let unique: usize = per_cat.values().map(|v| v.1.len()).sum();
    serde_json::json!({
        "layer": r.layer.name,
        "units": r.layer.units,
        "quantile": settings.quantile,
        "iou_threshold": settings.iou,
        "union": format!("{:?}", settings.union).to_lowercase(),
        "detectors": detectors,
        "unique_detectors": unique,
        "categories": per_cat.iter().map(|(c, (n, labels))| (c.clone(), serde_json::json!({
            "detectors": n,
            "unique": labels.len(),
            "labels": labels,
        }))).collect::<serde_json::Map<_, _>>(),
    })
}
