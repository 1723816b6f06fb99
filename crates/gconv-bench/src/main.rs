//! `gconv-bench`: the numbers behind gconv's performance claims, for the adapter it runs on.
//!
//! - GEMM at 256..2048 square (and 4096 on GPUs), on both GEMM layouts, beside the CPU's own SGEMM (matrixmultiply, all cores) in the
//!   same run, and their ratio;
//! - a list of convolution layers, forward and forward+backward, on the strategy gconv picks
//!   and on the direct kernels;
//! - max_pool2d forward+backward;
//! - training and inference images per second for simplecnn and lenet5;
//! - one VGG16 training step at 224x224, batch 2: seconds and device memory;
//! - one ResNet-18 and one MobileNetV2 training step at 3x64x64, batch 16 (branching graphs);
//! - resnet18 and mobilenet_v2 inference at batch 1 and 16 on 3x224x224, and resnet18 imported
//!   from torchvision's ONNX export, images/s and device memory (`models.rs`), beside PyTorch
//!   and ONNX Runtime on the CPU in the same run when Python has them (`peers.rs`);
//! - the cost of a dispatch and of a submission with its wait, and lenet5's step by layer
//!   (`overhead.rs`).
//!
//! Every figure is a median over repeated runs after a warm-up, with the GPU synchronised
//! before each clock read; on GPUs a GEMM's or layer's run queues several passes (about 10 ms)
//! between two clock reads, so that a submission's round trip does not hide the kernels.
//! `--quick` runs a small subset once each (CI checks that it runs); `--json FILE` writes the
//! report. `cargo xtask bench` builds and runs this in release mode.

mod models;
mod overhead;
mod peers;

use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use gconv::nn::{Model, Session, SessionInput, parse_layers};
use gconv::ops::{self, ConvOptions, ConvTransposeOptions, MaxPoolOptions};
use gconv::{Context, ContextOptions, ConvStrategy, GemmLayout, Tensor};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "gconv's benchmarks (see `cargo xtask bench`)")]
struct Args {
    /// A small subset, one run each: checks that every benchmark runs.
    #[arg(long)]
    quick: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
    /// Adapter index or part of its name (as `gconv devices` lists them).
    #[arg(long, env = gconv::ADAPTER_ENV)]
    adapter: Option<String>,
    /// Run only these sections (all of them when not given).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Run only the convolution layers whose name contains this text (e.g. `depthwise`).
    #[arg(long, value_name = "TEXT")]
    layer: Option<String>,
}

/// The bench's sections, for `--only`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Gemm,
    Conv,
    Pool,
    Train,
    Vgg16,
    Branching,
    Models,
    Overhead,
}

/// How many times to run each measurement.
#[derive(Clone, Copy)]
pub(crate) struct Repeat {
    pub warmup: usize,
    pub runs: usize,
    /// Stop adding runs past this many seconds (slow cases: the direct kernels).
    pub budget: f64,
}

/// Median seconds of `f`, which must leave the GPU idle (synchronise) before returning.
pub(crate) fn median(repeat: Repeat, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let warm = Instant::now();
    for _ in 0..repeat.warmup {
        f()?;
        // One warm-up is enough for the slow cases (the direct kernels on big layers).
        if warm.elapsed().as_secs_f64() > repeat.budget / 4.0 {
            break;
        }
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < repeat.runs.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
        if start.elapsed().as_secs_f64() > repeat.budget && !times.is_empty() {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Median seconds of one pass of `pass`, which records work without waiting for it. On a GPU
/// a small layer's pass is shorter than a submission's round trip, so each timed run queues
/// enough passes to cover about 10 ms before it waits (as CUDA benchmarks time many launches
/// between two events); on a CPU adapter each run is one pass.
fn median_per_pass(
    ctx: &Context,
    repeat: Repeat,
    mut pass: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let passes = if ctx.is_cpu_adapter() {
        1
    } else {
        pass()?;
        ctx.synchronize()?;
        let t = Instant::now();
        pass()?;
        ctx.synchronize()?;
        ((0.01 / t.elapsed().as_secs_f64()).ceil() as usize).clamp(1, 200)
    };
    let t = median(repeat, || {
        for _ in 0..passes {
            pass()?;
        }
        Ok(ctx.synchronize()?)
    })?;
    Ok(t / passes as f64)
}

fn random(ctx: &Context, rng: &mut SmallRng, shape: &[usize]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Ok(Tensor::from_slice(ctx, &data, shape)?)
}

fn gflops(flops: f64, seconds: f64) -> f64 {
    flops / seconds / 1e9
}

fn main() -> Result<()> {
    let args = Args::parse();
    let options = ContextOptions { adapter: args.adapter.clone(), ..ContextOptions::from_env() };
    let ctx = Context::with_options(&options).context("no GPU adapter")?;
    let direct = Context::with_options(&options).context("no GPU adapter")?;
    direct.set_conv_strategy(ConvStrategy::Direct);
    let adapter = ctx.adapter_name();
    println!("gconv-bench on {adapter}{}", if args.quick { " (quick)" } else { "" });
    // A CPU adapter's driver threads, one CPU each (gconv's cpu_threads.rs; GCONV_PIN_THREADS=0
    // leaves them to the scheduler).
    let pinned = ctx.pinned_threads().len();
    if ctx.is_cpu_adapter() {
        println!("driver threads pinned to one CPU each: {pinned}");
    }
    let repeat = if args.quick {
        Repeat { warmup: 1, runs: 1, budget: 0.0 }
    } else {
        Repeat { warmup: 2, runs: 7, budget: 20.0 }
    };
    let mut rng = SmallRng::seed_from_u64(7);
    let on = |s: Section| args.only.is_empty() || args.only.contains(&s);
    let mut gemm = Value::Null;
    if on(Section::Gemm) {
        gemm = bench_gemm(&ctx, &mut rng, repeat, args.quick)?;
    }
    let mut conv = Value::Null;
    if on(Section::Conv) {
        conv = bench_conv(&ctx, &direct, &mut rng, repeat, args.quick, args.layer.as_deref())?;
    }
    let mut pool = Value::Null;
    if on(Section::Pool) {
        pool = bench_pool(&ctx, &mut rng, repeat)?;
    }
    let mut train = Value::Null;
    if on(Section::Train) {
        train = models::bench_train(&ctx, &mut rng, args.quick)?;
    }
    drop(direct);
    let mut vgg = Value::Null;
    if on(Section::Vgg16) {
        vgg = models::bench_vgg16(&options, &mut rng, args.quick)?;
    }
    let mut branching = Value::Null;
    if on(Section::Branching) {
        branching = models::bench_branching(&options, &mut rng, args.quick)?;
    }
    let mut rows = Vec::new();
    if on(Section::Models) {
        rows = models::bench_inference(&options, &mut rng, args.quick)?;
    }
    rows.extend(models::train_rows(&branching));
    if args.quick && !rows.is_empty() {
        println!("\nPyTorch and ONNX Runtime not run with --quick");
    } else if !rows.is_empty() {
        match peers::run(args.quick) {
            Ok(p) => {
                peers::fill(&mut rows, &p);
                models::print_ratios(&rows);
            }
            Err(why) => println!(
                "
PyTorch and ONNX Runtime not run: {why}"
            ),
        }
    }
    let (mut dispatch_us, mut submit_wait_us, mut lenet5_profile) =
        (Value::Null, Value::Null, Value::Null);
    if on(Section::Overhead) {
        let ctx = Context::with_options(&options)?;
        let (d, s) = overhead::costs(&ctx, args.quick)?;
        (dispatch_us, submit_wait_us) = (json!(d), json!(s));
        lenet5_profile = overhead::lenet5_profile(&ctx, args.quick)?;
    }
    let report = json!({
        "adapter": adapter,
        "pinned_threads": pinned,
        "quick": args.quick,
        "gemm": gemm,
        "conv": conv,
        "max_pool2d": pool,
        "train": train,
        "vgg16_step": vgg,
        "branching_steps": branching,
        "models": rows,
        "dispatch_us": dispatch_us,
        "submit_wait_us": submit_wait_us,
        "lenet5_profile": lenet5_profile,
    });
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        println!("\nreport written to {}", path.display());
    }
    Ok(())
}

/// The CPU's SGEMM through matrixmultiply (threaded over all cores): C = A B, n x n.
fn cpu_sgemm(n: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    if a.len() != n * n || b.len() != n * n || c.len() != n * n {
        bail!("cpu_sgemm: operands are not {n} x {n}");
    }
    let s = n as isize;
    // SAFETY: the three slices hold n*n values each (checked above), row-major with row
    // stride n and column stride 1, so every element matrixmultiply touches is in bounds; `c`
    // is borrowed mutably and aliases neither input.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(
            n,
            n,
            n,
            1.0,
            a.as_ptr(),
            s,
            1,
            b.as_ptr(),
            s,
            1,
            0.0,
            c.as_mut_ptr(),
            s,
            1,
        );
    }
    Ok(())
}

fn bench_gemm(ctx: &Context, rng: &mut SmallRng, repeat: Repeat, quick: bool) -> Result<Value> {
    // Each figure on the layout gconv picks for this adapter, and (up to `other_max`) on the
    // other one, so that every run shows why the choice is what it is.
    let layout = ctx.gemm_layout();
    let other =
        if layout == GemmLayout::Registers { GemmLayout::Workgroup } else { GemmLayout::Registers };
    let gpu = !ctx.is_cpu_adapter();
    let sizes: &[usize] = match (quick, gpu) {
        (true, _) => &[256],
        (false, false) => &[256, 512, 1024, 2048],
        (false, true) => &[256, 512, 1024, 2048, 4096],
    };
    // The layout gconv does not pick is slow where it is not picked: keep its runs short.
    let other_max = if gpu { 4096 } else { 1024 };
    println!("\nGEMM (square, fp32): GFLOP/s, gconv on the {layout:?} layout and on {other:?}");
    println!(
        "{:>6} {:>12} {:>12} {:>12} {:>8}",
        "n",
        "gconv",
        format!("{other:?}"),
        "cpu sgemm",
        "ratio"
    );
    let mut rows = Vec::new();
    for &n in sizes {
        let host_a: Vec<f32> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let host_b: Vec<f32> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a = Tensor::from_slice(ctx, &host_a, &[n, n])?;
        let b = Tensor::from_slice(ctx, &host_b, &[n, n])?;
        let flops = 2.0 * (n as f64).powi(3);
        let time_on = |l: GemmLayout| {
            ctx.set_gemm_layout(l);
            let t = median_per_pass(ctx, repeat, || {
                ops::matmul(&a, &b)?;
                Ok(())
            });
            ctx.set_gemm_layout(GemmLayout::Auto);
            t
        };
        let t_gpu = time_on(layout)?;
        let t_other = if n <= other_max { Some(time_on(other)?) } else { None };
        let mut c = vec![0.0f32; n * n];
        let t_cpu = median(repeat, || cpu_sgemm(n, &host_a, &host_b, &mut c))?;
        let (g, cpu) = (gflops(flops, t_gpu), gflops(flops, t_cpu));
        let g_other = t_other.map(|t| gflops(flops, t));
        let other_text = g_other.map_or("-".to_string(), |g| format!("{g:.2}"));
        println!("{n:>6} {g:>12.2} {other_text:>12} {cpu:>12.2} {:>7.1}%", 100.0 * g / cpu);
        rows.push(json!({"n": n, "gconv_gflops": g, "cpu_gflops": cpu, "ratio": g / cpu,
                          "gconv_ms": t_gpu * 1e3, "cpu_ms": t_cpu * 1e3,
                          "layout": format!("{layout:?}"),
                          "other_layout": format!("{other:?}"), "other_layout_gflops": g_other}));
    }
    Ok(Value::Array(rows))
}

/// One convolution layer of the benchmark list.
struct Layer {
    name: &'static str,
    batch: usize,
    c_in: usize,
    c_out: usize,
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
    transposed: bool,
}

const LAYERS: &[Layer] = &[
    Layer::plain("conv 1->32 28x28 k3 p1 b64", 64, 1, 32, 28),
    Layer::plain("conv 32->64 14x14 k3 p1 b64", 64, 32, 64, 14),
    Layer::plain("conv 64->64 7x7 k3 p1 b64", 64, 64, 64, 7),
    Layer::plain("conv 64->64 56x56 k3 p1 b8", 8, 64, 64, 56),
    Layer { groups: 64, ..Layer::plain("depthwise 64 56x56 k3 p1 b8", 8, 64, 64, 56) },
    Layer {
        dilation: 2,
        padding: 2,
        ..Layer::plain("dilated 64->64 28x28 k3 d2 p2 b8", 8, 64, 64, 28)
    },
    Layer { stride: 2, ..Layer::plain("strided 64->128 56x56 k3 s2 p1 b8", 8, 64, 128, 56) },
    Layer {
        kernel: 4,
        stride: 2,
        transposed: true,
        ..Layer::plain("transposed 64->32 16x16 k4 s2 p1 b64", 64, 64, 32, 16)
    },
];

impl Layer {
    const fn plain(
        name: &'static str,
        batch: usize,
        c_in: usize,
        c_out: usize,
        size: usize,
    ) -> Self {
        Layer {
            name,
            batch,
            c_in,
            c_out,
            size,
            kernel: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
            groups: 1,
            transposed: false,
        }
    }

    fn weight_shape(&self) -> [usize; 4] {
        let k = self.kernel;
        if self.transposed {
            [self.c_in, self.c_out / self.groups, k, k]
        } else {
            [self.c_out, self.c_in / self.groups, k, k]
        }
    }

    fn conv_options(&self) -> ConvOptions {
        ConvOptions::default()
            .stride(self.stride)
            .padding(self.padding)
            .dilation(self.dilation)
            .groups(self.groups)
    }

    fn transpose_options(&self) -> ConvTransposeOptions {
        ConvTransposeOptions::default()
            .stride(self.stride)
            .padding(self.padding)
            .dilation(self.dilation)
            .groups(self.groups)
    }

    /// Forward multiply-adds: every output (or, transposed, every input) element times the
    /// taps of one group's channels.
    fn macs(&self, out: &[usize]) -> f64 {
        let taps = (self.kernel * self.kernel) as f64;
        if self.transposed {
            let inputs = (self.batch * self.c_in * self.size * self.size) as f64;
            inputs * (self.c_out / self.groups) as f64 * taps
        } else {
            let outputs: usize = out.iter().product();
            outputs as f64 * (self.c_in / self.groups) as f64 * taps
        }
    }

    /// The layer in the layer-spec language (`gconv summary --layers`).
    fn spec(&self) -> String {
        let kind = if self.transposed { "convt" } else { "conv" };
        format!(
            "{kind}({},{},k={},s={},p={},d={},g={})",
            self.c_in,
            self.c_out,
            self.kernel,
            self.stride,
            self.padding,
            self.dilation,
            self.groups
        )
    }

    /// Seconds of a forward pass as a model runs it: a compiled plan (a `Session`, whose
    /// textures, buffers and bind groups are made once) recorded on a device buffer. The
    /// eager operators of [`Layer::time`] also allocate their outputs and texture copies and
    /// make bind groups on every call.
    fn time_planned(&self, ctx: &Context, rng: &mut SmallRng, repeat: Repeat) -> Result<f64> {
        let input = [self.c_in, self.size, self.size];
        let graph = parse_layers(&self.spec(), &input)?;
        let mut session = Session::new(Model::from_graph(ctx, "layer", graph, 1)?, self.batch)?;
        let x = random(ctx, rng, &[self.batch, self.c_in, self.size, self.size])?;
        let input = SessionInput::Buffer { buffer: x.buffer(), offset: 0 };
        let mut pass = || {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            session.record(&mut encoder, input)?;
            ctx.queue().submit([encoder.finish()]);
            Ok(())
        };
        if !ctx.device_clock() {
            return median_per_pass(ctx, repeat, pass);
        }
        // On the device's clock: the kernels' time, as in a model's submission, without the
        // host's cost of a submission per pass (which bounds small layers on a GPU).
        pass()?;
        let runs = repeat.runs.max(5);
        let mut times = ctx
            .time_on_device(runs, |_, encoder| session.record(encoder, input))?
            .unwrap_or_default();
        times.sort_by(f64::total_cmp);
        Ok(times[runs / 2])
    }

    /// (forward seconds, forward+backward seconds, output shape) on `ctx`.
    fn time(
        &self,
        ctx: &Context,
        rng: &mut SmallRng,
        repeat: Repeat,
    ) -> Result<(f64, f64, Vec<usize>)> {
        let x = random(ctx, rng, &[self.batch, self.c_in, self.size, self.size])?;
        let w = random(ctx, rng, &self.weight_shape())?;
        let b = random(ctx, rng, &[self.c_out])?;
        let forward = || -> Result<Tensor> {
            Ok(if self.transposed {
                ops::conv_transpose2d(&x, &w, Some(&b), &self.transpose_options())?
            } else {
                ops::conv2d(&x, &w, Some(&b), &self.conv_options())?
            })
        };
        let y = forward()?;
        let gy = random(ctx, rng, y.shape())?;
        let t_fwd = median_per_pass(ctx, repeat, || {
            forward()?;
            Ok(())
        })?;
        let t_both = median_per_pass(ctx, repeat, || {
            forward()?;
            if self.transposed {
                ops::conv_transpose2d_backward(&gy, &x, &w, true, &self.transpose_options())?;
            } else {
                ops::conv2d_backward(&gy, &x, &w, true, &self.conv_options())?;
            }
            Ok(())
        })?;
        Ok((t_fwd, t_both, y.shape().to_vec()))
    }
}

fn bench_conv(
    ctx: &Context,
    direct: &Context,
    rng: &mut SmallRng,
    repeat: Repeat,
    quick: bool,
    filter: Option<&str>,
) -> Result<Value> {
    println!("\nConvolution layers: GFLOP/s (2 x MACs / time; forward+backward counts 3 x MACs);");
    println!(
        "planned: the forward pass in a compiled plan, as models run it, on the device's clock \
         where it has one (the others: eager, on the host's)"
    );
    println!(
        "{:<38} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "layer", "planned", "fwd", "direct", "fwd+bwd", "direct", "speedup"
    );
    let layers = if quick { &LAYERS[..1] } else { LAYERS };
    let mut rows = Vec::new();
    for layer in layers.iter().filter(|l| filter.is_none_or(|f| l.name.contains(f))) {
        let (fwd, both, out) = layer.time(ctx, rng, repeat)?;
        let planned = layer.time_planned(ctx, rng, repeat)?;
        let (dfwd, dboth, _) = layer.time(direct, rng, repeat)?;
        let macs = layer.macs(&out);
        let g = |t: f64, passes: f64| gflops(2.0 * passes * macs, t);
        println!(
            "{:<38} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7.1}x",
            layer.name,
            g(planned, 1.0),
            g(fwd, 1.0),
            g(dfwd, 1.0),
            g(both, 3.0),
            g(dboth, 3.0),
            dboth / both
        );
        for (direction, t, dt, passes) in
            [("forward", fwd, dfwd, 1.0), ("forward+backward", both, dboth, 3.0)]
        {
            let planned_gflops = (passes == 1.0).then(|| g(planned, 1.0));
            rows.push(json!({
                "layer": layer.name,
                "direction": direction,
                "planned_gflops": planned_gflops,
                "gflops": g(t, passes),
                "direct_gflops": g(dt, passes),
                "ms": t * 1e3,
                "direct_ms": dt * 1e3,
                "speedup": dt / t,
            }));
        }
    }
    Ok(Value::Array(rows))
}

fn bench_pool(ctx: &Context, rng: &mut SmallRng, repeat: Repeat) -> Result<Value> {
    let shape = [64, 32, 28, 28];
    let x = random(ctx, rng, &shape)?;
    let o = MaxPoolOptions::new(2);
    let (y, _) = ops::max_pool2d_with_indices(&x, &o)?;
    let gy = random(ctx, rng, y.shape())?;
    let t = median(repeat, || {
        let (_, indices) = ops::max_pool2d_with_indices(&x, &o)?;
        ops::max_pool2d_backward(&gy, &x, &indices, &o)?;
        Ok(ctx.synchronize()?)
    })?;
    // Bytes moved: x read, y and indices written, grad_y and indices read, grad_x written.
    let bytes = 4.0 * (2.0 * x.numel() as f64 + 4.0 * y.numel() as f64);
    println!(
        "\nmax_pool2d 2x2 on {shape:?}, forward+backward: {:.2} ms ({:.2} GB/s)",
        t * 1e3,
        bytes / t / 1e9
    );
    Ok(json!({"shape": shape, "ms": t * 1e3, "gbytes_per_sec": bytes / t / 1e9}))
}
