//! One item whose activations exceed a storage binding: the network's first layers
//! (convs, ReLUs, pools and sums, where each output row reads a window of input rows)
//! run on one band of the image's rows at a time, each band taking the rows above and
//! below that its output rows read, and the rest of the network runs on their joined
//! output. A band's output rows are the whole image's bit for bit (the same sums over
//! the same values). Going back, each band gives the input gradient of its own input
//! rows: its forward covers every output row that reads them, and its walk starts from
//! the gradient at all of those, so every sum along the way is whole.

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
    /// The forward's bands: their `valid` rows cover that output once.
    pub bands: Vec<Band>,
    /// The backward's: their `keep` rows cover the input once.
    pub back: Vec<Band>,
}

impl Bands {
    /// Errs where `t` is not shaped as the bands' joined output (or its gradient).
    fn check_joined(&self, t: &Tensor) -> Result<()> {
        if t.shape != self.out_shape {
            return Err(Error::Shape(format!(
                "the bands give {:?}, not {:?}",
                self.out_shape, t.shape
            )));
        }
        Ok(())
    }
}

/// What a forward run in bands (`Net::record_forward_any`) keeps for its walk back.
#[derive(Debug)]
pub(crate) struct BandedInput {
    pub bands: Bands,
    pub x: Array,
}

/// Submits what `rec` holds and leaves it empty, to record on.
pub(crate) fn flush(rec: &mut Recorder) -> Result<()> {
    std::mem::replace(rec, Recorder::new(rec.ctx(), "after bands")).submit()
}

/// One band: the input rows it reads and the rows of layer `Bands::last`'s output it
/// gives as the whole input does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Band {
    pub rows: Range<usize>,
    pub valid: Range<usize>,
    /// Row `valid.start` as a row of the band's own output.
    pub skip: usize,
    /// A backward band's input rows whose gradient it gives whole: every output row
    /// that reads them is in `valid` (a forward band's: `rows`).
    pub keep: Range<usize>,
}

/// A layer's (kernel, stride, padding) along rows, where its output rows each read a
/// window of its inputs' rows and nothing else.
fn row_window(kind: &LayerKind) -> Option<(usize, usize, usize)> {
    match kind {
        LayerKind::Conv2d { geom, .. } => Some((geom.kernel.0, geom.stride.0, geom.padding.0)),
        LayerKind::MaxPool2d(p) | LayerKind::AvgPool2d(p) => {
            Some((p.kernel.0, p.stride.0, p.padding.0))
        }
        LayerKind::Relu | LayerKind::Dropout | LayerKind::Add => Some((1, 1, 0)),
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
        self.plan(shape, 1)
    }

    /// `bands`, where the activations after the bands hold `after` items.
    fn plan(&self, shape: &[usize], after: usize) -> Result<Option<Bands>> {
        match self.max_batch(shape) {
            Ok(_) => return Ok(None),
            Err(Error::TooLarge { .. }) => {}
            Err(e) => return Err(e),
        }
        let one = [1, shape[1], shape[2], shape[3]];
        let shapes = self.model.output_shapes(&one)?;
        let limit = self.ctx.max_binding();
        let layers = &self.model.layers;
        // layers 0..=p can run in bands where each reads rows through a window, their
        // strides agree where paths meet, and no later layer reads any of them but p
        let local = layers
            .iter()
            .take_while(|l| row_window(&l.kind).is_some())
            .count();
        let cut = |p: usize| {
            layers[p + 1..].iter().all(|l| {
                l.inputs.iter().all(|s| match *s {
                    Src::Input => false,
                    Src::Layer(j) => j >= p,
                })
            }) && self.strides(p).is_some()
        };
        let Some(mut last) = (0..local)
            .find(|&p| cut(p) && shapes[p..].iter().all(|s| bytes(s) * after as u64 <= limit))
        else {
            return Err(self.unbanded_error(
                shape,
                "its first layers cannot run in row bands (that takes convs, ReLUs, pools \
                 and sums from the input, after which every activation fits)",
            ));
        };
        // a conv's ReLU runs with it, in the bands
        if last + 1 < local
            && cut(last + 1)
            && matches!(layers[last].kind, LayerKind::Conv2d { .. })
            && matches!(layers[last + 1].kind, LayerKind::Relu)
        {
            last += 1;
        }
        let bands = self.largest_bands(&one, &shapes, last, false)?;
        let back = self.largest_bands(&one, &shapes, last, true)?;
        let rows = |b: &[Band], back: bool| {
            b.iter()
                .map(|b| match back {
                    false => format!("{:?} -> {:?}", b.rows, b.valid),
                    true => format!("{:?} for {:?}", b.rows, b.keep),
                })
                .collect::<Vec<_>>()
        };
        log::debug!(
            "{shape:?}: layers through {} in row bands; forward (input rows -> output \
             rows) {:?}; backward (input rows read for those given) {:?}",
            layers[last].name,
            rows(&bands, false),
            rows(&back, true)
        );
        Ok(Some(Bands {
            last,
            out_shape: shapes[last].clone(),
            bands,
            back,
        }))
    }

    /// The fewest bands that fit (forward, or `back`ward), of even heights.
    fn largest_bands(
        &self,
        input: &[usize],
        shapes: &[Vec<usize>],
        last: usize,
        back: bool,
    ) -> Result<Vec<Band>> {
        let plan = |t: usize| self.plan_bands(input, shapes, last, (t, back));
        if let Err(bytes) = plan(1)? {
            return Err(Error::TooLarge {
                what: format!(
                    "an activation of the thinnest row band through layer {} (the image is {} \
                     pixels wide)",
                    self.model.layers[last].name, input[3]
                ),
                bytes,
                limit: self.ctx.max_binding(),
                hint: "use a narrower image".into(),
            });
        }
        // the most rows a band can take (fitting is monotone in them), then as many
        // bands of even height
        let total = if back { input[2] } else { shapes[last][2] };
        let (mut lo, mut hi) = (1, total);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if plan(mid)?.is_ok() {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let even = total.div_ceil(total.div_ceil(lo));
        match plan(even)? {
            Ok(b) => Ok(b),
            Err(_) => plan(lo)?.map_err(|_| Error::Other("row bands that fitted do not".into())),
        }
    }

    /// Bands of `t` output rows of layer `last` each (`back`: bands that each give the
    /// input gradient of `t` input rows), or the bytes of the largest activation of a
    /// band that does not fit.
    fn plan_bands(
        &self,
        input: &[usize],
        shapes: &[Vec<usize>],
        last: usize,
        (t, back): (usize, bool),
    ) -> Result<std::result::Result<Vec<Band>, u64>> {
        let total = if back { input[2] } else { shapes[last][2] };
        let mut bands = Vec::new();
        for start in (0..total).step_by(t) {
            let end = (start + t).min(total);
            let (valid, keep) = match back {
                false => (start..end, None),
                true => match self.rows_read_from(shapes, last, start..end)? {
                    v if v.is_empty() => continue, // rows nothing reads: a gradient of 0
                    v => (v, Some(start..end)),
                },
            };
            match self.band_for(input, shapes, last, valid)? {
                Ok(b) => bands.push(Band {
                    keep: keep.unwrap_or(b.keep.clone()),
                    ..b
                }),
                Err(bytes) => return Ok(Err(bytes)),
            }
        }
        Ok(Ok(bands))
    }

    /// The band that gives output rows `valid` of layer `last` as the whole input
    /// does (`keep`: the rows it reads), or the bytes of its largest activation where
    /// that does not fit a binding, or all of them with their gradients the tape budget.
    fn band_for(
        &self,
        input: &[usize],
        shapes: &[Vec<usize>],
        last: usize,
        valid: Range<usize>,
    ) -> Result<std::result::Result<Band, u64>> {
        let layers = &self.model.layers;
        let cum = self
            .strides(last)
            .ok_or_else(|| Error::Other(format!("layers 0..={last} cannot run in bands")))?;
        // the rows each layer's output must give, from the readers down, and the input
        // rows that takes (clipped to the image)
        let mut need: Vec<Option<(usize, usize)>> = vec![None; last + 1];
        need[last] = Some((valid.start, valid.end));
        let mut rows: Option<(usize, usize)> = None;
        for i in (0..=last).rev() {
            let Some((a, b)) = need[i] else { continue };
            let (k, s, pad) = self.window(i)?;
            for src in &layers[i].inputs {
                let (at, h) = match *src {
                    Src::Input => (&mut rows, input[2]),
                    Src::Layer(j) => (&mut need[j], shapes[j][2]),
                };
                let lo = (a * s).saturating_sub(pad);
                let hi = ((b - 1) * s + k).saturating_sub(pad).min(h);
                *at = hull(*at, (lo, hi));
            }
        }
        let (mut lo, hi) = rows.ok_or_else(|| Error::Other("no layer reads the input".into()))?;
        // start on a multiple of every layer's stride, so every layer's windows line up,
        // and of twice it, so that Winograd's 2x2 output tiles (ops::winograd) start on the
        // whole image's and a tile's kept rows are its bits (its top row reads only the
        // patch's first 3 rows, its bottom row the last 3)
        let stride = 2 * cum.iter().fold(1, |m, &c| lcm(m, c));
        lo -= lo % stride;
        let band = [1, input[1], hi - lo, input[3]];
        let sizes = self.model.output_shapes_through(&band, last)?;
        let kept: u64 = sizes.iter().map(|s| bytes(s)).sum::<u64>() * 2;
        let largest = sizes.iter().map(|s| bytes(s)).fold(bytes(&band), u64::max);
        if largest > self.ctx.max_binding() || kept > self.tape_budget {
            return Ok(Err(largest));
        }
        let skip = valid.start - lo / cum[last];
        if skip + valid.len() > sizes[last][2] {
            return Err(Error::Other(format!(
                "row band {lo}..{hi} of an input of {input:?} gives no rows {valid:?} of \
                 layer {last}"
            )));
        }
        Ok(Ok(Band {
            rows: lo..hi,
            keep: lo..hi,
            valid,
            skip,
        }))
    }

    /// The output rows of layer `last` that read any of the input's rows `rows`.
    fn rows_read_from(
        &self,
        shapes: &[Vec<usize>],
        last: usize,
        rows: Range<usize>,
    ) -> Result<Range<usize>> {
        let layers = &self.model.layers;
        let mut read: Vec<Option<(usize, usize)>> = vec![None; last + 1];
        for i in 0..=last {
            let (k, s, pad) = self.window(i)?;
            for src in &layers[i].inputs {
                let from = match *src {
                    Src::Input => Some((rows.start, rows.end)),
                    Src::Layer(j) => read[j],
                };
                // output row o reads rows o·s − pad ..= o·s − pad + k − 1
                let Some((lo, hi)) = from else { continue };
                let lo = (lo + pad).saturating_sub(k - 1).div_ceil(s);
                let hi = ((hi - 1 + pad) / s + 1).min(shapes[i][2]);
                if lo < hi {
                    read[i] = hull(read[i], (lo, hi));
                }
            }
        }
        Ok(read[last].map_or(0..0, |(lo, hi)| lo..hi))
    }

    /// Layer i's `row_window`.
    fn window(&self, i: usize) -> Result<(usize, usize, usize)> {
        let l = &self.model.layers[i];
        row_window(&l.kind).ok_or_else(|| {
            Error::Other(format!(
                "layer {} ({}) cannot run in bands",
                l.name,
                l.kind.type_name()
            ))
        })
    }

    /// Each of layers 0..=`last`'s stride from the input (the product along any path),
    /// or `None` where the paths into a sum disagree.
    fn strides(&self, last: usize) -> Option<Vec<usize>> {
        let layers = &self.model.layers;
        let mut cum: Vec<usize> = Vec::with_capacity(last + 1);
        for l in &layers[..=last] {
            let s = row_window(&l.kind)?.1;
            let ins: Vec<usize> = l
                .inputs
                .iter()
                .map(|src| match *src {
                    Src::Input => 1,
                    Src::Layer(j) => cum[j],
                })
                .collect();
            if ins.iter().any(|&c| c != ins[0]) {
                return None;
            }
            cum.push(ins[0] * s);
        }
        Some(cum)
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
        self.run_bands(x, b, &out, |_| true)?;
        Ok(out)
    }

    /// `banded_prefix` of `x`, which differs from an item whose output that is `base`
    /// only in rows `changed`: only the bands that read those rows run.
    pub fn banded_prefix_from(
        &self,
        x: &Array,
        b: &Bands,
        base: &Tensor,
        changed: Range<usize>,
    ) -> Result<Tensor> {
        let out = Tensor::empty(&self.ctx, &b.out_shape, "banded activations")?;
        let mut rec = Recorder::new(&self.ctx, "bands' output");
        band_rows(&mut rec, base, &out, (0, 0, b.out_shape[2]), false)?;
        rec.submit()?;
        self.run_bands(x, b, &out, |band| {
            band.rows.start < changed.end && changed.start < band.rows.end
        })?;
        Ok(out)
    }

    /// Runs the forward bands `which` picks on `x`, each giving its rows of `out`.
    fn run_bands(
        &self,
        x: &Array,
        b: &Bands,
        out: &Tensor,
        which: impl Fn(&Band) -> bool,
    ) -> Result<()> {
        for band in b.bands.iter().filter(|band| which(band)) {
            let xt = upload_rows(self, x, &band.rows)?;
            let mut rec = Recorder::new(&self.ctx, "forward in bands");
            let tape =
                self.record_span(&mut rec, Begin::Input(&xt), &Keep::Nothing, Some(b.last))?;
            let rows = (band.skip, band.valid.start, band.valid.len());
            band_rows(&mut rec, &tape.logits, out, rows, false)?;
            rec.submit()?;
        }
        Ok(())
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

    /// Items per forward pass (`record_forward_any`): `max_batch`, or one where an item
    /// of `shape` runs in bands.
    pub fn forward_batch(&self, shape: &[usize]) -> Result<usize> {
        match self.bands(shape)? {
            Some(_) => Ok(1),
            None => self.max_batch(shape),
        }
    }

    /// Items per pass of a device loop that walks back to its input: `tape_batch`, or
    /// one where an item of `shape` runs in bands.
    pub fn walk_batch(&self, shape: &[usize]) -> Result<usize> {
        match self.bands(shape)? {
            Some(_) => Ok(1),
            None => self.tape_batch(shape),
        }
    }

    /// `record_forward` for device loops on inputs of any size. Where one item of `x`
    /// is too large for a binding (`Net::bands`), what `rec` holds is submitted, `x` is
    /// read back, each item's first layers run band by band now and the rest is recorded
    /// on their joined outputs; `record_backward` on the tape walks back through the bands
    /// the same way. `flag` names the option that chose `until` or the kept layers, for
    /// the error where one of them runs inside the bands.
    pub fn record_forward_any(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        keep: &Keep,
        until: Option<usize>,
        flag: &str,
    ) -> Result<Tape> {
        let n = x.shape[0];
        let Some(b) = self.plan(&x.shape, n)? else {
            return self.record_forward(rec, x, keep, until);
        };
        let mut named: Vec<usize> = until.into_iter().collect();
        if let Keep::Layers(v) | Keep::Gradient(v) = keep {
            named.extend(v);
        }
        self.check_after_bands(&b, &x.shape, &named, flag)?;
        flush(rec)?;
        let x = Array::new(x.shape.clone(), x.read(&self.ctx)?)?;
        let y = if n == 1 {
            self.banded_prefix(&x, &b)?
        } else {
            let mut joined = b.out_shape.clone();
            joined[0] = n;
            let mut data = Vec::with_capacity(joined.iter().product());
            for i in 0..n {
                let yi = self.banded_prefix(&x.slice_batch(i, i + 1), &b)?;
                data.extend(yi.read(&self.ctx)?);
            }
            Tensor::upload(&self.ctx, &data, &joined)?
        };
        let mut tape = self.record_span(rec, Begin::After(b.last, &y), keep, until)?;
        tape.banded = Some(Box::new(BandedInput { bands: b, x }));
        Ok(tape)
    }

    /// The input gradient of a tape's items from `g`, the gradient at the output of the
    /// last layer its bands ran (`record_forward_any`), item by item and band by band.
    pub(crate) fn banded_items_gradient(
        &self,
        bi: &BandedInput,
        g: &Tensor,
        relu: ReluRule,
    ) -> Result<Tensor> {
        let (x, b) = (&bi.x, &bi.bands);
        let n = x.batch();
        let gx = if n == 1 {
            self.banded_input_gradient(x, b, g, relu)?.data
        } else {
            let all = g.read(&self.ctx)?;
            let per = all.len() / n;
            let mut data = Vec::with_capacity(x.data.len());
            for i in 0..n {
                let gi = Tensor::upload(&self.ctx, &all[i * per..(i + 1) * per], &b.out_shape)?;
                let xi = x.slice_batch(i, i + 1);
                data.extend(self.banded_input_gradient(&xi, b, &gi, relu)?.data);
            }
            data
        };
        Tensor::upload(&self.ctx, &gx, &x.shape)
    }

    /// Records the layers after the bands on their joined output `y` (`banded_prefix`).
    pub fn record_after_bands(
        &self,
        rec: &mut Recorder,
        b: &Bands,
        y: &Tensor,
        keep: &Keep,
    ) -> Result<Tape> {
        b.check_joined(y)?;
        self.record_span(rec, Begin::After(b.last, y), keep, None)
    }

    /// One item's logits from the joined output `y` of its bands, run and read now.
    pub fn logits_after_bands(&self, b: &Bands, y: &Tensor) -> Result<Vec<f32>> {
        let mut rec = Recorder::new(&self.ctx, "logits after bands");
        let tape = self.record_after_bands(&mut rec, b, y, &Keep::Nothing)?;
        rec.submit()?;
        tape.logits.read(&self.ctx)
    }

    /// The gradient at the input [1, C, H, W] of `x` from `g`, the gradient at layer
    /// `b.last`'s output, band by band (`banded_walk`). ReLUs follow `relu`.
    pub fn banded_input_gradient(
        &self,
        x: &Array,
        b: &Bands,
        g: &Tensor,
        relu: ReluRule,
    ) -> Result<Array> {
        self.banded_walk(x, b, g, &Keep::Gradient(vec![]), |tape, seed| {
            let mut rec = Recorder::new(&self.ctx, "gradient in bands");
            let gx = self.record_backward(&mut rec, tape, b.last, seed, relu, &[])?;
            rec.submit()?;
            Ok(gx.input)
        })
    }

    /// What `walk` carries from layer `b.last`'s output (`g`) back to the input of
    /// `x`: each backward band's forward is recorded with `keep` and `walk` runs on its
    /// tape from the band's rows of `g` (the others zero); every output row that reads
    /// the band's kept input rows is among them, so those rows come out as a walk of the
    /// whole item gives them, whatever the walk's rules.
    pub fn banded_walk(
        &self,
        x: &Array,
        b: &Bands,
        g: &Tensor,
        keep: &Keep,
        mut walk: impl FnMut(&Tape, &Tensor) -> Result<Tensor>,
    ) -> Result<Array> {
        b.check_joined(g)?;
        let [c, h, w] = [x.shape[1], x.shape[2], x.shape[3]];
        let mut dx = vec![0f32; c * h * w];
        for band in &b.back {
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
            // the kept rows the band read (the others no output reads)
            let (from, to) = (
                band.keep.start.max(band.rows.start),
                band.keep.end.min(band.rows.end),
            );
            if to <= from {
                continue;
            }
            let (n, len) = (band.rows.len(), (to - from) * w);
            for ch in 0..c {
                let src = &part[(ch * n + from - band.rows.start) * w..][..len];
                dx[(ch * h + from) * w..][..len].copy_from_slice(src);
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

fn lcm(a: usize, b: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    a / gcd(a, b) * b
}

/// The smallest row range holding `at` (if any) and `rows`.
fn hull(at: Option<(usize, usize)>, (lo, hi): (usize, usize)) -> Option<(usize, usize)> {
    Some(at.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))))
}
