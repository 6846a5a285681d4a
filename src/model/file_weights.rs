//! A weight tensor left in its safetensors file at load (`model::load_deferred`), read a
//! piece at a time where it is uploaded, so that the host never holds it whole.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use safetensors::Dtype;

use crate::error::{Error, Result};

/// Where a tensor's values lie in an open model file (the file stays open from load, so a
/// path renamed or replaced meanwhile does not change what is read).
#[derive(Clone)]
pub struct FileWeights {
    file: Arc<Mutex<File>>,
    /// The model's name in messages, and the tensor's.
    model: String,
    tensor: String,
    /// The tensor's first byte in the file.
    offset: u64,
    dtype: Dtype,
    len: usize,
}

impl std::fmt::Debug for FileWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileWeights({} '{}', {} {:?} values at byte {})",
            self.model, self.tensor, self.len, self.dtype, self.offset
        )
    }
}

impl FileWeights {
    pub(super) fn new(
        file: Arc<Mutex<File>>,
        model: &str,
        tensor: &str,
        offset: u64,
        dtype: Dtype,
        len: usize,
    ) -> Self {
        FileWeights {
            file,
            model: model.to_string(),
            tensor: tensor.to_string(),
            offset,
            dtype,
            len,
        }
    }

    /// Whether a tensor of `dtype` can be left in its file (the types `read` converts).
    pub(super) fn readable(dtype: Dtype) -> bool {
        super::import::decode(dtype, &[]).is_some()
    }

    /// Values in the tensor.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Values [from, from + count) as f32, each checked finite as a whole-tensor load checks
    /// them (the same message, the index within the tensor).
    pub fn read(&self, from: usize, count: usize) -> Result<Vec<f32>> {
        if from + count > self.len {
            return Err(Error::Other(format!(
                "{self:?}: values {from}..{} asked for",
                from + count
            )));
        }
        let size = self.dtype.bitsize() / 8;
        let mut bytes = vec![0u8; count * size];
        {
            let mut file = self
                .file
                .lock()
                .map_err(|_| Error::Other(format!("{self:?}: the file's lock was poisoned")))?;
            file.seek(SeekFrom::Start(self.offset + (from * size) as u64))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => Error::model(
                        &self.model,
                        format!(
                            "tensor '{}' ends past the end of the file, which was cut short \
                             after the model was loaded; load it again",
                            self.tensor
                        ),
                    ),
                    _ => Error::io(std::path::Path::new(&self.model), e),
                })?;
        }
        let data = super::import::decode(self.dtype, &bytes)
            .ok_or_else(|| Error::Other(format!("{self:?}: a dtype it cannot read")))?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(super::import::not_finite(
                &self.model,
                &self.tensor,
                from + i,
                data[i],
            ));
        }
        Ok(data)
    }

    /// The whole tensor.
    pub fn read_all(&self) -> Result<Vec<f32>> {
        self.read(0, self.len)
    }

    /// Reads the tensor a million values at a time and keeps nothing: the checks a whole
    /// load makes, without holding it.
    pub fn check(&self) -> Result<()> {
        const PIECE: usize = 1 << 20;
        (0..self.len)
            .step_by(PIECE)
            .try_for_each(|from| self.read(from, PIECE.min(self.len - from)).map(drop))
    }
}
