//! `gconv summary`: a model's layers with output shapes, parameters, MACs and receptive fields.

use anyhow::{Result, bail};
use clap::Args;
use gconv::nn::{Summary, summarize};

use crate::source::ModelSource;

#[derive(Args, Debug)]
pub struct SummaryArgs {
    #[command(flatten)]
    source: ModelSource,
    /// Batch size for the shapes, MACs and activation memory.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Thousands separated by commas: 138,357,544.
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} KiB", b / 1024.0)
    }
}

/// 15.47 G, 5.68 M, 840.
fn scaled(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.2} K", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// "5" when every dimension agrees, else "5x3"; "-" without spatial structure.
fn per_dim(v: Option<&Vec<f64>>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.iter().all(|x| *x == v[0]) => number(v[0]),
        Some(v) => v.iter().map(|x| number(*x)).collect::<Vec<_>>().join("x"),
    }
}

pub fn summary(a: &SummaryArgs) -> Result<()> {
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    // A built-in model at its own input and classes unless --input and --classes say
    // otherwise; a spec at --input.
    let (name, graph) = (a.source.name(), a.source.graph(None)?);
    let s = summarize(&graph, a.batch)?;
    if a.json {
        say!("{}", serde_json::to_string_pretty(&to_json(&name, &s))?);
    } else {
        print_table(&name, &s);
    }
    Ok(())
}

fn to_json(name: &str, s: &Summary) -> serde_json::Value {
    let layers: Vec<_> = s
        .layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "name": l.name,
                "type": l.type_name,
                "output_shape": l.output_shape,
                "params": l.params,
                "macs": l.macs,
                "receptive_field": l.receptive_field,
                "jump": l.jump,
            })
        })
        .collect();
    serde_json::json!({
        "model": name,
        "input_shape": s.input_shape,
        "layers": layers,
        "total_params": s.trainable_params + s.buffer_elements,
        "trainable_params": s.trainable_params,
        "macs": s.macs,
        "input_bytes": s.input_bytes,
        "activation_bytes": s.activation_bytes,
        "weight_bytes": s.weight_bytes,
    })
}

fn print_table(name: &str, s: &Summary) {
    let shape = |v: &[usize]| {
        format!("[{}]", v.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
    };
    let rows: Vec<[String; 7]> = s
        .layers
        .iter()
        .map(|l| {
            [
                l.name.clone(),
                l.type_name.clone(),
                shape(&l.output_shape),
                grouped(l.params as u64),
                grouped(l.macs),
                per_dim(l.receptive_field.as_ref()),
                per_dim(l.jump.as_ref()),
            ]
        })
        .collect();
    let header = ["Layer", "Type", "Output shape", "Params", "MACs", "RF", "Jump"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Text left, numbers right.
            if i < 3 {
                out.push_str(&format!("{cell:<w$}  "));
            } else {
                out.push_str(&format!("{cell:>w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    say!("{name}: input {}", shape(&s.input_shape));
    let head = line(header);
    say!("{head}");
    say!("{}", "-".repeat(head.len()));
    for row in &rows {
        say!("{}", line(row.each_ref().map(String::as_str)));
    }
    say!("{}", "-".repeat(head.len()));
    say!("Trainable parameters: {}", grouped(s.trainable_params as u64));
    if s.buffer_elements > 0 {
        say!("Buffers (running statistics): {}", grouped(s.buffer_elements as u64));
    }
    say!("Multiply-accumulates: {} ({})", grouped(s.macs), scaled(s.macs as f64));
    say!("Input memory: {}", bytes(s.input_bytes));
    say!("Activation memory (forward, every output kept): {}", bytes(s.activation_bytes));
    say!("Weight memory: {}", bytes(s.weight_bytes));
    say!("RF: receptive field in input pixels; Jump: input pixels between neighbouring outputs");
}
