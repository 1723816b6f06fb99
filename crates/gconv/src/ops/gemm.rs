//! linear and matmul: the batched GEMM of `gemm.wgsl`.

use super::{check_bias, check_u32, context_of};
use crate::kernel::{Dispatch, Shader};
use crate::{Context, DType, Error, Result, Tensor};

/// Workgroup of the GEMM kernel (WG_X x WG_Y invocations, 4x4 outputs each).
const WG_X: u32 = 8;
const WG_Y: u32 = 8;
const TILE: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GemmParams {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
    c_batch_stride: u32,
    trans_a: u32,
    trans_b: u32,
    has_bias: u32,
}

/// C (batch, M, N) = op(A) op(B) + bias, recorded and submitted.
#[allow(clippy::too_many_arguments)]
fn gemm(
    ctx: &Context,
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    (batch, m, n, k): (usize, usize, usize, usize),
    (a_stride, b_stride): (usize, usize),
    (trans_a, trans_b): (bool, bool),
    out_shape: &[usize],
) -> Result<Tensor> {
    check_u32(op, "output elements", batch * m * n)?;
    check_u32(op, "first operand elements", a.numel())?;
    check_u32(op, "second operand elements", b.numel())?;
    let c = Tensor::output(ctx, out_shape, DType::F32, op)?;
    let params = GemmParams {
        batch: batch as u32,
        m: m as u32,
        n: n as u32,
        k: k as u32,
        a_batch_stride: a_stride as u32,
        b_batch_stride: b_stride as u32,
        c_batch_stride: (m * n) as u32,
        trans_a: trans_a as u32,
        trans_b: trans_b as u32,
        has_bias: bias.is_some() as u32,
    };
    let max = ctx.limits().max_compute_workgroups_per_dimension;
    let groups = [(n as u32).div_ceil(WG_X * TILE), (m as u32).div_ceil(WG_Y * TILE), batch as u32];
    if groups.iter().any(|&g| g > max) {
        return Err(Error::invalid(
            op,
            format!("matrix sizes (batch {batch}, M {m}, N {n}) exceed the dispatch limit {max}"),
        ));
    }
    let bias_buf = bias.map_or(&ctx.inner.dummy, Tensor::buffer);
    ctx.run(op, |enc| {
        ctx.record(
            enc,
            &Dispatch {
                shader: Shader::Gemm,
                entry: "gemm_forward",
                constants: &[("WG_X", f64::from(WG_X)), ("WG_Y", f64::from(WG_Y))],
                params: bytemuck::bytes_of(&params),
                buffers: &[(1, a.buffer()), (2, b.buffer()), (3, bias_buf), (4, c.buffer())],
                workgroups: groups,
            },
        )
    })?;
    Ok(c)
}

/// `y = x W^T + b`, as `torch.nn.functional.linear`: x (*, in_features), weight
/// (out_features, in_features), bias (out_features); y (*, out_features).
///
/// # Errors
/// [`Error::InvalidArgument`] when the shapes do not match.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    const OP: &str = "linear";
    let mut tensors = vec![x, weight];
    tensors.extend(bias);
    let ctx = context_of(OP, &tensors)?;
    if weight.rank() != 2 || x.rank() == 0 {
        return Err(Error::invalid(
            OP,
            format!(
                "expected input (*, in) and weight (out, in), got {:?} and {:?}",
                x.shape(),
                weight.shape()
            ),
        ));
    }
    let (out_f, in_f) = (weight.shape()[0], weight.shape()[1]);
    let k = x.shape()[x.rank() - 1];
    if k != in_f {
        return Err(Error::invalid(
            OP,
            format!(
                "input of shape {:?} has {k} features but weight of shape {:?} expects {in_f}",
                x.shape(),
                weight.shape()
            ),
        ));
    }
    check_bias(OP, bias, out_f)?;
    let m = x.numel() / k.max(1);
    let mut out_shape = x.shape()[..x.rank() - 1].to_vec();
    out_shape.push(out_f);
    if m == 0 || out_f == 0 || k == 0 {
        return Err(Error::invalid(
            OP,
            format!("empty operand: input {:?}, weight {:?}", x.shape(), weight.shape()),
        ));
    }
    gemm(&ctx, OP, x, weight, bias, (1, m, out_f, k), (0, 0), (false, true), &out_shape)
}

/// Matrix product as `torch.matmul` for operands of rank 2 or more: (…, M, K) @ (…, K, N).
/// Batch dimensions must be equal, or one operand must be a plain matrix (broadcast over the
/// other's batch).
///
/// # Errors
/// [`Error::InvalidArgument`] when the shapes do not match.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "matmul";
    let ctx = context_of(OP, &[a, b])?;
    let mismatch = || {
        Error::invalid(OP, format!("cannot multiply shapes {:?} and {:?}", a.shape(), b.shape()))
    };
    if a.rank() < 2 || b.rank() < 2 {
        return Err(mismatch());
    }
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 || m == 0 || n == 0 || k == 0 {
        return Err(mismatch());
    }
    let (a_batch, b_batch) = (&a.shape()[..ra - 2], &b.shape()[..rb - 2]);
    let batch_shape = if a_batch == b_batch || rb == 2 {
        a_batch
    } else if ra == 2 {
        b_batch
    } else {
        return Err(mismatch());
    };
    let batch: usize = batch_shape.iter().product();
    let a_stride = if ra == 2 { 0 } else { m * k };
    let b_stride = if rb == 2 { 0 } else { k * n };
    let mut out_shape = batch_shape.to_vec();
    out_shape.extend([m, n]);
    gemm(&ctx, OP, a, b, None, (batch, m, n, k), (a_stride, b_stride), (false, false), &out_shape)
}
