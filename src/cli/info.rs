//! `netlens info MODEL`: what the model is and what it costs.

use std::path::PathBuf;

use serde_json::json;

use crate::error::{Error, Result};
use crate::model::Src;

#[derive(clap::Args)]
pub struct Args {
    /// Model file (.safetensors)
    model: PathBuf,
    /// Input size HxW for the shapes (default: the model's)
    #[arg(long, value_parser = parse_hw)]
    input_size: Option<(usize, usize)>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_hw(s: &str) -> std::result::Result<(usize, usize), String> {
    let parse = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("'{s}' is not HxW (e.g. 224x224)"))
    };
    match s.split_once(['x', 'X']) {
        Some((h, w)) => Ok((parse(h)?, parse(w)?)),
        None => parse(s).map(|v| (v, v)),
    }
}

pub fn run(a: Args) -> Result<()> {
    // its linear weights checked a piece at a time rather than held (VGG16's: 495 MB)
    let m = super::load_model(&a.model)?;
    m.check_file_weights()?;
    let (h, w) = a.input_size.unwrap_or(m.meta.input_size);
    let shapes = m
        .output_shapes(&[1, m.in_channels, h, w])
        .map_err(|e| Error::Shape(format!("at input {h}x{w}: {e}")))?;
    let act_bytes: usize = shapes.iter().map(|s| s.iter().product::<usize>() * 4).sum();
    let params = m.param_count();
    if a.json {
        let layers: Vec<_> = m
            .layers
            .iter()
            .zip(&shapes)
            .enumerate()
            .map(|(i, (l, s))| {
                let inputs: Vec<&str> = l.inputs.iter().map(|s| m.src_name(*s)).collect();
                json!({"index": i, "name": m.output_name(i), "type": l.kind.type_name(),
                       "inputs": inputs, "output_shape": s, "params": l.kind.param_count(),
                       "folded": l.folded_bn.as_ref().map(|_| &l.name)})
            })
            .collect();
        let doc = json!({
            "model": a.model.display().to_string(), "arch": m.meta.arch, "input_size": [h, w],
            "in_channels": m.in_channels, "classes": m.num_classes(), "class_names": m.meta.classes,
            "mean": m.meta.mean, "std": m.meta.std, "parameters": params, "weight_bytes": params * 4,
            "activation_bytes_per_item": act_bytes, "layers": layers,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        return Ok(());
    }
    println!(
        "{}  ({}, input {}x{}x{})",
        a.model.display(),
        m.meta.arch,
        m.in_channels,
        h,
        w
    );
    println!(
        "{:>4}  {:<16} {:<18} {:<20} {:>12}",
        "#", "name", "type", "output", "params"
    );
    for (i, (l, s)) in m.layers.iter().zip(&shapes).enumerate() {
        let ty = match &l.folded_bn {
            Some(_) => format!("{}+BN", l.kind.type_name()),
            None => l.kind.type_name().to_string(),
        };
        let shape = s[1..]
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        // a layer that does not read the one before it names what it reads
        let reads = if l.inputs == [Src::before(i)] {
            String::new()
        } else {
            let names: Vec<&str> = l.inputs.iter().map(|s| m.src_name(*s)).collect();
            format!("  <- {}", names.join(" + "))
        };
        println!(
            "{i:>4}  {:<16} {ty:<18} {shape:<20} {:>12}{reads}",
            m.output_name(i),
            l.kind.param_count()
        );
    }
    println!(
        "parameters: {params} ({:.1} MB as f32)",
        params as f64 * 4.0 / 1e6
    );
    println!(
        "activations: {:.1} MB per item at {h}x{w}",
        act_bytes as f64 / 1e6
    );
    println!(
        "classes: {}{}",
        m.num_classes(),
        m.meta
            .classes
            .as_ref()
            .map_or(String::new(), |c| format!(" ({})", c.join(", ")))
    );
    println!("normalization: mean {:?} std {:?}", m.meta.mean, m.meta.std);
    for l in &m.layers {
        if let Some(bn) = &l.folded_bn {
            println!("note: batch norm {bn} is folded into {}", l.name);
        }
    }
    Ok(())
}
