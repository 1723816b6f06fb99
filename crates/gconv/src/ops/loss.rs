//! cross_entropy from logits and class indices (`loss.wgsl`).

use super::{check_u32, context_of};
use crate::kernel::{Dispatch, Shader, WG, WG_CONSTANT};
use crate::{DType, Error, Result, Tensor};

/// How per-sample losses are combined, as PyTorch's `reduction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// One loss per sample, shape (N,).
    None,
    /// The mean over the samples not ignored (PyTorch's default); a scalar.
    #[default]
    Mean,
    /// The sum; a scalar.
    Sum,
}

/// Options of [`cross_entropy`], with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyOptions {
    /// How to combine the per-sample losses.
    pub reduction: Reduction,
    /// Samples whose target is this value contribute nothing (PyTorch: -100).
    pub ignore_index: i32,
    /// The share of the target spread over every class (PyTorch's `label_smoothing`, 0 to 1;
    /// default 0): the target class weighs 1 - e + e / C, the others e / C.
    pub label_smoothing: f32,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions { reduction: Reduction::Mean, ignore_index: -100, label_smoothing: 0.0 }
    }
}

impl CrossEntropyOptions {
    /// Checks `label_smoothing` as PyTorch does: a number from 0 to 1.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the value.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return Err(Error::invalid(
                "cross_entropy",
                format!("label_smoothing must be between 0 and 1, got {}", self.label_smoothing),
            ));
        }
        Ok(())
    }
}

/// Cross-entropy between logits (N, C) and class indices (N,) (i32), as
/// `torch.nn.functional.cross_entropy` with class-index targets: the mean (by default) of
/// `logsumexp(x_i) - x_i[target_i]`. A target outside 0..C (other than `ignore_index`) yields
/// NaN, since the GPU cannot raise; check targets on the host where they come from users.
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes; [`Error::DType`] for f32 targets.
pub fn cross_entropy(logits: &Tensor, target: &Tensor, o: &CrossEntropyOptions) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    o.validate()?;
    let (ctx, n, c) = check(OP, logits, target)?;
    let losses = Tensor::output(&ctx, &[n], DType::F32, OP)?;
    let params = params(n, c, o);
    let out = match o.reduction {
        Reduction::None => None,
        _ => Some(Tensor::output(&ctx, &[], DType::F32, OP)?),
    };
    ctx.run(OP, |enc| {
        let bytes = bytemuck::cast_slice(&params);
        if n > 0 {
            let k = row_kernels(&ctx, OP, n, c)?;
            let buffers = [(1, target.buffer()), (2, losses.buffer()), (3, logits.buffer())];
            let d = Dispatch::new(Shader::Loss, k.rows, bytes, &buffers, k.grid);
            ctx.record(enc, &d.constants(k.constants))?;
        }
        if let Some(out) = &out {
            ctx.record(
                enc,
                &Dispatch::new(
                    Shader::Loss,
                    "cross_entropy_reduce",
                    bytes,
                    &[(1, target.buffer()), (2, losses.buffer()), (4, out.buffer())],
                    [1, 1, 1],
                ),
            )?;
        }
        Ok(())
    })?;
    Ok(out.unwrap_or(losses))
}

/// Checks logits (N, C) against targets (N,) of i32 and returns the context, N and C.
fn check(
    op: &'static str,
    logits: &Tensor,
    target: &Tensor,
) -> Result<(crate::Context, usize, usize)> {
    let ctx = context_of(op, &[logits])?;
    if !target.context().same(&ctx) {
        return Err(Error::ContextMismatch { op });
    }
    target.expect_dtype(op, DType::I32)?;
    if logits.rank() != 2 || target.shape() != [logits.shape()[0]] || logits.shape()[1] == 0 {
        return Err(Error::invalid(
            op,
            format!(
                "expected logits (N, C) and targets (N,), got {:?} and {:?}",
                logits.shape(),
                target.shape()
            ),
        ));
    }
    check_u32(op, "logits", logits.numel())?;
    Ok((ctx, logits.shape()[0], logits.shape()[1]))
}

/// Rows of at least this many classes run on the `_wide` kernels (a workgroup of `ROW_WG`
/// lanes per row): one invocation's walk along a long row would keep a GPU waiting on loads.
const WIDE_ROWS: usize = 128;
/// Lanes per row of the `_wide` kernels (loss.wgsl's `ROW_WG`).
const ROW_WG: u32 = 64;

/// The per-row entry points for `c` classes: (rows, backward, metrics), their grid over `n`
/// rows and their override constants. The one place the choice is made.
struct RowKernels {
    rows: &'static str,
    backward: &'static str,
    metrics: &'static str,
    grid: [u32; 3],
    constants: &'static [(&'static str, f64)],
}

fn row_kernels(ctx: &crate::Context, op: &'static str, n: usize, c: usize) -> Result<RowKernels> {
    Ok(if c >= WIDE_ROWS {
        RowKernels {
            rows: "cross_entropy_rows_wide",
            backward: "cross_entropy_backward_wide",
            metrics: "cross_entropy_metrics_wide",
            grid: ctx.grid_1d(op, n as u64 * u64::from(ROW_WG), ROW_WG)?,
            constants: &[],
        }
    } else {
        RowKernels {
            rows: "cross_entropy_rows",
            backward: "cross_entropy_backward",
            metrics: "cross_entropy_metrics",
            grid: ctx.grid_1d(op, n as u64, WG)?,
            constants: WG_CONSTANT,
        }
    })
}

fn params(n: usize, c: usize, o: &CrossEntropyOptions) -> [u32; 8] {
    let reduction = match o.reduction {
        Reduction::None => 0u32,
        Reduction::Mean => 1,
        Reduction::Sum => 2,
    };
    [n as u32, c as u32, o.ignore_index as u32, reduction, o.label_smoothing.to_bits(), 0, 0, 0]
}

/// Gradient of [`cross_entropy`] with respect to the logits: grad_output * (softmax(x_i) -
/// onehot(t_i)), divided by the number of samples not ignored for the mean, 0 for ignored
/// samples. `grad_output` is a scalar for "mean" and "sum", (N,) for "none".
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes.
pub fn cross_entropy_backward(
    grad_output: &Tensor,
    logits: &Tensor,
    target: &Tensor,
    o: &CrossEntropyOptions,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy_backward";
    o.validate()?;
    let (ctx, n, c) = check(OP, logits, target)?;
    context_of(OP, &[logits, grad_output])?;
    let expected: &[usize] = if o.reduction == Reduction::None { &[n] } else { &[] };
    if grad_output.numel() != expected.iter().product::<usize>() {
        return Err(Error::invalid(
            OP,
            format!("grad_output must have shape {expected:?}, got {:?}", grad_output.shape()),
        ));
    }
    let grad_logits = Tensor::output(&ctx, logits.shape(), DType::F32, OP)?;
    if n == 0 {
        return Ok(grad_logits);
    }
    let count = Tensor::output(&ctx, &[1], DType::F32, OP)?;
    let params = params(n, c, o);
    ctx.run(OP, |enc| {
        let bytes = bytemuck::cast_slice(&params);
        ctx.record(
            enc,
            &Dispatch::new(
                Shader::Loss,
                "cross_entropy_count",
                bytes,
                &[(1, target.buffer()), (4, count.buffer())],
                [1, 1, 1],
            ),
        )?;
        let k = row_kernels(&ctx, OP, n, c)?;
        let buffers = [
            (1, target.buffer()),
            (3, logits.buffer()),
            (4, count.buffer()),
            (5, grad_output.buffer()),
            (6, grad_logits.buffer()),
        ];
        let d = Dispatch::new(Shader::Loss, k.backward, bytes, &buffers, k.grid);
        ctx.record(enc, &d.constants(k.constants))
    })?;
    Ok(grad_logits)
}

/// The loss of a training step, recorded into a plan: per-sample losses, the running metrics
/// (loss sum, correct predictions, samples), and the gradient of the mean loss with respect to
/// the logits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_training_loss(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    logits: &Tensor,
    target: &Tensor,
    losses: &Tensor,
    count: &Tensor,
    one: &Tensor,
    metrics: &Tensor,
    grad_logits: Option<&Tensor>,
    label_smoothing: f32,
) -> Result<()> {
    const OP: &str = "cross_entropy";
    let (_, n, c) = check(OP, logits, target)?;
    let o = CrossEntropyOptions { label_smoothing, ..CrossEntropyOptions::default() };
    o.validate()?;
    let params = params(n, c, &o);
    let bytes = bytemuck::cast_slice(&params);
    let k = row_kernels(ctx, OP, n, c)?;
    let record = |rec: &mut crate::kernel::Recorder<'_>,
                  entry,
                  constants: &[(&'static str, f64)],
                  buffers: &[(u32, &wgpu::Buffer)],
                  workgroups| {
        ctx.record(
            rec,
            &Dispatch::new(Shader::Loss, entry, bytes, buffers, workgroups).constants(constants),
        )
    };
    record(
        rec,
        k.rows,
        k.constants,
        &[(1, target.buffer()), (2, losses.buffer()), (3, logits.buffer())],
        k.grid,
    )?;
    record(
        rec,
        k.metrics,
        &[],
        &[(1, target.buffer()), (2, losses.buffer()), (3, logits.buffer()), (7, metrics.buffer())],
        [1, 1, 1],
    )?;
    if let Some(grad) = grad_logits {
        record(
            rec,
            "cross_entropy_count",
            &[],
            &[(1, target.buffer()), (4, count.buffer())],
            [1, 1, 1],
        )?;
        record(
            rec,
            k.backward,
            k.constants,
            &[
                (1, target.buffer()),
                (3, logits.buffer()),
                (4, count.buffer()),
                (5, one.buffer()),
                (6, grad.buffer()),
            ],
            k.grid,
        )?;
    }
    Ok(())
}
