//! NumPy .npy files (format 1.0-3.0): float32 arrays in C order, little or big endian;
//! float64 is read and converted. Writes little-endian float32, format 1.0.

use std::path::Path;

use crate::array::Array;
use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

pub fn read(path: &Path) -> Result<Array> {
    let bytes = super::read_framed(path, super::MAX_ARRAY_FILE, "a .npy file", frame)?;
    parse(&bytes).map_err(|m| Error::input(path.display(), m))
}

/// Where the header text begins and its length, from the magic, version and length
/// fields.
fn prefix(bytes: &[u8]) -> std::result::Result<(usize, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let major = bytes[6];
    match major {
        1 => Ok((10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize)),
        2 | 3 if bytes.len() >= 12 => Ok((
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        )),
        _ => Err(format!("unsupported .npy version {major}")),
    }
}

/// Where the data begins, the dtype and the shape, from a .npy file's first bytes (the
/// whole header).
fn header(bytes: &[u8]) -> std::result::Result<(usize, String, Vec<usize>), String> {
    let (start, hlen) = prefix(bytes)?;
    let header = bytes
        .get(start..start + hlen)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let descr = field(header, "descr").ok_or("header has no descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if field(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(
            "Fortran-order arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let shape_txt = field(header, "shape").ok_or("header has no shape")?;
    let inner = shape_txt.trim().trim_start_matches('(');
    let inner = &inner[..inner.find(')').ok_or("bad shape")?];
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry '{s}'"))
        })
        .collect::<std::result::Result<_, _>>()?;
    // Non-zero sides too: code downstream multiplies any run of them (per-item sizes).
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d.max(1)))
        .ok_or("shape overflows")?;
    Ok((start + hlen, descr.to_string(), shape))
}

/// How long a .npy file is, from its first bytes (`io::read_framed`).
pub fn frame(bytes: &[u8]) -> super::Frame {
    use super::Frame;
    if bytes.len() >= 6 && &bytes[..6] != MAGIC {
        return Frame::Bad("not a .npy file (bad magic)".into());
    }
    if bytes.len() < 12 {
        return Frame::More(12);
    }
    let need = match prefix(bytes) {
        Ok((start, hlen)) => (start + hlen) as u64,
        Err(e) => return Frame::Bad(e),
    };
    if (bytes.len() as u64) < need {
        return Frame::More(need);
    }
    match header(bytes) {
        Err(e) => Frame::Bad(e),
        Ok((start, descr, shape)) => {
            let width = if descr.ends_with('8') { 8 } else { 4 };
            let n = shape
                .iter()
                .try_fold(width as u64, |a, &d| a.checked_mul(d as u64));
            n.and_then(|n| n.checked_add(start as u64))
                .map_or(Frame::Bad("shape overflows".into()), Frame::Total)
        }
    }
}

pub fn parse(bytes: &[u8]) -> std::result::Result<Array, String> {
    let (start, descr, shape) = header(bytes)?;
    let descr = descr.as_str();
    let n: usize = shape.iter().product();
    let body = &bytes[start..];
    // the first n values of `width` bytes, or an error when the file holds fewer
    let values = |width: usize, kind: &str| {
        n.checked_mul(width)
            .and_then(|len| body.get(..len))
            .ok_or(format!(
                "truncated data: {} bytes for {n} {kind} values",
                body.len()
            ))
    };
    let data: Vec<f32> = match descr {
        "<f4" | "|f4" | ">f4" => {
            let b = values(4, "float32")?;
            let be = descr.starts_with('>');
            b.chunks_exact(4)
                .map(|c| {
                    let a = [c[0], c[1], c[2], c[3]];
                    if be {
                        f32::from_be_bytes(a)
                    } else {
                        f32::from_le_bytes(a)
                    }
                })
                .collect()
        }
        "<f8" | ">f8" => {
            let b = values(8, "float64")?;
            let be = descr.starts_with('>');
            b.chunks_exact(8)
                .map(|c| {
                    let a: [u8; 8] = c.try_into().unwrap();
                    (if be {
                        f64::from_be_bytes(a)
                    } else {
                        f64::from_le_bytes(a)
                    }) as f32
                })
                .collect()
        }
        other => {
            return Err(format!(
                "dtype '{other}' is not supported; save float32 (np.float32)"
            ))
        }
    };
    Ok(Array { shape, data })
}

/// The text after `'key':` up to the next top-level comma.
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}':");
    let i = header.find(&pat1)? + pat1.len();
    let rest = header[i..].trim_start();
    if rest.starts_with('(') {
        return Some(&rest[..rest.find(')')? + 1]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

pub fn to_bytes(a: &Array) -> Vec<u8> {
    let shape = match a.shape.len() {
        1 => format!("({},)", a.shape[0]),
        _ => format!(
            "({})",
            a.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.div_ceil(64) * 64 - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + a.data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &a.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let a = Array::new(vec![2, 1, 3], vec![1.0, -2.5, 3.0, 0.0, 1e-7, 7.0]).unwrap();
        let b = to_bytes(&a);
        assert_eq!(
            (b.len() - a.data.len() * 4) % 64,
            0,
            "header padded to 64 bytes"
        );
        assert_eq!(parse(&b).unwrap(), a);
        assert!(parse(&b[..b.len() - 3]).unwrap_err().contains("truncated"));
        assert!(parse(b"hello world").unwrap_err().contains("magic"));
        let v = Array::new(vec![3], vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!(parse(&to_bytes(&v)).unwrap(), v);
    }
}
