//! `gconv train` and `gconv eval`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use gconv::data::{Dataset, Splits, epoch_order};
use gconv::nn::{Model, Optimizer, checkpoint};
use indicatif::{ProgressBar, ProgressStyle};

use crate::source::{DataShape, ModelSource};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerName {
    /// torch.optim.Adam (betas 0.9, 0.999; eps 1e-8).
    Adam,
    /// torch.optim.SGD with --momentum.
    Sgd,
}

/// Which model, on which data.
#[derive(Args, Debug)]
pub struct ModelArgs {
    #[command(flatten)]
    source: ModelSource,
    /// An MNIST-format directory (train-images-idx3-ubyte[.gz] and siblings), e.g. the full
    /// Fashion-MNIST in /usr/share/datasets/fashion-mnist. Default: the bundled digits, resized
    /// and given channels as the model's input asks.
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Passes over the training split.
    #[arg(long, default_value_t = 10)]
    epochs: u64,
    /// Samples per step (the last batch of an epoch may be smaller).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Learning rate (default: 1e-3 for Adam, 1e-2 for SGD).
    #[arg(long)]
    lr: Option<f32>,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam)]
    optimizer: OptimizerName,
    /// SGD's momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// L2 penalty (both optimizers).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Seed of the initialisation, the shuffling and the dropout masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the trained parameters here (safetensors, PyTorch's names), atomically.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Append one JSON object per epoch to this file.
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A safetensors checkpoint with PyTorch's state-dict names.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Samples per evaluation batch.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
}

fn splits(data: Option<&Path>) -> Result<Splits> {
    match data {
        Some(dir) => Ok(Splits::load_mnist(dir)
            .with_context(|| format!("loading the dataset in {}", dir.display()))?),
        None => Ok(crate::bundled::mnist()?),
    }
}

/// The data's shape for the model: one channel of `rows x cols`, and the classes its labels
/// need (at least 10).
fn data_shape(d: &Dataset) -> DataShape {
    let classes = d.labels.iter().copied().max().map_or(10, |m| usize::from(m) + 1).max(10);
    DataShape { input: [1, d.rows, d.cols], classes }
}

/// Evaluates `data` in batches: (loss, accuracy).
fn evaluate(
    model: &mut Model,
    data: &Dataset,
    batch: usize,
    input: [usize; 3],
) -> Result<gconv::nn::Metrics> {
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(batch.max(1)) {
        let (x, y) = data.batch(chunk, input);
        model.eval_batch(&x, &y)?;
    }
    Ok(model.take_metrics()?)
}

pub(crate) fn input_of(model: &Model) -> Result<[usize; 3]> {
    let s = model.input_shape();
    if s.len() != 3 {
        bail!("model input {s:?} is not (channels, height, width)");
    }
    Ok([s[0], s[1], s[2]])
}

pub fn train(ctx: &gconv::Context, a: &TrainArgs) -> Result<()> {
    if a.batch_size == 0 || a.epochs == 0 {
        bail!("--batch-size and --epochs must be at least 1");
    }
    let mut data = splits(a.model.data.as_deref())?;
    if let Some(n) = a.limit {
        data.train = data.train.take(n);
    }
    if let Some(n) = a.test_limit {
        data.test = data.test.take(n);
    }
    if data.train.is_empty() || data.test.is_empty() {
        bail!("the dataset has no training or no test images");
    }
    let source = &a.model.source;
    let mut model = source.build(ctx, data_shape(&data.train), a.seed)?;
    let optimizer = match a.optimizer {
        OptimizerName::Adam => Optimizer::Adam {
            lr: a.lr.unwrap_or(1e-3),
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: a.weight_decay,
        },
        OptimizerName::Sgd => Optimizer::Sgd {
            lr: a.lr.unwrap_or(1e-2),
            momentum: a.momentum,
            weight_decay: a.weight_decay,
        },
    };
    model.set_optimizer(optimizer)?;
    let input = input_of(&model)?;
    let interactive = !a.quiet && std::io::stderr().is_terminal();
    say!(
        "{}: {} parameters on {}; {} training and {} test images, batch {}, {:?}",
        source.name(),
        model.parameter_count(),
        ctx.adapter_name(),
        data.train.len(),
        data.test.len(),
        a.batch_size,
        optimizer
    );
    let steps = data.train.len().div_ceil(a.batch_size);
    for epoch in 1..=a.epochs {
        let order = epoch_order(data.train.len(), a.seed, epoch);
        let bar = if interactive {
            let bar = ProgressBar::new(steps as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {msg} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("{epoch}/{}", a.epochs));
            Some(bar)
        } else {
            None
        };
        let start = Instant::now();
        for chunk in order.chunks(a.batch_size) {
            let (x, y) = data.train.batch(chunk, input);
            model.train_step(&x, &y)?;
            if let Some(b) = &bar {
                b.inc(1);
            }
        }
        let train_m = model.take_metrics()?;
        let seconds = start.elapsed().as_secs_f64();
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let test_m = evaluate(&mut model, &data.test, 500, input)?;
        let images_per_sec = data.train.len() as f64 / seconds;
        say!(
            "epoch {epoch}/{}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%, {:.0} images/s, {:.1} s",
            a.epochs,
            train_m.loss,
            test_m.loss,
            100.0 * test_m.accuracy,
            images_per_sec,
            seconds
        );
        if let Some(path) = &a.metrics {
            let line = serde_json::json!({
                "epoch": epoch,
                "train_loss": train_m.loss,
                "train_accuracy": train_m.accuracy,
                "test_loss": test_m.loss,
                "test_accuracy": test_m.accuracy,
                "images_per_sec": images_per_sec,
                "seconds": seconds,
            });
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{line}").with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(path) = &a.save {
        let meta = source.metadata(&model)?;
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        checkpoint::save(path, &model.state_dict()?, &meta)?;
        say!("saved {}", path.display());
    }
    Ok(())
}

/// The model `source` describes for `data`, with the checkpoint's parameters.
pub(crate) fn load_model(
    ctx: &gconv::Context,
    source: &ModelSource,
    path: &Path,
    data: DataShape,
) -> Result<Model> {
    let state = checkpoint::load(path)?;
    let mut model = source.build(ctx, data, 0)?;
    model.load_state_dict(&state).with_context(|| format!("loading {}", path.display()))?;
    Ok(model)
}

pub fn eval(ctx: &gconv::Context, a: &EvalArgs) -> Result<()> {
    let data = splits(a.model.data.as_deref())?;
    let mut model = load_model(ctx, &a.model.source, &a.checkpoint, data_shape(&data.train))?;
    let input = input_of(&model)?;
    let m = evaluate(&mut model, &data.test, a.batch_size, input)?;
    say!(
        "test loss {:.4}, test accuracy {:.2}% ({} images)",
        m.loss,
        100.0 * m.accuracy,
        m.samples
    );
    Ok(())
}
