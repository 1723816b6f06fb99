//! Constant padding (`pad.wgsl`): `torch.nn.functional.pad(x, pad, mode="constant", value)`,
//! where negative pads crop, and its gradient. Both are one gather kernel: each output element
//! reads the element of its input it shifts onto, or the fill value.

use super::{check_u32, context_of};
use crate::kernel::{Dispatch, Recorder, Shader};
use crate::{Context, DType, Error, Result, Tensor};

/// The most trailing dimensions one pad covers (PyTorch's constant mode takes any number;
/// gconv's kernel views a tensor as (outer, d, h, w)).
const MAX_PADDED_DIMS: usize = 3;

/// The shape `pad` gives `input`: `pad` lists (before, after) pairs from the last dimension
/// backwards, as PyTorch's `pad` argument does (`(left, right, top, bottom, front, back)`).
///
/// # Errors
/// [`Error::InvalidArgument`] for an odd number of pads, more pairs than dimensions (or than
/// three), or a size that negative pads make negative.
pub fn pad_output_shape(input: &[usize], pad: &[i64]) -> Result<Vec<usize>> {
    const OP: &str = "pad";
    if !pad.len().is_multiple_of(2) {
        return Err(Error::invalid(
            OP,
            format!("pad needs (before, after) pairs, got {} values: {pad:?}", pad.len()),
        ));
    }
    let pairs = pad.len() / 2;
    if pairs > input.len() || pairs > MAX_PADDED_DIMS {
        return Err(Error::invalid(
            OP,
            format!(
                "{pairs} pairs of pads for an input of shape {input:?}; gconv pads at most the \
                 last {MAX_PADDED_DIMS} dimensions, and no more than the input has"
            ),
        ));
    }
    let mut out = input.to_vec();
    for (j, pair) in pad.chunks(2).enumerate() {
        let d = input.len() - 1 - j;
        let size = input[d] as i64 + pair[0] + pair[1];
        out[d] = usize::try_from(size).map_err(|_| {
            Error::invalid(
                OP,
                format!(
                    "pads ({}, {}) make dimension {d} of {input:?} negative ({size})",
                    pair[0], pair[1]
                ),
            )
        })?;
    }
    Ok(out)
}

/// Pads (or, with negative pads, crops) the last `pad.len() / 2` dimensions of `x` with
/// `value`, as `torch.nn.functional.pad(x, pad, mode="constant", value=value)`.
///
/// # Errors
/// [`Error::InvalidArgument`] as [`pad_output_shape`]; [`Error::DType`] for integer tensors.
pub fn pad(x: &Tensor, pad: &[i64], value: f32) -> Result<Tensor> {
    const OP: &str = "pad";
    let ctx = context_of(OP, &[x])?;
    let shape = pad_output_shape(x.shape(), pad)?;
    let y = Tensor::output(&ctx, &shape, DType::F32, OP)?;
    ctx.run(OP, |rec| record_pad(&ctx, rec, x, &y, pad, value))?;
    Ok(y)
}

/// Gradient of [`pad`] for an input of shape `input_shape`: `grad_output` cropped back (and,
/// where the pads cropped, zero).
///
/// # Errors
/// [`Error::InvalidArgument`] when `grad_output` is not the shape `pad` gives `input_shape`.
pub fn pad_backward(grad_output: &Tensor, input_shape: &[usize], pad: &[i64]) -> Result<Tensor> {
    const OP: &str = "pad_backward";
    let ctx = context_of(OP, &[grad_output])?;
    let want = pad_output_shape(input_shape, pad)?;
    if grad_output.shape() != want {
        return Err(Error::invalid(
            OP,
            format!("grad_output must have shape {want:?}, got {:?}", grad_output.shape()),
        ));
    }
    let grad_x = Tensor::output(&ctx, input_shape, DType::F32, OP)?;
    ctx.run(OP, |rec| record_pad_backward(&ctx, rec, grad_output, &grad_x, pad))?;
    Ok(grad_x)
}

/// (outer, d, h, w) of `shape` and the pads before d, h and w.
fn view(shape: &[usize], pad: &[i64]) -> ([usize; 4], [i64; 3]) {
    let mut dims = [1usize; 4];
    let rank = shape.len();
    let trailing = rank.min(MAX_PADDED_DIMS);
    for k in 0..trailing {
        dims[3 - k] = shape[rank - 1 - k];
    }
    dims[0] = shape[..rank - trailing].iter().product();
    let mut before = [0i64; 3];
    for (j, pair) in pad.chunks(2).enumerate() {
        before[2 - j] = pair[0];
    }
    (dims, before)
}

/// Records dst = src shifted by `sign` x the pads before, `fill` outside src.
fn record_shift(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    op: &'static str,
    (src, dst): (&Tensor, &Tensor),
    pad: &[i64],
    sign: i64,
    fill: f32,
) -> Result<()> {
    if dst.numel() == 0 {
        return Ok(());
    }
    let (s, before) = view(src.shape(), pad);
    let (d, _) = view(dst.shape(), pad);
    let mut params = [0u32; 16];
    for k in 0..4 {
        params[k] = check_u32(op, "a dimension", s[k])?;
        params[4 + k] = check_u32(op, "a dimension", d[k])?;
    }
    for k in 0..3 {
        let shift = i32::try_from(sign * before[k])
            .map_err(|_| Error::invalid(op, format!("pad {} is too large", before[k])))?;
        params[9 + k] = shift as u32;
    }
    let total = check_u32(op, "elements", dst.numel())?;
    params[12] = total;
    params[13] = fill.to_bits();
    ctx.record(
        rec,
        &Dispatch::linear(
            ctx,
            op,
            (Shader::Pad, "shift"),
            bytemuck::cast_slice(&params),
            &[(1, src.buffer()), (2, dst.buffer())],
            u64::from(total),
        )?,
    )
}

/// Records y = pad(x, pad, value); `y` has the shape [`pad_output_shape`] gives.
pub(crate) fn record_pad(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    x: &Tensor,
    y: &Tensor,
    pad: &[i64],
    value: f32,
) -> Result<()> {
    record_shift(ctx, rec, "pad", (x, y), pad, 1, value)
}

/// Records grad_x = the gradient of [`pad`] from grad_y.
pub(crate) fn record_pad_backward(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    grad_y: &Tensor,
    grad_x: &Tensor,
    pad: &[i64],
) -> Result<()> {
    record_shift(ctx, rec, "pad_backward", (grad_y, grad_x), pad, -1, 0.0)
}
