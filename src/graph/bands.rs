//! One item whose activations exceed a storage binding: the network's first layers (a
//! chain of convs, ReLUs and pools, where each output row reads a window of input rows)
//! run on one band of the image's rows at a time, each band taking the rows above and
//! below that its output rows read, and the rest of the network runs on their joined
//! output. A band's output rows are the whole image's bit for bit (the same sums over
//! the same values); the input gradient walks the bands back, each from its own rows of
//! the joined gradient, and sums them.

use std::ops::Range;

use super::{Begin, Keep, Net, Tape};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::gpu::{Recorder, Tensor};
use crate::model::{LayerKind, Src};
use crate::ops::bands::band_rows;
use crate::ops::ReluRule;

/// How one item runs in row bands (`Net::bands`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bands {
    /// The last layer run in bands.
    pub last: usize,
    /// That layer's output for the whole item, [1, C, H, W].
    pub out_shape: Vec<usize>,
    pub bands: Vec<Band>,
}

/// One band: the input rows it reads and the rows of layer `Bands::last`'s output it
/// gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Band {
    pub rows: Range<usize>,
    pub valid: Range<usize>,
    /// Row `valid.start` as a row of the band's own output.
    pub skip: usize,
}

/// A layer's (kernel, stride, padding) along rows, where its output rows each read a
/// window of its input rows and nothing else.
fn row_window(kind: &LayerKind) -> Option<(usize, usize, usize)> {
    match kind {
        LayerKind::Conv2d { geom, .. } => Some((geom.kernel.0, geom.stride.0, geom.padding.0)),
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => {
            Some((p.kernel.0, p.stride.0, p.padding.0))
        }
        LayerKind::Relu | LayerKind::Dropout => Some((1, 1, 0)),
        _ => None,
    }
}

fn bytes(s: &[usize]) -> u64 {
    s.iter().product::<usize>() as u64 * 4
}

impl Net {
    /// `None` where one item of `shape` fits the device (every activation in one
    /// binding); else how it runs in row bands, or `Error::TooLarge` where it cannot
    /// (the activations after the first layers that can run in bands do not fit, or one
    /// band of rows is too wide).
    pub fn bands(&self, shape: &[usize]) -> Result<Option<Bands>> {
        match self.max_batch(shape) {
            Ok(_) => return Ok(None),
            Err(Error::TooLarge { .. }) => {}
            Err(e) => return Err(e),
        }
        let one = [1, shape[1], shape[2], shape[3]];
        let shapes = self.model.output_shapes(&one)?;
        let limit = self.ctx.max_binding();
        let layers = &self.model.layers;
        // the chain of row-local layers from the input, each read by the next alone
        let mut chain = 0;
        while chain < layers.len() {
            let l = &layers[chain];
            let reads = match chain {
                0 => Src::Input,
                i => Src::Layer(i - 1),
            };
            if l.inputs != [reads] || row_window(&l.kind).is_none() {
                break;
            }
            chain += 1;
            if self.consumers[chain - 1] != [chain] {
                break;
            }
        }
        let input_read_later = layers
            .iter()
            .skip(1)
            .any(|l| l.inputs.contains(&Src::Input));
        // the first layer of the chain from which on every output fits
        let Some(mut last) = (0..chain)
            .find(|&p| shapes[p..].iter().all(|s| bytes(s) <= limit))
            .filter(|_| !input_read_later)
        else {
            return Err(self.unbanded_error(
                shape,
                "its first layers cannot run in row bands (that takes a chain of convs, \
                 ReLUs and pools from the input, after which every activation fits)",
            ));
        };
        // a conv's ReLU runs with it, in the bands
        if last + 1 < chain
            && matches!(layers[last].kind, LayerKind::Conv2d { .. })
            && matches!(layers[last + 1].kind, LayerKind::Relu)
        {
            last += 1;
        }
        let out_rows = shapes[last][2];
        let plan = |t: usize| self.plan_bands(&one, &shapes, last, t);
        // the most output rows a band can give (fits is monotone in them), then as many
        // bands of even height
        let (mut lo, mut hi) = (1, out_rows);
        if let Err(bytes) = plan(1)? {
            return Err(Error::TooLarge {
                what: format!(
                    "an activation of the thinnest row band through layer {} (the image is {} \
                     pixels wide)",
                    layers[last].name, shape[3]
                ),
                bytes,
                limit,
                hint: "use a narrower image".into(),
            });
        }
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if plan(mid)?.is_ok() {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let even = out_rows.div_ceil(out_rows.div_ceil(lo));
        let bands = match plan(even)? {
            Ok(b) => b,
            Err(_) => plan(lo)?.map_err(|_| Error::Other("row bands that fitted do not".into()))?,
        };
        Ok(Some(Bands {
            last,
            out_shape: shapes[last].clone(),
            bands,
        }))
    }

    /// Bands of `t` output rows of layer `last` each, or the bytes of the largest
    /// activation of a band that does not fit (a binding for each activation, the tape
    /// budget for all of them and their gradients).
    fn plan_bands(
        &self,
        input: &[usize],
        shapes: &[Vec<usize>],
        last: usize,
        t: usize,
    ) -> Result<std::result::Result<Vec<Band>, u64>> {
        let layers = &self.model.layers;
        let stride: usize = (0..=last)
            .map(|i| row_window(&layers[i].kind).unwrap().1)
            .product();
        let out_rows = shapes[last][2];
        let limit = self.ctx.max_binding();
        let mut bands = Vec::new();
        for a in (0..out_rows).step_by(t) {
            let b = (a + t).min(out_rows);
            // the input rows output rows a..b read, clipped to the image
            let (mut lo, mut hi) = (a, b);
            for i in (0..=last).rev() {
                let (k, s, pad) = row_window(&layers[i].kind).unwrap();
                let h = if i == 0 { input[2] } else { shapes[i - 1][2] };
                lo = (lo * s).saturating_sub(pad);
                hi = ((hi - 1) * s + k).saturating_sub(pad).min(h);
            }
            // start on a multiple of the strides, so every layer's windows line up
            lo -= lo % stride;
            let band = [1, input[1], hi - lo, input[3]];
            let sizes = self.model.output_shapes_through(&band, last)?;
            let kept: u64 = sizes.iter().map(|s| bytes(s)).sum::<u64>() * 2;
            let largest = sizes.iter().map(|s| bytes(s)).fold(bytes(&band), u64::max);
            if largest > limit || kept > self.tape_budget {
                return Ok(Err(largest));
            }
            let skip = a - lo / stride;
            if skip + (b - a) > sizes[last][2] {
                return Err(Error::Other(format!(
                    "row band {lo}..{hi} of an input of {input:?} gives no rows {a}..{b} of \
                     layer {last}"
                )));
            }
            bands.push(Band {
                rows: lo..hi,
                valid: a..b,
                skip,
            });
        }
        Ok(Ok(bands))
    }

    /// The error for an input of `shape` that needs bands where a method cannot use
    /// them: `max_batch`'s, with `why` as its hint.
    pub fn unbanded_error(&self, shape: &[usize], why: &str) -> Error {
        match self.max_batch(shape) {
            Err(Error::TooLarge {
                what, bytes, limit, ..
            }) => Error::TooLarge {
                what,
                bytes,
                limit,
                hint: format!("{why}; use a smaller input than {}x{}", shape[2], shape[3]),
            },
            Err(e) => e,
            Ok(_) => Error::Other(format!("an input of {shape:?} needs no bands")),
        }
    }

    /// Layer `b.last`'s output for one item [1, C, H, W], run band by band (a
    /// submission each).
    pub fn banded_prefix(&self, x: &Array, b: &Bands) -> Result<Tensor> {
        let out = Tensor::empty(&self.ctx, &b.out_shape, "banded activations")?;
        for band in &b.bands {
            let xt = upload_rows(self, x, &band.rows)?;
            let mut rec = Recorder::new(&self.ctx, "forward in bands");
            let tape =
                self.record_span(&mut rec, Begin::Input(&xt), &Keep::Nothing, Some(b.last))?;
            let rows = band.valid.len();
            band_rows(
                &mut rec,
                &tape.logits,
                &out,
                (band.skip, band.valid.start, rows),
                false,
            )?;
            rec.submit()?;
        }
        Ok(out)
    }

    /// Records a forward of the host batch `x` with `keep`: uploaded whole, or with
    /// `bands` (one item), its first layers run band by band now and the rest recorded.
    pub fn record_forward_host(
        &self,
        rec: &mut Recorder,
        x: &Array,
        bands: Option<&Bands>,
        keep: &Keep,
    ) -> Result<Tape> {
        match bands {
            Some(b) => {
                let y = self.banded_prefix(x, b)?;
                self.record_after_bands(rec, b, &y, keep)
            }
            None => {
                let xt = Tensor::upload(&self.ctx, &x.data, &x.shape)?;
                self.record_forward(rec, &xt, keep, None)
            }
        }
    }

    /// An error naming `flag` where one of `layers` runs inside the bands of an input of
    /// `shape` (its output never exists whole).
    pub fn check_after_bands(
        &self,
        b: &Bands,
        shape: &[usize],
        layers: &[usize],
        flag: &str,
    ) -> Result<()> {
        match layers.iter().find(|&&i| i <= b.last) {
            Some(&i) => Err(Error::input(
                flag,
                format!(
                    "layer {} runs in row bands for an input of {shape:?} (too large for one \
                     binding); name a layer after {}",
                    self.model.layers[i].name, self.model.layers[b.last].name
                ),
            )),
            None => Ok(()),
        }
    }

    /// Records the layers after the bands on their joined output `y` (`banded_prefix`).
    pub fn record_after_bands(
        &self,
        rec: &mut Recorder,
        b: &Bands,
        y: &Tensor,
        keep: &Keep,
    ) -> Result<Tape> {
        if y.shape != b.out_shape {
            return Err(Error::Shape(format!(
                "the bands give {:?}, not {:?}",
                b.out_shape, y.shape
            )));
        }
        self.record_span(rec, Begin::After(b.last, y), keep, None)
    }

    /// The gradient at the input [1, C, H, W] of `x` from `g`, the gradient at layer
    /// `b.last`'s output: each band's walk from its own rows of `g` (the others zero),
    /// summed where bands overlap. ReLUs follow `relu`.
    pub fn banded_input_gradient(
        &self,
        x: &Array,
        b: &Bands,
        g: &Tensor,
        relu: ReluRule,
    ) -> Result<Array> {
        if relu != ReluRule::Gradient {
            // the bands' gradients meet summed at the input, but guided backprop's and
            // deconvnet's ReLUs clip a sum, not its parts
            return Err(self.unbanded_error(
                &x.shape,
                "guided backprop and deconvnet cannot run in row bands",
            ));
        }
        self.banded_walk(x, b, g, &Keep::Gradient(vec![]), |tape, seed| {
            let mut rec = Recorder::new(&self.ctx, "gradient in bands");
            let gx = self.record_backward(&mut rec, tape, b.last, seed, relu, &[])?;
            rec.submit()?;
            Ok(gx.input)
        })
    }

    /// What `walk` carries from layer `b.last`'s output back to the input of `x`, for a
    /// walk linear in what it carries: `walk` runs on each band's tape (recorded with
    /// `keep`) from the band's rows of `g` (the others zero), and the bands' results
    /// are summed where they overlap.
    pub fn banded_walk(
        &self,
        x: &Array,
        b: &Bands,
        g: &Tensor,
        keep: &Keep,
        mut walk: impl FnMut(&Tape, &Tensor) -> Result<Tensor>,
    ) -> Result<Array> {
        if g.shape != b.out_shape {
            return Err(Error::Shape(format!(
                "the bands give {:?}, not {:?}",
                b.out_shape, g.shape
            )));
        }
        let [c, h, w] = [x.shape[1], x.shape[2], x.shape[3]];
        let mut dx = vec![0f32; c * h * w];
        for band in &b.bands {
            let xt = upload_rows(self, x, &band.rows)?;
            let mut rec = Recorder::new(&self.ctx, "forward in bands");
            let tape = self.record_span(&mut rec, Begin::Input(&xt), keep, Some(b.last))?;
            let seed = Tensor::empty(&self.ctx, &tape.logits.shape, "band seed")?;
            let rows = band.valid.len();
            band_rows(
                &mut rec,
                g,
                &seed,
                (band.valid.start, band.skip, rows),
                true,
            )?;
            rec.submit()?;
            let part = walk(&tape, &seed)?.read(&self.ctx)?;
            let n = band.rows.len();
            for ch in 0..c {
                let src = &part[ch * n * w..(ch + 1) * n * w];
                let dst = &mut dx[(ch * h + band.rows.start) * w..][..n * w];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
        }
        Array::new(x.shape.clone(), dx)
    }
}

/// Rows `rows` of one item [1, C, H, W], on the device.
fn upload_rows(net: &Net, x: &Array, rows: &Range<usize>) -> Result<Tensor> {
    let [c, h, w] = [x.shape[1], x.shape[2], x.shape[3]];
    let mut data = Vec::with_capacity(c * rows.len() * w);
    for ch in 0..c {
        data.extend_from_slice(&x.data[(ch * h + rows.start) * w..(ch * h + rows.end) * w]);
    }
    Tensor::upload(&net.ctx, &data, &[1, c, rows.len(), w])
}
