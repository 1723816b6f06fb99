//! The storage-buffer GEMM (`shaders/gemm/simple.wgsl`): the fallback where the texture GEMM
//! does not apply (see `Gemm::kernel`), with no packing pass.

use super::Gemm;
use crate::kernel::{Dispatch, Recorder, Shader};
use crate::ops::check_u32;
use crate::ops::texture::MAX_LOOP_ITERATIONS;
use crate::ops::uniforms::bias_mode;
use crate::{Context, Error, Result, Tensor};

/// gemm_forward's tile: 8x8 per invocation, a workgroup of 8x8 invocations.
const TILE: u32 = 64;
/// The large variant's tile (16x16 per invocation).
const LARGE_TILE: u32 = 128;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
    c_batch_stride: u32,
    k_batches: u32,
    a_kb_stride: u32,
    b_kb_stride: u32,
    bias_mode: u32,
    relu: u32,
    accumulate: u32,
}

/// Records `g` into `c` on gemm_forward or gemm_forward_large, its K sum in pieces that keep
/// every invocation's loop within [`MAX_LOOP_ITERATIONS`].
pub(super) fn record(
    g: &Gemm<'_>,
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    c: &Tensor,
) -> Result<()> {
    let u = |what: &str, v: usize| check_u32(op, what, v);
    let mut params = GemmParams {
        m: u("M", g.m)?,
        n: u("N", g.n)?,
        k: u("K", g.k)?,
        lda: u("lda", g.lda)?,
        ldb: u("ldb", g.ldb)?,
        ldc: u("ldc", g.ldc)?,
        a_offset: u("offset", g.offsets.0)?,
        b_offset: u("offset", g.offsets.1)?,
        c_offset: u("offset", g.offsets.2)?,
        a_batch_stride: u("stride", g.batch_strides.0)?,
        b_batch_stride: u("stride", g.batch_strides.1)?,
        c_batch_stride: u("stride", g.batch_strides.2)?,
        k_batches: u("batches", g.k_batches)?,
        a_kb_stride: u("stride", g.kb_strides.0)?,
        b_kb_stride: u("stride", g.kb_strides.1)?,
        bias_mode: bias_mode(g.bias.is_some(), g.bias_per_row, false),
        relu: g.relu as u32,
        accumulate: g.accumulate as u32,
    };
    // The large tile only where there is enough work to keep every core busy with it.
    let large = g.m >= 128 && g.n >= 128;
    let (entry, tile) =
        if large { ("gemm_forward_large", LARGE_TILE) } else { ("gemm_forward", TILE) };
    let max = ctx.limits().max_compute_workgroups_per_dimension;
    let groups = [(g.n as u32).div_ceil(tile), (g.m as u32).div_ceil(tile), g.batch as u32];
    if groups.iter().any(|&g| g > max) {
        return Err(Error::invalid(
            op,
            format!(
                "matrix sizes (batch {}, M {}, N {}) exceed the dispatch limit {max}",
                g.batch, g.m, g.n
            ),
        ));
    }
    let bias = g.bias.map_or(&ctx.inner.dummy, Tensor::buffer);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let buffers = [(1, g.a.buffer()), (2, g.b.buffer()), (3, bias), (4, c.buffer())];
    let pieces = k_pieces(g);
    if pieces.len() > 1 && g.relu {
        return Err(Error::invalid(op, "a ReLU epilogue over a split K (an internal error)"));
    }
    // Later pieces add to what the first wrote, with no second bias.
    for (i, &(kb0, kbs, k0, ks)) in pieces.iter().enumerate() {
        let a_k = if g.trans.0 { g.lda } else { 1 };
        let b_k = if g.trans.1 { 1 } else { g.ldb };
        params.a_offset = u("offset", g.offsets.0 + kb0 * g.kb_strides.0 + k0 * a_k)?;
        params.b_offset = u("offset", g.offsets.1 + kb0 * g.kb_strides.1 + k0 * b_k)?;
        params.k_batches = u("batches", kbs)?;
        params.k = u("K", ks)?;
        if i > 0 {
            params.bias_mode = 0;
            params.accumulate = 1;
        }
        ctx.record(
            rec,
            &Dispatch::new(
                Shader::GemmSimple,
                entry,
                bytemuck::bytes_of(&params),
                &buffers,
                groups,
            )
            .constants(&[("TRANS_A", flag(g.trans.0)), ("TRANS_B", flag(g.trans.1))])
            .ranges(&g.ranges),
        )?;
    }
    Ok(())
}

/// The K sum in pieces (first block, blocks, first k, k count) whose loops each stay within
/// [`MAX_LOOP_ITERATIONS`] per invocation: whole blocks where one fits, else pieces of one
/// block.
fn k_pieces(g: &Gemm<'_>) -> Vec<(usize, usize, usize, usize)> {
    let (cap, k, blocks) = (MAX_LOOP_ITERATIONS, g.k, g.k_batches);
    if blocks * (k + 1) <= cap {
        return vec![(0, blocks, 0, k)];
    }
    if k < cap {
        let per = cap / (k + 1);
        return (0..blocks).step_by(per).map(|kb| (kb, per.min(blocks - kb), 0, k)).collect();
    }
    (0..blocks)
        .flat_map(|kb| (0..k).step_by(cap).map(move |k0| (kb, 1, k0, cap.min(k - k0))))
        .collect()
}
