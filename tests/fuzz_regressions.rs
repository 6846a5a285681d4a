//! The fuzz targets' seeds and kept crash inputs (fuzz/seeds, fuzz/regressions) run through
//! the same entry points as `cargo fuzz`, plus the size-claim cases the fuzzing work fixed:
//! each must be refused with a clear error, before anything sized by it is allocated.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use netlens::data::broden::Broden;
use netlens::io::{image as img, npy};
use netlens::model::ModelMeta;

/// A fuzz target: its name and its entry point.
type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] = &[
    ("model_load", netlens::fuzz::model_load),
    ("npy_parse", netlens::fuzz::npy_parse),
    ("image_decode", netlens::fuzz::image_decode),
    ("broden_csv", netlens::fuzz::broden_csv),
];

fn files(dir: &str, target: &str) -> Vec<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn every_seed_and_kept_crash_runs_through_its_target() {
    let mut n = 0;
    for (target, run) in TARGETS {
        let seeds = files("seeds", target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for f in seeds.iter().chain(&files("regressions", target)) {
            run(&std::fs::read(f).unwrap());
            n += 1;
        }
    }
    assert!(n >= 15, "only {n} inputs");
}

#[test]
fn seeds_are_valid_inputs() {
    for f in files("seeds", "model_load") {
        let m = netlens::model::load_bytes(&std::fs::read(&f).unwrap(), "seed");
        assert!(m.is_ok(), "{}: {:?}", f.display(), m.err());
    }
    for f in files("seeds", "npy_parse") {
        assert!(
            npy::parse(&std::fs::read(&f).unwrap()).is_ok(),
            "{}",
            f.display()
        );
    }
    let meta = ModelMeta::default();
    for f in files("seeds", "image_decode") {
        let r = img::decode(&std::fs::read(&f).unwrap(), "seed", &meta);
        assert!(r.is_ok(), "{}: {:?}", f.display(), r.err());
    }
    let text = std::fs::read_to_string(&files("seeds", "broden_csv")[0]).unwrap();
    let (label, index) = text.split_once('\0').unwrap();
    let b = Broden::parse(Path::new("seed"), label, index).unwrap();
    assert_eq!(b.records.len(), 2);
    assert_eq!(b.label_name(2), "big, round");
    assert_eq!(b.records[1].image, "b,c.png");
}

fn npy_with_shape(shape: &str) -> Vec<u8> {
    let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (h.len() + 11) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h.as_bytes());
    b.extend([0u8; 16]);
    b
}

#[test]
fn npy_shapes_that_overflow_are_refused() {
    // n * 4 bytes overflowed usize for n above 2^62; a zero side hid the overflow of the
    // others, which per-item sizes downstream then multiplied.
    for shape in ["(4611686018427387905,)", "(0, 4294967296, 4294967296)"] {
        let e = npy::parse(&npy_with_shape(shape)).unwrap_err();
        assert!(
            e.contains("overflow") || e.contains("truncated"),
            "{shape}: {e}"
        );
    }
    assert_eq!(npy::parse(&npy_with_shape("(2, 2)")).unwrap().shape, [2, 2]);
    assert!(npy::parse(&npy_with_shape("(5,)"))
        .unwrap_err()
        .contains("truncated"));
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
        }
    }
    !c
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::new(w, h)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A PNG whose header claims `w` x `h` over the pixel data of a 2x2 image.
fn lying_png(w: u32, h: u32) -> Vec<u8> {
    let mut b = png(2, 2);
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

#[test]
fn image_headers_claiming_more_than_the_file_holds_are_refused() {
    let meta = ModelMeta::default();
    let e = img::decode(&lying_png(16000, 16000), "lie.png", &meta).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("16000x16000") && msg.contains("can hold"),
        "{msg}"
    );
    let e = img::decode(&lying_png(20000, 4), "wide.png", &meta).unwrap_err();
    assert!(e.to_string().contains("1..=16384"), "{e}");
    // JPEG: the frame header's height and width patched to 16000.
    let mut j = Vec::new();
    image::RgbImage::new(8, 8)
        .write_to(&mut std::io::Cursor::new(&mut j), image::ImageFormat::Jpeg)
        .unwrap();
    let sof = j.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    j[sof + 5..sof + 9].copy_from_slice(&[0x3E, 0x80, 0x3E, 0x80]);
    let e = img::decode(&j, "lie.jpg", &meta).unwrap_err();
    assert!(e.to_string().contains("can hold"), "{e}");
    // An honest 4096x4 file passes the size check and fails on its aspect ratio.
    assert!(img::decode(&png(4096, 4), "ok.png", &meta)
        .is_err_and(|e| e.to_string().contains("aspect ratio")));
    assert!(img::decode(&png(300, 200), "ok.png", &meta).is_ok());
}

#[test]
fn thin_images_that_would_resize_to_gigabytes_are_refused() {
    // 1 x 2000 with the shorter side brought to 256 would be 256 x 512000 (393 MB).
    let meta = ModelMeta::default();
    let e = img::decode(&png(1, 2000), "thin.png", &meta).unwrap_err();
    assert!(e.to_string().contains("aspect ratio"), "{e}");
    assert!(img::decode(&png(40, 2000), "tall.png", &meta).is_ok());
}

#[test]
fn broden_sides_out_of_range_are_refused() {
    let label = "number,name,category\n1,red,color(1)\n";
    for sides in ["0,64,64,64", "64,64,1000000000000,64", "64,64,64,x"] {
        let index = format!("image,split,ih,iw,sh,sw,color\na.png,train,{sides},1\n");
        let e = Broden::parse(Path::new("d"), label, &index).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("index.csv") && msg.contains("column"), "{msg}");
    }
}

/// Every image up to 16384 pixels a side decodes: an RGB image of 13400² (539 MB decoded)
/// is over the image crate's default decoder limit of 512 MiB.
#[test]
fn images_over_the_decoders_default_limit_decode() {
    let (w, h) = (13400, 13400);
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(
        &vec![0u8; (w * h * 3) as usize],
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let rgb = img::decode_rgb(&bytes, "big.png").unwrap();
    assert_eq!(rgb.dimensions(), (w, h));
}

/// Input files are read up to a stated size: a larger file, a directory, or an endless one
/// (a device) is an error before it can fill memory.
#[test]
fn oversized_endless_and_directory_inputs_are_refused() {
    use netlens::io::{read_capped, read_text};
    let dir = std::env::temp_dir().join(format!("netlens-capped-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("ten.bin");
    std::fs::write(&f, [7u8; 10]).unwrap();
    assert_eq!(read_capped(&f, 10, "a test file").unwrap(), vec![7u8; 10]);
    let e = read_capped(&f, 9, "a test file").unwrap_err().to_string();
    assert!(e.contains("over 9 bytes"), "{e}");
    let e = read_capped(&dir, 10, "a test file")
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a directory"), "{e}");
    std::fs::write(&f, [0xFFu8, 0xFE]).unwrap();
    let e = read_text(&f, 10, "a CSV file").unwrap_err().to_string();
    assert!(e.contains("not UTF-8"), "{e}");
    if cfg!(unix) {
        let e = read_capped(Path::new("/dev/zero"), 1 << 20, "a model file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("over 1048576 bytes"), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A stream (a pipe, a device) is read as far as its header says: a model or a .npy
/// through a FIFO loads, and an endless or foreign stream fails at its first bytes (it
/// was read up to the 4 GiB bound before).
#[cfg(unix)]
#[test]
fn streams_are_read_as_far_as_their_header_says() {
    let dir = std::env::temp_dir().join(format!("netlens-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // through a FIFO, with bytes after the end that must stay unread
    let through_fifo = |name: &str, bytes: Vec<u8>| -> PathBuf {
        let fifo = dir.join(name);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo {}", fifo.display());
        let path = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let _ = f.write_all(&bytes); // the reader may stop first
        });
        fifo
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = std::fs::read(root.join("models/shapes-vgg.safetensors")).unwrap();
    let mut trailing = model.clone();
    trailing.extend_from_slice(&[0u8; 100]);
    let m = netlens::model::load(&through_fifo("model", trailing)).unwrap();
    assert_eq!(m.layers.len(), 26);
    let a = netlens::Array {
        shape: vec![2, 3],
        data: vec![1.0, -2.0, 3.5, 0.0, 7.0, 9.0],
    };
    let mut bytes = npy::to_bytes(&a);
    bytes.extend_from_slice(b"more");
    let b = npy::read(&through_fifo("a.npy", bytes.clone())).unwrap();
    assert_eq!((b.shape, b.data), (a.shape.clone(), a.data.clone()));
    // a stream that ends early is truncated, as a short file is
    let cut = bytes[..bytes.len() - 10].to_vec();
    let e = npy::read(&through_fifo("cut.npy", cut))
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated data"), "{e}");
    // endless or foreign streams: refused by their first bytes
    let e = netlens::model::load(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("header of 0 bytes"), "{e}");
    let e = npy::read(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("bad magic"), "{e}");
    let mut huge = model[..8].to_vec();
    huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = netlens::model::load(&through_fifo("huge", huge))
        .unwrap_err()
        .to_string();
    assert!(e.contains("header of 1099511627776 bytes"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The length a header states is the file's: the demo model's, and a written .npy's.
#[test]
fn headers_state_the_file_length() {
    use netlens::io::Frame;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = std::fs::read(root.join("models/shapes-vgg.safetensors")).unwrap();
    assert!(matches!(netlens::model::frame(&model[..4]), Frame::More(8)));
    assert!(matches!(netlens::model::frame(&model[..8]), Frame::More(n) if n > 8));
    let total = |f: Frame| match f {
        Frame::Total(n) => n,
        _ => panic!("no length"),
    };
    assert_eq!(total(netlens::model::frame(&model)), model.len() as u64);
    let a = netlens::Array {
        shape: vec![3, 1, 5],
        data: (0..15).map(|i| i as f32).collect(),
    };
    let bytes = npy::to_bytes(&a);
    assert!(matches!(npy::frame(&bytes[..3]), Frame::More(12)));
    assert_eq!(total(npy::frame(&bytes)), bytes.len() as u64);
    assert!(matches!(
        npy::frame(b"PK\x03\x04 a zip file"),
        Frame::Bad(_)
    ));
}
