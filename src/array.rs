//! A host-side f32 array with a shape: what goes in and comes out of netlens.

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Array {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Shape(format!(
                "{} values do not fill shape {shape:?}",
                data.len()
            )));
        }
        Ok(Array { shape, data })
    }

    /// Number of items along the first axis.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Items [start, end) along the first axis.
    pub fn slice_batch(&self, start: usize, end: usize) -> Array {
        let per: usize = self.shape[1..].iter().product();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Array {
            shape,
            data: self.data[start * per..end * per].to_vec(),
        }
    }

    /// Stacks arrays of equal item shape along the first axis.
    pub fn concat(parts: &[Array]) -> Result<Array> {
        let first = parts
            .first()
            .ok_or_else(|| Error::Shape("nothing to concatenate".into()))?;
        let mut shape = first.shape.clone();
        shape[0] = 0;
        let mut data = Vec::new();
        for p in parts {
            if p.shape[1..] != first.shape[1..] {
                return Err(Error::Shape(format!(
                    "cannot stack {:?} with {:?}",
                    p.shape, first.shape
                )));
            }
            shape[0] += p.shape[0];
            data.extend_from_slice(&p.data);
        }
        Ok(Array { shape, data })
    }

    /// The first non-finite value's index, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        self.data.iter().position(|v| !v.is_finite())
    }

    /// An error naming the first NaN or infinity, if there is one.
    pub fn check_finite(&self) -> Result<()> {
        match self.first_non_finite() {
            Some(i) => Err(Error::input(
                "tensor",
                format!("value {} at flat index {i} is not finite", self.data[i]),
            )),
            None => Ok(()),
        }
    }
}
