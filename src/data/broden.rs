//! Broden's directory layout (NetDissect): `index.csv` lists each image with its
//! per-category label masks, `label.csv` / `category.csv` / `c_<category>.csv` name the
//! labels. Masks are PNGs whose label is red + 256 * green. The reader reads the real
//! Broden too; the writer is used by the generator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::image::{decode_rgb, MAX_SIDE};

pub const INDEX_COLUMNS: &[&str] = &[
    "image", "split", "ih", "iw", "sh", "sw", "color", "object", "part", "material", "scene",
    "texture",
];

#[derive(Clone, Debug)]
pub struct Label {
    pub number: u32,
    pub name: String,
    /// Categories this label appears in (Broden: "color(120);object(3)").
    pub categories: Vec<String>,
}

/// One category entry of an image: a mask file, or an image-level label.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Mask(String),
    Whole(u32),
}

#[derive(Clone, Debug)]
pub struct Record {
    pub image: String,
    pub split: String,
    pub ih: usize,
    pub iw: usize,
    pub sh: usize,
    pub sw: usize,
    pub fields: BTreeMap<String, Vec<Field>>,
}

#[derive(Debug)]
pub struct Broden {
    pub root: PathBuf,
    pub labels: BTreeMap<u32, Label>,
    pub categories: Vec<String>,
    pub records: Vec<Record>,
}

/// One CSV field as written: quoted (inner quotes doubled) when it holds a comma or a
/// quote. Line breaks are refused by the writers, since readers split lines first.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits a CSV line, honouring double quotes.
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                out.last_mut().unwrap().push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// Reads a CSV file with a header into rows of (column -> value).
pub fn read_csv(path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let text = crate::io::read_text(path, crate::io::MAX_TEXT_FILE, "a CSV file")?;
    parse_csv(&text, path)
}

/// Parses CSV text with a header into rows of (column -> value); `path` names it in errors.
pub fn parse_csv(text: &str, path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv(
        lines
            .next()
            .ok_or_else(|| Error::input(path.display(), "empty CSV file"))?,
    );
    Ok(lines
        .map(|l| header.iter().cloned().zip(split_csv(l)).collect())
        .collect())
}

fn num<T: std::str::FromStr>(row: &BTreeMap<String, String>, key: &str, path: &Path) -> Result<T> {
    row.get(key)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Error::input(
                path.display(),
                format!("column '{key}' missing or not a number in {row:?}"),
            )
        })
}

/// An image or mask side from the index: 1..=[`MAX_SIDE`] like any decoded image.
fn side(row: &BTreeMap<String, String>, key: &str, path: &Path) -> Result<usize> {
    let v: usize = num(row, key, path)?;
    if !(1..=MAX_SIDE as usize).contains(&v) {
        return Err(Error::input(
            path.display(),
            format!("column '{key}' is {v}; sides must be 1..={MAX_SIDE} (row {row:?})"),
        ));
    }
    Ok(v)
}

impl Broden {
    /// Opens a Broden-format directory (`index.csv`, `label.csv`, `images/`).
    pub fn open(root: &Path) -> Result<Broden> {
        let read = |name: &str| {
            let path = root.join(name);
            crate::io::read_text(&path, crate::io::MAX_TEXT_FILE, "a CSV file")
        };
        Broden::parse(root, &read("label.csv")?, &read("index.csv")?)
    }

    /// Builds the dataset from the texts of `label.csv` and `index.csv` (for a dataset at
    /// `root`; nothing is read from disk here).
    pub fn parse(root: &Path, label_csv: &str, index_csv: &str) -> Result<Broden> {
        let lpath = root.join("label.csv");
        let mut labels = BTreeMap::new();
        let mut categories: Vec<String> = Vec::new();
        for row in parse_csv(label_csv, &lpath)? {
            let number: u32 = num(&row, "number", &lpath)?;
            let cats: Vec<String> = row
                .get("category")
                .map(|c| {
                    c.split(';')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.split('(').next().unwrap_or(s).to_string())
                        .collect()
                })
                .unwrap_or_default();
            for c in &cats {
                if !categories.contains(c) {
                    categories.push(c.clone());
                }
            }
            labels.insert(
                number,
                Label {
                    number,
                    name: row.get("name").cloned().unwrap_or_default(),
                    categories: cats,
                },
            );
        }
        let ipath = root.join("index.csv");
        let mut records = Vec::new();
        for row in parse_csv(index_csv, &ipath)? {
            let mut fields = BTreeMap::new();
            for cat in ["color", "object", "part", "material", "scene", "texture"] {
                let v = row.get(cat).map(String::as_str).unwrap_or("");
                let entries: Vec<Field> = v
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<u32>()
                            .map(Field::Whole)
                            .unwrap_or_else(|_| Field::Mask(s.to_string()))
                    })
                    .collect();
                if !entries.is_empty() {
                    fields.insert(cat.to_string(), entries);
                }
            }
            records.push(Record {
                image: row
                    .get("image")
                    .cloned()
                    .ok_or_else(|| Error::input(ipath.display(), "no 'image' column"))?,
                split: row.get("split").cloned().unwrap_or_default(),
                ih: side(&row, "ih", &ipath)?,
                iw: side(&row, "iw", &ipath)?,
                sh: side(&row, "sh", &ipath)?,
                sw: side(&row, "sw", &ipath)?,
                fields,
            });
        }
        Ok(Broden {
            root: root.to_path_buf(),
            labels,
            categories,
            records,
        })
    }

    pub fn image_path(&self, r: &Record) -> PathBuf {
        self.root.join("images").join(&r.image)
    }

    pub fn label_name(&self, n: u32) -> &str {
        self.labels.get(&n).map_or("?", |l| l.name.as_str())
    }

    /// The label planes ([sh * sw] each) of one category of an image: one per mask file,
    /// and image-level labels as constant planes. Empty if the image has none.
    pub fn masks(&self, r: &Record, category: &str) -> Result<Vec<Vec<u32>>> {
        let Some(fields) = r.fields.get(category) else {
            return Ok(Vec::new());
        };
        fields
            .iter()
            .map(|f| match f {
                Field::Whole(n) => Ok(vec![*n; r.sh * r.sw]),
                Field::Mask(file) => {
                    let (w, h, labels) = read_mask(&self.root.join("images").join(file))?;
                    if (h as usize, w as usize) != (r.sh, r.sw) {
                        return Err(Error::input(
                            file,
                            format!("mask is {w}x{h}; index.csv says {}x{}", r.sw, r.sh),
                        ));
                    }
                    Ok(labels)
                }
            })
            .collect()
    }
}

/// A Broden mask: label = red + 256 * green.
pub fn read_mask(path: &Path) -> Result<(u32, u32, Vec<u32>)> {
    let bytes = crate::io::read_capped(path, crate::io::MAX_IMAGE_FILE, "a mask image")?;
    let img = decode_rgb(&bytes, &path.display().to_string())?;
    let (w, h) = img.dimensions();
    Ok((
        w,
        h,
        img.pixels()
            .map(|p| p[0] as u32 + 256 * p[1] as u32)
            .collect(),
    ))
}

pub fn mask_image(size: (u32, u32), labels: &[u32]) -> image::RgbImage {
    image::RgbImage::from_fn(size.0, size.1, |x, y| {
        let l = labels[(y * size.0 + x) as usize];
        image::Rgb([(l % 256) as u8, (l / 256) as u8, 0])
    })
}
