//! Tensors larger than one storage binding, by samples: a kernel that handles a batch in
//! chunks binds only the chunk's slice of such a tensor, so the chunk must fit a binding and
//! start at an offset the device can bind at. [`sample_chunk`] picks such chunks (for the
//! selection), [`sample_slice`] binds them (for the strategies).

use crate::{Context, Error, Result, Tensor};

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// At most `chunk` samples per launch such that a slice of that many samples of every
/// tensor (of `per_sample` elements each, f32 or i32) fits one binding and every chunk's
/// slice starts at an aligned offset: `chunk` itself when each whole tensor of `n` samples
/// fits a binding (kernels then bind them whole); `None` when not even one aligned block of
/// samples fits.
pub(crate) fn sample_chunk(
    ctx: &Context,
    n: usize,
    chunk: usize,
    per_sample: &[usize],
) -> Option<usize> {
    let limit = ctx.binding_limit() as usize;
    let largest = 4 * per_sample.iter().copied().max().unwrap_or(0).max(1);
    if n.saturating_mul(largest) <= limit {
        return Some(chunk);
    }
    let align = ctx.limits().min_storage_buffer_offset_alignment.max(4) as usize;
    // Samples per step so that step * 4 * p is a multiple of the alignment for every p.
    let step = per_sample.iter().fold(1, |step, &p| {
        let need = align / gcd(align, 4 * p.max(1));
        step / gcd(step, need) * need
    });
    let fitting = (limit / largest).min(chunk) / step * step;
    (fitting > 0).then_some(fitting)
}

/// How a kernel binds elements `[start, start + count)` of `t`: the whole tensor where it fits
/// one binding (`None`: the kernel indexes from `start`), else that slice only, as (byte
/// offset, byte size) (the kernel indexes from 0). [`sample_chunk`]'s chunks make slices that
/// fit and are aligned; anything else is an internal error.
pub(crate) fn slice(
    ctx: &Context,
    op: &'static str,
    t: &Tensor,
    (start, count): (usize, usize),
) -> Result<Option<(u64, u64)>> {
    let limit = ctx.binding_limit();
    if (t.numel() as u64) * 4 <= limit {
        return Ok(None);
    }
    let (offset, size) = ((start * 4) as u64, (count * 4) as u64);
    let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment.max(4));
    if !offset.is_multiple_of(align) || size > limit || start + count > t.numel() {
        return Err(Error::invalid(
            op,
            format!(
                "elements {start}..{} of a tensor larger than a binding do not make an aligned \
                 slice that fits (an internal error)",
                start + count
            ),
        ));
    }
    Ok(Some((offset, size)))
}
