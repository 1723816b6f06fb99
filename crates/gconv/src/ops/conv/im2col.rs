//! The storage-buffer path (`Forward::Im2col`, ...): im2col of a chunk of samples into a
//! storage buffer (`shaders/conv/im2col.wgsl`), multiplied on the storage-buffer GEMM; the
//! data gradient writes grad_col there and gathers it back with col2im. It serves
//! convolutions whose textures do not fit, and `ConvStrategy::Im2col`.

use super::ConvPlan;
use super::plan::{self, ConvIo, Pass, dispatch};
use crate::kernel::{Shader, WG};
use crate::ops::check_u32;
use crate::ops::gemm::Gemm;
use crate::{Context, Error, Result, Tensor};

/// Samples per chunk and the scratch elements a chunk needs: as many samples as fit one
/// storage binding.
pub(crate) fn chunk(plan: &ConvPlan, ctx: &Context) -> Result<(usize, usize)> {
    let (k, p) = plan.g.col_dims();
    let per_sample = k * p;
    let max = ctx.binding_limit() as usize / 4;
    if per_sample > max {
        return Err(Error::TooLarge {
            what: format!("{}'s im2col block for one sample", plan.op),
            bytes: per_sample as u64 * 4,
            limit_name: "max_storage_buffer_binding_size",
            limit: max as u64 * 4,
        });
    }
    let chunk = (max / per_sample).clamp(1, plan.g.x.n);
    Ok((chunk, chunk * per_sample))
}

/// The scratch: the plan's `col` where it is large enough, else a new one.
pub(super) fn scratch(plan: &ConvPlan, ctx: &Context, col: Option<&Tensor>) -> Result<Tensor> {
    plan::scratch(ctx, col, chunk(plan, ctx)?.1)
}

/// y_n (C_out, P) = W (C_out, K) @ col_n (K, P) per chunk, bias per channel.
pub(super) fn forward(
    pass: &mut Pass<'_, '_>,
    io: &ConvIo<'_>,
    col: &Tensor,
    chunk: usize,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let g = &plan.g;
    let (k, p) = g.col_dims();
    for n0 in (0..g.x.n).step_by(chunk) {
        let len = chunk.min(g.x.n - n0);
        record_im2col(pass, io.x, col, n0, len)?;
        let mut gemm =
            Gemm::new(io.w, col, io.bias, (len, g.c_out, p, k), (0, k * p), (false, false));
        gemm.bias_per_row = true;
        gemm.parameters.0 = true;
        gemm.offsets.2 = n0 * g.c_out * p;
        gemm.record(ctx, plan.op, pass.rec, io.y)?;
    }
    Ok(())
}

/// Both gradients: grad_W (C_out, K) (+)= sum over each chunk of grad_y_n (C_out, P) col_n^T
/// (P, K); then, for grad_x, grad_col_n (K, P) = W^T (K, C_out) grad_y_n (C_out, P) per chunk
/// and col2im. `col` holds one chunk's columns at a time.
pub(super) fn backward(
    pass: &mut Pass<'_, '_>,
    (x, w, grad_y): (&Tensor, &Tensor, &Tensor),
    (grad_x, grad_w): (Option<&Tensor>, &Tensor),
    col: &Tensor,
    chunk: usize,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let g = &plan.g;
    let (k, p) = g.col_dims();
    for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
        let len = chunk.min(g.x.n - n0);
        record_im2col(pass, x, col, n0, len)?;
        let mut gemm = Gemm::new(grad_y, col, None, (1, g.c_out, k, p), (0, 0), (false, true));
        gemm.ldb = p;
        gemm.offsets.0 = n0 * g.c_out * p;
        gemm.k_batches = len;
        gemm.kb_strides = (g.c_out * p, k * p);
        gemm.accumulate = i > 0;
        gemm.record(ctx, plan.op, pass.rec, grad_w)?;
    }
    let Some(grad_x) = grad_x else { return Ok(()) };
    for n0 in (0..g.x.n).step_by(chunk) {
        let len = chunk.min(g.x.n - n0);
        let shape = (len, k, p, g.c_out);
        let mut gemm = Gemm::new(w, grad_y, None, shape, (0, g.c_out * p), (true, false));
        gemm.lda = k;
        gemm.offsets.1 = n0 * g.c_out * p;
        gemm.record(ctx, plan.op, pass.rec, col)?;
        let total = check_u32(plan.op, "input elements", len * g.x_plane())?;
        let params = plan.g.chunk_params(n0, false, total);
        let buffers = [(4, grad_x.buffer()), (7, col.buffer())];
        let grid = ctx.grid_1d(plan.op, u64::from(total), WG)?;
        ctx.record(pass.rec, &dispatch(Shader::ConvIm2col, "col2im", &params, &buffers, grid))?;
    }
    Ok(())
}

/// Records im2col of samples [n0, n0 + len) of `x` into `col`.
fn record_im2col(
    pass: &mut Pass<'_, '_>,
    x: &Tensor,
    col: &Tensor,
    n0: usize,
    len: usize,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (k, p) = plan.g.col_dims();
    let total = check_u32(plan.op, "im2col elements", len * k * p)?;
    let params = plan.g.chunk_params(n0, false, total);
    let buffers = [(1, x.buffer()), (7, col.buffer())];
    let grid = ctx.grid_1d(plan.op, u64::from(total), WG)?;
    ctx.record(pass.rec, &dispatch(Shader::ConvIm2col, "im2col", &params, &buffers, grid))
}
