//! The `gconv` command-line tool.

/// `println!` that ends the program quietly when stdout is a closed pipe (`gconv ... | head`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => { $crate::say_line(format_args!($($arg)*)) };
}

mod bundled;
mod curves;
mod dataset;
mod eval;
mod filter;
mod interrupt;
mod picture;
mod predict;
mod profile;
mod run_files;
mod run_state;
mod schedule;
mod source;
mod summary;
mod train;
mod visualize;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gconv",
    version,
    about = "Convolutional networks on the GPU (wgpu: Vulkan, Metal, DX12)"
)]
struct Cli {
    /// Adapter to use: an index from `gconv devices` or part of its name (default: the first
    /// GPU, else a CPU adapter such as lavapipe). Also read from GCONV_ADAPTER.
    #[arg(long, global = true, env = gconv::ADAPTER_ENV)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the GPU adapters wgpu finds, in the order gconv prefers them.
    ///
    /// Example: gconv devices
    Devices {
        /// Print nothing when an adapter exists; otherwise say why and exit with status 1.
        #[arg(long)]
        check: bool,
    },
    /// Train a model (built-in, --layers, --model-file or --onnx) on a dataset: the bundled
    /// 10,000 digits, or --data DIR holding MNIST-format files, CIFAR-10/100 batches or image
    /// folders. With --save it checkpoints every epoch; a loss or gradient that is not finite
    /// stops the run; Ctrl-C saves and prints how to resume.
    ///
    /// Examples: gconv train --model simplecnn --epochs 10 --save simplecnn.safetensors
    ///           gconv train --model simplecnn --epochs 10 --save simplecnn.safetensors --resume simplecnn.safetensors
    ///           gconv train --layers "conv(1,16,k=3,p=1) bn relu res(conv(16,16,k=3,p=1) bn) relu gap flatten linear(10)"
    ///           gconv train --model resnet18 --data cifar-10-batches-bin --augment crop=4,flip --schedule cosine --plot curves.png
    Train(train::TrainArgs),
    /// Evaluate a checkpoint on the test split: loss, accuracy, the confusion matrix with
    /// class names, per-class accuracy and the most confused pairs.
    ///
    /// Example: gconv eval --model simplecnn --checkpoint simplecnn.safetensors --confusion confusion.png
    Eval(eval::EvalArgs),
    /// Predict the class of each image (PNG or JPEG, converted to the model's input), or the
    /// logits of a batch of raw inputs (--tensors x.safetensors --logits y.safetensors).
    ///
    /// Example: gconv predict --model simplecnn --checkpoint simplecnn.safetensors digit.png
    Predict(predict::PredictArgs),
    /// A model's layers: output shapes, parameters, MACs, receptive field; memory totals.
    ///
    /// Examples: gconv summary --model vgg16 --input 3x224x224
    ///           gconv summary --layers "conv(3,64,k=3,p=1) relu maxpool(2) conv(64,128,k=3,s=2,p=1)" --input 3x32x32
    Summary(summary::SummaryArgs),
    /// Time every layer's forward (and with --train backward) kernels on the device: ms,
    /// GFLOP/s, the kernels each ran and its share of the step (a GPU's own clock where it has
    /// timestamps, else the host's), and the host's time to record a step's commands.
    ///
    /// Examples: gconv profile --model resnet18 --input 3x64x64 --batch 16 --train
    ///           gconv profile --layers "conv(32,32,k=3,p=1,g=32) conv(32,64,k=1)" --input 32x56x56
    Profile(profile::ProfileArgs),
    /// Apply a classic image kernel (Sobel, Gaussian, ...) by convolution on the GPU.
    ///
    /// Example: gconv filter --kernel sobel assets/images/camera.png edges.png
    Filter(filter::FilterArgs),
    /// Pictures of a trained model: first-layer kernels or feature maps.
    ///
    /// Example: gconv visualize filters --model simplecnn --checkpoint simplecnn.safetensors filters.png
    #[command(subcommand)]
    Visualize(visualize::VisualizeCmd),
}

/// Writes one line to stdout; a closed pipe ends the program with status 0, any other write
/// error with status 1.
pub fn say_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // A run a signal stopped has said where it stopped; it exits as the signal asks.
        if let Some(stop) = e.downcast_ref::<interrupt::Interrupted>() {
            std::process::exit(stop.status);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn context(adapter: Option<&str>) -> Result<gconv::Context> {
    Ok(gconv::Context::with_options(&gconv::ContextOptions {
        adapter: adapter.map(str::to_string),
        ..gconv::ContextOptions::from_env()
    })?)
}

fn run(cli: Cli) -> Result<()> {
    let adapter = cli.adapter.as_deref();
    match cli.command {
        Cmd::Devices { check } => devices(adapter, check),
        Cmd::Train(args) => train::train(&context(adapter)?, &args),
        Cmd::Profile(args) => profile::profile(&context(adapter)?, &args),
        Cmd::Eval(args) => eval::eval(&context(adapter)?, &args),
        Cmd::Predict(args) => predict::predict(&context(adapter)?, &args),
        Cmd::Summary(args) => summary::summary(&args),
        Cmd::Filter(args) => filter::filter(&context(adapter)?, &args),
        Cmd::Visualize(cmd) => visualize::visualize(&context(adapter)?, &cmd),
    }
}

fn devices(requested: Option<&str>, check: bool) -> Result<()> {
    let list = gconv::adapters();
    if list.is_empty() {
        return Err(gconv::Error::NoAdapter.into());
    }
    if check {
        return Ok(());
    }
    let chosen = match requested {
        None => Some(0),
        Some(r) => r.parse::<usize>().ok().filter(|&i| i < list.len()).or_else(|| {
            let lower = r.to_lowercase();
            list.iter().position(|a| a.info.name.to_lowercase().contains(&lower))
        }),
    };
    for (i, a) in list.iter().enumerate() {
        let mark = if Some(i) == chosen { "*" } else { " " };
        let info = &a.info;
        let l = &a.limits;
        say!("{mark} [{i}] {}", info.name);
        say!(
            "      backend {:?}, type {:?}, driver {} {}",
            info.backend,
            info.device_type,
            info.driver,
            info.driver_info
        );
        say!(
            "      max storage binding {} MiB, max buffer {} MiB, workgroup storage {} KiB",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroup_storage_size >> 10
        );
        say!(
            "      max workgroup size {}x{}x{} ({} invocations), {} workgroups per dimension",
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroups_per_dimension
        );
    }
    if let (Some(r), None) = (requested, chosen) {
        anyhow::bail!("no adapter matches {r:?}");
    }
    Ok(())
}
