//! A dataset of images on disk: a Broden-layout directory (index.csv; classes from
//! labels.csv when `netlens synth` wrote one) or any folder of PNG/JPEG files, searched
//! recursively (classes from the subfolder names), in a stable order.

use std::path::{Path, PathBuf};

use crate::array::Array;
use crate::error::{Error, Result};
use crate::model::ModelMeta;

pub struct ImageSet {
    pub root: PathBuf,
    /// Paths relative to `root`.
    pub files: Vec<PathBuf>,
    /// Each image's class name, when the dataset gives one.
    pub classes: Vec<Option<String>>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::input(dir.display(), e.to_string()))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        {
            out.push(p);
        }
    }
    Ok(())
}

impl ImageSet {
    pub fn open(root: &Path) -> Result<ImageSet> {
        if !root.is_dir() {
            return Err(Error::input(root.display(), "is not a directory of images"));
        }
        let (files, classes) = if root.join("index.csv").exists() {
            let b = super::broden::Broden::open(root)?;
            let labels = root.join("labels.csv");
            let named: std::collections::HashMap<String, String> = if labels.exists() {
                super::broden::read_csv(&labels)?
                    .into_iter()
                    .filter_map(|r| {
                        Some((
                            r.get("image")?.clone(),
                            r.get("name").or(r.get("class"))?.clone(),
                        ))
                    })
                    .collect()
            } else {
                Default::default()
            };
            let files: Vec<PathBuf> = b
                .records
                .iter()
                .map(|r| {
                    b.image_path(r)
                        .strip_prefix(root)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| b.image_path(r))
                })
                .collect();
            let classes = b
                .records
                .iter()
                .map(|r| named.get(&r.image).cloned())
                .collect();
            (files, classes)
        } else {
            let mut all = Vec::new();
            walk(root, &mut all)?;
            let files: Vec<PathBuf> = all
                .iter()
                .map(|p| p.strip_prefix(root).unwrap_or(p).to_path_buf())
                .collect();
            let classes = files
                .iter()
                .map(|f| {
                    let parent = f.parent().filter(|p| !p.as_os_str().is_empty())?;
                    Some(parent.to_string_lossy().into_owned())
                })
                .collect();
            (files, classes)
        };
        if files.is_empty() {
            return Err(Error::input(root.display(), "holds no PNG or JPEG images"));
        }
        Ok(ImageSet {
            root: root.to_path_buf(),
            files,
            classes,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Images start .. end, prepared for the model, as one batch.
    pub fn load(&self, start: usize, end: usize, meta: &ModelMeta) -> Result<Array> {
        let items: Vec<Array> = self.files[start..end]
            .iter()
            .map(|f| crate::io::image::load(&self.root.join(f), meta))
            .collect::<Result<_>>()?;
        Array::concat(&items)
    }
}
