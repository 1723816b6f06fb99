//! The backward pass of a fused conv -> ReLU -> 2x2 max-pool (stride 2) up to the
//! convolution's output gradient, written straight into the textures the convolution's
//! gradient kernels read (`shaders/pool/unpool_2x2.wgsl`): the un-pooled gradient is never
//! written to a buffer.

use super::PoolPlan;
use crate::kernel::{Dispatch, Recorder, Shader, texture_entry};
use crate::ops::slices::slice;
use crate::ops::texture::{Flat, Packed};
use crate::ops::{check_u32, context_of};
use crate::{DType, Error, Result, Tensor};

impl PoolPlan {
    /// The backward pass of a fused conv -> ReLU -> 2x2 max-pool up to the convolution's output
    /// for subgroup/conv_3x3_sg.wgsl's `conv_3x3_sg_r16` and `wgrad_3x3_sg`: the output
    /// gradient of samples [n0, n0 + len) in rows of ceil(W / 4) texels of `gy_rows` (see
    /// `max_pool_2x2_backward_spatial`).
    pub(crate) fn record_backward_spatial(
        &self,
        rec: &mut Recorder<'_>,
        pooled: (&Tensor, &Tensor),
        (n0, len): (usize, usize),
        gy_rows: &Flat,
    ) -> Result<()> {
        self.check_backward_packed(pooled.0, pooled.1)?;
        let (c, [h, w]) = (self.xs.c, [self.xs.size[0], self.xs.size[1]]);
        if n0 + len > self.xs.n || gy_rows.elems() < 4 * len * c * h * w.div_ceil(4) {
            return Err(self.unpool_mismatch());
        }
        let invocations = len * c.div_ceil(4) * h.div_ceil(2) * w.div_ceil(4);
        let entry = "max_pool_2x2_backward_spatial";
        let textures = [texture_entry(9, &gy_rows.view)];
        self.record_unpool(rec, entry, pooled, (n0, len, invocations), &textures)
    }

    /// The same into the packed operands of the convolution's gradient GEMMs, in im2col's
    /// pooled order: `gy` (C x 4 * windows) and its transpose `gyt` (see
    /// `max_pool_2x2_backward_packed`).
    pub(crate) fn record_backward_packed(
        &self,
        rec: &mut Recorder<'_>,
        pooled: (&Tensor, &Tensor),
        (n0, len): (usize, usize),
        (gy, gyt): (&Packed, &Packed),
    ) -> Result<()> {
        let [ph, pw] = self.check_backward_packed(pooled.0, pooled.1)?;
        let (c, windows) = (self.xs.c, len * ph * pw);
        let lined_up = gy.rows == c && gy.cols == 4 * windows && gyt.rows == 4 * windows;
        if n0 + len > self.xs.n || !lined_up || gyt.cols != c {
            return Err(self.unpool_mismatch());
        }
        let entry = "max_pool_2x2_backward_packed";
        let textures = [texture_entry(9, &gy.view), texture_entry(10, &gyt.view)];
        let invocations = windows * c.div_ceil(4);
        self.record_unpool(rec, entry, pooled, (n0, len, invocations), &textures)
    }

    fn unpool_mismatch(&self) -> Error {
        Error::invalid(self.op, "unpooled gradient shapes do not line up (an internal error)")
    }

    /// One of the 2x2 max-pool's backward kernels into textures, `invocations` of them over
    /// samples [n0, n0 + len), from the pooled gradient and the argmax.
    fn record_unpool(
        &self,
        rec: &mut Recorder<'_>,
        entry: &'static str,
        (grad_y, indices): (&Tensor, &Tensor),
        (n0, len, invocations): (usize, usize, usize),
        textures: &[wgpu::BindGroupEntry<'_>],
    ) -> Result<()> {
        let op = self.op;
        let ctx = context_of(op, &[grad_y])?;
        let total = check_u32(op, "positions", invocations)?;
        let mut params = self.params(total)?;
        params.planes = check_u32(op, "planes", len * self.xs.c)?;
        // A pooled gradient (and argmax) larger than a binding: the chunk's slice.
        let per = grad_y.numel() / self.xs.n.max(1);
        let range = slice(&ctx, op, grad_y, (n0 * per, len * per))?;
        params.sample_offset = check_u32(op, "samples", if range.is_some() { 0 } else { n0 })?;
        let params = bytemuck::bytes_of(&params);
        let buffers = [(4, grad_y.buffer()), (6, indices.buffer())];
        let ranges: Vec<(u32, u64, u64)> =
            range.map(|(o, size)| vec![(4, o, size), (6, o, size)]).unwrap_or_default();
        let unpool = (Shader::Unpool2x2, entry);
        let d =
            Dispatch::linear(&ctx, op, unpool, params, &buffers, u64::from(total))?.ranges(&ranges);
        ctx.record_with(rec, &d, textures)
    }

    /// Checks the pooled gradient and indices of a fused conv -> ReLU -> 2x2 max-pool's
    /// backward pass; the pooled (height, width).
    pub(crate) fn check_backward_packed(
        &self,
        grad_y: &Tensor,
        indices: &Tensor,
    ) -> Result<[usize; 2]> {
        let out = self.output_shape();
        self.check(grad_y, "grad_output", &out, DType::F32)?;
        self.check_indices(grad_y.context(), indices, &out)?;
        self.window_2x2().ok_or_else(|| {
            Error::invalid(
                self.op,
                "the packed backward pass needs a 2x2 window (an internal error)",
            )
        })
    }
}
