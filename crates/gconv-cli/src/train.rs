//! `gconv train`, `gconv eval` and `gconv predict`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use gconv::data::{Dataset, Splits, epoch_order};
use gconv::nn::{MODELS, Model, ModelConfig, Optimizer, checkpoint};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerName {
    /// torch.optim.Adam (betas 0.9, 0.999; eps 1e-8).
    Adam,
    /// torch.optim.SGD with --momentum.
    Sgd,
}

/// What the model and data have in common: which model, which data, which input size.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// The model: lenet5, simplecnn, convnet or vgg16.
    #[arg(long, value_parser = MODELS)]
    model: String,
    /// An MNIST-format directory (train-images-idx3-ubyte[.gz] and siblings), e.g. the full
    /// Fashion-MNIST in /usr/share/datasets/fashion-mnist. Default: the bundled digits.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Input height and width (vgg16 only; default 32 on 28x28 digits, which are resized and
    /// given three channels).
    #[arg(long)]
    input_size: Option<usize>,
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

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    trained: crate::visualize::Trained,
    /// Invert grey levels first (dark digits on light paper; MNIST is light on dark).
    #[arg(long)]
    invert: bool,
    /// Images to classify (PNG or JPEG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn splits(data: Option<&Path>) -> Result<Splits> {
    match data {
        Some(dir) => Ok(Splits::load_mnist(dir)
            .with_context(|| format!("loading the dataset in {}", dir.display()))?),
        None => Ok(crate::bundled::mnist()?),
    }
}

fn config(model: &str, input_size: Option<usize>, classes: usize) -> ModelConfig {
    let mut c = ModelConfig::default_for(model);
    if model == "vgg16" {
        let side = input_size.unwrap_or(32);
        c.input = [3, side, side];
    } else if let Some(side) = input_size {
        c.input = [c.input[0], side, side];
    }
    c.num_classes = classes;
    c
}

fn classes_of(d: &Dataset) -> usize {
    d.labels.iter().copied().max().map_or(10, |m| usize::from(m) + 1).max(10)
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
    let cfg = config(&a.model.model, a.model.input_size, classes_of(&data.train));
    let mut model = Model::builtin(ctx, &a.model.model, &cfg, a.seed)?;
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
        a.model.model,
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
        let model_name = a.model.model.as_str();
        checkpoint::save(path, &model.state_dict()?, &[("model", model_name), ("format", "pt")])?;
        say!("saved {}", path.display());
    }
    Ok(())
}

pub(crate) fn load_model(
    ctx: &gconv::Context,
    name: &str,
    input_size: Option<usize>,
    path: &Path,
    classes: usize,
) -> Result<Model> {
    let state = checkpoint::load(path)?;
    let mut model = Model::builtin(ctx, name, &config(name, input_size, classes), 0)?;
    model.load_state_dict(&state).with_context(|| format!("loading {}", path.display()))?;
    Ok(model)
}

pub fn eval(ctx: &gconv::Context, a: &EvalArgs) -> Result<()> {
    let data = splits(a.model.data.as_deref())?;
    let mut model = load_model(
        ctx,
        &a.model.model,
        a.model.input_size,
        &a.checkpoint,
        classes_of(&data.train),
    )?;
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

pub fn predict(ctx: &gconv::Context, a: &PredictArgs) -> Result<()> {
    let mut model = crate::visualize::load(ctx, &a.trained)?;
    let [channels, h, w] = input_of(&model)?;
    let mut batch = Vec::new();
    for path in &a.images {
        batch.extend(image_input(path, a.invert, [channels, h, w])?);
    }
    let logits = model.predict(&batch, a.images.len())?.to_vec()?;
    let classes = logits.len() / a.images.len();
    for (path, row) in a.images.iter().zip(logits.chunks(classes)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let (best, &v) = row
            .iter()
            .enumerate()
            .fold((0, &row[0]), |acc, (i, x)| if *x > *acc.1 { (i, x) } else { acc });
        say!("{}: class {best} ({:.1}%)", path.display(), 100.0 * (v - max).exp() / sum);
    }
    Ok(())
}

/// One image file as a model input: grey levels (inverted with `invert`), resized and given
/// the model's channels as the training data are, then normalised.
pub(crate) fn image_input(path: &Path, invert: bool, input: [usize; 3]) -> Result<Vec<f32>> {
    let img = crate::picture::open(path)?.to_luma8();
    let (iw, ih) = img.dimensions();
    let mut pixels = img.into_raw();
    if invert {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    let d = Dataset { pixels, labels: vec![0], rows: ih as usize, cols: iw as usize };
    Ok(d.batch(&[0], input).0)
}
