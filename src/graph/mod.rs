//! The graph runner: uploads a model's weights once and runs its layers (in topological
//! order, each reading the outputs it names) on the GPU, keeping activations on the
//! device, capturing any layer's output by name.

mod backward;
mod bands;
mod stem;
pub mod stream;

pub use bands::{Band, Bands};

pub(crate) use backward::accumulate;
pub use backward::Grads;

use std::sync::Arc;

use crate::array::Array;
use crate::error::{Error, Result};
use crate::gpu::upload::HostRows;
use crate::gpu::{Context, Precision, Recorder, Tensor, WeightBuffer, WeightLayout};
use crate::model::{FileWeights, LayerKind, Model, Src};
use crate::ops;

/// Which layer outputs a GPU forward pass keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Only the logits (conv, linear and sum + ReLU pairs are fused).
    Nothing,
    /// These layer indices.
    Layers(Vec<usize>),
    /// Every layer (the tape for a backward pass); nothing is fused.
    All,
    /// What a gradient walk (`Net::record_backward`) reads, and these layers' outputs:
    /// every layer's output, except that a conv, linear or residual sum whose only reader
    /// is a ReLU runs fused with it and keeps no output of its own (the walk needs the
    /// ReLU's output, not the pre-activation). Saves the ReLU passes and the
    /// pre-activation tensors.
    Gradient(Vec<usize>),
}

impl Keep {
    fn has(&self, i: usize) -> bool {
        match self {
            Keep::Nothing => false,
            Keep::Layers(v) => v.contains(&i),
            Keep::All | Keep::Gradient(_) => true,
        }
    }
}

/// A max-pool run inside the conv before it (`Net::pool_after`).
struct PoolFusion<'a> {
    pool: &'a ops::Pool2d,
    /// the pool's layer index
    at: usize,
    /// whether the pass makes the pool's argmax (a tape a walk reads)
    argmax: bool,
    /// the conv's output shape, which the pass does not keep
    conv: [usize; 4],
}

/// What a GPU forward pass leaves behind: kept layer outputs, max-pool argmaxes and the
/// logits (the last layer run's output), all on the device.
pub struct Tape {
    /// The network's input, or, for a forward that started after a layer
    /// (`Net::record_forward_after`), that layer's given output.
    pub input: Tensor,
    /// The first layer the forward ran: 0, or the layer after the one it started after.
    pub first: usize,
    pub outputs: Vec<Option<Tensor>>,
    pub argmax: Vec<Option<Tensor>>,
    /// The shapes of layer outputs a conv + max-pool pass made inside itself and did not
    /// keep (the walk needs only their shapes).
    pub(crate) shapes: Vec<Option<Vec<usize>>>,
    /// The last layer's output (the logits, or layer `last`'s output).
    pub logits: Tensor,
    /// The last layer the forward ran.
    pub last: usize,
    /// For a forward whose first layers ran in row bands (`Net::record_forward_any`):
    /// the bands and the input, for the walk back through them.
    pub(crate) banded: Option<Box<bands::BandedInput>>,
}

/// Where a recorded forward pass begins: at the input, or after a layer whose output is
/// given.
enum Begin<'a> {
    Input(&'a Tensor),
    After(usize, &'a Tensor),
}

/// Host results of a forward pass.
pub struct Forward {
    pub logits: Array,
    /// (layer output name, activation) in the order asked for.
    pub captures: Vec<(String, Array)>,
}

/// Whether a `Net` keeps the host copy of the conv and linear weights it uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostWeights {
    Keep,
    Release,
    /// Keep those of the layers marked true (by index), release the others.
    KeepLayers(Vec<bool>),
}

/// A layer's weights for its upload: read a piece at a time from the file where
/// `model::load_deferred` left them there (`file`), else the host copy, borrowed where the
/// `Net` keeps it, else taken from the model and given back as it is written.
fn host_rows(w: &mut Vec<f32>, keep: bool, file: Option<FileWeights>) -> HostRows<'_> {
    match (file, keep) {
        (Some(fw), _) => HostRows::Reader {
            len: fw.len(),
            read: Box::new(move |from, count| fw.read(from, count)),
        },
        (None, true) => HostRows::Borrowed(w),
        (None, false) => HostRows::Owned(std::mem::take(w)),
    }
}

impl HostWeights {
    fn keeps(&self, layer: usize) -> bool {
        match self {
            HostWeights::Keep => true,
            HostWeights::Release => false,
            HostWeights::KeepLayers(k) => k.get(layer).copied().unwrap_or(false),
        }
    }
}

pub struct Net {
    ctx: Arc<Context>,
    model: Model,
    /// Each layer's readers (from the model's wiring).
    consumers: Vec<Vec<usize>>,
    weights: Vec<Option<WeightBuffer>>,
    batch_cap: Option<usize>,
    tape_budget: u64,
}

/// Default GPU memory for the activations of one forward + backward pass.
pub const DEFAULT_TAPE_BUDGET: u64 = 1 << 30;

impl Net {
    /// Uploads the model's weights (split across buffers where over the binding limit).
    pub fn new(ctx: Arc<Context>, model: Model) -> Result<Net> {
        Self::with_precision(ctx, model, Precision::F32)
    }

    /// As `new`, storing conv and linear weights at `precision` (f16 halves their
    /// memory; arithmetic stays f32).
    pub fn with_precision(ctx: Arc<Context>, model: Model, precision: Precision) -> Result<Net> {
        Self::upload(ctx, model, precision, HostWeights::Keep)
    }

    /// As `with_precision`; with `HostWeights::Release` each conv and linear layer's host
    /// weights are dropped once on the device (`model()` then holds them empty), so that a
    /// model is held once, not twice. LRP makes its modified weights from the host ones
    /// and needs them kept where its rules modify weights (`method::host_weights`).
    pub fn upload(
        ctx: Arc<Context>,
        mut model: Model,
        precision: Precision,
        host: HostWeights,
    ) -> Result<Net> {
        model.check_graph()?;
        let mut weights = Vec::with_capacity(model.layers.len());
        for (i, l) in model.layers.iter_mut().enumerate() {
            let keep = host.keeps(i);
            // weights `model::load_deferred` left in the file: read whole where they are
            // kept, else a piece at a time as they are written
            let file = match keep {
                true => {
                    l.resolve()?;
                    None
                }
                false => l.file_weights.take(),
            };
            let upload = |w, rows, row_len, bias: &Option<Vec<f32>>, layout| {
                WeightBuffer::upload_rows(&ctx, &l.name, w, rows, row_len, bias.as_deref(), layout)
            };
            weights.push(match &mut l.kind {
                LayerKind::Conv2d { geom, weight, bias } => {
                    let taps = geom.kernel.0 * geom.kernel.1;
                    let layout = WeightLayout::conv(taps).precision(precision);
                    let rows = host_rows(weight, keep, file);
                    Some(upload(rows, geom.cout, geom.cin * taps, bias, layout)?)
                }
                LayerKind::Linear {
                    in_features,
                    out_features,
                    weight,
                    bias,
                } => {
                    let layout = WeightLayout::linear().precision(precision);
                    let rows = host_rows(weight, keep, file);
                    Some(upload(rows, *out_features, *in_features, bias, layout)?)
                }
                LayerKind::BatchNorm2d { .. } => {
                    return Err(Error::Other(format!(
                        "batch norm {} was not folded; load models with model::load",
                        l.name
                    )))
                }
                _ => None,
            });
        }
        ctx.check("uploading weights")?;
        Ok(Net {
            ctx,
            consumers: model.consumers(),
            model,
            weights,
            batch_cap: None,
            tape_budget: DEFAULT_TAPE_BUDGET,
        })
    }

    /// Caps the items per pass below what the device allows (bounds GPU memory).
    pub fn with_max_batch(mut self, cap: usize) -> Self {
        self.batch_cap = Some(cap.max(1));
        self
    }

    /// Sets the GPU memory a forward + backward pass may hold in activations.
    pub fn with_tape_budget(mut self, bytes: u64) -> Self {
        self.tape_budget = bytes;
        self
    }

    /// Items per pass when every activation is kept for a backward walk.
    pub fn tape_batch(&self, shape: &[usize]) -> Result<usize> {
        let fit = self.max_batch(shape)?;
        let one = [1, shape[1], shape[2], shape[3]];
        let per: u64 = self
            .model
            .output_shapes(&one)?
            .iter()
            .map(|s| s.iter().product::<usize>() as u64 * 8)
            .sum();
        Ok(fit.min((self.tape_budget / per.max(1)) as usize).max(1))
    }

    pub(crate) fn weights(&self, i: usize) -> &WeightBuffer {
        self.weights[i]
            .as_ref()
            .expect("conv and linear layers have weights")
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
    /// The layers that read each layer's output (`Model::consumers`, computed once).
    pub fn consumers(&self) -> &[Vec<usize>] {
        &self.consumers
    }
    pub fn ctx(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Checks an input shape against the network and returns how many items fit one pass
    /// (every activation of a pass must fit one storage binding).
    pub fn max_batch(&self, shape: &[usize]) -> Result<usize> {
        if shape.len() != 4 || shape[1] != self.model.in_channels {
            return Err(Error::Shape(format!(
                "input has shape {shape:?}; this model takes [N, {}, H, W]",
                self.model.in_channels
            )));
        }
        if shape[0] == 0 {
            return Err(Error::Shape("input batch is empty".into()));
        }
        let one = [1, shape[1], shape[2], shape[3]];
        let shapes = self.model.output_shapes(&one)?;
        let limit = self.ctx.max_binding();
        let mut worst = (
            one.iter().product::<usize>() as u64 * 4,
            "input".to_string(),
        );
        for (i, s) in shapes.iter().enumerate() {
            let b = s.iter().product::<usize>() as u64 * 4;
            if b > worst.0 {
                worst = (b, self.model.output_name(i).to_string());
            }
        }
        if worst.0 > limit {
            return Err(Error::TooLarge {
                what: format!("one item's output of layer {}", worst.1),
                bytes: worst.0,
                limit,
                hint: format!(
                    "use a smaller input than {}x{} (every command runs one this large in \
                     row bands where the model allows)",
                    shape[2], shape[3]
                ),
            });
        }
        let fit = ((limit / worst.0) as usize).max(1);
        Ok(self.batch_cap.map_or(fit, |c| c.min(fit)))
    }

    /// Runs the network on a device tensor of at most `max_batch` items.
    pub fn forward_gpu(&self, x: &Tensor, keep: &Keep) -> Result<Tape> {
        let mut rec = Recorder::new(&self.ctx, "forward");
        let tape = self.record_forward(&mut rec, x, keep, None)?;
        rec.submit()?;
        Ok(tape)
    }

    /// Records a forward pass into `rec` (nothing runs until it is submitted), through
    /// layer `until` (its index; `None`: the whole network). The tape's `logits` hold the
    /// last layer's output: the logits, or layer `until`'s output.
    pub fn record_forward(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        keep: &Keep,
        until: Option<usize>,
    ) -> Result<Tape> {
        self.max_batch(&x.shape)?;
        self.record_span(rec, Begin::Input(x), keep, until)
    }

    /// As `record_forward` for an input of shape `input`, starting after layer `after`,
    /// whose output `y` is given (made some other way: integrated gradients' first conv,
    /// by its linearity). No layer after it may read the input. The tape's `first` is
    /// `after + 1` and its `input` is `y`: a walk over it stops at layer `first`
    /// (`record_backward_range`).
    pub fn record_forward_after(
        &self,
        rec: &mut Recorder,
        input: &[usize],
        after: usize,
        y: &Tensor,
        keep: &Keep,
        until: Option<usize>,
    ) -> Result<Tape> {
        self.max_batch(input)?;
        let shapes = self.model.output_shapes(input)?;
        match shapes.get(after) {
            Some(s) if *s == y.shape && until.is_none_or(|u| u > after) => {}
            _ => {
                return Err(Error::Shape(format!(
                    "cannot start after layer {after} with an output of {:?} for an input \
                     of {input:?}",
                    y.shape
                )))
            }
        }
        self.record_span(rec, Begin::After(after, y), keep, until)
    }

    /// The forward pass from where `begin` says.
    fn record_span(
        &self,
        rec: &mut Recorder,
        begin: Begin,
        keep: &Keep,
        until: Option<usize>,
    ) -> Result<Tape> {
        let n = self.model.layers.len();
        let last = match until {
            Some(u) if u < n => u,
            Some(u) => {
                return Err(Error::Shape(format!(
                    "layer {u} does not exist; the model has {n} layers"
                )))
            }
            None => n - 1,
        };
        let layers = &self.model.layers;
        let mut outputs: Vec<Option<Tensor>> = vec![None; n];
        let mut argmax: Vec<Option<Tensor>> = vec![None; n];
        // the shapes of outputs a conv + max-pool pass makes and does not keep
        let mut shapes: Vec<Option<Vec<usize>>> = vec![None; n];
        // outputs still to be read by a later layer, dropped after their last reader
        let mut live: Vec<Option<Tensor>> = vec![None; n];
        // outputs a conv pass stored packed for the conv that alone reads them next
        let mut packed: Vec<Option<ops::PackedTensor>> = vec![None; n];
        // tensors that several convs read, packed once for all of them
        let mut shared: Vec<Option<ops::PackedTensor>> = vec![None; n];
        let last_read: Vec<usize> = (0..n)
            .map(|j| self.consumers[j].iter().copied().max().unwrap_or(j))
            .collect();
        let (x, mut cur, mut i) = match begin {
            Begin::After(a, y) => {
                if keep.has(a) {
                    outputs[a] = Some(y.clone());
                }
                live[a] = Some(y.clone());
                (None, y.clone(), a + 1)
            }
            Begin::Input(x) => (Some(x), x.clone(), 0),
        };
        let first = i;
        let input = cur.clone();
        while i <= last {
            let packed_in = match layers[i].inputs.as_slice() {
                [Src::Layer(j)] => match packed[*j].take() {
                    Some(p) => Some(p),
                    None => self.shared_pack(rec, i, *j, last, &live, &mut shared)?,
                },
                _ => None,
            };
            let ins: Vec<Tensor> = layers[i]
                .inputs
                .iter()
                .filter(|_| packed_in.is_none())
                .map(|s| match *s {
                    Src::Input => x.cloned().ok_or_else(|| {
                        Error::Other(format!(
                            "layer {i} reads the input, which a forward from layer {first} \
                             does not have"
                        ))
                    }),
                    Src::Layer(j) => live[j].clone().ok_or_else(|| {
                        Error::Other(format!("layer {i} reads layer {j}, which was not run"))
                    }),
                })
                .collect::<Result<_>>()?;
            let a = match packed_in {
                Some(p) => ops::Act::Packed(p),
                None => ops::Act::Tensor(ins[0].clone()),
            };
            // a conv, linear or sum takes its ReLU in when its own output is not wanted
            // (and it is not the last layer asked for) and only that ReLU reads it
            let fuse = match keep {
                Keep::All => false,
                Keep::Gradient(wanted) => !wanted.contains(&i),
                _ => !keep.has(i),
            } && i < last
                && self.consumers[i] == [i + 1]
                && matches!(layers.get(i + 1).map(|l| &l.kind), Some(LayerKind::Relu));
            let pooled = self.pool_after(rec, i, keep, last, fuse, a.shape())?;
            // the layers after i that run inside it: its ReLU, and a max-pool after them
            let skip = match (&layers[i].kind, &pooled) {
                (_, Some(f)) => f.at - i,
                (LayerKind::Conv2d { .. } | LayerKind::Linear { .. } | LayerKind::Add, None) => {
                    fuse as usize
                }
                _ => 0,
            };
            let pack = self.packs_output(rec, i, i + skip, keep, last, a.shape())?;
            let y = match (&layers[i].kind, a) {
                (LayerKind::Conv2d { geom, .. }, a) if pooled.is_some() => {
                    let f = pooled.expect("checked");
                    let w = self.weights(i);
                    let (y, arg) =
                        ops::conv2d_pool_act(rec, &a, w, geom, fuse, f.pool, f.argmax, pack)?;
                    shapes[i..f.at].fill(Some(f.conv.to_vec()));
                    argmax[f.at] = arg;
                    y
                }
                (LayerKind::Conv2d { geom, .. }, a) if pack || matches!(a, ops::Act::Packed(_)) => {
                    ops::conv2d_act(rec, &a, self.weights(i), geom, fuse, pack)?
                }
                (LayerKind::Conv2d { .. } | LayerKind::Linear { .. }, ops::Act::Tensor(a)) => {
                    ops::Act::Tensor(self.record_linear(rec, i, &a, fuse)?)
                }
                (k, ops::Act::Packed(_)) => {
                    return Err(Error::Other(format!(
                        "layer {i} ({}) cannot read a packed input",
                        k.type_name()
                    )))
                }
                (kind, ops::Act::Tensor(a)) => {
                    let y = self.record_plain(rec, i, &a, &ins, &mut argmax, fuse)?;
                    if fuse && matches!(kind, LayerKind::Add) {
                        // the sum itself is not kept: its shape is the ReLU's
                        shapes[i] = Some(y.shape.clone());
                    }
                    ops::Act::Tensor(y)
                }
            };
            drop(ins);
            for s in &layers[i].inputs {
                if let Src::Layer(j) = *s {
                    if last_read[j] <= i + skip {
                        live[j] = None;
                    }
                }
            }
            // a fused conv/linear has no output of its own to keep (y is the last fused
            // layer's: its ReLU's or the pool's)
            i += skip;
            let y = match y {
                ops::Act::Packed(p) => {
                    packed[i] = Some(p);
                    i += 1;
                    continue;
                }
                ops::Act::Tensor(y) => y,
            };
            if keep.has(i) {
                outputs[i] = Some(y.clone());
            }
            if last_read[i] > i {
                live[i] = Some(y.clone());
            }
            cur = y;
            i += 1;
        }
        Ok(Tape {
            input,
            first,
            outputs,
            argmax,
            shapes,
            logits: cur,
            last,
            banded: None,
        })
    }

    /// Layer i's input `j` packed for it (`ops::pack_tensor`) where i is a conv on a
    /// texture-reading GEMM and another conv up to `last` reads `j` alone too (a residual
    /// block's first conv and its shortcut): packed at the first of them, kept in `shared`
    /// for the others. None where the conv packs its input itself.
    fn shared_pack(
        &self,
        rec: &mut Recorder,
        i: usize,
        j: usize,
        last: usize,
        live: &[Option<Tensor>],
        shared: &mut [Option<ops::PackedTensor>],
    ) -> Result<Option<ops::PackedTensor>> {
        let layers = &self.model.layers;
        let conv_of_j = |k: &usize| {
            *k <= last
                && matches!(layers[*k].kind, LayerKind::Conv2d { .. })
                && layers[*k].inputs == [Src::Layer(j)]
        };
        if !conv_of_j(&i) || !rec.ctx().gemm().reads_textures() {
            return Ok(None);
        }
        if let Some(p) = &shared[j] {
            return Ok(Some(p.clone()));
        }
        let readers = self.consumers[j].iter().filter(|k| conv_of_j(k)).count();
        let Some(t) = live[j]
            .as_ref()
            .filter(|t| readers > 1 && t.shape.len() == 4)
        else {
            return Ok(None);
        };
        let p = ops::pack_tensor(rec, t)?;
        shared[j] = Some(p.clone());
        Ok(Some(p))
    }

    /// Records layer i, of a kind other than conv and linear, on its inputs `ins` (`a` the
    /// first), with a max-pool's argmax into `argmax`; a sum with the ReLU after it when
    /// `relu`.
    fn record_plain(
        &self,
        rec: &mut Recorder,
        i: usize,
        a: &Tensor,
        ins: &[Tensor],
        argmax: &mut [Option<Tensor>],
        relu: bool,
    ) -> Result<Tensor> {
        Ok(match &self.model.layers[i].kind {
            LayerKind::Relu => ops::relu(rec, a)?,
            LayerKind::MaxPool2d(p) => {
                let (y, arg) = ops::max_pool2d(rec, a, p)?;
                argmax[i] = Some(arg);
                y
            }
            LayerKind::AvgPool2d(p) => ops::avg_pool2d(rec, a, p)?,
            LayerKind::AdaptiveAvgPool2d(o) => ops::adaptive_avg_pool2d(rec, a, *o)?,
            LayerKind::Flatten => {
                let s = &a.shape;
                a.reshape(&[s[0], s[1..].iter().product()])?
            }
            LayerKind::Dropout => a.clone(),
            LayerKind::Add => {
                // the ReLU, where it runs here, after the last of the sums
                let last = ins.len() - 1;
                let mut sum = ops::add_relu(rec, &ins[0], &ins[1], relu && last == 1)?;
                for (k, t) in ins.iter().enumerate().skip(2) {
                    sum = ops::add_relu(rec, &sum, t, relu && k == last)?;
                }
                sum
            }
            LayerKind::Conv2d { .. } | LayerKind::Linear { .. } => {
                unreachable!("recorded by record_span")
            }
            LayerKind::BatchNorm2d { .. } => unreachable!("rejected in Net::new"),
        })
    }

    /// Whether conv layer i's pass, which ends with layer `end`'s output (its own, its
    /// ReLU's or a max-pool's run inside it), stores that output packed for the conv that
    /// alone reads it next (`ops::conv2d_packs_output`), so that no packing pass runs: in a
    /// forward up to `last` that keeps nothing of it (`Keep::Nothing`, or `Keep::Layers`
    /// without it), on `input`.
    fn packs_output(
        &self,
        rec: &Recorder,
        i: usize,
        end: usize,
        keep: &Keep,
        last: usize,
        input: &[usize],
    ) -> Result<bool> {
        let layers = &self.model.layers;
        let kept = match keep {
            Keep::Nothing => false,
            Keep::Layers(v) => v.contains(&end),
            Keep::All | Keep::Gradient(_) => true,
        };
        let (LayerKind::Conv2d { geom, .. }, [j], &[n, _, h, w]) =
            (&layers[i].kind, self.consumers[end].as_slice(), input)
        else {
            return Ok(false);
        };
        let next = &layers[*j];
        let conv_next =
            matches!(next.kind, LayerKind::Conv2d { .. }) && next.inputs == [Src::Layer(end)];
        if kept || end >= last || *j > last || !conv_next {
            return Ok(false);
        }
        let ohw = geom.out_hw(h, w)?;
        Ok(ops::conv2d_packs_output(
            rec.ctx(),
            self.weights(i),
            geom,
            n,
            ohw,
        ))
    }

    /// The max-pool that conv layer i runs inside itself (`ops::conv2d_pool`) in a forward
    /// keeping `keep` up to `last` (`relu`: i's ReLU runs fused with it), its index,
    /// whether the pass makes its argmax, and the conv's output shape: the pool alone reads the conv's output (or its
    /// ReLU's), which no other layer reads, nothing from i to the pool's input is kept or
    /// wanted, and the context's GEMMs run that pool on this conv output. A tape a walk reads
    /// (`Keep::Gradient`) gets the argmax, and only where the windows tile the conv output,
    /// so that the walk runs the pool's backward with its ReLU's from the pool's output
    /// (`relu_before_pool`); `Keep::All` keeps every layer and never fuses.
    fn pool_after(
        &self,
        rec: &Recorder,
        i: usize,
        keep: &Keep,
        last: usize,
        relu: bool,
        input: &[usize],
    ) -> Result<Option<PoolFusion<'_>>> {
        let layers = &self.model.layers;
        let LayerKind::Conv2d { geom, .. } = &layers[i].kind else {
            return Ok(None);
        };
        let at = i + 1 + relu as usize;
        let Some(LayerKind::MaxPool2d(pool)) = layers.get(at).map(|l| &l.kind) else {
            return Ok(None);
        };
        let wanted = |j: usize| match keep {
            Keep::All => true,
            Keep::Nothing => false,
            Keep::Layers(v) | Keep::Gradient(v) => v.contains(&j),
        };
        let alone = self.consumers[at - 1] == [at] && layers[at].inputs == [Src::Layer(at - 1)];
        let (&[n, _, h, w], true) = (input, alone && at <= last) else {
            return Ok(None);
        };
        if (i..at).any(wanted) {
            return Ok(None);
        }
        let (oh, ow) = geom.out_hw(h, w)?;
        let walked = matches!(keep, Keep::Gradient(_));
        let conv = [n, geom.cout, oh, ow];
        let tiles = ops::tiles_input(pool, &[n, geom.cout, oh / 2, ow / 2], &conv);
        let fits = ops::conv2d_pool_fits(rec.ctx(), pool, oh, ow) && (tiles || !walked);
        Ok(fits.then_some(PoolFusion {
            pool,
            at,
            argmax: walked,
            conv,
        }))
    }

    /// Runs the network on a host batch of any size (split into passes that fit the
    /// device), returning the logits and the named layers' outputs.
    pub fn forward(&self, input: &Array, capture: &[String]) -> Result<Forward> {
        input.check_finite()?;
        let idx: Vec<usize> = capture
            .iter()
            .map(|c| self.model.find(c))
            .collect::<Result<_>>()?;
        let bands = self.bands(&input.shape)?;
        let chunk = match &bands {
            Some(b) => {
                self.check_after_bands(b, &input.shape, &idx, "--layer")?;
                1
            }
            None => self.max_batch(&input.shape)?,
        };
        let keep = if idx.is_empty() {
            Keep::Nothing
        } else {
            Keep::Layers(idx.clone())
        };
        let mut logits = Vec::new();
        let mut caps: Vec<Vec<Array>> = vec![Vec::new(); idx.len()];
        let hidden = indicatif::ProgressBar::hidden();
        stream::passes(input.batch(), chunk, &hidden, |r| {
            let part = input.slice_batch(r.start, r.end);
            let mut rec = Recorder::new(&self.ctx, "forward");
            let tape = self.record_forward_host(&mut rec, &part, bands.as_ref(), &keep)?;
            rec.submit()?;
            logits.push(read(&self.ctx, &tape.logits)?);
            for (k, &li) in idx.iter().enumerate() {
                caps[k].push(read(&self.ctx, tape.outputs[li].as_ref().unwrap())?);
            }
            Ok(())
        })?;
        let captures = capture
            .iter()
            .zip(caps)
            .map(|(name, parts)| Ok((name.clone(), Array::concat(&parts)?)))
            .collect::<Result<_>>()?;
        Ok(Forward {
            logits: Array::concat(&logits)?,
            captures,
        })
    }
}

impl Net {
    /// Softmax over the classes of host logits [N, classes], on the GPU.
    pub fn softmax(&self, logits: &Array) -> Result<Array> {
        let x = Tensor::upload(&self.ctx, &logits.data, &logits.shape)?;
        let mut rec = Recorder::new(&self.ctx, "softmax");
        let y = ops::softmax(&mut rec, &x)?;
        rec.submit()?;
        read(&self.ctx, &y)
    }
}

fn read(ctx: &Context, t: &Tensor) -> Result<Array> {
    Array::new(t.shape.clone(), t.read(ctx)?)
}
