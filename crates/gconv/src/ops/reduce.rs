//! Sums that gradients need (`reduce.wgsl`): per-channel sums (bias gradients) and sums over a
//! leading batch dimension (gradients of broadcast operands). Recorded into the caller's
//! encoder, as parts of a larger backward pass.

use super::check_u32;
use crate::kernel::{Dispatch, Recorder, Shader, WG};
use crate::{Context, Error, Result, Tensor};

/// out[c] = sum over n and s of x viewed as (n, c, s), where s = x.numel() / (n * c).
pub(crate) fn record_channel_sum(
    ctx: &Context,
    enc: &mut Recorder<'_>,
    x: &Tensor,
    n: usize,
    c: usize,
    out: &Tensor,
) -> Result<()> {
    channel_sum(ctx, enc, x, None, n, c, out)
}

/// out[c] = sum over n and s of x viewed as (n, c, s) where `mask` (i32, x's shape) is >= 0.
pub(crate) fn record_channel_sum_where(
    ctx: &Context,
    enc: &mut Recorder<'_>,
    x: &Tensor,
    mask: &Tensor,
    n: usize,
    c: usize,
    out: &Tensor,
) -> Result<()> {
    channel_sum(ctx, enc, x, Some(mask), n, c, out)
}

fn channel_sum(
    ctx: &Context,
    enc: &mut Recorder<'_>,
    x: &Tensor,
    mask: Option<&Tensor>,
    n: usize,
    c: usize,
    out: &Tensor,
) -> Result<()> {
    const OP: &str = "channel_sum";
    let s = x.numel() / (n * c).max(1);
    let params = [
        check_u32(OP, "batch", n)?,
        check_u32(OP, "channels", c)?,
        check_u32(OP, "positions", s)?,
        0,
    ];
    let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let gx = c.min(max);
    let gy = c.div_ceil(gx);
    if gy > max {
        return Err(Error::invalid(OP, format!("{c} channels exceed the dispatch limit")));
    }
    ctx.record(
        enc,
        &Dispatch {
            shader: Shader::Reduce,
            entry: if mask.is_some() { "channel_sum_where" } else { "channel_sum" },
            constants: &[],
            params: bytemuck::cast_slice(&params),
            buffers: &[
                (1, x.buffer()),
                (2, out.buffer()),
                (3, mask.map_or(&ctx.inner.dummy, Tensor::buffer)),
            ],
            workgroups: [gx as u32, gy as u32, 1],
            ranges: &[],
        },
    )
}

/// out[j] = sum over b of x viewed as (batch, out.numel()).
pub(crate) fn record_batch_sum(
    ctx: &Context,
    enc: &mut Recorder<'_>,
    x: &Tensor,
    batch: usize,
    out: &Tensor,
) -> Result<()> {
    const OP: &str = "batch_sum";
    let len = check_u32(OP, "elements", out.numel())?;
    let params = [check_u32(OP, "batch", batch)?, 0, 0, len];
    ctx.record(
        enc,
        &Dispatch {
            shader: Shader::Reduce,
            entry: "batch_sum",
            constants: &[("WG", f64::from(WG))],
            params: bytemuck::cast_slice(&params),
            buffers: &[(1, x.buffer()), (2, out.buffer())],
            workgroups: ctx.grid_1d(OP, u64::from(len), WG)?,
            ranges: &[],
        },
    )
}
