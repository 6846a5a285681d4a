//! The one chunked-stream runner every batched method uses: items in passes that fit the
//! device, a progress bar advanced per pass. What a pass keeps on the device (a running
//! sum, a tape) is the caller's.

use std::ops::Range;

use crate::error::{Error, Result};

/// Runs `pass` over items [0, total) in consecutive ranges of at most `chunk` items and
/// collects what each returns; `progress` advances by each pass's size.
pub fn passes<T>(
    total: usize,
    chunk: usize,
    progress: &indicatif::ProgressBar,
    mut pass: impl FnMut(Range<usize>) -> Result<T>,
) -> Result<Vec<T>> {
    if chunk == 0 {
        return Err(Error::Other("a pass must hold at least one item".into()));
    }
    let mut out = Vec::with_capacity(total.div_ceil(chunk));
    let mut start = 0;
    while start < total {
        let end = (start + chunk).min(total);
        out.push(pass(start..end)?);
        progress.inc((end - start) as u64);
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_cover_every_item_once_in_order() {
        let bar = indicatif::ProgressBar::hidden();
        let r = passes(10, 4, &bar, Ok).unwrap();
        assert_eq!(r, vec![0..4, 4..8, 8..10]);
        assert_eq!(bar.position(), 10);
        assert!(passes(0, 4, &bar, Ok).unwrap().is_empty());
        assert!(passes(3, 0, &bar, Ok).is_err());
    }
}
