//! The model benchmarks: training and inference images/s of the small models, a VGG16 step,
//! training steps of the branching models, and inference rows (the report's "models") for
//! resnet18 and mobilenet_v2, built in and imported from ONNX.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use gconv::nn::{Model, ModelConfig};
use gconv::{Context, ContextOptions};
use rand::Rng;
use rand::rngs::SmallRng;
use serde_json::{Value, json};

use crate::{Repeat, median};

/// Training images/s (batch 64, Adam) and inference images/s (batch 1000) of one model.
fn model_speed(ctx: &Context, name: &str, rng: &mut SmallRng, quick: bool) -> Result<Value> {
    let config = ModelConfig::default_for(name);
    let mut model = Model::builtin(ctx, name, &config, 1)?;
    let per_image: usize = config.input.iter().product();
    let batch = 64;
    let images: Vec<f32> = (0..batch * per_image).map(|_| rng.random_range(-0.5..2.5)).collect();
    let labels: Vec<i32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let steps = if quick { 2 } else { 30 };
    // Warm-up: plans, pipelines, the driver's shader compilation.
    model.train_step(&images, &labels)?;
    model.take_metrics()?;
    let start = Instant::now();
    for _ in 0..steps {
        model.train_step(&images, &labels)?;
    }
    model.take_metrics()?;
    ctx.synchronize()?;
    let train = (steps * batch) as f64 / start.elapsed().as_secs_f64();
    let infer_batch = if quick { 100 } else { 1000 };
    let images: Vec<f32> =
        (0..infer_batch * per_image).map(|_| rng.random_range(-0.5..2.5)).collect();
    model.predict(&images, infer_batch)?;
    ctx.synchronize()?;
    let rounds = if quick { 1 } else { 5 };
    let start = Instant::now();
    for _ in 0..rounds {
        model.predict(&images, infer_batch)?;
        ctx.synchronize()?;
    }
    let infer = (rounds * infer_batch) as f64 / start.elapsed().as_secs_f64();
    println!("{name:<10} {train:>12.1} {infer:>12.1}");
    Ok(json!({"train_images_per_sec": train, "infer_images_per_sec": infer,
              "train_batch": batch, "infer_batch": infer_batch, "train_steps": steps}))
}

pub(crate) fn bench_train(ctx: &Context, rng: &mut SmallRng, quick: bool) -> Result<Value> {
    println!("\nModels (batch 64 Adam training, batch 1000 inference): images/s");
    println!("{:<10} {:>12} {:>12}", "model", "train", "infer");
    let mut out = serde_json::Map::new();
    for name in ["simplecnn", "lenet5"] {
        out.insert(name.into(), model_speed(ctx, name, rng, quick)?);
    }
    Ok(Value::Object(out))
}

/// One VGG16 training step at batch 2 (224x224, 1000 classes; 32x32 with `quick`) on a
/// context of its own, so that its counters hold this model's memory alone.
pub(crate) fn bench_vgg16(
    options: &ContextOptions,
    rng: &mut SmallRng,
    quick: bool,
) -> Result<Value> {
    let ctx = Context::with_options(options)?;
    let size = if quick { 32 } else { 224 };
    let config = ModelConfig { input: [3, size, size], num_classes: 1000 };
    let mut model = Model::builtin(&ctx, "vgg16", &config, 1)?;
    let batch = 2;
    let images: Vec<f32> =
        (0..batch * 3 * size * size).map(|_| rng.random_range(-2.0..2.0)).collect();
    let labels = vec![3, 7];
    // The first step builds the plan and compiles the kernels; the second is timed.
    let first = Instant::now();
    model.train_step(&images, &labels)?;
    model.take_metrics()?;
    let first = first.elapsed().as_secs_f64();
    let start = Instant::now();
    model.train_step(&images, &labels)?;
    let metrics = model.take_metrics()?;
    ctx.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();
    let bytes = ctx.counters().bytes;
    println!(
        "\nvgg16 training step, batch 2, {size}x{size}: {seconds:.2} s (first step {first:.2} s), \
         loss {:.3}, device memory {:.1} MiB",
        metrics.loss,
        bytes as f64 / (1 << 20) as f64
    );
    Ok(json!({"seconds": seconds, "first_step_seconds": first, "peak_device_bytes": bytes,
              "input": size, "batch": batch}))
}

/// A training step (Adam, median of three after a warm-up) of torchvision's resnet18 and
/// mobilenet_v2 at batch 16, 3x64x64, 10 classes (batch 2 at 32x32, one step, with `quick`),
/// each on a context of its own for its device memory.
pub(crate) fn bench_branching(
    options: &ContextOptions,
    rng: &mut SmallRng,
    quick: bool,
) -> Result<Value> {
    let (batch, size) = if quick { (2, 32) } else { (16, 64) };
    println!("\nTraining steps of branching models, batch {batch}, 3x{size}x{size}:");
    let mut out = serde_json::Map::new();
    for name in ["resnet18", "mobilenet_v2"] {
        let ctx = Context::with_options(options)?;
        let config = ModelConfig { input: [3, size, size], num_classes: 10 };
        let mut model = Model::builtin(&ctx, name, &config, 1)?;
        let images: Vec<f32> =
            (0..batch * 3 * size * size).map(|_| rng.random_range(-2.0..2.0)).collect();
        let labels: Vec<i32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
        let first = Instant::now();
        model.train_step(&images, &labels)?;
        model.take_metrics()?;
        let first = first.elapsed().as_secs_f64();
        let repeat = if quick {
            Repeat { warmup: 0, runs: 1, budget: 0.0 }
        } else {
            Repeat { warmup: 0, runs: 3, budget: 60.0 }
        };
        let seconds = median(repeat, || {
            model.train_step(&images, &labels)?;
            model.take_metrics()?;
            Ok(ctx.synchronize()?)
        })?;
        let bytes = ctx.counters().bytes;
        println!(
            "{name:<13} {:>8.1} ms/step ({:.1} images/s; first step {first:.2} s), device memory \
             {:.1} MiB",
            seconds * 1e3,
            batch as f64 / seconds,
            bytes as f64 / (1 << 20) as f64
        );
        out.insert(
            name.into(),
            json!({"seconds": seconds, "first_step_seconds": first, "peak_device_bytes": bytes,
                   "input": size, "batch": batch}),
        );
    }
    Ok(Value::Object(out))
}

/// Where an ONNX export of torchvision's resnet18 is looked for: `GCONV_BENCH_ONNX`, else
/// tests/onnx/large/resnet18.onnx, which tests/onnx/make_torchvision.py writes.
fn resnet18_onnx() -> PathBuf {
    std::env::var_os("GCONV_BENCH_ONNX").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/onnx/large/resnet18.onnx")
    })
}

/// Inference images/s of resnet18 and mobilenet_v2 (built in) and of resnet18 imported from
/// ONNX, at batch 1 and 16 on 3x224x224, each model on a context of its own for its device
/// memory: the report's "models" rows. `quick`: the built-ins at 3x32x32 and batches 1 and 2,
/// and the small fire.onnx in place of resnet18's export.
pub(crate) fn bench_inference(
    options: &ContextOptions,
    rng: &mut SmallRng,
    quick: bool,
) -> Result<Vec<Value>> {
    let size = if quick { 32 } else { 224 };
    let batches: &[usize] = if quick { &[1, 2] } else { &[1, 16] };
    println!("\nInference (median of five after a warm-up), 3x{size}x{size} built-ins:");
    let mut rows = Vec::new();
    for name in ["resnet18", "mobilenet_v2"] {
        let ctx = Context::with_options(options)?;
        let config = ModelConfig { input: [3, size, size], num_classes: 1000 };
        let model = Model::builtin(&ctx, name, &config, 1)?;
        rows.extend(infer_rows(&ctx, model, (name, "builtin"), batches, rng, quick)?);
    }
    let path = if quick {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/onnx/fire.onnx")
    } else {
        resnet18_onnx()
    };
    if path.exists() {
        let ctx = Context::with_options(options)?;
        let model = gconv::onnx::load(&path, None)?.model(&ctx, "onnx")?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("onnx").to_string();
        rows.extend(infer_rows(&ctx, model, (&name, "onnx"), batches, rng, quick)?);
    } else {
        println!(
            "resnet18 from ONNX: not run; python3 tests/onnx/make_torchvision.py writes {} \
             (or set GCONV_BENCH_ONNX)",
            path.display()
        );
    }
    Ok(rows)
}

/// One model's inference rows, one per batch size.
fn infer_rows(
    ctx: &Context,
    mut model: Model,
    (name, source): (&str, &str),
    batches: &[usize],
    rng: &mut SmallRng,
    quick: bool,
) -> Result<Vec<Value>> {
    let shape = model.input_shape().to_vec();
    let per: usize = shape.iter().product();
    let mut rows = Vec::new();
    for &batch in batches {
        let images: Vec<f32> = (0..batch * per).map(|_| rng.random_range(-2.0..2.0)).collect();
        // The first run builds the plan and compiles the kernels.
        let first = Instant::now();
        model.predict(&images, batch)?;
        ctx.synchronize()?;
        let first = first.elapsed().as_secs_f64();
        let repeat = if quick {
            Repeat { warmup: 0, runs: 1, budget: 0.0 }
        } else {
            Repeat { warmup: 1, runs: 5, budget: 30.0 }
        };
        let seconds = median(repeat, || {
            model.predict(&images, batch)?;
            Ok(ctx.synchronize()?)
        })?;
        let bytes = ctx.counters().bytes;
        let rate = batch as f64 / seconds;
        println!(
            "{name:<13} {source:<8} batch {batch:>3} {rate:>9.1} images/s ({:.1} ms; first run \
             {first:.2} s), device memory {:.1} MiB",
            seconds * 1e3,
            bytes as f64 / (1 << 20) as f64
        );
        rows.push(json!({
            "model": name, "source": source, "work": "infer", "batch": batch,
            "input": shape.last(), "images_per_sec": rate, "torch_images_per_sec": null,
            "onnxruntime_images_per_sec": null, "device_bytes": bytes,
            "first_run_seconds": first,
        }));
    }
    Ok(rows)
}

/// The branching models' training steps as report rows.
pub(crate) fn train_rows(branching: &Value) -> Vec<Value> {
    let Some(map) = branching.as_object() else { return Vec::new() };
    map.iter()
        .map(|(name, v)| {
            let (batch, seconds) = (v["batch"].as_f64().unwrap_or(0.0), v["seconds"].as_f64());
            json!({
                "model": name, "source": "builtin", "work": "train", "batch": v["batch"],
                "input": v["input"], "images_per_sec": seconds.map(|s| batch / s),
                "torch_images_per_sec": null, "onnxruntime_images_per_sec": null,
                "device_bytes": v["peak_device_bytes"],
            })
        })
        .collect()
}

/// Each row beside its peers: images/s and gconv's ratio to each.
pub(crate) fn print_ratios(rows: &[Value]) {
    println!(
        "
Against the CPU peers in this run (images/s; gconv / peer):"
    );
    for r in rows {
        let ours = r["images_per_sec"].as_f64().unwrap_or(0.0);
        let peer = |key: &str| match r[key].as_f64() {
            Some(p) if p > 0.0 => format!("{p:>8.1} ({:.2}x)", ours / p),
            _ => format!("{:>8} {:>7}", "-", ""),
        };
        println!(
            "{:<13} {:<8} {:<5} batch {:>3} at {:>3}: gconv {ours:>8.1}, torch {}, onnxruntime {}",
            r["model"].as_str().unwrap_or(""),
            r["source"].as_str().unwrap_or(""),
            r["work"].as_str().unwrap_or(""),
            r["batch"],
            r["input"],
            peer("torch_images_per_sec"),
            peer("onnxruntime_images_per_sec"),
        );
    }
}
