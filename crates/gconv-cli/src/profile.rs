//! `gconv profile`: every layer's forward (and with `--train` backward) time on the device,
//! its GFLOP/s, the kernels it ran and its share of the step; `--json` too.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use gconv::nn::{Graph, Layer, LayerTiming, Model, Phase};

use crate::source::ModelSource;

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    source: ModelSource,
    /// Samples per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Profile a training step (forward, loss, backward, Adam) instead of inference.
    #[arg(long)]
    train: bool,
    /// Rounds to take the median of, after a warm-up.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Floating-point operations of a plan node (graph nodes joined by `+`) in `phase`:
/// 2 per multiply-accumulate forward, twice that backward (the input's and the weight's
/// gradients) for convolutions and linear layers; 0 for the rest.
fn flops(graph: &Graph, shapes: &[Vec<usize>], node: &str, phase: Phase) -> f64 {
    node.split('+')
        .filter_map(|name| graph.nodes.iter().position(|n| n.name == name))
        .map(|k| {
            let n = &graph.nodes[k];
            let input = n.inputs.first().map_or(&shapes[0], |&v| &shapes[v]);
            let macs = n.layer.macs(input, &shapes[k + 1]) as f64;
            let weighted = matches!(
                n.layer,
                Layer::Conv { .. } | Layer::ConvTranspose { .. } | Layer::Linear { .. }
            );
            match phase {
                Phase::Forward => 2.0 * macs,
                Phase::Backward if weighted => 4.0 * macs,
                _ => 0.0,
            }
        })
        .sum()
}

fn type_of(graph: &Graph, node: &str) -> String {
    node.split('+')
        .filter_map(|name| graph.nodes.iter().find(|n| n.name == name))
        .map(|n| n.layer.type_name())
        .collect::<Vec<_>>()
        .join("+")
}

pub fn profile(ctx: &gconv::Context, a: &ProfileArgs) -> Result<()> {
    if a.batch == 0 || a.runs == 0 {
        bail!("--batch and --runs must be at least 1");
    }
    let mut model = match a.source.onnx()? {
        Some(imported) => imported.model(ctx, &a.source.name())?,
        None => Model::from_graph(ctx, &a.source.name(), a.source.graph(None)?, 0)?,
    };
    let graph = model.graph().clone();
    let per: usize = model.input_shape().iter().product();
    let images: Vec<f32> =
        (0..a.batch * per).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let classes = graph.shapes(1)?.last().and_then(|s| s.last().copied()).unwrap_or(1);
    let labels: Vec<i32> = (0..a.batch).map(|i| (i % classes.max(1)) as i32).collect();
    let parts = model.profile(&images, &labels, a.train, a.runs)?;
    // The whole step in one submission, beside the parts (which, on the host's clock, run in
    // submissions of their own).
    let mut whole = Vec::new();
    for _ in 0..a.runs {
        let start = Instant::now();
        if a.train {
            model.train_step(&images, &labels)?;
        } else {
            model.predict(&images, a.batch)?;
        }
        ctx.synchronize()?;
        whole.push(start.elapsed().as_secs_f64());
    }
    model.take_metrics()?;
    whole.sort_by(f64::total_cmp);
    let step = whole[whole.len() / 2];
    let recording = model.recording_seconds(a.batch, a.train, a.runs)?;
    let shapes = graph.shapes(a.batch)?;
    let total: f64 = parts.iter().map(|p| p.seconds).sum();
    let work = if a.train { "training step (Adam)" } else { "inference" };
    // How the parts were timed (gconv::Context::device_clock).
    let clock = if ctx.device_clock() { "device" } else { "host" };
    let rows: Vec<(&LayerTiming, String, f64)> = parts
        .iter()
        .map(|p| {
            let name =
                if p.node.is_empty() { format!("({})", p.phase.name()) } else { p.node.clone() };
            (p, name, flops(&graph, &shapes, &p.node, p.phase))
        })
        .collect();
    if a.json {
        let layers: Vec<serde_json::Value> = rows
            .iter()
            .map(|(p, name, f)| {
                serde_json::json!({
                    "node": name, "type": type_of(&graph, &p.node), "phase": p.phase.name(),
                    "ms": p.seconds * 1e3,
                    "gflops_per_sec": (*f > 0.0).then(|| f / p.seconds / 1e9),
                    "share": p.seconds / total, "kernels": p.kernels,
                })
            })
            .collect();
        let report = serde_json::json!({
            "model": a.source.name(), "adapter": ctx.adapter_name(), "batch": a.batch,
            "input": model.input_shape(), "work": work, "layers": layers,
            "parts_ms": total * 1e3, "step_ms": step * 1e3, "clock": clock,
            "recording_ms": recording * 1e3,
            "images_per_sec": a.batch as f64 / step,
        });
        say!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    say!(
        "{}: {work}, batch {} of {:?} on {} (median of {})",
        a.source.name(),
        a.batch,
        model.input_shape(),
        ctx.adapter_name(),
        a.runs
    );
    let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(4).clamp(4, 40);
    say!(
        "{:<width$}  {:<9} {:>9} {:>9} {:>6}  kernels",
        "layer",
        "phase",
        "ms",
        "GFLOP/s",
        "share"
    );
    for (p, name, f) in &rows {
        let rate = if *f > 0.0 { format!("{:.2}", f / p.seconds / 1e9) } else { "-".into() };
        let name: String = name.chars().take(width).collect();
        say!(
            "{name:<width$}  {:<9} {:>9.3} {rate:>9} {:>5.1}%  {}",
            p.phase.name(),
            p.seconds * 1e3,
            100.0 * p.seconds / total,
            p.kernels.join(", ")
        );
    }
    let timed = if clock == "device" {
        "on the device's clock"
    } else {
        "each in a submission of its own, on the host's clock less an empty submission's"
    };
    say!(
        "parts: {:.2} ms, {timed}; the step in one submission: {:.2} ms ({:.1} images/s), \
         recording its commands on the host: {:.2} ms",
        total * 1e3,
        step * 1e3,
        a.batch as f64 / step,
        recording * 1e3
    );
    Ok(())
}
