//! Entry points for untrusted bytes, shared by the fuzz targets (`fuzz/`) and their
//! regression tests (`tests/fuzz_regressions.rs`). Each accepts any input; a panic or an
//! assertion failure here is a bug in the loader it drives.

use std::path::Path;

use crate::data::broden::{csv_field, split_csv, Broden};
use crate::io::{image, npy, Frame};
use crate::model::{load_bytes, ModelMeta};

/// Safetensors + `netlens` metadata, or torchvision VGG naming without it.
pub fn model_load(data: &[u8]) {
    let framed = crate::model::frame(data);
    if let Ok(m) = load_bytes(data, "fuzz") {
        // a stream is read exactly as far as a file that loads
        assert!(
            matches!(framed, Frame::Total(n) if n == data.len() as u64),
            "the header's length is not the file's"
        );
        let (h, w) = m.meta.input_size;
        let shapes = m
            .output_shapes(&[1, m.in_channels, h, w])
            .expect("a loaded model has valid shapes at its input size");
        assert_eq!(shapes.len(), m.layers.len());
        for l in &m.layers {
            assert!(
                l.kind.param_count() <= data.len(),
                "more weights than bytes"
            );
        }
    }
}

/// `.npy` reading; whatever reads must write and read back bit for bit.
pub fn npy_parse(data: &[u8]) {
    let framed = npy::frame(data);
    if let Ok(a) = npy::parse(data) {
        // a stream read as far as its header says reads the same array
        let Frame::Total(n) = framed else {
            panic!("a .npy that parses has no length")
        };
        let head = data
            .get(..n as usize)
            .expect("the header's length is within the file");
        assert_eq!(npy::parse(head).map(|b| b.shape), Ok(a.shape.clone()));
        assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
        let b = npy::parse(&npy::to_bytes(&a)).expect("a written .npy reads back");
        assert_eq!(a.shape, b.shape);
        assert!(a
            .data
            .iter()
            .zip(&b.data)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

/// PNG/JPEG decoding and preprocessing to a small model's input.
pub fn image_decode(data: &[u8]) {
    let meta = ModelMeta {
        input_size: (32, 32),
        resize: 36,
        ..ModelMeta::default()
    };
    if let Ok(x) = image::decode(data, "fuzz", &meta) {
        assert_eq!(x.shape, [1, 3, 32, 32]);
        assert!(x.data.iter().all(|v| v.is_finite()));
    }
}

/// Broden's `label.csv` and `index.csv` (the input split at its first NUL), and the CSV
/// field writer against the reader on the first line's tab-separated fields.
pub fn broden_csv(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (label, index) = text.split_once('\0').unwrap_or((&text, ""));
    if let Ok(b) = Broden::parse(Path::new("fuzz"), label, index) {
        for r in &b.records {
            assert!(r.sh >= 1 && r.sw >= 1 && r.ih >= 1 && r.iw >= 1);
        }
    }
    let fields: Vec<&str> = text.lines().next().unwrap_or("").split('\t').collect();
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    assert_eq!(split_csv(&line.join(",")), fields, "CSV written then read");
}
