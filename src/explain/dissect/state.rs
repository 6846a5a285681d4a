//! Shard states on disk: `DIR/state.safetensors`, tensors per layer and a JSON header
//! under the metadata key "netlens-dissect". A threshold state holds each unit's largest
//! values and top images; a count state holds the integer sums, the thresholds it used
//! and the top images it was given.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::{Counts, Layer, LayerQuantile, Quantiles, TopImage};
use crate::error::{Error, Result};

const KEY: &str = "netlens-dissect";
const FILE: &str = "state.safetensors";

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    /// "thresholds" or "counts".
    pub stage: String,
    /// What ties the states of one job together: the model file's size and layers, the
    /// dataset's size, labels and mask size.
    pub model: String,
    pub model_path: String,
    pub dataset: String,
    pub data_path: String,
    pub images: usize,
    pub layers: Vec<Layer>,
    pub quantile: f64,
    pub top: usize,
    pub ranges: Vec<(usize, usize)>,
    pub keep: Vec<usize>,
    pub totals: Vec<u64>,
}

pub enum State {
    Thresholds(Quantiles),
    Counts {
        counts: Counts,
        top: Vec<Vec<Vec<TopImage>>>,
    },
}

fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn bytes_u64(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

struct Out {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl Out {
    fn f32(&mut self, name: String, shape: Vec<usize>, v: &[f32]) {
        self.tensors.push((name, Dtype::F32, shape, bytes_f32(v)));
    }
    fn u64(&mut self, name: String, shape: Vec<usize>, v: &[u64]) {
        self.tensors.push((name, Dtype::U64, shape, bytes_u64(v)));
    }
    fn top(&mut self, i: usize, l: &Layer, top: &[Vec<TopImage>]) {
        let t = top.iter().map(Vec::len).min().unwrap_or(0);
        let (mut v, mut im, mut maps) = (Vec::new(), Vec::new(), Vec::new());
        for unit in top {
            for x in &unit[..t] {
                v.push(x.value);
                im.push(x.image as u64);
                maps.extend_from_slice(&x.map);
            }
        }
        self.f32(format!("l{i}.top_value"), vec![l.units, t], &v);
        self.u64(format!("l{i}.top_image"), vec![l.units, t], &im);
        self.f32(format!("l{i}.top_map"), vec![l.units, t, l.h, l.w], &maps);
    }
}

/// Writes a state into `dir` (created if absent; an existing state is replaced only with
/// `overwrite`).
pub fn save_state(dir: &Path, header: &Header, state: &State, overwrite: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Out {
        tensors: Vec::new(),
    };
    match state {
        State::Thresholds(q) => {
            for (i, l) in q.layers.iter().enumerate() {
                let n = l.largest.iter().map(Vec::len).min().unwrap_or(0);
                let flat: Vec<f32> = l
                    .largest
                    .iter()
                    .flat_map(|v| v[..n].iter().copied())
                    .collect();
                out.f32(format!("l{i}.largest"), vec![l.layer.units, n], &flat);
                out.top(i, &l.layer, &l.top);
            }
        }
        State::Counts { counts, top } => {
            for (i, l) in header.layers.iter().enumerate() {
                let cats = counts.hit[i].len() / l.units;
                out.u64(
                    format!("l{i}.both"),
                    vec![l.units, counts.both[i].len() / l.units],
                    &counts.both[i],
                );
                out.u64(format!("l{i}.hit"), vec![l.units, cats], &counts.hit[i]);
                out.u64(
                    format!("l{i}.annotated"),
                    vec![l.units, cats],
                    &counts.annotated[i],
                );
                out.f32(
                    format!("l{i}.thresholds"),
                    vec![l.units],
                    &counts.thresholds[i],
                );
                out.top(i, l, &top[i]);
            }
            out.u64("pixels".into(), vec![counts.pixels.len()], &counts.pixels);
        }
    }
    let views: Vec<(String, TensorView)> = out
        .tensors
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Other(format!("dissect state {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    let meta = HashMap::from([(
        KEY.to_string(),
        serde_json::to_string(header).map_err(|e| Error::Other(e.to_string()))?,
    )]);
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Other(format!("dissect state: {e}")))?;
    crate::io::write_new(&dir.join(FILE), &bytes, overwrite)
}

fn read_f32(st: &SafeTensors, name: &str, path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let t = st
        .tensor(name)
        .map_err(|e| Error::input(path.display(), format!("{name}: {e}")))?;
    if t.dtype() != Dtype::F32 {
        return Err(Error::input(path.display(), format!("{name} is not F32")));
    }
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((t.shape().to_vec(), v))
}

fn read_u64(st: &SafeTensors, name: &str, path: &Path) -> Result<(Vec<usize>, Vec<u64>)> {
    let t = st
        .tensor(name)
        .map_err(|e| Error::input(path.display(), format!("{name}: {e}")))?;
    if t.dtype() != Dtype::U64 {
        return Err(Error::input(path.display(), format!("{name} is not U64")));
    }
    let v = t
        .data()
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    Ok((t.shape().to_vec(), v))
}

fn shape_err(path: &Path, name: &str, got: &[usize], want: &[usize]) -> Error {
    Error::input(
        path.display(),
        format!("{name} has shape {got:?}, expected {want:?}: the state is damaged"),
    )
}

fn read_top(st: &SafeTensors, i: usize, l: &Layer, path: &Path) -> Result<Vec<Vec<TopImage>>> {
    let (s, v) = read_f32(st, &format!("l{i}.top_value"), path)?;
    let t = s.get(1).copied().unwrap_or(0);
    if s != [l.units, t] {
        return Err(shape_err(path, "top_value", &s, &[l.units, t]));
    }
    let (s2, im) = read_u64(st, &format!("l{i}.top_image"), path)?;
    let (s3, maps) = read_f32(st, &format!("l{i}.top_map"), path)?;
    if s2 != s || s3 != [l.units, t, l.h, l.w] {
        return Err(shape_err(path, "top_map", &s3, &[l.units, t, l.h, l.w]));
    }
    let hw = l.h * l.w;
    Ok((0..l.units)
        .map(|u| {
            (0..t)
                .map(|j| {
                    let k = u * t + j;
                    TopImage {
                        value: v[k],
                        image: im[k] as usize,
                        map: maps[k * hw..(k + 1) * hw].to_vec(),
                    }
                })
                .collect()
        })
        .collect())
}

/// Reads the state in `dir`.
pub fn load_state(dir: &Path) -> Result<(Header, State)> {
    let path = dir.join(FILE);
    let bytes = crate::io::read_capped(&path, crate::io::MAX_ARRAY_FILE, "a dissection state")?;
    let bad = |m: String| Error::input(path.display(), m);
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        bad(format!(
            "is not a dissection state ({e}); was it truncated?"
        ))
    })?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let header: Header = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(KEY))
        .ok_or_else(|| {
            bad(format!(
                "has no '{KEY}' header; it was not written by netlens dissect"
            ))
        })
        .and_then(|h| serde_json::from_str(h).map_err(|e| bad(format!("header: {e}"))))?;
    if header.version != 1 {
        return Err(bad(format!(
            "state version {} is not 1; use the netlens that wrote it",
            header.version
        )));
    }
    if header.keep.len() != header.layers.len() || header.totals.len() != header.layers.len() {
        return Err(bad("header lists are inconsistent".into()));
    }
    let state = match header.stage.as_str() {
        "thresholds" => {
            let mut layers = Vec::new();
            for (i, l) in header.layers.iter().enumerate() {
                let (s, v) = read_f32(&st, &format!("l{i}.largest"), &path)?;
                let n = s.get(1).copied().unwrap_or(0);
                if s != [l.units, n] || n > header.keep[i] {
                    return Err(shape_err(&path, "largest", &s, &[l.units, header.keep[i]]));
                }
                let mut lq = LayerQuantile::from_parts(
                    l.clone(),
                    v.chunks(n.max(1))
                        .take(l.units)
                        .map(<[f32]>::to_vec)
                        .collect(),
                    header.totals[i],
                    header.keep[i],
                    read_top(&st, i, l, &path)?,
                );
                if n == 0 {
                    lq.largest = vec![Vec::new(); l.units];
                }
                layers.push(lq);
            }
            State::Thresholds(Quantiles {
                layers,
                quantile: header.quantile,
                ranges: header.ranges.clone(),
                top: header.top,
            })
        }
        "counts" => {
            let (s, pixels) = read_u64(&st, "pixels", &path)?;
            let labels = s.first().copied().unwrap_or(0);
            let mut c = Counts {
                both: Vec::new(),
                hit: Vec::new(),
                annotated: Vec::new(),
                pixels,
                thresholds: Vec::new(),
                ranges: header.ranges.clone(),
            };
            let mut top = Vec::new();
            for (i, l) in header.layers.iter().enumerate() {
                let (s, both) = read_u64(&st, &format!("l{i}.both"), &path)?;
                if s != [l.units, labels] {
                    return Err(shape_err(&path, "both", &s, &[l.units, labels]));
                }
                let (s, hit) = read_u64(&st, &format!("l{i}.hit"), &path)?;
                let (s2, ann) = read_u64(&st, &format!("l{i}.annotated"), &path)?;
                let (s3, thr) = read_f32(&st, &format!("l{i}.thresholds"), &path)?;
                if s.first() != Some(&l.units) || s2 != s || s3 != [l.units] {
                    return Err(shape_err(&path, "hit", &s, &[l.units]));
                }
                c.both.push(both);
                c.hit.push(hit);
                c.annotated.push(ann);
                c.thresholds.push(thr);
                top.push(read_top(&st, i, l, &path)?);
            }
            State::Counts { counts: c, top }
        }
        s => return Err(bad(format!("unknown stage '{s}'"))),
    };
    Ok((header, state))
}
