//! What a step costs besides its arithmetic: an empty dispatch and a submission with its wait,
//! measured with models of one and of 200 ReLU layers on one value each, and lenet5's
//! training step broken into its layers' kernels.

use std::time::Instant;

use anyhow::Result;
use gconv::Context;
use gconv::nn::{Graph, Layer, Model, ModelConfig};
use serde_json::{Value, json};

/// Median seconds of `runs` predictions of a chain of `n` ReLUs on one value.
fn chain(ctx: &Context, n: usize, runs: usize) -> Result<f64> {
    let mut g = Graph::new(&[1]);
    for i in 0..n {
        g.push(&format!("relu{i}"), Layer::Relu)?;
    }
    let mut model = Model::from_graph(ctx, "chain", g, 0)?;
    model.predict(&[0.5], 1)?;
    ctx.synchronize()?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        model.predict(&[0.5], 1)?;
        ctx.synchronize()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// (dispatch_us, submit_wait_us): the added cost of one more dispatch in a submission, and
/// a submission of one small dispatch (with the upload) and its wait.
pub(crate) fn costs(ctx: &Context, quick: bool) -> Result<(f64, f64)> {
    let runs = if quick { 3 } else { 50 };
    let (one, many) = (chain(ctx, 1, runs)?, chain(ctx, 201, runs)?);
    let dispatch = (many - one).max(0.0) / 200.0 * 1e6;
    println!(
        "\nOverhead: {dispatch:.1} us a dispatch, {:.1} us a submission and its wait",
        one * 1e6
    );
    Ok((dispatch, one * 1e6))
}

/// lenet5's training step (batch 64, Adam) layer by layer: each part's milliseconds and
/// kernels (`Model::profile`).
pub(crate) fn lenet5_profile(ctx: &Context, quick: bool) -> Result<Value> {
    let config = ModelConfig::default_for("lenet5");
    let mut model = Model::builtin(ctx, "lenet5", &config, 1)?;
    let batch = 64;
    let per: usize = config.input.iter().product();
    let images: Vec<f32> = (0..batch * per).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let labels: Vec<i32> = (0..batch as i32).map(|i| i % 10).collect();
    let parts = model.profile(&images, &labels, true, if quick { 1 } else { 5 })?;
    let total: f64 = parts.iter().map(|p| p.seconds).sum();
    println!("\nlenet5 training step, batch 64, by part ({:.2} ms in all):", total * 1e3);
    let rows: Vec<Value> = parts
        .iter()
        .map(|p| {
            let name = if p.node.is_empty() { p.phase.name().to_string() } else { p.node.clone() };
            println!(
                "  {name:<20} {:<9} {:>8.3} ms  {}",
                p.phase.name(),
                p.seconds * 1e3,
                p.kernels.join(", ")
            );
            json!({"node": name, "phase": p.phase.name(), "ms": p.seconds * 1e3,
                   "kernels": p.kernels})
        })
        .collect();
    Ok(Value::Array(rows))
}
