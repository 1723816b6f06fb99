//! Sums that gradients need (`reduce.wgsl`): per-channel sums (bias gradients) and sums over a
//! leading batch dimension (gradients of broadcast operands). Recorded into the caller's
//! encoder, as parts of a larger backward pass.

use super::check_u32;
use crate::kernel::{Dispatch, Recorder, Shader, WG, texture_entry};
use crate::ops::slices::{sample_chunk, slice};
use crate::ops::texture::{Flat, MAX_LOOP_ITERATIONS};
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
    // The masked sum from flat texture copies, read a texel at a time, where they fit and
    // each lane's loop stays short (see reduce.wgsl's channel_sum_where_tex).
    if let Some(m) = mask.filter(|_| n.div_ceil(WG as usize) * (s / 4 + 2) <= MAX_LOOP_ITERATIONS) {
        let x_flat = Flat::new(ctx, x.numel()).filter(|f| f.can_copy(x.buffer()));
        let m_flat = Flat::new_i32(ctx, m.numel()).filter(|f| f.can_copy(m.buffer()));
        if let (Some(x_flat), Some(m_flat)) = (x_flat, m_flat) {
            return channel_sum_tex(ctx, enc, (x, &x_flat), (m, &m_flat), [n, c, s], out);
        }
    }
    // A linear layer's bias (s = 1) over few rows: one invocation per channel (`batch_sum`),
    // where a workgroup of 256 per channel idles most lanes through its barrier (LeNet-5's fc1,
    // 120 channels of 64 rows: 0.78 ms on lavapipe).
    let fits = x.numel() as u64 * 4 <= ctx.binding_limit();
    if mask.is_none() && s == 1 && n <= MAX_LOOP_ITERATIONS && fits && out.numel() == c {
        return record_batch_sum(ctx, enc, x, n, out);
    }
    let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let gx = c.min(max);
    let gy = c.div_ceil(gx);
    if gy > max {
        return Err(Error::invalid(OP, format!("{c} channels exceed the dispatch limit")));
    }
    // x (and its mask) larger than a storage binding: a chunk of samples at a time, the later
    // chunks adding to `out`.
    let per = c * s;
    let chunk = sample_chunk(ctx, n, n.max(1), &[per]).ok_or_else(|| Error::TooLarge {
        what: format!("{OP}: one sample of {per} values"),
        bytes: per as u64 * 4,
        limit_name: "max_storage_buffer_binding_size",
        limit: ctx.binding_limit(),
    })?;
    for (i, n0) in (0..n.max(1)).step_by(chunk).enumerate() {
        let len = chunk.min(n - n0);
        let params = [
            check_u32(OP, "batch", len)?,
            check_u32(OP, "channels", c)?,
            check_u32(OP, "positions", s)?,
            u32::from(i > 0),
        ];
        let range = slice(ctx, OP, x, (n0 * per, len * per))?;
        let ranges: Vec<(u32, u64, u64)> = match (range, mask) {
            (Some((o, size)), Some(_)) => vec![(1, o, size), (3, o, size)],
            (Some((o, size)), None) => vec![(1, o, size)],
            (None, _) => vec![],
        };
        ctx.record(
            enc,
            &Dispatch::new(
                Shader::Reduce,
                if mask.is_some() { "channel_sum_where" } else { "channel_sum" },
                bytemuck::cast_slice(&params),
                &[
                    (1, x.buffer()),
                    (2, out.buffer()),
                    (3, mask.map_or(&ctx.inner.dummy, Tensor::buffer)),
                ],
                [gx as u32, gy as u32, 1],
            )
            .ranges(&ranges),
        )?;
    }
    Ok(())
}

/// The masked sum from flat texture copies of x and the mask (see reduce.wgsl's
/// channel_sum_where_tex).
fn channel_sum_tex(
    ctx: &Context,
    enc: &mut Recorder<'_>,
    (x, x_flat): (&Tensor, &Flat),
    (m, m_flat): (&Tensor, &Flat),
    [n, c, s]: [usize; 3],
    out: &Tensor,
) -> Result<()> {
    const OP: &str = "channel_sum";
    let params = [
        check_u32(OP, "batch", n)?,
        check_u32(OP, "channels", c)?,
        check_u32(OP, "positions", s)?,
        check_u32(OP, "elements", x.numel())?,
    ];
    x_flat.record_copy(enc, x.buffer());
    m_flat.record_copy(enc, m.buffer());
    let textures = [texture_entry(4, &x_flat.view), texture_entry(5, &m_flat.view)];
    ctx.record_with(
        enc,
        &Dispatch::linear(
            ctx,
            OP,
            (Shader::Reduce, "channel_sum_where_tex"),
            bytemuck::cast_slice(&params),
            &[(2, out.buffer())],
            c as u64 * u64::from(WG),
        )?,
        &textures,
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
        &Dispatch::linear(
            ctx,
            OP,
            (Shader::Reduce, "batch_sum"),
            bytemuck::cast_slice(&params),
            &[(1, x.buffer()), (2, out.buffer())],
            u64::from(len),
        )?,
    )
}
