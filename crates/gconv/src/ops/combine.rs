//! Joining branches: `add` (residual connections), `cat` (concatenation) and its gradient,
//! `narrow` (`elementwise.wgsl`, `slice.wgsl`).

use super::activation::record_elementwise;
use super::activation::resolve_dim;
use super::{check_u32, context_of};
use crate::kernel::{Dispatch, Recorder, Shader};
use crate::{Context, DType, Error, Result, Tensor};

/// `a + b`, element-wise, for tensors of one shape (no broadcasting).
///
/// # Errors
/// [`Error::InvalidArgument`] naming both shapes when they differ.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "add";
    let ctx = context_of(OP, &[a, b])?;
    if a.shape() != b.shape() {
        return Err(Error::invalid(
            OP,
            format!("inputs of different shapes: {:?} and {:?}", a.shape(), b.shape()),
        ));
    }
    let y = Tensor::output(&ctx, a.shape(), DType::F32, OP)?;
    if a.numel() > 0 {
        ctx.run(OP, |rec| record_add(&ctx, rec, a, b, &y))?;
    }
    Ok(y)
}

/// Records y = a + b.
pub(crate) fn record_add(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
) -> Result<()> {
    let buffers = [(1, a.buffer()), (4, b.buffer()), (2, y.buffer())];
    record_elementwise(ctx, rec, "add", a.numel(), &buffers)
}

/// `torch.cat(tensors, dim)`: the tensors joined along `dim` (negative counts from the end);
/// they agree in every other dimension.
///
/// # Errors
/// [`Error::InvalidArgument`] for no tensors, a dimension out of range, or shapes that
/// disagree outside `dim` (naming both).
pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
    const OP: &str = "cat";
    let Some(first) = tensors.first() else {
        return Err(Error::invalid(OP, "expected at least one tensor"));
    };
    let ctx = context_of(OP, tensors)?;
    let d = resolve_dim(OP, dim, first.rank())?;
    let mut shape = first.shape().to_vec();
    shape[d] = 0;
    for t in tensors {
        let s = t.shape();
        let agrees = s.len() == first.rank()
            && s.iter().zip(first.shape()).enumerate().all(|(i, (a, b))| i == d || a == b);
        if !agrees {
            return Err(Error::invalid(
                OP,
                format!(
                    "tensors must agree in all but dimension {d}: {:?} and {s:?}",
                    first.shape()
                ),
            ));
        }
        shape[d] += s[d];
    }
    let y = Tensor::output(&ctx, &shape, DType::F32, OP)?;
    if y.numel() > 0 {
        ctx.run(OP, |rec| {
            let mut offset = 0;
            for t in tensors {
                record_slice(&ctx, rec, "cat_place", t, &y, d, offset, false)?;
                offset += t.shape()[d];
            }
            Ok(())
        })?;
    }
    Ok(y)
}

/// `torch.narrow(x, dim, start, length)` as a new tensor: the elements `start..start + length`
/// along `dim`. Also the gradient of [`cat`] for one of its inputs.
///
/// # Errors
/// [`Error::InvalidArgument`] for a dimension out of range or a slice past its end.
pub fn narrow(x: &Tensor, dim: isize, start: usize, length: usize) -> Result<Tensor> {
    const OP: &str = "narrow";
    let ctx = context_of(OP, &[x])?;
    let d = resolve_dim(OP, dim, x.rank())?;
    let size = x.shape().get(d).copied().unwrap_or(1);
    if start.checked_add(length).is_none_or(|end| end > size) {
        return Err(Error::invalid(
            OP,
            format!(
                "start ({start}) + length ({length}) exceeds size {size} of dimension {d} of {:?}",
                x.shape()
            ),
        ));
    }
    let mut shape = x.shape().to_vec();
    shape[d] = length;
    let y = Tensor::output(&ctx, &shape, DType::F32, OP)?;
    if y.numel() > 0 {
        ctx.run(OP, |rec| record_slice(&ctx, rec, "narrow", &y, x, d, start, false))?;
    }
    Ok(y)
}

/// Records `cat_place` (big's block = small) or `narrow` (small (+)= big's block): `small` is
/// `big` cut to its size along `dim` from `offset` on.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_slice(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    entry: &'static str,
    small: &Tensor,
    big: &Tensor,
    dim: usize,
    offset: usize,
    accumulate: bool,
) -> Result<()> {
    let inner: usize = big.shape()[dim + 1..].iter().product();
    let block = small.shape()[dim] * inner;
    let count = check_u32(entry, "elements", small.numel())?;
    let params = [
        count,
        check_u32(entry, "elements", block)?,
        check_u32(entry, "elements", big.shape()[dim] * inner)?,
        check_u32(entry, "elements", offset * inner)?,
        u32::from(accumulate),
        0,
        0,
        0,
    ];
    ctx.record(
        rec,
        &Dispatch::linear(
            ctx,
            entry,
            (Shader::Slice, entry),
            bytemuck::cast_slice(&params),
            &[(1, small.buffer()), (2, big.buffer())],
            u64::from(count),
        )?,
    )
}
