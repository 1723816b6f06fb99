//! linear and matmul, and the GEMM every operator multiplies with ([`Gemm`]), which runs on
//! the texture GEMM (`tiled.rs`, its operands packed by `pack.rs`) or the storage-buffer one
//! (`simple.rs`).

pub(crate) mod pack;
mod simple;
pub(crate) mod tiled;

use super::reduce::{record_batch_sum, record_channel_sum};
use super::slices::{sample_chunk, slice};
use super::texture::Packed;
use super::{check_bias, check_u32, context_of};
use crate::kernel::Recorder;
use crate::{Context, DType, Error, GemmStrategy, Result, Tensor};

/// The kernel a [`Gemm`] runs on.
enum GemmKernel {
    /// The texture GEMM (`tiled.rs`): operands packed into textures.
    Tiled,
    /// The storage-buffer GEMM (`simple.rs`).
    Simple,
}

/// One GEMM: C (batch, M, N) = op(A) op(B) (+ bias) (relu) (+ C). See shaders/gemm/simple.wgsl
/// for the layouts; `Gemm::new` fills the leading dimensions of dense matrices.
pub(crate) struct Gemm<'a> {
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    /// Bias per row (convolution channels) instead of per column (linear features).
    pub bias_per_row: bool,
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
    pub offsets: (usize, usize, usize),
    /// Batch strides of A, B and C (0 broadcasts).
    pub batch_strides: (usize, usize, usize),
    /// The K sum also runs over this many blocks, stepping A and B by `kb_strides`.
    pub k_batches: usize,
    pub kb_strides: (usize, usize),
    pub trans: (bool, bool),
    pub relu: bool,
    pub accumulate: bool,
    /// Bindings restricted to a byte range (binding, offset, size): chunks of large tensors.
    pub ranges: Vec<(u32, u64, u64)>,
    /// Whether A / B is a layer's weight: packing it or copying it into a texture is a step
    /// derived from parameters (`Recorder::parameter_derived`).
    pub parameters: (bool, bool),
}

impl<'a> Gemm<'a> {
    /// A dense GEMM: (batch, M, N, K), A/B batch strides, (trans_a, trans_b).
    pub(crate) fn new(
        a: &'a Tensor,
        b: &'a Tensor,
        bias: Option<&'a Tensor>,
        (batch, m, n, k): (usize, usize, usize, usize),
        (a_stride, b_stride): (usize, usize),
        (trans_a, trans_b): (bool, bool),
    ) -> Self {
        Gemm {
            a,
            b,
            bias,
            bias_per_row: false,
            batch,
            m,
            n,
            k,
            lda: if trans_a { m } else { k },
            ldb: if trans_b { k } else { n },
            ldc: n,
            offsets: (0, 0, 0),
            batch_strides: (a_stride, b_stride, m * n),
            k_batches: 1,
            kb_strides: (0, 0),
            trans: (trans_a, trans_b),
            relu: false,
            accumulate: false,
            ranges: Vec::new(),
            parameters: (false, false),
        }
    }

    /// Records the GEMM into `c` on the kernel [`Gemm::kernel`] chooses.
    pub(crate) fn record(
        &self,
        ctx: &Context,
        op: &'static str,
        rec: &mut Recorder<'_>,
        c: &Tensor,
    ) -> Result<()> {
        check_u32(op, "first operand elements", self.a.numel())?;
        check_u32(op, "second operand elements", self.b.numel())?;
        check_u32(op, "output elements", c.numel())?;
        match self.kernel(ctx, rec.keeps_parameter_data()) {
            GemmKernel::Tiled => tiled::record_dense(self, ctx, op, rec, c),
            GemmKernel::Simple => simple::record(self, ctx, op, rec, c),
        }
    }

    /// The one place a GEMM's kernel is chosen: the texture GEMM (its layout then follows the
    /// adapter, see [`tiled::record_gemm`]) where the strategy allows it, no dimension is below
    /// 8 and both packed operands fit; the storage-buffer kernel otherwise. `kept`: the plan
    /// keeps what it derives from parameters between runs (`Recorder::keeps_parameter_data`).
    fn kernel(&self, ctx: &Context, kept: bool) -> GemmKernel {
        let strategy = ctx.gemm_strategy();
        let kt = self.k * self.k_batches;
        // Packing costs a pass over both operands; a GEMM with a dimension below 8 (a Sobel
        // filter's 2 output channels) runs faster on the storage-buffer kernel. Not where B
        // is a weight packed once (inference): a linear layer on a batch of one reads it as
        // texels, 2.5 times as fast as the storage-buffer kernel on MobileNetV2's classifier.
        let small = if kept && self.parameters.1 {
            self.n.min(kt) < 8
        } else {
            self.m.min(self.n).min(kt) < 8
        };
        let fits = Packed::fits(ctx, kt, self.m, self.batch)
            && Packed::fits(ctx, self.n, kt.div_ceil(4) * 4, self.batch);
        match strategy {
            GemmStrategy::Simple => GemmKernel::Simple,
            GemmStrategy::Auto if small => GemmKernel::Simple,
            _ if fits => GemmKernel::Tiled,
            _ => GemmKernel::Simple,
        }
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
    let g = Gemm::new(x, weight, bias, (1, m, n, k), (0, 0), (false, true));
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
        Gemm::new(grad_output, weight, None, (1, m, k, n), (0, 0), (false, false)).record(
            &ctx,
            OP,
            enc,
            &grad_input,
        )?;
        // grad_weight (N, K) = grad_output^T (N, M) @ x (M, K).
        Gemm::new(grad_output, x, None, (1, n, k, m), (0, 0), (true, false)).record(
            &ctx,
            OP,
            enc,
            &grad_weight,
        )?;
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
    let g = Gemm::new(a, b, None, (d.batch, d.m, d.n, d.k), strides, (false, false));
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
        Gemm::new(grad_output, b, None, (batch, m, k, n), (m * n, b_stride), (false, true))
            .record(&ctx, OP, enc, target)?;
        if let Some(s) = &scratch_a {
            record_batch_sum(&ctx, enc, s, batch, &grad_a)?;
        }
        // grad_b (K, N) = a^T (K, M) @ grad_output (M, N).
        let target = scratch_b.as_ref().unwrap_or(&grad_b);
        Gemm::new(a, grad_output, None, (batch, k, n, m), (a_stride, m * n), (true, false))
            .record(&ctx, OP, enc, target)?;
        if let Some(s) = &scratch_b {
            record_batch_sum(&ctx, enc, s, batch, &grad_b)?;
        }
        Ok(())
    })?;
    Ok((grad_a, grad_b))
}

/// Rows of a (rows, row_len) f32 tensor per chunk, such that a chunk fits one storage binding
/// and every chunk's byte offset (and its bias's) meets the device's offset alignment.
pub(crate) fn rows_per_chunk(
    ctx: &Context,
    op: &'static str,
    rows: usize,
    row_len: usize,
) -> Result<usize> {
    let limits = ctx.limits();
    let max = ctx.binding_limit() as usize;
    let row_bytes = row_len * 4;
    if rows * row_bytes <= max {
        return Ok(rows);
    }
    let align = limits.min_storage_buffer_offset_alignment.max(4) as usize;
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    // Rows whose bytes are a multiple of the alignment, and whose count keeps the bias's
    // 4-byte elements aligned too.
    let step_w = align / gcd(align, row_bytes);
    let step_b = align / 4;
    let step = step_w / gcd(step_w, step_b) * step_b;
    let chunk = (max / row_bytes) / step * step;
    if chunk == 0 {
        return Err(Error::TooLarge {
            what: format!("{op}: one aligned block of rows of {row_len} elements"),
            bytes: (step * row_bytes) as u64,
            limit_name: "max_storage_buffer_binding_size",
            limit: max as u64,
        });
    }
    Ok(chunk)
}

/// Records y = x W^T + b into the given output (the executor's buffers). A weight larger than
/// one storage binding is processed in blocks of output features.
pub(crate) fn record_linear(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
) -> Result<()> {
    const OP: &str = "linear";
    let (m, k, n) = linear_dims(OP, x, weight)?;
    check_bias(OP, bias, n)?;
    if y.numel() != m * n {
        return Err(Error::invalid(
            OP,
            format!("output of shape {:?} does not hold {m} x {n}", y.shape()),
        ));
    }
    let chunk = rows_per_chunk(ctx, OP, n, k)?;
    for (m0, cm, (xr, yr)) in row_blocks(ctx, OP, m, (k, n), (x, y))? {
        for n0 in (0..n).step_by(chunk) {
            let cn = chunk.min(n - n0);
            let mut g = Gemm::new(x, weight, bias, (1, cm, cn, k), (0, 0), (false, true));
            g.parameters.1 = true;
            g.ldc = n;
            g.offsets.0 = if xr.is_some() { 0 } else { m0 * k };
            g.offsets.2 = n0 + if yr.is_some() { 0 } else { m0 * n };
            g.ranges.extend(xr.map(|(o, size)| (1, o, size)));
            g.ranges.extend(yr.map(|(o, size)| (4, o, size)));
            if cn < n {
                g.ranges.push((2, (n0 * k * 4) as u64, (cn * k * 4) as u64));
                if bias.is_some() {
                    g.ranges.push((3, (n0 * 4) as u64, (cn * 4) as u64));
                }
            }
            g.record(ctx, OP, rec, y)?;
        }
    }
    Ok(())
}

/// A byte range of a binding, or `None` for the whole buffer.
type Range = Option<(u64, u64)>;

/// A block of rows: its first row, its rows, and the slices of the two tensors it binds.
type RowBlock = (usize, usize, (Range, Range));

/// The blocks of rows `(first row, rows, (slice of a, slice of b))` a linear layer's M rows
/// go in: one block where `a` (rows of `widths.0` values) and `b` (rows of `widths.1`) fit a
/// storage binding whole, else aligned blocks whose slices fit.
fn row_blocks(
    ctx: &Context,
    op: &'static str,
    m: usize,
    (wa, wb): (usize, usize),
    (a, b): (&Tensor, &Tensor),
) -> Result<Vec<RowBlock>> {
    let rows = sample_chunk(ctx, m, m.max(1), &[wa, wb]).ok_or_else(|| Error::TooLarge {
        what: format!("{op}: one aligned block of rows of {} values", wa.max(wb)),
        bytes: wa.max(wb) as u64 * 4,
        limit_name: "max_storage_buffer_binding_size",
        limit: ctx.binding_limit(),
    })?;
    (0..m.max(1))
        .step_by(rows)
        .map(|m0| {
            let cm = rows.min(m - m0);
            Ok((
                m0,
                cm,
                (slice(ctx, op, a, (m0 * wa, cm * wa))?, slice(ctx, op, b, (m0 * wb, cm * wb))?),
            ))
        })
        .collect()
}

/// Records the gradients of [`linear`] into the given tensors; `grad_x` and `grad_b` optional.
/// A weight larger than one storage binding is processed in blocks of output features.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_linear_backward(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    x: &Tensor,
    weight: &Tensor,
    grad_y: &Tensor,
    grad_x: Option<&Tensor>,
    grad_w: &Tensor,
    grad_b: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "linear_backward";
    let (m, k, n) = linear_dims(OP, x, weight)?;
    if grad_y.numel() != m * n || grad_w.shape() != weight.shape() {
        return Err(Error::invalid(
            OP,
            format!("gradient shapes {:?} / {:?} do not fit", grad_y.shape(), grad_w.shape()),
        ));
    }
    let chunk = rows_per_chunk(ctx, OP, n, k)?;
    for (m0, cm, (xr, gyr)) in row_blocks(ctx, OP, m, (k, n), (x, grad_y))? {
        let gy_first = if gyr.is_some() { 0 } else { m0 * n };
        let gy_range = gyr.map(|(o, size)| (1, o, size));
        for (i, n0) in (0..n).step_by(chunk).enumerate() {
            let cn = chunk.min(n - n0);
            let w_range = (n0 * k * 4) as u64;
            let w_size = (cn * k * 4) as u64;
            if let Some(gx) = grad_x {
                // grad_input[rows] (cm, K) (+)= grad_output[rows, block] (cm, cn) @ W[block].
                let gxr = slice(ctx, OP, gx, (m0 * k, cm * k))?;
                let mut g = Gemm::new(grad_y, weight, None, (1, cm, k, cn), (0, 0), (false, false));
                g.lda = n;
                g.offsets.0 = gy_first + n0;
                g.offsets.2 = if gxr.is_some() { 0 } else { m0 * k };
                g.accumulate = i > 0;
                g.ranges.extend(gy_range);
                g.ranges.extend(gxr.map(|(o, size)| (4, o, size)));
                if cn < n {
                    g.ranges.push((2, w_range, w_size));
                }
                g.record(ctx, OP, rec, gx)?;
            }
            // grad_weight[block] (cn, K) (+)= grad_output[rows, block]^T (cn, cm) @ x[rows].
            let mut g = Gemm::new(grad_y, x, None, (1, cn, k, cm), (0, 0), (true, false));
            g.lda = n;
            g.offsets.0 = gy_first + n0;
            g.offsets.1 = if xr.is_some() { 0 } else { m0 * k };
            g.accumulate = m0 > 0;
            g.ranges.extend(gy_range);
            g.ranges.extend(xr.map(|(o, size)| (2, o, size)));
            if cn < n {
                g.ranges.push((4, w_range, w_size));
            }
            g.record(ctx, OP, rec, grad_w)?;
        }
    }
    if let Some(gb) = grad_b {
        record_channel_sum(ctx, rec, grad_y, m, n, gb)?;
    }
    Ok(())
}
