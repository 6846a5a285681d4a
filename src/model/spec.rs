//! The `__metadata__` schema: a JSON document under the key `netlens` describing the
//! layers (each reading the one before it unless it names its `inputs`) and
//! preprocessing. Every field is optional; without `layers` the tensor names must follow
//! torchvision's VGG.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A size given as one number or as [h, w].
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(untagged, expecting = "a size: one whole number or [h, w]")]
pub enum Pair {
    One(usize),
    Two([usize; 2]),
}

impl Pair {
    pub fn hw(self) -> (usize, usize) {
        match self {
            Pair::One(v) => (v, v),
            Pair::Two([h, w]) => (h, w),
        }
    }
}

fn zero() -> Pair {
    Pair::One(0)
}
fn one() -> Pair {
    Pair::One(1)
}
fn yes() -> bool {
    true
}
fn bn_eps() -> f32 {
    1e-5
}

/// One layer; weights live in the file as `{name}.weight` / `{name}.bias`
/// (batch norm: `running_mean`, `running_var`, `weight`, `bias`).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    Conv2d {
        name: String,
        kernel: Pair,
        #[serde(default = "one")]
        stride: Pair,
        #[serde(default = "zero")]
        padding: Pair,
    },
    Batchnorm2d {
        name: String,
        #[serde(default = "bn_eps")]
        eps: f32,
    },
    Relu {
        name: String,
    },
    Maxpool2d {
        name: String,
        kernel: Pair,
        stride: Option<Pair>,
        #[serde(default = "zero")]
        padding: Pair,
        #[serde(default)]
        ceil_mode: bool,
    },
    Avgpool2d {
        name: String,
        kernel: Pair,
        stride: Option<Pair>,
        #[serde(default = "zero")]
        padding: Pair,
        #[serde(default)]
        ceil_mode: bool,
        #[serde(default = "yes")]
        count_include_pad: bool,
    },
    AdaptiveAvgpool2d {
        name: String,
        output: Pair,
    },
    Flatten {
        name: String,
    },
    Linear {
        name: String,
    },
    Dropout {
        name: String,
    },
    /// The sum of its inputs (a residual connection); needs `inputs`.
    Add {
        name: String,
    },
}

/// A layer and, optionally, the outputs it reads (`"inputs": ["layer name", ...]`, the
/// network's input being `"input"`); without `inputs` a layer reads the one before it.
#[derive(Clone, Debug)]
pub struct LayerEntry {
    pub layer: LayerSpec,
    pub inputs: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for LayerEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = serde_json::Map::<String, Value>::deserialize(d)?;
        let inputs = match fields.remove("inputs") {
            None => None,
            Some(v) => Some(Vec::<String>::deserialize(v).map_err(|e| {
                D::Error::custom(format!("inputs: {e} (expected a list of layer names)"))
            })?),
        };
        let layer = LayerSpec::deserialize(Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(LayerEntry { layer, inputs })
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default)]
    pub format: Option<u32>,
    pub arch: Option<String>,
    pub layers: Option<Vec<LayerEntry>>,
    pub input_size: Option<Pair>,
    pub resize: Option<usize>,
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    pub classes: Option<Vec<String>>,
}
