//! relu (`elementwise.wgsl`), softmax and log_softmax (`softmax.wgsl`).

use super::{check_u32, context_of};
use crate::kernel::{Dispatch, Shader, WG};
use crate::{DType, Error, Result, Tensor};

/// Rectified linear unit, max(x, 0), elementwise (NaN stays NaN).
///
/// # Errors
/// [`Error::DType`] for an integer tensor; [`Error::Gpu`] if the device fails.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "relu";
    let ctx = context_of(OP, &[x])?;
    let total = check_u32(OP, "elements", x.numel())?;
    let y = Tensor::output(&ctx, x.shape(), DType::F32, OP)?;
    if total == 0 {
        return Ok(y);
    }
    let params = [total, 0, 0, 0];
    ctx.run(OP, |enc| {
        ctx.record(
            enc,
            &Dispatch {
                shader: Shader::Elementwise,
                entry: "relu_forward",
                constants: &[("WG", f64::from(WG))],
                params: bytemuck::cast_slice(&params),
                buffers: &[(1, x.buffer()), (2, y.buffer())],
                workgroups: ctx.grid_1d(OP, u64::from(total), WG)?,
            },
        )
    })?;
    Ok(y)
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

fn softmax_like(op: &'static str, entry: &'static str, x: &Tensor, dim: isize) -> Result<Tensor> {
    let ctx = context_of(op, &[x])?;
    let d = resolve_dim(op, dim, x.rank())?;
    let shape = x.shape();
    let (outer, len, inner) = if shape.is_empty() {
        (1, 1, 1)
    } else {
        (shape[..d].iter().product(), shape[d], shape[d + 1..].iter().product::<usize>())
    };
    check_u32(op, "elements", x.numel())?;
    let y = Tensor::output(&ctx, shape, DType::F32, op)?;
    let rows = (outer * inner) as u32;
    if x.numel() == 0 {
        return Ok(y);
    }
    let params = [outer as u32, len as u32, inner as u32, rows];
    ctx.run(op, |enc| {
        ctx.record(
            enc,
            &Dispatch {
                shader: Shader::Softmax,
                entry,
                constants: &[("WG", f64::from(WG))],
                params: bytemuck::cast_slice(&params),
                buffers: &[(1, x.buffer()), (2, y.buffer())],
                workgroups: ctx.grid_1d(op, u64::from(rows), WG)?,
            },
        )
    })?;
    Ok(y)
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
