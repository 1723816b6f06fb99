//! relu, relu6, leaky_relu, sigmoid, hardtanh and products with a constant
//! (`elementwise.wgsl`), softmax and log_softmax (`softmax.wgsl`), forward and backward.

use super::slices::sample_chunk;
use super::{check_u32, context_of};
use crate::kernel::{Dispatch, Shader};
use crate::{DType, Error, Result, Tensor};

/// The element-wise activations: which entry points of `elementwise.wgsl` compute one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Clamp {
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    /// x where x > 0, else slope * x.
    LeakyRelu(f32),
    /// 1 / (1 + exp(-x)).
    Sigmoid,
    /// min(max(x, lo), hi).
    Hardtanh(f32, f32),
    /// factor * x.
    Scale(f32),
}

impl Clamp {
    fn op(self, backward: bool) -> &'static str {
        match (self, backward) {
            (Clamp::Relu, false) => "relu",
            (Clamp::Relu, true) => "relu_backward",
            (Clamp::Relu6, false) => "relu6",
            (Clamp::Relu6, true) => "relu6_backward",
            (Clamp::LeakyRelu(_), false) => "leaky_relu",
            (Clamp::LeakyRelu(_), true) => "leaky_relu_backward",
            (Clamp::Sigmoid, false) => "sigmoid",
            (Clamp::Sigmoid, true) => "sigmoid_backward",
            (Clamp::Hardtanh(..), false) => "hardtanh",
            (Clamp::Hardtanh(..), true) => "hardtanh_backward",
            (Clamp::Scale(_), false) => "scale",
            (Clamp::Scale(_), true) => "scale_backward",
        }
    }

    fn entry(self, backward: bool) -> &'static str {
        match (self, backward) {
            (Clamp::Relu, false) => "relu_forward",
            // ReLU6 is hardtanh(0, 6).
            (Clamp::Relu6, false) | (Clamp::Hardtanh(..), false) => "hardtanh_forward",
            (Clamp::Relu6, true) => "hardtanh_backward",
            (Clamp::LeakyRelu(_), false) => "leaky_relu_forward",
            (Clamp::Sigmoid, false) => "sigmoid_forward",
            (Clamp::Scale(_), false) => "scale_forward",
            _ => self.op(true),
        }
    }

    /// The entry point's `alpha` and `beta`.
    fn constants(self) -> [f32; 2] {
        match self {
            Clamp::LeakyRelu(slope) => [slope, 0.0],
            Clamp::Hardtanh(lo, hi) => [lo, hi],
            Clamp::Relu6 => [0.0, 6.0],
            Clamp::Scale(factor) => [factor, 0.0],
            _ => [0.0; 2],
        }
    }
}

/// A clamp fused into another kernel's epilogue (batch norm's, a convolution's, a GEMM's), as
/// the prelude's `activate4` reads it: `kind` 0 none, 1 ReLU, 2 clamp to [lo, hi].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Act {
    pub kind: u32,
    pub lo: f32,
    pub hi: f32,
}

impl Act {
    pub(crate) const NONE: Act = Act { kind: 0, lo: 0.0, hi: 0.0 };
    pub(crate) const RELU: Act = Act { kind: 1, lo: 0.0, hi: 0.0 };

    /// Whether an epilogue can compute `clamp` (ReLU, ReLU6, hardtanh).
    pub(crate) fn fusable(clamp: Clamp) -> bool {
        matches!(clamp, Clamp::Relu | Clamp::Relu6 | Clamp::Hardtanh(..))
    }

    /// `clamp` in an epilogue (none for `None`); an error for those no epilogue computes.
    pub(crate) fn of(op: &'static str, clamp: Option<Clamp>) -> Result<Act> {
        Ok(match clamp {
            None => Act::NONE,
            Some(Clamp::Relu) => Act::RELU,
            Some(Clamp::Relu6) => Act { kind: 2, lo: 0.0, hi: 6.0 },
            Some(Clamp::Hardtanh(lo, hi)) => Act { kind: 2, lo, hi },
            Some(other) => {
                return Err(Error::invalid(
                    op,
                    format!("{other:?} cannot be fused into an epilogue (an internal error)"),
                ));
            }
        })
    }
}

fn clamp(kind: Clamp, x: &Tensor) -> Result<Tensor> {
    let op = kind.op(false);
    let ctx = context_of(op, &[x])?;
    let y = Tensor::output(&ctx, x.shape(), DType::F32, op)?;
    if x.numel() > 0 {
        ctx.run(op, |rec| record_clamp(&ctx, rec, kind, x, &y))?;
    }
    Ok(y)
}

fn clamp_backward(kind: Clamp, grad_output: &Tensor, x: &Tensor) -> Result<Tensor> {
    let op = kind.op(true);
    let ctx = context_of(op, &[grad_output, x])?;
    same_shape(op, grad_output, x)?;
    let grad_x = Tensor::output(&ctx, x.shape(), DType::F32, op)?;
    if x.numel() > 0 {
        ctx.run(op, |rec| record_clamp_backward(&ctx, rec, kind, x, grad_output, &grad_x))?;
    }
    Ok(grad_x)
}

/// Rectified linear unit, max(x, 0), elementwise (NaN stays NaN).
///
/// # Errors
/// [`Error::DType`] for an integer tensor; [`Error::Gpu`] if the device fails.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    clamp(Clamp::Relu, x)
}

/// ReLU6, min(max(x, 0), 6), elementwise (NaN stays NaN), as `torch.nn.functional.relu6`.
///
/// # Errors
/// [`Error::DType`] for an integer tensor; [`Error::Gpu`] if the device fails.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    clamp(Clamp::Relu6, x)
}

/// A dimension index as PyTorch takes it: negative counts from the end.
pub(crate) fn resolve_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let r = rank.max(1) as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r {
        return Err(Error::invalid(
            op,
            format!("dim {dim} is out of range for a tensor of rank {rank} (expected -{r}..{r})"),
        ));
    }
    Ok(d as usize)
}

/// Runs a kernel of `softmax.wgsl` over `t` viewed as (outer, dim, inner) rows around `dim`,
/// writing a new tensor of `t`'s shape; `bind` gives the storage bindings for the output.
fn run_rows(
    op: &'static str,
    entry: &'static str,
    t: &Tensor,
    dim: isize,
    bind: impl Fn(&Tensor) -> Vec<(u32, wgpu::Buffer)>,
) -> Result<Tensor> {
    let ctx = t.context();
    let d = resolve_dim(op, dim, t.rank())?;
    check_u32(op, "elements", t.numel())?;
    let out = Tensor::output(ctx, t.shape(), DType::F32, op)?;
    if t.numel() == 0 {
        return Ok(out);
    }
    let owned = bind(&out);
    let buffers: Vec<(u32, &wgpu::Buffer)> = owned.iter().map(|(i, b)| (*i, b)).collect();
    ctx.run(op, |rec| record_rows(ctx, rec, (op, entry), t.shape(), d, &buffers))?;
    Ok(out)
}

/// Records a kernel of `softmax.wgsl` over tensors of `shape` viewed as (outer, dim, inner)
/// rows around dimension `d`.
fn record_rows(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    (op, entry): (&'static str, &'static str),
    shape: &[usize],
    d: usize,
    buffers: &[(u32, &wgpu::Buffer)],
) -> Result<()> {
    let (outer, len, inner) = if shape.is_empty() {
        (1, 1, 1)
    } else {
        (shape[..d].iter().product(), shape[d], shape[d + 1..].iter().product::<usize>())
    };
    let rows = check_u32(op, "rows", outer * inner)?;
    let params = [outer as u32, len as u32, inner as u32, rows];
    ctx.record(
        rec,
        &Dispatch::linear(
            ctx,
            op,
            (Shader::Softmax, entry),
            bytemuck::cast_slice(&params),
            buffers,
            u64::from(rows),
        )?,
    )
}

/// Records y = softmax(x) along dimension `d` (a softmax layer).
pub(crate) fn record_softmax(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    x: &Tensor,
    y: &Tensor,
    d: usize,
) -> Result<()> {
    let buffers = [(1, x.buffer()), (2, y.buffer())];
    record_rows(ctx, rec, ("softmax", "softmax_forward"), x.shape(), d, &buffers)
}

/// Records grad_x from the softmax layer's output `y` and grad_y.
pub(crate) fn record_softmax_backward(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    y: &Tensor,
    grad_y: &Tensor,
    grad_x: &Tensor,
    d: usize,
) -> Result<()> {
    let buffers = [(1, y.buffer()), (3, grad_y.buffer()), (4, grad_x.buffer())];
    record_rows(ctx, rec, ("softmax_backward", "softmax_backward"), y.shape(), d, &buffers)
}

fn softmax_like(op: &'static str, entry: &'static str, x: &Tensor, dim: isize) -> Result<Tensor> {
    context_of(op, &[x])?;
    run_rows(op, entry, x, dim, |y| vec![(1, x.buffer().clone()), (2, y.buffer().clone())])
}

/// Softmax along `dim` (negative counts from the end).
///
/// # Errors
/// [`Error::InvalidArgument`] for a dimension out of range.
pub fn softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    softmax_like("softmax", "softmax_forward", x, dim)
}

/// Log-softmax along `dim`, computed as x - max - log(sum(exp(x - max))) for stability.
///
/// # Errors
/// [`Error::InvalidArgument`] for a dimension out of range.
pub fn log_softmax(x: &Tensor, dim: isize) -> Result<Tensor> {
    softmax_like("log_softmax", "log_softmax_forward", x, dim)
}

fn same_shape(op: &'static str, grad: &Tensor, t: &Tensor) -> Result<()> {
    if grad.shape() != t.shape() {
        return Err(Error::invalid(
            op,
            format!("grad_output must have shape {:?}, got {:?}", t.shape(), grad.shape()),
        ));
    }
    Ok(())
}

/// Leaky ReLU, x where x > 0 else `negative_slope` * x, elementwise
/// (`torch.nn.functional.leaky_relu`).
///
/// # Errors
/// [`Error::InvalidArgument`] for a slope that is not finite.
pub fn leaky_relu(x: &Tensor, negative_slope: f32) -> Result<Tensor> {
    check_slope(negative_slope)?;
    clamp(Clamp::LeakyRelu(negative_slope), x)
}

/// The logistic sigmoid, 1 / (1 + exp(-x)), elementwise.
///
/// # Errors
/// [`Error::DType`] for an integer tensor; [`Error::Gpu`] if the device fails.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    clamp(Clamp::Sigmoid, x)
}

/// `torch.nn.functional.hardtanh(x, min_val, max_val)`: min(max(x, min_val), max_val),
/// elementwise (NaN stays NaN); ONNX's Clip. Either bound may be infinite.
///
/// # Errors
/// [`Error::InvalidArgument`] when a bound is NaN or `min_val > max_val`.
pub fn hardtanh(x: &Tensor, min_val: f32, max_val: f32) -> Result<Tensor> {
    check_bounds(min_val, max_val)?;
    clamp(Clamp::Hardtanh(min_val, max_val), x)
}

/// Gradient of [`hardtanh`]: grad_output where min_val < x < max_val, else 0.
///
/// # Errors
/// [`Error::InvalidArgument`] when the shapes differ or the bounds are invalid.
pub fn hardtanh_backward(
    grad_output: &Tensor,
    x: &Tensor,
    min_val: f32,
    max_val: f32,
) -> Result<Tensor> {
    check_bounds(min_val, max_val)?;
    clamp_backward(Clamp::Hardtanh(min_val, max_val), grad_output, x)
}

/// `x * factor` for a scalar `factor` (`torch.mul(x, factor)`); its gradient is
/// `mul_scalar(grad_output, factor)`.
///
/// # Errors
/// [`Error::InvalidArgument`] for a factor that is not finite.
pub fn mul_scalar(x: &Tensor, factor: f32) -> Result<Tensor> {
    if !factor.is_finite() {
        return Err(Error::invalid("mul_scalar", format!("factor must be finite, got {factor}")));
    }
    clamp(Clamp::Scale(factor), x)
}

pub(crate) fn check_bounds(min_val: f32, max_val: f32) -> Result<()> {
    if min_val.is_nan() || max_val.is_nan() || min_val > max_val {
        return Err(Error::invalid(
            "hardtanh",
            format!("bounds must be ordered numbers, got min_val {min_val}, max_val {max_val}"),
        ));
    }
    Ok(())
}

fn check_slope(negative_slope: f32) -> Result<()> {
    if negative_slope.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(
            "leaky_relu",
            format!("negative_slope must be finite, got {negative_slope}"),
        ))
    }
}

/// Gradient of [`leaky_relu`]: grad_output where x > 0, else `negative_slope` * grad_output.
///
/// # Errors
/// [`Error::InvalidArgument`] when the shapes differ or the slope is not finite.
pub fn leaky_relu_backward(
    grad_output: &Tensor,
    x: &Tensor,
    negative_slope: f32,
) -> Result<Tensor> {
    check_slope(negative_slope)?;
    clamp_backward(Clamp::LeakyRelu(negative_slope), grad_output, x)
}

/// Gradient of [`sigmoid`] from its input: grad_output * s * (1 - s), s = sigmoid(x).
///
/// # Errors
/// [`Error::InvalidArgument`] when the shapes differ.
pub fn sigmoid_backward(grad_output: &Tensor, x: &Tensor) -> Result<Tensor> {
    clamp_backward(Clamp::Sigmoid, grad_output, x)
}

/// Gradient of [`relu`]: grad_output where x > 0, else 0.
///
/// # Errors
/// [`Error::InvalidArgument`] when the shapes differ.
pub fn relu_backward(grad_output: &Tensor, x: &Tensor) -> Result<Tensor> {
    clamp_backward(Clamp::Relu, grad_output, x)
}

/// Gradient of [`relu6`]: grad_output where 0 < x < 6, else 0 (PyTorch's
/// `hardtanh_backward`).
///
/// # Errors
/// [`Error::InvalidArgument`] when the shapes differ.
pub fn relu6_backward(grad_output: &Tensor, x: &Tensor) -> Result<Tensor> {
    clamp_backward(Clamp::Relu6, grad_output, x)
}

fn softmax_like_backward(
    op: &'static str,
    entry: &'static str,
    grad_y: &Tensor,
    y: &Tensor,
    dim: isize,
) -> Result<Tensor> {
    context_of(op, &[grad_y, y])?;
    same_shape(op, grad_y, y)?;
    run_rows(op, entry, y, dim, |gx| {
        vec![(1, y.buffer().clone()), (3, grad_y.buffer().clone()), (4, gx.buffer().clone())]
    })
}

/// Gradient of [`softmax`] from its output `y`: y * (grad_output - sum(grad_output * y)).
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes or a dimension out of range.
pub fn softmax_backward(grad_output: &Tensor, y: &Tensor, dim: isize) -> Result<Tensor> {
    softmax_like_backward("softmax_backward", "softmax_backward", grad_output, y, dim)
}

/// Gradient of [`log_softmax`] from its output `y`: grad_output - exp(y) * sum(grad_output).
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes or a dimension out of range.
pub fn log_softmax_backward(grad_output: &Tensor, y: &Tensor, dim: isize) -> Result<Tensor> {
    softmax_like_backward("log_softmax_backward", "log_softmax_backward", grad_output, y, dim)
}

/// Records an elementwise kernel of `elementwise.wgsl` over `total` elements of tensors of
/// that many elements each; tensors larger than a storage binding go in aligned blocks.
pub(crate) fn record_elementwise(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    entry: &'static str,
    total: usize,
    buffers: &[(u32, &wgpu::Buffer)],
) -> Result<()> {
    record_elementwise_with(ctx, rec, (entry, [0.0; 2]), total, buffers)
}

/// [`record_elementwise`] with the entry point's `alpha` and `beta`.
fn record_elementwise_with(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    (entry, [alpha, beta]): (&'static str, [f32; 2]),
    total: usize,
    buffers: &[(u32, &wgpu::Buffer)],
) -> Result<()> {
    // Blocks of elements, as `sample_chunk`'s samples of one element each.
    let block = sample_chunk(ctx, total, total.max(1), &[1]).ok_or_else(|| {
        Error::invalid(entry, "no block of elements fits a storage binding (an internal error)")
    })?;
    // The vec4 variant where every buffer holds whole quads up to `total` and blocks start on
    // one.
    let quads = vec4_entry(entry).filter(|_| {
        (block == total || block.is_multiple_of(4))
            && buffers.iter().all(|(_, b)| b.size() >= (total.div_ceil(4) * 16) as u64)
    });
    let (entry, width) = quads.map_or((entry, 1), |e| (e, 4));
    let bound: Vec<(u32, &wgpu::Buffer)> =
        buffers.iter().map(|&(b, buf)| (if width == 4 { b + 4 } else { b }, buf)).collect();
    for start in (0..total).step_by(block.max(1)) {
        let len = block.min(total - start);
        let count = check_u32(entry, "elements", len)?;
        let params = [count, alpha.to_bits(), beta.to_bits(), 0];
        let bytes = (len.div_ceil(width) * width * 4) as u64;
        let ranges: Vec<(u32, u64, u64)> = if len < total {
            bound.iter().map(|(b, _)| (*b, (start * 4) as u64, bytes)).collect()
        } else {
            Vec::new()
        };
        ctx.record(
            rec,
            &Dispatch::linear(
                ctx,
                entry,
                (Shader::Elementwise, entry),
                bytemuck::cast_slice(&params),
                &bound,
                u64::from(count).div_ceil(width as u64),
            )?
            .ranges(&ranges),
        )?;
    }
    Ok(())
}

/// The vec4 variant of an entry point of `elementwise.wgsl`, where it has one (its bindings
/// are the scalar ones plus 4).
fn vec4_entry(entry: &str) -> Option<&'static str> {
    Some(match entry {
        "relu_forward" => "relu_forward4",
        "relu_backward" => "relu_backward4",
        "add_inplace" => "add_inplace4",
        "add" => "add4",
        "add_clamp" => "add_clamp4",
        "hardtanh_forward" => "hardtanh_forward4",
        "hardtanh_backward" => "hardtanh_backward4",
        _ => return None,
    })
}

/// Records y = relu(x) or relu6(x) (`y` may be `x`).
pub(crate) fn record_clamp(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    kind: Clamp,
    x: &Tensor,
    y: &Tensor,
) -> Result<()> {
    let buffers = [(1, x.buffer()), (2, y.buffer())];
    record_elementwise_with(ctx, rec, (kind.entry(false), kind.constants()), x.numel(), &buffers)
}

/// Records grad_x = grad_y where the activation's slope is 1 (x > 0; for relu6, 0 < x < 6).
pub(crate) fn record_clamp_backward(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    kind: Clamp,
    x: &Tensor,
    grad_y: &Tensor,
    grad_x: &Tensor,
) -> Result<()> {
    let all = [(2, grad_x.buffer()), (3, grad_y.buffer()), (1, x.buffer())];
    // A scale's gradient does not read x.
    let buffers = if matches!(kind, Clamp::Scale(_)) { &all[..2] } else { &all[..] };
    record_elementwise_with(ctx, rec, (kind.entry(true), kind.constants()), x.numel(), buffers)
}

/// Records y = act(a + b), `act` a clamp an epilogue computes (ReLU, ReLU6, hardtanh):
/// a residual sum and the clamp behind it in one pass.
pub(crate) fn record_add_clamp(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    (a, b): (&Tensor, &Tensor),
    act: Act,
    y: &Tensor,
) -> Result<()> {
    // ReLU (kind 1) clamps to [0, inf]; the others carry their bounds.
    let bounds = if act.kind == 1 { [0.0, f32::INFINITY] } else { [act.lo, act.hi] };
    let buffers = [(1, a.buffer()), (4, b.buffer()), (2, y.buffer())];
    record_elementwise_with(ctx, rec, ("add_clamp", bounds), a.numel(), &buffers)
}

/// Records y += x.
pub(crate) fn record_add_inplace(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    x: &Tensor,
    y: &Tensor,
) -> Result<()> {
    record_elementwise(ctx, rec, "add_inplace", x.numel(), &[(1, x.buffer()), (2, y.buffer())])
}

/// Records y = x * mask, the dropout mask of layer `layer` for the seed in `seed` (the backward
/// pass is the same call with grad_y and grad_x).
pub(crate) fn record_dropout(
    ctx: &crate::Context,
    rec: &mut crate::kernel::Recorder<'_>,
    p: f32,
    layer: u32,
    seed: &wgpu::Buffer,
    x: &Tensor,
    y: &Tensor,
) -> Result<()> {
    let total = check_u32("dropout", "elements", x.numel())?;
    let params = [total, p.to_bits(), layer, 0];
    ctx.record(
        rec,
        &Dispatch::linear(
            ctx,
            "dropout",
            (Shader::Dropout, "dropout_apply"),
            bytemuck::cast_slice(&params),
            &[(1, x.buffer()), (2, y.buffer()), (3, seed)],
            u64::from(total),
        )?,
    )
}
