//! Loading models from safetensors: torchvision VGG and ResNet state dicts by their names
//! (`resnet`), or any network of the supported layers described in the file's metadata
//! (see `spec`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::file_weights::FileWeights;
use super::spec::{LayerEntry, LayerSpec, ModelSpec};
use super::{fold_batchnorm, Layer, LayerKind, Model, ModelMeta, Src};
use crate::error::{Error, Result};
use crate::ops::{Conv2dGeom, Pool2d};

mod resnet;

/// A tensor read from the file, converted to f32, or (`data` empty) left in it.
struct Raw {
    shape: Vec<usize>,
    data: Vec<f32>,
    file: Option<FileWeights>,
}

impl Raw {
    fn read(shape: Vec<usize>, data: Vec<f32>) -> Raw {
        Raw {
            shape,
            data,
            file: None,
        }
    }
}

struct Tensors {
    path: String,
    map: HashMap<String, Raw>,
    /// Linear layers' weights left in the file, by layer name.
    deferred: HashMap<String, FileWeights>,
}

impl Tensors {
    fn get(&mut self, name: &str, rank: usize, what: &str) -> Result<Raw> {
        let t = self
            .map
            .remove(name)
            .ok_or_else(|| Error::model(&self.path, format!("missing tensor '{name}' ({what})")))?;
        if t.shape.len() != rank {
            return Err(Error::model(
                &self.path,
                format!(
                    "tensor '{name}' has shape {:?}; expected {rank} dimensions ({what})",
                    t.shape
                ),
            ));
        }
        Ok(t)
    }

    fn opt(&mut self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        if !self.map.contains_key(name) {
            return Ok(None);
        }
        let t = self.get(name, 1, "bias")?;
        if t.data.len() != len {
            return Err(Error::model(
                &self.path,
                format!(
                    "tensor '{name}' has {} values; expected {len}",
                    t.data.len()
                ),
            ));
        }
        Ok(Some(t.data))
    }

    fn vec(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let t = self.get(name, 1, "per-channel vector")?;
        if t.data.len() != len {
            return Err(Error::model(
                &self.path,
                format!(
                    "tensor '{name}' has {} values; expected {len}",
                    t.data.len()
                ),
            ));
        }
        Ok(t.data)
    }
}

/// Loads a model file; batch norms are folded into their convs.
pub fn load(path: &Path) -> Result<Model> {
    load_with(path, None)
}

/// As `load`, but linear layers' weights of a MiB or more stay in the file
/// (`Layer::file_weights`, the layer's `weight` empty) where the file can be read a
/// tensor at a time: `Net::upload` reads them a piece at a time, so that the host never
/// holds them whole. Their values are checked finite as they are read, not here.
pub fn load_deferred(path: &Path) -> Result<Model> {
    load_with(path, Some(1 << 20))
}

/// `defer`: the size in bytes from which linear weights stay in the file.
fn load_with(path: &Path, defer: Option<usize>) -> Result<Model> {
    if let Some(m) = load_streamed(path, defer)? {
        return Ok(m);
    }
    let bytes = crate::io::read_framed(path, crate::io::MAX_ARRAY_FILE, "a model file", frame)?;
    load_bytes(&bytes, &path.display().to_string())
}

/// A regular file whose header is valid and whose length is what the header says, read
/// tensor by tensor (f32 tensors straight into their values), so that the file's bytes are
/// never held beside the weights. None for anything else: `load` then reads it whole, and
/// `load_bytes` says what is wrong.
fn load_streamed(path: &Path, defer: Option<usize>) -> Result<Option<Model>> {
    use std::io::{Read, Seek, SeekFrom};
    let name = path.display().to_string();
    // judged before opening: opening a FIFO would take its writer from `read_framed`
    let len = match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() <= crate::io::MAX_ARRAY_FILE => m.len(),
        _ => return Ok(None),
    };
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let mut head = [0u8; 8];
    if file.read_exact(&mut head).is_err() {
        return Ok(None);
    }
    let n = u64::from_le_bytes(head);
    if n > len.saturating_sub(8) {
        return Ok(None);
    }
    let mut header = vec![0u8; n as usize];
    if file.read_exact(&mut header).is_err() {
        return Ok(None);
    }
    let Ok(meta) = serde_json::from_slice::<safetensors::tensor::Metadata>(&header) else {
        return Ok(None);
    };
    if 8 + n + meta.data_len() as u64 != len {
        return Ok(None);
    }
    let spec = spec_of(&name, meta.metadata().as_ref())?;
    let mut map = HashMap::new();
    let start = 8 + n;
    // one handle for every tensor left in the file (it shares this one's offset, but
    // every read of it seeks first)
    let shared = match defer {
        Some(_) => Some(std::sync::Arc::new(std::sync::Mutex::new(
            file.try_clone().map_err(|e| Error::io(path, e))?,
        ))),
        None => None,
    };
    let least = defer.unwrap_or(usize::MAX);
    for tname in meta.offset_keys() {
        let info = meta.info(&tname).expect("a name the metadata lists");
        let bytes = info.data_offsets.1 - info.data_offsets.0;
        // a linear layer's weight of `least` bytes or more, left in the file
        if let Some(shared) = shared.as_ref().filter(|_| {
            info.shape.len() == 2
                && tname.ends_with(".weight")
                && bytes >= least
                && FileWeights::readable(info.dtype)
        }) {
            let offset = start + info.data_offsets.0 as u64;
            let len = info.shape.iter().product();
            let fw = FileWeights::new(shared.clone(), &name, &tname, offset, info.dtype, len);
            file.seek(SeekFrom::Start(offset + bytes as u64))
                .map_err(|e| Error::io(path, e))?;
            let raw = Raw {
                shape: info.shape.clone(),
                data: Vec::new(),
                file: Some(fw),
            };
            map.insert(tname, raw);
            continue;
        }
        let data = if info.dtype == Dtype::F32 && cfg!(target_endian = "little") {
            let mut v = vec![0f32; bytes / 4];
            file.read_exact(bytemuck::cast_slice_mut(&mut v))
                .map_err(|e| Error::io(path, e))?;
            check_finite(&name, &tname, &v)?;
            Some(v)
        } else {
            let mut b = vec![0u8; bytes];
            file.read_exact(&mut b).map_err(|e| Error::io(path, e))?;
            values(&name, &tname, info.dtype, &b)?
        };
        if let Some(data) = data {
            let shape = info.shape.clone();
            map.insert(tname, Raw::read(shape, data));
        }
    }
    assemble(&name, spec, map).map(Some)
}

/// How long a safetensors file is, from its first bytes (`io::read_framed`): 8 bytes of
/// header length, the JSON header, then the tensors up to the largest end offset.
pub fn frame(bytes: &[u8]) -> crate::io::Frame {
    use crate::io::Frame;
    const MAX_HEADER: u64 = 100_000_000; // the safetensors crate's own bound
    let Some(len) = bytes.get(..8) else {
        return Frame::More(8);
    };
    let n = u64::from_le_bytes(len.try_into().unwrap());
    if !(2..=MAX_HEADER).contains(&n) {
        return Frame::Bad(format!(
            "not a safetensors file: its first 8 bytes give a header of {n} bytes; is it of another format?"
        ));
    }
    let Some(header) = bytes.get(8..8 + n as usize) else {
        return Frame::More(8 + n);
    };
    let Ok(map) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(header)
    else {
        return Frame::Bad("not a safetensors file: its header is not a JSON object".into());
    };
    let end = map
        .values()
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    Frame::Total((8 + n).saturating_add(end))
}

pub fn load_bytes(bytes: &[u8], name: &str) -> Result<Model> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        Error::model(
            name,
            format!("not a readable safetensors file ({e}); is it truncated or of another format?"),
        )
    })?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::model(name, e.to_string()))?;
    let spec = spec_of(name, header.metadata().as_ref())?;
    let mut map = HashMap::new();
    for (tname, view) in st.iter() {
        if let Some(data) = values(name, tname, view.dtype(), view.data())? {
            let shape = view.shape().to_vec();
            map.insert(tname.to_string(), Raw::read(shape, data));
        }
    }
    assemble(name, spec, map)
}

/// The file's `netlens` metadata (a default spec without it).
fn spec_of(name: &str, metadata: Option<&HashMap<String, String>>) -> Result<ModelSpec> {
    let spec: ModelSpec = match metadata.and_then(|m| m.get("netlens")) {
        Some(json) => {
            let mut de = serde_json::Deserializer::from_str(json);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                Error::model(
                    name,
                    format!(
                        "metadata key 'netlens', field '{}': {}",
                        e.path(),
                        e.inner()
                    ),
                )
            })?
        }
        None => ModelSpec::default(),
    };
    if spec.format.is_some_and(|f| f > 1) {
        return Err(Error::model(
            name,
            "metadata format is newer than this netlens understands; upgrade netlens",
        ));
    }
    Ok(spec)
}

/// Tensor `tname`'s values as f32 from its little-endian `bytes`; None for a batch norm's
/// `num_batches_tracked`, which is not used.
fn values(name: &str, tname: &str, dtype: Dtype, bytes: &[u8]) -> Result<Option<Vec<f32>>> {
    let data = match decode(dtype, bytes) {
        Some(data) => data,
        None if tname.ends_with("num_batches_tracked") => return Ok(None),
        None => {
            return Err(Error::model(
                name,
                format!("tensor '{tname}' has dtype {dtype:?}; expected f32, f16 or bf16"),
            ))
        }
    };
    check_finite(name, tname, &data)?;
    Ok(Some(data))
}

/// Little-endian `bytes` of `dtype` as f32; None for a dtype other than f32, f16, bf16.
pub(super) fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

fn check_finite(name: &str, tname: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(not_finite(name, tname, i, data[i])),
        None => Ok(()),
    }
}

/// The error for value `v` at index `i` of tensor `tname` of model `name`.
pub(super) fn not_finite(name: &str, tname: &str, i: usize, v: f32) -> Error {
    Error::model(
        name,
        format!(
            "tensor '{tname}' holds {v} at index {i}; every weight must be finite (a damaged file or a diverged training run)"
        ),
    )
}

/// The model from its tensors and spec.
fn assemble(name: &str, spec: ModelSpec, map: HashMap<String, Raw>) -> Result<Model> {
    // a state dict saved from torch.nn.DataParallel names every tensor `module.<name>`
    let wrapped =
        spec.layers.is_none() && !map.is_empty() && map.keys().all(|k| k.starts_with("module."));
    let map = if wrapped {
        map.into_iter()
            .map(|(k, v)| (k["module.".len()..].to_string(), v))
            .collect()
    } else {
        map
    };
    let mut t = Tensors {
        path: name.to_string(),
        map,
        deferred: HashMap::new(),
    };
    let (layers, arch) = match &spec.layers {
        Some(specs) => (
            from_spec(specs, &mut t)?,
            spec.arch.clone().unwrap_or_else(|| "custom".into()),
        ),
        None if resnet::looks_like(&t) => resnet::torchvision_resnet(&mut t)?,
        None => torchvision(&mut t)?,
    };
    let mut layers = layers;
    for l in &mut layers {
        l.file_weights = t.deferred.remove(&l.name);
    }
    if let Some(extra) = t.map.keys().min() {
        return Err(Error::model(
            name,
            format!("tensor '{extra}' is not used by any layer (expected only the layers' weight, bias and batch-norm tensors)"),
        ));
    }
    let in_channels = layers
        .iter()
        .find_map(|l| match &l.kind {
            LayerKind::Conv2d { geom, .. } => Some(geom.cin),
            _ => None,
        })
        .ok_or_else(|| Error::model(name, "the model has no conv layer"))?;
    let mut meta = ModelMeta {
        arch,
        ..ModelMeta::default()
    };
    if let Some(s) = spec.input_size {
        meta.input_size = s.hw();
        meta.resize = spec.resize.unwrap_or(s.hw().0.min(s.hw().1) * 256 / 224);
    } else if let Some(r) = spec.resize {
        meta.resize = r;
    }
    if let Some(m) = spec.mean {
        meta.mean = m;
    }
    if let Some(s) = spec.std {
        meta.std = s;
    }
    if meta.mean.len() != in_channels
        || meta.std.len() != in_channels
        || meta.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        || meta.mean.iter().any(|m| !m.is_finite())
    {
        return Err(Error::model(
            name,
            format!("mean/std must have {in_channels} finite entries with std > 0"),
        ));
    }
    let (h, w) = meta.input_size;
    if !(1..=MAX_SIDE).contains(&h) || !(1..=MAX_SIDE).contains(&w) {
        return Err(Error::model(
            name,
            format!("metadata input_size {h}x{w}: each side must be in 1..={MAX_SIDE}"),
        ));
    }
    if !(1..=2 * MAX_SIDE).contains(&meta.resize) {
        return Err(Error::model(
            name,
            format!(
                "metadata resize {} must be in 1..={}",
                meta.resize,
                2 * MAX_SIDE
            ),
        ));
    }
    meta.classes = spec.classes;
    let mut model = Model {
        layers,
        meta,
        in_channels,
    };
    fold_batchnorm(&mut model).map_err(|e| Error::model(name, e.to_string()))?;
    let probe = [
        1,
        in_channels,
        model.meta.input_size.0,
        model.meta.input_size.1,
    ];
    let shapes = model
        .output_shapes(&probe)
        .map_err(|e| Error::model(name, e.to_string()))?;
    let classes = shapes
        .last()
        .map(|s| s.iter().skip(1).product::<usize>())
        .unwrap_or(0);
    if let Some(c) = &model.meta.classes {
        if c.len() != classes {
            return Err(Error::model(
                name,
                format!(
                    "metadata lists {} class names for {classes} outputs",
                    c.len()
                ),
            ));
        }
    }
    Ok(model)
}

fn conv(
    t: &mut Tensors,
    name: &str,
    stride: (usize, usize),
    padding: (usize, usize),
    kernel: Option<(usize, usize)>,
) -> Result<LayerKind> {
    let w = t.get(
        &format!("{name}.weight"),
        4,
        "conv weight [out, in, kh, kw]",
    )?;
    let [cout, cin, kh, kw] = [w.shape[0], w.shape[1], w.shape[2], w.shape[3]];
    if let Some(k) = kernel {
        if k != (kh, kw) {
            return Err(Error::model(
                &t.path,
                format!("{name}: metadata says kernel {k:?}, weight has {kh}x{kw}"),
            ));
        }
    }
    let bias = t.opt(&format!("{name}.bias"), cout)?;
    let geom = Conv2dGeom {
        cin,
        cout,
        kernel: (kh, kw),
        stride,
        padding,
    };
    Ok(LayerKind::Conv2d {
        geom,
        weight: w.data,
        bias,
    })
}

fn linear(t: &mut Tensors, name: &str) -> Result<LayerKind> {
    let w = t.get(&format!("{name}.weight"), 2, "linear weight [out, in]")?;
    let (out_features, in_features) = (w.shape[0], w.shape[1]);
    if let Some(fw) = w.file {
        t.deferred.insert(name.to_string(), fw);
    }
    let bias = t.opt(&format!("{name}.bias"), out_features)?;
    Ok(LayerKind::Linear {
        in_features,
        out_features,
        weight: w.data,
        bias,
    })
}

fn batchnorm(t: &mut Tensors, name: &str, channels: usize, eps: f32) -> Result<LayerKind> {
    let var = t.vec(&format!("{name}.running_var"), channels)?;
    if let Some(v) = var.iter().find(|v| **v < 0.0) {
        return Err(Error::model(
            &t.path,
            format!("batch norm {name}: running_var holds {v}; a variance cannot be negative"),
        ));
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::model(
            &t.path,
            format!("batch norm {name}: eps {eps} must be a finite number ≥ 0"),
        ));
    }
    Ok(LayerKind::BatchNorm2d {
        mean: t.vec(&format!("{name}.running_mean"), channels)?,
        var,
        gamma: t.vec(&format!("{name}.weight"), channels)?,
        beta: t.vec(&format!("{name}.bias"), channels)?,
        eps,
    })
}

fn last_channels(layers: &[Layer]) -> Option<usize> {
    layers.iter().rev().find_map(|l| match &l.kind {
        LayerKind::Conv2d { geom, .. } => Some(geom.cout),
        _ => None,
    })
}

/// A layer reading the one before it (the wiring is set where the list is complete).
fn layer(name: impl Into<String>, kind: LayerKind) -> Layer {
    Layer {
        name: name.into(),
        kind,
        inputs: Vec::new(),
        folded_bn: None,
        file_weights: None,
    }
}

/// Each layer's inputs: those its entry names, else the layer before it. (How many a
/// layer may take is `Model::check_graph`'s to say, once the list is complete.)
fn wire(entries: &[LayerEntry], layers: &mut [Layer], path: &str) -> Result<()> {
    for i in 0..layers.len() {
        let inputs = match &entries[i].inputs {
            None => vec![Src::before(i)],
            Some(names) => names
                .iter()
                .map(|n| {
                    if n == "input" {
                        return Ok(Src::Input);
                    }
                    match layers[..i].iter().position(|l| &l.name == n) {
                        Some(j) => Ok(Src::Layer(j)),
                        None => Err(Error::model(
                            path,
                            format!(
                                "layer {} reads '{n}', which is not a layer listed before it (nor \"input\")",
                                layers[i].name
                            ),
                        )),
                    }
                })
                .collect::<Result<_>>()?,
        };
        layers[i].inputs = inputs;
    }
    Ok(())
}

fn from_spec(entries: &[LayerEntry], t: &mut Tensors) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    for e in entries {
        let l = match &e.layer {
            LayerSpec::Conv2d {
                name,
                kernel,
                stride,
                padding,
            } => layer(
                name,
                conv(t, name, stride.hw(), padding.hw(), Some(kernel.hw()))?,
            ),
            LayerSpec::Batchnorm2d { name, eps } => {
                let c = last_channels(&layers).ok_or_else(|| {
                    Error::model(&t.path, format!("batch norm {name} comes before any conv"))
                })?;
                layer(name, batchnorm(t, name, c, *eps)?)
            }
            LayerSpec::Relu { name } => layer(name, LayerKind::Relu),
            LayerSpec::Maxpool2d {
                name,
                kernel,
                stride,
                padding,
                ceil_mode,
            } => {
                let k = kernel.hw();
                let p = Pool2d {
                    kernel: k,
                    stride: stride.map_or(k, |s| s.hw()),
                    padding: padding.hw(),
                    ceil_mode: *ceil_mode,
                    count_include_pad: true,
                };
                check_pool(t, name, &p)?;
                layer(name, LayerKind::MaxPool2d(p))
            }
            LayerSpec::Avgpool2d {
                name,
                kernel,
                stride,
                padding,
                ceil_mode,
                count_include_pad,
            } => {
                let k = kernel.hw();
                let p = Pool2d {
                    kernel: k,
                    stride: stride.map_or(k, |s| s.hw()),
                    padding: padding.hw(),
                    ceil_mode: *ceil_mode,
                    count_include_pad: *count_include_pad,
                };
                check_pool(t, name, &p)?;
                layer(name, LayerKind::AvgPool2d(p))
            }
            LayerSpec::AdaptiveAvgpool2d { name, output } => {
                let (h, w) = output.hw();
                if !(1..=MAX_SIDE).contains(&h) || !(1..=MAX_SIDE).contains(&w) {
                    return Err(Error::model(
                        &t.path,
                        format!("layer {name}: output {h}x{w} must be in 1..={MAX_SIDE} per side"),
                    ));
                }
                layer(name, LayerKind::AdaptiveAvgPool2d((h, w)))
            }
            LayerSpec::Flatten { name } => layer(name, LayerKind::Flatten),
            LayerSpec::Linear { name } => layer(name, linear(t, name)?),
            LayerSpec::Dropout { name } => layer(name, LayerKind::Dropout),
            LayerSpec::Add { name } => layer(name, LayerKind::Add),
        };
        if layers.iter().any(|o: &Layer| o.name == l.name) {
            return Err(Error::model(
                &t.path,
                format!(
                    "two layers are named '{}'; layer names must be unique",
                    l.name
                ),
            ));
        }
        layers.push(l);
    }
    wire(entries, &mut layers, &t.path)?;
    Ok(layers)
}

/// The largest image side, kernel or metadata size a model may state.
pub const MAX_SIDE: usize = 4096;

/// A pool's kernel and stride are in 1..=MAX_SIDE.
fn check_pool(t: &Tensors, name: &str, p: &Pool2d) -> Result<()> {
    let sides = [p.kernel.0, p.kernel.1, p.stride.0, p.stride.1];
    if sides.iter().any(|v| !(1..=MAX_SIDE).contains(v)) {
        return Err(Error::model(
            &t.path,
            format!(
                "layer {name}: kernel {:?} and stride {:?} must be in 1..={MAX_SIDE}",
                p.kernel, p.stride
            ),
        ));
    }
    Ok(())
}

/// Parses `prefix.N.rest` names into N -> {rest}.
fn indexed(t: &Tensors, prefix: &str) -> Result<BTreeMap<usize, BTreeSet<String>>> {
    let mut out: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for name in t.map.keys() {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let (idx, field) = rest.split_once('.').unwrap_or((rest, ""));
        let idx: usize = idx.parse().map_err(|_| {
            Error::model(
                &t.path,
                format!(
                    "tensor '{name}': expected '{prefix}<index>.<field>' as in torchvision's models"
                ),
            )
        })?;
        out.entry(idx).or_default().insert(field.to_string());
    }
    Ok(out)
}

/// torchvision's VGG: features (conv [bn] relu ... maxpool), AdaptiveAvgPool2d(7, 7),
/// flatten, classifier (linear relu dropout linear relu dropout linear).
fn torchvision(t: &mut Tensors) -> Result<(Vec<Layer>, String)> {
    for name in t.map.keys() {
        if !name.starts_with("features.") && !name.starts_with("classifier.") {
            return Err(Error::model(
                &t.path,
                format!(
                    "tensor '{name}' is not part of a torchvision VGG (expected features.N.* and classifier.N.*) \
                     or ResNet (conv1.*, layer1.N.*, ...); describe other networks with the 'netlens' metadata key (see README)"
                ),
            ));
        }
    }
    let feats = indexed(t, "features.")?;
    let cls = indexed(t, "classifier.")?;
    if feats.is_empty() || cls.is_empty() {
        return Err(Error::model(
            &t.path,
            "expected features.N.* and classifier.N.* tensors of a torchvision VGG",
        ));
    }
    let mut layers = Vec::new();
    let mut i = 0;
    let mut convs = 0;
    let mut bn = false;
    let last = *feats.keys().next_back().unwrap();
    while i <= last {
        let fields = feats.get(&i);
        let is_conv = fields.is_some_and(|f| f.contains("weight") && !f.contains("running_mean"));
        if is_conv {
            let name = format!("features.{i}");
            layers.push(layer(&name, conv(t, &name, (1, 1), (1, 1), None)?));
            convs += 1;
            i += 1;
            if feats.get(&i).is_some_and(|f| f.contains("running_mean")) {
                let name = format!("features.{i}");
                let c = last_channels(&layers).unwrap();
                layers.push(layer(&name, batchnorm(t, &name, c, 1e-5)?));
                bn = true;
                i += 1;
            }
            layers.push(layer(format!("features.{i}"), LayerKind::Relu));
            i += 1;
            if feats.contains_key(&i) {
                continue;
            }
        } else if fields.is_some() {
            return Err(Error::model(
                &t.path,
                format!("features.{i} is neither a conv nor a batch norm of a torchvision VGG"),
            ));
        }
        // an index without tensors after a block is torchvision's 'M': MaxPool2d(2, 2)
        layers.push(layer(
            format!("features.{i}"),
            LayerKind::MaxPool2d(Pool2d::square(2, 2)),
        ));
        i += 1;
        if i <= last && !feats.contains_key(&i) {
            return Err(Error::model(
                &t.path,
                format!("features.{i} has no tensors: two pools in a row is not a torchvision VGG"),
            ));
        }
    }
    layers.push(layer("avgpool", LayerKind::AdaptiveAvgPool2d((7, 7))));
    layers.push(layer("flatten", LayerKind::Flatten));
    let idx: Vec<usize> = cls.keys().copied().collect();
    if idx[0] != 0 {
        return Err(Error::model(
            &t.path,
            "classifier.0 (the first linear layer) is missing",
        ));
    }
    for (k, &j) in idx.iter().enumerate() {
        let name = format!("classifier.{j}");
        layers.push(layer(&name, linear(t, &name)?));
        if let Some(&next) = idx.get(k + 1) {
            if next != j + 3 {
                return Err(Error::model(
                    &t.path,
                    format!("classifier.{next} follows classifier.{j}: a torchvision VGG has linear, ReLU, dropout between linears"),
                ));
            }
            layers.push(layer(format!("classifier.{}", j + 1), LayerKind::Relu));
            layers.push(layer(format!("classifier.{}", j + 2), LayerKind::Dropout));
        }
    }
    let c = last_channels(&layers).unwrap_or(0);
    if let Some(LayerKind::Linear { in_features, .. }) = layers
        .iter()
        .map(|l| &l.kind)
        .find(|k| matches!(k, LayerKind::Linear { .. }))
    {
        if *in_features != c * 49 {
            return Err(Error::model(
                &t.path,
                format!("classifier.0 takes {in_features} features; a VGG with {c} channels after features gives {c}*7*7 = {}", c * 49),
            ));
        }
    }
    let depth = match convs {
        8 => "vgg11",
        10 => "vgg13",
        13 => "vgg16",
        16 => "vgg19",
        _ => "vgg",
    };
    let arch = if bn {
        format!("{depth}_bn")
    } else {
        depth.to_string()
    };
    for (i, l) in layers.iter_mut().enumerate() {
        l.inputs = vec![Src::before(i)];
    }
    Ok((layers, arch))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `load`, f32 tensors read straight from the file, gives the same model as
    /// `load_bytes` over the whole file, bit for bit, for every model the repository ships
    /// (f32, f16, bf16, batch norms, residual sums); a file cut short or with bytes past its
    /// end is read whole and gets `load_bytes`'s error.
    #[test]
    fn streamed_loads_match_whole_file_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = ["tests/fixtures", "models"]
            .iter()
            .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        let mut models = 0;
        for path in &files {
            let bytes = std::fs::read(path).unwrap();
            let name = path.display().to_string();
            let Ok(whole) = load_bytes(&bytes, &name) else {
                continue; // tensors without a model (fixtures' inputs and outputs)
            };
            let streamed = load_streamed(path, None)
                .unwrap()
                .expect("a valid file is streamed");
            assert_eq!(format!("{streamed:?}"), format!("{whole:?}"), "{name}");
            models += 1;
        }
        // vgg11_tiny in f32, f16 and bf16, vgg11_bn_tiny, residual, small, shapes-vgg
        assert!(models >= 7, "{models} models among {} files", files.len());
        let path = root.join("models/shapes-vgg.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let dir = std::env::temp_dir().join(format!("netlens-streamed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (what, data) in [
            ("short", bytes[..bytes.len() - 5].to_vec()),
            ("long", [bytes.as_slice(), &[0u8; 3]].concat()),
        ] {
            let p = dir.join(format!("{what}.safetensors"));
            std::fs::write(&p, &data).unwrap();
            assert!(load_streamed(&p, None).unwrap().is_none(), "{what}");
            let want = load_bytes(&data, &p.display().to_string()).expect_err(what);
            let got = load(&p).expect_err(what);
            assert_eq!(got.to_string(), want.to_string(), "{what}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Linear weights left in the file read back as `load` reads them (f32, f16, bf16),
    /// whole or a piece at a time, and a non-finite one gets `load`'s message when it is
    /// read rather than at load.
    #[test]
    fn deferred_weights_read_what_a_whole_load_reads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut deferred = 0;
        for f in [
            "vgg11_tiny",
            "vgg11_tiny_f16",
            "vgg11_tiny_bf16",
            "residual",
        ] {
            let path = root.join(format!("tests/fixtures/{f}.safetensors"));
            let whole = load(&path).unwrap();
            let mut lazy = load_streamed(&path, Some(1)).unwrap().unwrap();
            for (l, w) in lazy.layers.iter().zip(&whole.layers) {
                let (LayerKind::Linear { weight, .. }, LayerKind::Linear { weight: want, .. }) =
                    (&l.kind, &w.kind)
                else {
                    assert!(l.file_weights.is_none(), "{f} {}", l.name);
                    continue;
                };
                let fw = l
                    .file_weights
                    .as_ref()
                    .expect("a linear weight left in the file");
                assert!(weight.is_empty(), "{f} {}", l.name);
                assert_eq!(fw.len(), want.len());
                let (a, b) = (want.len() / 3, want.len() / 2);
                assert_eq!(fw.read(a, b - a).unwrap(), want[a..b], "{f} {}", l.name);
                assert!(fw.read(b, want.len()).is_err(), "past the end");
                deferred += 1;
            }
            lazy.resolve().unwrap();
            assert_eq!(format!("{lazy:?}"), format!("{whole:?}"), "{f}");
        }
        assert!(deferred >= 9, "{deferred}");
        // a NaN in classifier.3's weight: load refuses the file, a deferred load reads it
        // when asked, with the same message
        let path = root.join("tests/fixtures/vgg11_tiny.safetensors");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let meta: safetensors::tensor::Metadata = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let at = 8 + n + meta.info("classifier.3.weight").unwrap().data_offsets.0 + 4 * 7;
        bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let dir = std::env::temp_dir().join(format!("netlens-deferred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("nan.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let want = load(&p).expect_err("a NaN weight").to_string();
        assert!(want.contains("index 7"), "{want}");
        let mut lazy = load_streamed(&p, Some(1)).unwrap().unwrap();
        let fc = lazy
            .layers
            .iter()
            .find(|l| l.name == "classifier.3")
            .unwrap();
        let fw = fc.file_weights.as_ref().unwrap();
        assert_eq!(fw.read(5, 10).expect_err("a NaN piece").to_string(), want);
        assert!(fw.read(8, 10).is_ok());
        assert_eq!(lazy.resolve().expect_err("a NaN weight").to_string(), want);
        // the file cut short after the load: its reader says so
        let mut lazy = load_streamed(&p, Some(1)).unwrap().unwrap();
        std::fs::write(&p, &bytes[..at]).unwrap();
        let e = lazy.resolve().expect_err("a file cut short").to_string();
        assert!(e.contains("cut short after the model was loaded"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
