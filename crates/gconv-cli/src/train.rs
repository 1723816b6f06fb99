//! `gconv train`, and loading a trained model for the other commands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use gconv::data::epoch_order;
use gconv::nn::{Model, Optimizer, checkpoint};
use gconv::ops::AugmentOptions;
use indicatif::{ProgressBar, ProgressStyle};

use crate::dataset::{DataArgs, DataInfo, data_shape};
use crate::eval::evaluate;
use crate::interrupt::Interrupt;
use crate::run_files::{self, MetricsLog, Position, RunKey};
use crate::run_state::{Run, Window};
use crate::schedule::{Schedule, ScheduleKind};
use crate::source::{DataShape, ModelSource};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerName {
    /// torch.optim.Adam (betas 0.9, 0.999; eps 1e-8); --weight-decay is an L2 penalty.
    Adam,
    /// torch.optim.AdamW: Adam with decoupled weight decay (default 0.01).
    Adamw,
    /// torch.optim.SGD with --momentum.
    Sgd,
}

/// Which model, on which data.
#[derive(Args, Debug)]
pub struct ModelArgs {
    #[command(flatten)]
    pub source: ModelSource,
    #[command(flatten)]
    pub data: DataArgs,
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
    /// Weight decay: an L2 penalty on the gradient for Adam and SGD (default 0), decoupled
    /// for AdamW (default 0.01), as PyTorch's optimizers apply it.
    #[arg(long)]
    weight_decay: Option<f32>,
    /// How the learning rate changes over the run (after --warmup): constant, step (times
    /// --gamma every --step-size epochs) or cosine (half a cosine down to 0 by the last step).
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant)]
    schedule: ScheduleKind,
    /// Epochs of linear warm-up, the learning rate rising step by step from its 1/W to all of it.
    #[arg(long, value_name = "EPOCHS", default_value_t = 0)]
    warmup: u64,
    /// The step schedule's period in epochs.
    #[arg(long, value_name = "EPOCHS", default_value_t = 30)]
    step_size: u64,
    /// The step schedule's factor.
    #[arg(long, default_value_t = 0.1)]
    gamma: f32,
    /// Label smoothing of the training loss, as PyTorch's cross_entropy(label_smoothing=).
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Augment each training batch on the GPU, seeded by --seed and the step: crop=N (a
    /// random crop of the image's size after N pixels of black padding, as torchvision's
    /// RandomCrop(padding=N)) and flip (mirrored with probability 1/2), e.g. crop=4,flip.
    #[arg(long, value_delimiter = ',', value_name = "crop=N,flip")]
    augment: Vec<String>,
    /// Seed of the initialisation, the shuffling and the dropout masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the parameters here (safetensors, PyTorch's names) after every epoch, atomically,
    /// and the optimizer's state beside it (FILE's stem + .optimizer.safetensors), which
    /// --resume reads. A run that diverges never writes over it.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Also save every N training steps (with --save).
    #[arg(long, value_name = "N", requires = "save", value_parser = clap::value_parser!(u64).range(1..))]
    save_every: Option<u64>,
    /// Continue the run a --save checkpoint stopped at (same model, data, --seed,
    /// --batch-size and optimizer); it keeps saving there unless --save names another file.
    #[arg(long, value_name = "CHECKPOINT")]
    resume: Option<PathBuf>,
    /// Keep training when a loss or gradient is not finite (by default the run stops with
    /// an error); checkpoints are still not written while it lasts.
    #[arg(long)]
    continue_on_nan: bool,
    /// Write one JSON object per epoch to this file (replaced at the start of a run, kept and
    /// continued by --resume).
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Draw the training and test loss and accuracy by epoch to this picture (.png or .jpg),
    /// redrawn atomically after every epoch (the epochs of this invocation).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
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
    let mut data = a.model.data.load(a.model.source.input.as_deref())?;
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
    let optimizer = optimizer(a);
    model.set_optimizer(optimizer)?;
    model.set_label_smoothing(a.label_smoothing)?;
    let input = input_of(&model)?;
    model.set_augmentation(augmentation(&a.augment, &data.train, input)?)?;
    let steps_per_epoch = data.train.len().div_ceil(a.batch_size) as u64;
    let schedule = Schedule {
        kind: a.schedule,
        warmup_epochs: a.warmup,
        step_size: a.step_size,
        gamma: a.gamma,
        epochs: a.epochs,
        steps_per_epoch,
    };
    schedule.validate()?;
    // What a resumed run must share with the run it continues.
    let key = RunKey {
        seed: a.seed,
        batch_size: a.batch_size,
        optimizer: format!(
            "{optimizer:?}, schedule {:?} (warm-up {}, step {} x {}), label smoothing {}, \
             augment {:?}",
            a.schedule, a.warmup, a.step_size, a.gamma, a.label_smoothing, a.augment
        ),
    };
    let mut at = Position { epoch: 1, step: 0, steps: 0 };
    if let Some(path) = &a.resume {
        at = run_files::resume(path, &mut model, source, &key)?;
        if at.step >= steps_per_epoch {
            at = Position { epoch: at.epoch + 1, step: 0, steps: at.steps };
        }
        say!(
            "resuming {} at epoch {}, step {} ({} steps done)",
            path.display(),
            at.epoch,
            at.step,
            at.steps
        );
        if at.epoch > a.epochs {
            say!("the run already trained {} epochs", a.epochs);
            return Ok(());
        }
    }
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
    if let Some(path) = &a.plot {
        crate::picture::output_format(path)?;
    }
    let mut curve = Vec::new();
    let interrupt = Interrupt::install()?;
    let completed = a.resume.as_ref().map(|_| at.epoch - 1);
    let mut log = MetricsLog::new(a.metrics.as_deref(), completed)?;
    let mut run = Run {
        source,
        key,
        save: a.save.clone().or_else(|| a.resume.clone()),
        saved: None,
        epochs: a.epochs,
        steps_per_epoch,
        continue_on_nan: a.continue_on_nan,
        data: DataInfo::of(&data.train),
    };
    for epoch in at.epoch..=a.epochs {
        let order = epoch_order(data.train.len(), a.seed, epoch);
        let skip = if epoch == at.epoch { at.step } else { 0 };
        let bar = interactive.then(|| progress_bar(steps_per_epoch - skip, epoch, a.epochs));
        let mut window = Window::starting_at(skip);
        let start = Instant::now();
        for (i, chunk) in order.chunks(a.batch_size).enumerate().skip(skip as usize) {
            let (x, y) = data.train.batch(chunk, input);
            model.set_lr_scale(schedule.factor(at.steps))?;
            model.train_step(&x, &y)?;
            at = Position { epoch, step: i as u64 + 1, steps: at.steps + 1 };
            if let Some(b) = &bar {
                b.inc(1);
            }
            let stop = interrupt.requested();
            let save_now = a.save_every.is_some_and(|n| at.steps.is_multiple_of(n));
            if stop.is_some() || save_now {
                if let Some(b) = &bar {
                    b.suspend(|| run.checkpoint(&mut model, &mut window, at))?;
                } else {
                    run.checkpoint(&mut model, &mut window, at)?;
                }
            }
            if let Some(stop) = stop {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                run.stopped(stop, at);
                return Err(stop.into());
            }
        }
        window.take(&mut model, at, &run)?;
        let (train_loss, train_accuracy) = window.total();
        let seconds = start.elapsed().as_secs_f64();
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let test_m = evaluate(&mut model, &data.test, 500, input)?.metrics;
        let trained = (steps_per_epoch - skip) as usize * a.batch_size;
        let images_per_sec = trained.min(data.train.len()) as f64 / seconds;
        say!(
            "epoch {epoch}/{}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%, {:.0} images/s, {:.1} s",
            a.epochs,
            train_loss,
            test_m.loss,
            100.0 * test_m.accuracy,
            images_per_sec,
            seconds
        );
        log.push(&serde_json::json!({
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "test_loss": test_m.loss,
            "test_accuracy": test_m.accuracy,
            "images_per_sec": images_per_sec,
            "seconds": seconds,
        }))?;
        if let Some(path) = &a.plot {
            curve.push(crate::curves::Point {
                epoch,
                train_loss,
                test_loss: test_m.loss,
                train_accuracy,
                test_accuracy: test_m.accuracy,
            });
            crate::curves::plot(&curve, path)?;
        }
        run.save(&model, window.healthy, at)?;
        if let Some(stop) = interrupt.requested() {
            run.stopped(stop, at);
            return Err(stop.into());
        }
    }
    Ok(())
}

/// `--augment`'s items as options, the padding's fill the normalised value of a black pixel
/// in each of the model's channels.
fn augmentation(
    items: &[String],
    data: &gconv::data::Dataset,
    input: [usize; 3],
) -> Result<Option<AugmentOptions>> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut o = AugmentOptions { crop_padding: 0, flip: false, fill: vec![0.0] };
    for item in items {
        match item.trim().split_once('=') {
            Some(("crop", n)) => {
                o.crop_padding = n.trim().parse().with_context(|| {
                    format!("--augment crop={n}: the padding is a whole number of pixels")
                })?;
            }
            None if item.trim() == "flip" => o.flip = true,
            _ => bail!("--augment {item:?}: expected crop=N or flip"),
        }
    }
    let mut black = data.take(1);
    black.pixels.fill(0);
    let (values, _) = black.batch(&[0], input);
    let plane = input[1] * input[2];
    o.fill = (0..input[0]).map(|c| values[c * plane]).collect();
    Ok(Some(o))
}

fn optimizer(a: &TrainArgs) -> Optimizer {
    match a.optimizer {
        OptimizerName::Adam => Optimizer::Adam {
            lr: a.lr.unwrap_or(1e-3),
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: a.weight_decay.unwrap_or(0.0),
        },
        OptimizerName::Adamw => Optimizer::AdamW {
            lr: a.lr.unwrap_or(1e-3),
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: a.weight_decay.unwrap_or(0.01),
        },
        OptimizerName::Sgd => Optimizer::Sgd {
            lr: a.lr.unwrap_or(1e-2),
            momentum: a.momentum,
            weight_decay: a.weight_decay.unwrap_or(0.0),
        },
    }
}

fn progress_bar(steps: u64, epoch: u64, epochs: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {msg} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("{epoch}/{epochs}"));
    bar
}

/// The model `source` describes with the checkpoint's parameters (an ONNX model may go
/// without one: its file holds weights), built for the data shape `data` gives from what the
/// checkpoint records, and that record. The file is read once.
pub(crate) fn load_model(
    ctx: &gconv::Context,
    source: &ModelSource,
    path: Option<&Path>,
    data: impl FnOnce(&DataInfo) -> DataShape,
) -> Result<(Model, DataInfo)> {
    let (state, info) = match path {
        Some(path) => {
            let (state, meta) = checkpoint::load_with_metadata(path)?;
            (Some(state), DataInfo::from_metadata(&meta))
        }
        None if source.onnx.is_some() => (None, DataInfo::default()),
        None => bail!(
            "--checkpoint is required (an --onnx model may go without: its file holds weights)"
        ),
    };
    let mut model = source.build(ctx, data(&info), 0)?;
    if let (Some(state), Some(path)) = (state, path) {
        let state = source.graph_names_of(state)?;
        model.load_state_dict(&state).with_context(|| format!("loading {}", path.display()))?;
    }
    Ok((model, info))
}
