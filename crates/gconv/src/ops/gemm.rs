//! linear and matmul: the batched GEMM of `gemm.wgsl`.

use super::reduce::{record_batch_sum, record_channel_sum};
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

/// One GEMM: C (batch, M, N) = op(A) op(B) + bias.
struct Gemm<'a> {
    a: &'a Tensor,
    b: &'a Tensor,
    bias: Option<&'a Tensor>,
    /// (batch, M, N, K).
    dims: (usize, usize, usize, usize),
    /// Elements between consecutive batch matrices of A and B (0 broadcasts).
    strides: (usize, usize),
    /// A stored (K, M), B stored (N, K).
    trans: (bool, bool),
}

impl Gemm<'_> {
    fn record(
        &self,
        ctx: &Context,
        op: &'static str,
        enc: &mut wgpu::CommandEncoder,
        c: &Tensor,
    ) -> Result<()> {
        let (batch, m, n, k) = self.dims;
        check_u32(op, "output elements", batch * m * n)?;
        check_u32(op, "first operand elements", self.a.numel())?;
        check_u32(op, "second operand elements", self.b.numel())?;
        let params = GemmParams {
            batch: batch as u32,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            a_batch_stride: self.strides.0 as u32,
            b_batch_stride: self.strides.1 as u32,
            c_batch_stride: (m * n) as u32,
            trans_a: self.trans.0 as u32,
            trans_b: self.trans.1 as u32,
            has_bias: self.bias.is_some() as u32,
        };
        let max = ctx.limits().max_compute_workgroups_per_dimension;
        let groups =
            [(n as u32).div_ceil(WG_X * TILE), (m as u32).div_ceil(WG_Y * TILE), batch as u32];
        if groups.iter().any(|&g| g > max) {
            return Err(Error::invalid(
                op,
                format!(
                    "matrix sizes (batch {batch}, M {m}, N {n}) exceed the dispatch limit {max}"
                ),
            ));
        }
        let bias = self.bias.map_or(&ctx.inner.dummy, Tensor::buffer);
        ctx.record(
            enc,
            &Dispatch {
                shader: Shader::Gemm,
                entry: "gemm_forward",
                constants: &[("WG_X", f64::from(WG_X)), ("WG_Y", f64::from(WG_Y))],
                params: bytemuck::bytes_of(&params),
                buffers: &[(1, self.a.buffer()), (2, self.b.buffer()), (3, bias), (4, c.buffer())],
                workgroups: groups,
            },
        )
    }

    /// Records the GEMM into a new tensor of `shape` and submits it.
    fn run(&self, ctx: &Context, op: &'static str, shape: &[usize]) -> Result<Tensor> {
        let c = Tensor::output(ctx, shape, DType::F32, op)?;
        ctx.run(op, |enc| self.record(ctx, op, enc, &c))?;
        Ok(c)
    }
}

/// linear's shapes: (rows M, in_features K, out_features N), checked.
fn linear_dims(op: &'static str, x: &Tensor, weight: &Tensor) -> Result<(usize, usize, usize)> {
    if weight.rank() != 2 || x.rank() == 0 {
        return Err(Error::invalid(
            op,
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
            op,
            format!(
                "input of shape {:?} has {k} features but weight of shape {:?} expects {in_f}",
                x.shape(),
                weight.shape()
            ),
        ));
    }
    if x.numel() == 0 || out_f == 0 || k == 0 {
        return Err(Error::invalid(
            op,
            format!("empty operand: input {:?}, weight {:?}", x.shape(), weight.shape()),
        ));
    }
    Ok((x.numel() / k, k, out_f))
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
    let (m, k, n) = linear_dims(OP, x, weight)?;
    check_bias(OP, bias, n)?;
    let mut out_shape = x.shape()[..x.rank() - 1].to_vec();
    out_shape.push(n);
    let g =
        Gemm { a: x, b: weight, bias, dims: (1, m, n, k), strides: (0, 0), trans: (false, true) };
    g.run(&ctx, OP, &out_shape)
}

/// Gradients of [`linear`].
#[derive(Debug)]
pub struct LinearGrads {
    /// Same shape as the input.
    pub grad_input: Tensor,
    /// (out_features, in_features).
    pub grad_weight: Tensor,
    /// (out_features,), when the layer has a bias.
    pub grad_bias: Option<Tensor>,
}

/// Gradients of [`linear`] given grad_output (*, out_features): grad_input = grad_output W,
/// grad_weight = grad_output^T x, grad_bias = the column sums of grad_output.
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes.
pub fn linear_backward(
    grad_output: &Tensor,
    x: &Tensor,
    weight: &Tensor,
    has_bias: bool,
) -> Result<LinearGrads> {
    const OP: &str = "linear_backward";
    let ctx = context_of(OP, &[grad_output, x, weight])?;
    let (m, k, n) = linear_dims(OP, x, weight)?;
    let mut y_shape = x.shape()[..x.rank() - 1].to_vec();
    y_shape.push(n);
    if grad_output.shape() != y_shape.as_slice() {
        return Err(Error::invalid(
            OP,
            format!(
                "grad_output must have the output's shape {y_shape:?}, got {:?}",
                grad_output.shape()
            ),
        ));
    }
    let grad_input = Tensor::output(&ctx, x.shape(), DType::F32, OP)?;
    let grad_weight = Tensor::output(&ctx, weight.shape(), DType::F32, OP)?;
    let grad_bias = if has_bias { Some(Tensor::output(&ctx, &[n], DType::F32, OP)?) } else { None };
    ctx.run(OP, |enc| {
        // grad_input (M, K) = grad_output (M, N) @ W (N, K).
        Gemm {
            a: grad_output,
            b: weight,
            bias: None,
            dims: (1, m, k, n),
            strides: (0, 0),
            trans: (false, false),
        }
        .record(&ctx, OP, enc, &grad_input)?;
        // grad_weight (N, K) = grad_output^T (N, M) @ x (M, K).
        Gemm {
            a: grad_output,
            b: x,
            bias: None,
            dims: (1, n, k, m),
            strides: (0, 0),
            trans: (true, false),
        }
        .record(&ctx, OP, enc, &grad_weight)?;
        if let Some(gb) = &grad_bias {
            record_channel_sum(&ctx, enc, grad_output, m, n, gb)?;
        }
        Ok(())
    })?;
    Ok(LinearGrads { grad_input, grad_weight, grad_bias })
}

/// matmul's shapes, checked: (batch, M, K, N, a broadcast, b broadcast, batch shape).
struct MatmulDims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a_broadcast: bool,
    b_broadcast: bool,
    out_shape: Vec<usize>,
}

fn matmul_dims(op: &'static str, a: &Tensor, b: &Tensor) -> Result<MatmulDims> {
    let mismatch = || {
        Error::invalid(op, format!("cannot multiply shapes {:?} and {:?}", a.shape(), b.shape()))
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
    let mut out_shape = batch_shape.to_vec();
    out_shape.extend([m, n]);
    Ok(MatmulDims {
        batch,
        m,
        k,
        n,
        a_broadcast: ra == 2 && batch > 1,
        b_broadcast: rb == 2 && batch > 1,
        out_shape,
    })
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
    let d = matmul_dims(OP, a, b)?;
    let strides =
        (if a.rank() == 2 { 0 } else { d.m * d.k }, if b.rank() == 2 { 0 } else { d.k * d.n });
    let g =
        Gemm { a, b, bias: None, dims: (d.batch, d.m, d.n, d.k), strides, trans: (false, false) };
    g.run(&ctx, OP, &d.out_shape)
}

/// Gradients of [`matmul`]: grad_a = grad_output @ b^T and grad_b = a^T @ grad_output, summed
/// over the batch for an operand that was broadcast.
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes.
pub fn matmul_backward(grad_output: &Tensor, a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "matmul_backward";
    let ctx = context_of(OP, &[grad_output, a, b])?;
    let d = matmul_dims(OP, a, b)?;
    if grad_output.shape() != d.out_shape.as_slice() {
        return Err(Error::invalid(
            OP,
            format!(
                "grad_output must have the output's shape {:?}, got {:?}",
                d.out_shape,
                grad_output.shape()
            ),
        ));
    }
    let (batch, m, k, n) = (d.batch, d.m, d.k, d.n);
    let grad_a = Tensor::output(&ctx, a.shape(), DType::F32, OP)?;
    let grad_b = Tensor::output(&ctx, b.shape(), DType::F32, OP)?;
    let a_stride = if a.rank() == 2 { 0 } else { m * k };
    let b_stride = if b.rank() == 2 { 0 } else { k * n };
    // Per-batch products land in a scratch tensor first when the operand was broadcast, then
    // are summed over the batch.
    let scratch_a = if d.a_broadcast {
        Some(Tensor::output(&ctx, &[batch, m, k], DType::F32, OP)?)
    } else {
        None
    };
    let scratch_b = if d.b_broadcast {
        Some(Tensor::output(&ctx, &[batch, k, n], DType::F32, OP)?)
    } else {
        None
    };
    ctx.run(OP, |enc| {
        // grad_a (M, K) = grad_output (M, N) @ b^T (N, K).
        let target = scratch_a.as_ref().unwrap_or(&grad_a);
        Gemm {
            a: grad_output,
            b,
            bias: None,
            dims: (batch, m, k, n),
            strides: (m * n, b_stride),
            trans: (false, true),
        }
        .record(&ctx, OP, enc, target)?;
        if let Some(s) = &scratch_a {
            record_batch_sum(&ctx, enc, s, batch, &grad_a)?;
        }
        // grad_b (K, N) = a^T (K, M) @ grad_output (M, N).
        let target = scratch_b.as_ref().unwrap_or(&grad_b);
        Gemm {
            a,
            b: grad_output,
            bias: None,
            dims: (batch, k, n, m),
            strides: (a_stride, m * n),
            trans: (true, false),
        }
        .record(&ctx, OP, enc, target)?;
        if let Some(s) = &scratch_b {
            record_batch_sum(&ctx, enc, s, batch, &grad_b)?;
        }
        Ok(())
    })?;
    Ok((grad_a, grad_b))
}
