//! Conv -> ReLU -> 2x2 max-pool (stride 2) as one step of a plan ([`ConvReluPool`]): the
//! convolution's kernel pools as it writes, so its un-pooled output is never stored, and the
//! backward pass reads the pooled gradient through the saved argmax (-1 where the ReLU was
//! off). `select.rs` decides where this applies and on which kernels:
//! - forward: the texture GEMM's pooling epilogue (im2col in pooled order), the 3x3 tiles'
//!   pooled variant, or the subgroup kernel's pooling epilogue;
//! - backward: on the register layout the pooled gradient goes through the argmax straight
//!   into both gradient GEMMs' packed operands (`pool/unpool_2x2.wgsl`), the weight gradient
//!   reusing the forward pass's im2col texture; the subgroup kernels read it unpooled into
//!   rows of texels; a first layer on the tiles reads it pooled, and so does a first layer of
//!   stride 1 up to 7x7 otherwise (`conv/pooled.wgsl`, LeNet's 5x5), whose forward pass also
//!   runs there; a later 5x5 layer's data gradient reads the packed operand's rows there
//!   instead of grad_col. Elsewhere max-pool's backward pass writes the convolution's output
//!   gradient and the convolution's own passes follow.

use super::plan::{ConvIo, GradsOut, Pass, Pooling};
use super::select::{self, DataGrad, Direct, Forward, Keep, Reads, Source, WeightGrad};
use super::subgroup_3x3::{self, GradSource};
use super::{ConvPlan, direct, tiled};
use crate::kernel::Recorder;
use crate::ops::activation::Act;
use crate::ops::gemm::pack::View;
use crate::ops::gemm::tiled::{Epilogue, record_gemm};
use crate::ops::pool::PoolPlan;
use crate::ops::reduce::record_channel_sum_where;
use crate::ops::texture::{Flat, Packed};
use crate::ops::{check_bias, context_of};
use crate::{Context, Error, Result, Tensor};

/// A convolution fused with the ReLU and 2x2 max-pool that follow it.
pub(crate) struct ConvReluPool {
    pub conv: ConvPlan,
    pub pool: PoolPlan,
    /// The pooled output's (height, width).
    pub pooled: [usize; 2],
}

/// What the forward pass keeps for the backward pass ([`ConvReluPool::scratch`]).
pub(crate) enum ReluPoolScratch {
    /// The im2col texture in pooled order (the texture GEMM).
    Col(Packed),
    /// x in rows of texels (the subgroup kernels).
    Rows(Flat),
}

impl ReluPoolScratch {
    fn col(&self) -> Option<&Packed> {
        match self {
            ReluPoolScratch::Col(c) => Some(c),
            ReluPoolScratch::Rows(_) => None,
        }
    }

    fn rows(&self) -> Option<&Flat> {
        match self {
            ReluPoolScratch::Rows(r) => Some(r),
            ReluPoolScratch::Col(_) => None,
        }
    }
}

impl ConvReluPool {
    /// The pooled (height, width) where `conv`, a ReLU and `pool` run as one step on `ctx`: a
    /// 2-D convolution followed by a 2x2 max-pool of stride 2 whose fused forward pass has a
    /// kernel (see `select::fuses_relu_pool`).
    pub(crate) fn fusion(
        ctx: &Context,
        conv: &ConvPlan,
        pool: &PoolPlan,
    ) -> Result<Option<[usize; 2]>> {
        let g = &conv.g;
        let Some(pooled) = pool.window_2x2() else { return Ok(None) };
        let fits = g.out.len() == 2 && (0..2).all(|i| g.out[i] / 2 == pooled[i]);
        Ok((fits && select::fuses_relu_pool(conv, ctx)?).then_some(pooled))
    }

    /// What a training plan keeps from the forward pass for the backward pass, made here.
    pub(crate) fn scratch(&self, ctx: &Context) -> Result<Option<ReluPoolScratch>> {
        let (g, [ph, pw]) = (&self.conv.g, self.pooled);
        Ok(match select::relu_pool_scratch(&self.conv, ctx)? {
            Some(Keep::Rows) => {
                Flat::new(ctx, 4 * g.row_texels(g.x.n) * g.x.c).map(ReluPoolScratch::Rows)
            }
            Some(Keep::Col) => {
                let col = select::Im2col::Texture;
                tiled::col_texture(&self.conv, ctx, col, g.x.n, ph * pw * 4)?
                    .map(ReluPoolScratch::Col)
            }
            None => None,
        })
    }

    /// Records the forward pass: `io.y` has the pooled shape, and `indices` (for the backward
    /// pass) get the argmax within each window's plane, -1 where the ReLU was off. `col`: the
    /// plan's storage scratch ([`ConvPlan::scratch_elems`], fused).
    pub(crate) fn record_forward(
        &self,
        rec: &mut Recorder<'_>,
        io: &ConvIo<'_>,
        indices: Option<&Tensor>,
        (scratch, col): (Option<&ReluPoolScratch>, Option<&Tensor>),
    ) -> Result<()> {
        let (conv, g) = (&self.conv, &self.conv.g);
        let mut tensors = vec![io.x, io.w, io.y];
        tensors.extend(io.bias);
        let ctx = context_of(conv.op, &tensors)?;
        check_bias(conv.op, io.bias, g.c_out)?;
        if !io.post.is_plain() {
            return Err(Error::invalid(
                conv.op,
                "relu + max-pool takes no other epilogue (internal)",
            ));
        }
        let out = g.x.out_shape(g.c_out, &self.pooled);
        conv.check(io.y, "the pooled output", &out)?;
        if let Some(i) = indices {
            conv.check(i, "the pooling indices", &out)?;
        }
        let pooling = Pooling { pooled: self.pooled, indices };
        let kernel = select::forward(conv, &ctx, Flat::can_hold(&ctx, io.x), true)?;
        let pass = &mut Pass { plan: conv, ctx: &ctx, rec };
        match kernel {
            Forward::Subgroup3x3 { chunk } => {
                let kept = scratch.and_then(ReluPoolScratch::rows);
                subgroup_3x3::forward(pass, io, (Act::RELU, Some(pooling)), chunk, (kept, col))
            }
            Forward::Gemm { chunk, col } => {
                let kept = scratch.and_then(ReluPoolScratch::col);
                tiled::forward(pass, io, (chunk, col), (Act::RELU, Some(pooling)), kept)
            }
            Forward::Direct(Direct::Tiles3x3) => {
                direct::tiles_forward_relu_pool(pass, io, &pooling)
            }
            Forward::Pooled => direct::pooled_forward(pass, io, &pooling),
            _ => Err(Error::invalid(conv.op, "relu + max-pool fusion needs the tiled kernels")),
        }
    }

    /// Records the gradients from the pooled gradient `grad_p` and the saved `indices`.
    /// Outputs that no window covers get no gradient, as in PyTorch. Where no kernel reads the
    /// pooled gradient, max-pool's backward pass writes `conv_grad` (the convolution's output
    /// gradient) and the convolution's own passes follow, with `col` as its im2col scratch.
    pub(crate) fn record_backward(
        &self,
        rec: &mut Recorder<'_>,
        (x, w, grad_p, indices): (&Tensor, &Tensor, &Tensor, &Tensor),
        grads: &GradsOut<'_>,
        (conv_grad, scratch, col): (&Tensor, Option<&ReluPoolScratch>, Option<&Tensor>),
    ) -> Result<()> {
        let (conv, g) = (&self.conv, &self.conv.g);
        let ctx = context_of(conv.op, &[x, w, grad_p, grads.grad_w])?;
        let kept_rows = scratch.and_then(ReluPoolScratch::rows);
        let source = Source::Pooled { kept_rows: kept_rows.is_some() };
        let data = grads.grad_x.is_some();
        let reads = Reads { x_fits: Flat::can_hold(&ctx, x), grad_y_fits: true, data };
        let weight = select::weight_grad(conv, &ctx, source, reads)?;
        if weight == WeightGrad::Unpooled {
            self.pool.record_backward(rec, grad_p, Some(indices), conv_grad)?;
            return conv.record_backward(rec, (x, w, conv_grad), grads, col);
        }
        let data = match grads.grad_x {
            Some(_) => Some(select::data_grad(conv, &ctx, source, reads)?),
            None => None,
        };
        conv.check(grads.grad_w, "grad_weight", w.shape())?;
        if let Some(gx) = grads.grad_x {
            conv.check(gx, "grad_input", x.shape())?;
        }
        let pooled = self.pool.check_backward_packed(grad_p, indices)?;
        if let Some(gb) = grads.grad_b {
            conv.check(gb, "grad_bias", &[g.c_out])?;
            record_channel_sum_where(&ctx, rec, grad_p, indices, g.x.n, g.c_out, gb)?;
        }
        let pass = &mut Pass { plan: conv, ctx: &ctx, rec };
        match (weight, data) {
            (WeightGrad::Direct(Direct::Tiles3x3), None) => {
                let tensors = (x, grad_p, indices, grads.grad_w);
                direct::tiles_weight_grad_pooled(pass, tensors, pooled)
            }
            (WeightGrad::Pooled, None) => {
                let tensors = (x, grad_p, indices, grads.grad_w);
                direct::pooled_weight_grad(pass, tensors, pooled)
            }
            (WeightGrad::Subgroup3x3 { chunk }, None | Some(DataGrad::Subgroup3x3 { .. })) => {
                let source = (GradSource::Pooled { pool: &self.pool, grad_p, indices }, x, w);
                let out = (grads.grad_x, grads.grad_w);
                subgroup_3x3::backward(pass, source, out, chunk, kept_rows)
            }
            (WeightGrad::Gemm { chunk, .. }, None | Some(DataGrad::Col2im { .. })) => {
                let kept_col = scratch.and_then(ReluPoolScratch::col);
                self.gemm_backward(pass, (x, w, grad_p, indices), grads, (chunk, false), kept_col)
            }
            (WeightGrad::Gemm { chunk, .. }, Some(DataGrad::PooledRows { .. })) => {
                let kept_col = scratch.and_then(ReluPoolScratch::col);
                self.gemm_backward(pass, (x, w, grad_p, indices), grads, (chunk, true), kept_col)
            }
            _ => Err(conv.mismatch()),
        }
    }

    /// The backward pass on the texture GEMM's register layout: per chunk the pooled gradient
    /// goes through the argmax into both GEMMs' packed operands in im2col's pooled order
    /// (`max_pool_2x2_backward_packed`): grad_W from the forward pass's im2col texture
    /// (`kept`, where it held the whole batch) or a new one, grad_x through grad_col and
    /// col2im in that order, or with `rows` from the packed gradient a row at a time
    /// (`DataGrad::PooledRows`). The convolution's output gradient is never written.
    fn gemm_backward(
        &self,
        pass: &mut Pass<'_, '_>,
        (x, w, grad_p, indices): (&Tensor, &Tensor, &Tensor, &Tensor),
        grads: &GradsOut<'_>,
        (chunk, rows): (usize, bool),
        kept: Option<&Packed>,
    ) -> Result<()> {
        let (conv, g, ctx) = (&self.conv, &self.conv.g, pass.ctx);
        let [ph, pw] = self.pooled;
        let (k, _) = g.col_dims();
        let per_sample = ph * pw * 4;
        let cols = chunk * per_sample;
        let gy = tiled::packed(conv, ctx, g.c_out, cols, g.c_out.div_ceil(4) * 4)?;
        let gyt = tiled::packed(conv, ctx, cols, g.c_out, cols)?;
        let reuse = kept.filter(|_| chunk == g.x.n);
        let (x_flat, col_t) = match reuse {
            Some(c) => (None, c.clone()),
            None => {
                let x_flat = tiled::XSource::Flat(tiled::copy_of(conv, pass.rec, x)?);
                let col = select::Im2col::Texture;
                let col_t = tiled::col_texture(conv, ctx, col, chunk, per_sample)?;
                (Some(x_flat), col_t.ok_or_else(|| conv.mismatch())?)
            }
        };
        // grad_col (K, columns) = W^T (K, C_out) @ grad_y (C_out, columns), then col2im.
        let data = match grads.grad_x {
            Some(gx) if !rows => {
                let fewest = g.smallest_chunk(chunk) * per_sample;
                Some((gx, tiled::data_grad_textures(pass, w, (cols, fewest))?))
            }
            _ => None,
        };
        let taps = match grads.grad_x {
            Some(gx) if rows => Some((gx, direct::pooled_tap_weights(pass, w, false)?)),
            _ => None,
        };
        for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
            let len = chunk.min(g.x.n - n0);
            let c4 = len * per_sample;
            let (b, bt) = (gy.with_size(g.c_out, c4), gyt.with_size(c4, g.c_out));
            let pooled = (grad_p, indices);
            self.pool.record_backward_packed(pass.rec, pooled, (n0, len), (&b, &bt))?;
            // grad_W^T (K, C_out) (+)= col (K, columns) @ grad_y^T (columns, C_out).
            let a = match &x_flat {
                None => col_t.with_size(k, c4),
                Some(x_flat) => {
                    let pooled = Some(self.pooled);
                    tiled::im2col_operand(
                        conv,
                        ctx,
                        pass.rec,
                        x_flat,
                        Some(&col_t),
                        n0,
                        len,
                        pooled,
                    )?
                }
            };
            let epilogue = Epilogue { accumulate: i > 0, ..Epilogue::to(View::dense(0, k, true)) };
            record_gemm(ctx, conv.op, pass.rec, &a, &bt, grads.grad_w, &epilogue)?;
            if let Some((gx, (w_t, grad_col))) = &data {
                let grads = (w_t, grad_col, *gx);
                tiled::data_grad_chunk(pass, grads, (&b, Some(self.pooled)), None, (n0, len))?;
            }
            if let Some((gx, taps)) = &taps {
                direct::pooled_data_grad_chunk(pass, (taps, &b, gx), self.pooled, (n0, len))?;
            }
        }
        Ok(())
    }
}
