//! The one place a convolution's kernels are chosen. A function per pass ([`forward`],
//! [`data_grad`], [`weight_grad`]) turns the shapes, the context (strategy, adapter, GEMM
//! layout, subgroups, limits) and what the pass reads into a choice, logs it under
//! `GCONV_LOG=debug` and returns it; `plan.rs` records the strategy module it names. (A
//! texture GEMM then picks its own entry point by layout and shape, in
//! `gemm::tiled::record_gemm`.)
//!
//! The rules, in order:
//! - `ConvStrategy::Direct` forces the direct kernels; they also run what no faster kernel
//!   takes (grouped and transposed convolutions the others do not cover).
//! - 3x3 convolutions of stride 1 over h and w that are grouped or have at most 4 input
//!   channels (a GEMM's K too short to pay for im2col) run on the 3x3 tiles; other depthwise
//!   ones on the depthwise kernels. On GPUs a plain forward pass of either runs on the direct
//!   kernel instead (no texture copies, four outputs of a row per invocation); a forward pass fused with
//!   ReLU and a 2x2 max-pool keeps the tiles, whose epilogue pools. Their backward passes stay
//!   (on CPU adapters a depthwise one's data gradient, padding up to 2, on the forward strips
//!   over grad_y with the kernel flipped: `direct::depthwise_data_grad_by_strips`).
//! - Convolutions of one group run on the texture GEMM, `chunk` samples per GEMM, where its
//!   textures fit; else im2col into a storage buffer and the storage-buffer GEMM.
//! - On CPU adapters with 8-lane subgroups, 2-D 3x3 convolutions of stride 1 and padding 1 (one
//!   group) run on the subgroup kernels instead, which gather from rows of texels with no
//!   im2col (the forward pass also for the first layers the tiles would take), also where x is
//!   too large for the texture GEMM's copy: they read it a chunk at a time.
//! - There too, 3x3 convolutions of stride 2 and padding 1 (one group) run their forward pass
//!   on the subgroup kernel (its stride-2 columns); their backward passes stay on the GEMM.
//! - There too, pointwise convolutions whose positions are whole texels skip im2col: the
//!   subgroup GEMMs read the forward pass's B from x's copy (`Im2col::Planes`: more than 64
//!   columns in every chunk, whole texels of input channels), the data gradient's from
//!   grad_y's (`DataGrad::Pointwise`, the same rule over output channels), and the weight
//!   gradient's operands from x's and grad_y's (`WeightGrad::Pointwise`, more than 64
//!   channels on one side).
//! - And the forward pass of a 2-D convolution of one group and no dilation over at most
//!   4 input channels (an image: ResNet's 7x7 stride-2 stem) that the subgroup 3x3 kernel
//!   does not take otherwise runs on it over x's rows split by phase
//!   (`subgroup_3x3::forward_rows`): im2col would write C_in * taps values per output
//!   position, which costs more there than the GEMM.
//! - Chunks of the subgroup kernels also keep each chunk's slice of x, y and their gradients
//!   within a storage binding, at aligned offsets (`ops/slices.rs`), where the whole tensors
//!   are larger than one.
//! - A transposed convolution of one group whose adjoint runs on the texture GEMM runs as that
//!   adjoint's passes: its forward pass is the adjoint's data gradient, its data gradient the
//!   adjoint's forward pass, its weight gradient the adjoint's with x and grad_y swapped.
//! - A first layer fused with ReLU and a 2x2 max-pool (at most 4 input channels), of stride 1
//!   and a kernel up to 7x7 but not 3x3, on the register layout, runs its forward pass from
//!   the patches under the windows (`Forward::Pooled`) and, with no data gradient, takes its
//!   weight gradient from the pooled gradient (`WeightGrad::Pooled`): LeNet-5's conv1. A fused
//!   layer with a data gradient there, up to 5 wide and 32 output channels, reads the packed
//!   unpooled gradient's rows for it (`DataGrad::PooledRows`): LeNet-5's conv2.

use std::fmt::Debug;

pub(crate) use super::choice::{
    Columns, DataGrad, Direct, Forward, Im2col, Keep, Reads, Source, WeightGrad,
};
use super::geometry::{quads, tiles_4x4};
use super::subgroup_3x3::RowsGeometry;
use super::{ConvPlan, im2col};
use crate::ops::gemm;
use crate::ops::slices::sample_chunk;
use crate::ops::texture::{Flat, MAX_LOOP_ITERATIONS, Packed, TEXTURE_BUDGET, fits};
use crate::{Context, ConvStrategy, GemmLayout, GemmStrategy, Result};

/// The forward pass's kernel, logged. `x_fits`: see [`Reads`]; `fused`: with ReLU and a 2x2
/// max-pool in the same kernel.
pub(crate) fn forward(
    plan: &ConvPlan,
    ctx: &Context,
    x_fits: bool,
    fused: bool,
) -> Result<Forward> {
    let choice = choose_forward(plan, ctx, x_fits, fused)?;
    let pass = if fused { "forward + relu + max_pool 2x2" } else { "forward" };
    log(plan, ctx, (pass, ""), &choice);
    Ok(choice)
}

/// The data gradient's kernel, logged.
pub(crate) fn data_grad(
    plan: &ConvPlan,
    ctx: &Context,
    source: Source,
    reads: Reads,
) -> Result<DataGrad> {
    let choice = choose_data_grad(plan, ctx, source, reads)?;
    log(plan, ctx, ("data gradient", source.name()), &choice);
    Ok(choice)
}

/// The weight gradient's kernel, logged.
pub(crate) fn weight_grad(
    plan: &ConvPlan,
    ctx: &Context,
    source: Source,
    reads: Reads,
) -> Result<WeightGrad> {
    let choice = choose_weight_grad(plan, ctx, source, reads)?;
    log(plan, ctx, ("weight gradient", source.name()), &choice);
    Ok(choice)
}

/// The forward pass's kernel in a plan (`fused`: with ReLU and a 2x2 max-pool), unlogged:
/// plan buffers can always be copied into textures that fit.
fn plan_forward(plan: &ConvPlan, ctx: &Context, fused: bool) -> Result<Forward> {
    choose_forward(plan, ctx, Flat::fits(ctx, plan.g.x.n * plan.g.x_plane()), fused)
}

/// Whether a plan fuses this convolution with a following ReLU and 2x2 max-pool: where the
/// fused forward pass has a kernel.
pub(crate) fn fuses_relu_pool(plan: &ConvPlan, ctx: &Context) -> Result<bool> {
    Ok(matches!(
        plan_forward(plan, ctx, true)?,
        Forward::Gemm { .. }
            | Forward::Direct(Direct::Tiles3x3)
            | Forward::Subgroup3x3 { .. }
            | Forward::Pooled
    ))
}

/// Whether the forward pass's kernel takes a fused epilogue (`plan::Post`: batch norm in
/// evaluation folded in, and a clamp): the texture GEMM, the subgroup 3x3 kernel, and the
/// direct, depthwise and tile kernels of a convolution (not a transposed one), all of which
/// end in `conv_out4` or the GEMMs' `row_affine`.
pub(crate) fn fuses_post(plan: &ConvPlan, ctx: &Context) -> Result<bool> {
    Ok(takes_post(plan, plan_forward(plan, ctx, false)?))
}

/// Whether forward kernel `kernel` takes a fused epilogue (see [`fuses_post`]).
pub(crate) fn takes_post(plan: &ConvPlan, kernel: Forward) -> bool {
    !plan.transposed
        && matches!(
            kernel,
            Forward::Gemm { .. }
                | Forward::Subgroup3x3 { .. }
                | Forward::SubgroupRows { .. }
                | Forward::Direct(_)
        )
}

/// What a fused forward pass keeps for its backward pass: x's rows of texels where both run
/// on the subgroup kernels, the pooled-order im2col texture where both run on the texture
/// GEMM's register layout; each only when the whole batch is one chunk.
pub(crate) fn relu_pool_scratch(plan: &ConvPlan, ctx: &Context) -> Result<Option<Keep>> {
    let n = plan.g.x.n;
    Ok(match (family(plan, ctx, true), choose_forward(plan, ctx, true, true)?) {
        (Family::Gemm { .. }, Forward::Subgroup3x3 { chunk }) if chunk == n => Some(Keep::Rows),
        (_, Forward::Gemm { chunk, col: Im2col::Texture }) if chunk == n => Some(Keep::Col),
        _ => None,
    })
}

/// Whether the forward pass (`fused`: with ReLU and a 2x2 max-pool) packs a 3x3 weight for
/// the subgroup kernel (through the storage scratch, `subgroup_3x3::pack_elems`).
pub(crate) fn packs_3x3(plan: &ConvPlan, ctx: &Context, fused: bool) -> Result<bool> {
    Ok(matches!(plan_forward(plan, ctx, fused)?, Forward::Subgroup3x3 { .. }))
}

/// Whether the passes use im2col's storage-buffer scratch ([`im2col::chunk`]).
pub(crate) fn uses_col_scratch(plan: &ConvPlan, ctx: &Context) -> bool {
    family(plan, ctx, true) == Family::Im2col
}

/// `GCONV_LOG=debug`: the pass, its shapes, and the choice.
fn log(plan: &ConvPlan, ctx: &Context, (pass, source): (&str, &str), choice: &dyn Debug) {
    if ctx.log_debug() {
        let g = &plan.g;
        eprintln!(
            "gconv: {} {pass}{source}: x (N {}, C {}, {:?}) -> (C {}, {:?}), groups {}: \
             {choice:?}",
            plan.op, g.x.n, g.x.c, g.x.size, g.c_out, g.out, g.groups
        );
    }
}

/// The kernel family the strategy and the shapes allow; each pass refines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Direct(Direct),
    Im2col,
    Gemm {
        chunk: usize,
    },
    /// The subgroup kernels where x has no texture copy (too large): they read x a chunk at a
    /// time; im2col where they do not fit either.
    Subgroup {
        chunk: usize,
    },
}

fn family(plan: &ConvPlan, ctx: &Context, x_fits: bool) -> Family {
    let strategy = ctx.conv_strategy();
    if strategy == ConvStrategy::Direct {
        return Family::Direct(Direct::PerOutput { textures: false });
    }
    let g = &plan.g;
    let fast = matches!(strategy, ConvStrategy::Auto | ConvStrategy::Tiled);
    // Grouped 3x3 convolutions, and those with so few input channels that a GEMM's K
    // (C_in * 9) is too short to pay for im2col, run on the tiles.
    if fast && (g.groups > 1 || g.x.c <= 4) && fits_tiles_3x3(plan) {
        return Family::Direct(Direct::Tiles3x3);
    }
    if fast && !plan.transposed && g.groups > 1 && g.groups == g.x.c && g.groups == g.c_out {
        // The kernels' index spaces (rows x width / 4 of y and of x) stay below 2^24.
        let y_quads = quads(&g.output_shape());
        if y_quads < 1 << 24 && quads(&g.x.out_shape(g.x.c, &g.x.size)) < 1 << 24 {
            return Family::Direct(Direct::Depthwise);
        }
    }
    if plan.transposed || g.groups != 1 {
        return Family::Direct(Direct::PerOutput { textures: strategy != ConvStrategy::Im2col });
    }
    match gemm_chunk(plan, ctx) {
        // The texture GEMM reads x through a texture copy.
        Some(chunk) if x_fits => Family::Gemm { chunk },
        Some(chunk) if subgroup_3x3(plan, ctx) => Family::Subgroup { chunk },
        _ => Family::Im2col,
    }
}

/// Samples per texture GEMM, where the strategy allows it and its textures fit.
fn gemm_chunk(plan: &ConvPlan, ctx: &Context) -> Option<usize> {
    let allowed = matches!(ctx.conv_strategy(), ConvStrategy::Auto | ConvStrategy::Tiled)
        && ctx.gemm_strategy() != GemmStrategy::Simple;
    let g = &plan.g;
    // The batch is folded into the GEMM's columns, `chunk` samples at a time: chunk * P
    // columns must fit a texture's height (the weight gradient's transposed operand).
    let max = ctx.limits().max_texture_dimension_2d as usize;
    let (k, p) = g.col_dims();
    if !allowed || p > max || k.div_ceil(4) * 4 > max || g.c_out.div_ceil(4) * 4 > max {
        return None;
    }
    // col2im_texture's index space (chunk * C_in * input positions) stays below 2^24, where
    // its divmod24 is exact, and the textures (chunk * P columns of K rows, rounded up to 4)
    // within TEXTURE_BUDGET.
    let per_sample = g.x_plane();
    let texture_per_sample = k.div_ceil(4) * 4 * p * 4;
    if per_sample >= 1 << 24 || texture_per_sample > TEXTURE_BUDGET {
        return None;
    }
    let chunk = (max / p)
        .min((1 << 24) / per_sample)
        .min(TEXTURE_BUDGET / texture_per_sample)
        .min(g.x.n)
        .max(1);
    Some(chunk)
}

/// Whether the 3x3 tile kernels can run this convolution: not transposed, a 3x3 kernel over h
/// and w with stride 1, dilation 1 and padding up to 2 there (any taps along d; the
/// backward-input tiles correlate with padding 2 - pad), and index spaces below 2^24.
fn fits_tiles_3x3(plan: &ConvPlan) -> bool {
    let g = &plan.g;
    let k = &g.kernel;
    if plan.transposed || k.len() < 2 || k[k.len() - 2..] != [3, 3] {
        return false;
    }
    let hw = |v: &[usize], max: usize| v[v.len() - 2..].iter().all(|&e| e <= max);
    let ones = |v: &[usize]| hw(v, 1);
    let tiles = |c: usize, size: &[usize]| tiles_4x4(&g.x.out_shape(c, size));
    ones(&g.stride)
        && ones(&g.dilation)
        && hw(&g.pad, 2)
        && tiles(g.c_out, &g.out) < 1 << 24
        && tiles(g.x.c, &g.x.size) < 1 << 24
}

fn im2col_operand(ctx: &Context) -> Im2col {
    match ctx.gemm_layout() {
        GemmLayout::Workgroup => Im2col::Implicit,
        _ => Im2col::Texture,
    }
}

/// The forward pass's im2col operand over `chunk`-sample chunks: x in place
/// ([`Im2col::Planes`]) where [`planes_as_b`] allows, with x's C_in channels as K;
/// [`im2col_operand`] otherwise.
fn forward_operand(plan: &ConvPlan, ctx: &Context, chunk: usize) -> Im2col {
    let g = &plan.g;
    if planes_as_b(plan, ctx, chunk, g.c_out, g.x.c) { Im2col::Planes } else { im2col_operand(ctx) }
}

/// Whether a pointwise convolution's GEMM C (m x chunk * P) = A (m x k) B, over `chunk`-sample
/// chunks, reads B from a tensor's channel planes in place (k of them: x's in the forward pass,
/// grad_y's in the data gradient) through gemm_in_place.wgsl's `b_rows`: positions whole
/// texels (a column block within one sample), k whole texels (no row of B past the channels),
/// and more than 64 columns in every chunk (the last one's fewest), which keeps N on those
/// kernels.
fn planes_as_b(plan: &ConvPlan, ctx: &Context, chunk: usize, m: usize, k: usize) -> bool {
    let g = &plan.g;
    let (_, p) = g.col_dims();
    g.is_pointwise()
        && p.is_multiple_of(4)
        && k.is_multiple_of(4)
        && gemm::tiled::reads_planes(ctx, m, g.smallest_chunk(chunk) * p, k / 4)
}

fn choose_forward(plan: &ConvPlan, ctx: &Context, x_fits: bool, fused: bool) -> Result<Forward> {
    if let Some(adjoint) = plan.adjoint.as_deref().filter(|_| !fused) {
        if let Family::Gemm { chunk } = family(adjoint, ctx, true) {
            // The adjoint's data gradient reads this x as its grad_y.
            return Ok(Forward::Adjoint(gemm_data_grad(adjoint, ctx, chunk, x_fits)));
        }
    }
    let mut family = family(plan, ctx, x_fits);
    if let Family::Direct(Direct::Depthwise | Direct::Tiles3x3) = family
        && !ctx.is_cpu_adapter()
        && !fused
    {
        family = Family::Direct(Direct::PerOutput { textures: false });
    }
    Ok(match family {
        Family::Gemm { .. } if fused && x_fits && pooled_rows(plan, ctx) => Forward::Pooled,
        Family::Gemm { chunk } => match subgroup_forward(plan, ctx, chunk, fused) {
            Some(chunk) => Forward::Subgroup3x3 { chunk },
            None => match subgroup_rows(plan, ctx, chunk, fused) {
                Some(chunk) => Forward::SubgroupRows { chunk },
                None => Forward::Gemm { chunk, col: forward_operand(plan, ctx, chunk) },
            },
        },
        Family::Direct(Direct::Tiles3x3) => match subgroup_forward(plan, ctx, plan.g.x.n, fused) {
            Some(chunk) => Forward::Subgroup3x3 { chunk },
            None => Forward::Direct(Direct::Tiles3x3),
        },
        Family::Subgroup { chunk } => match subgroup_forward(plan, ctx, chunk, fused) {
            Some(chunk) => Forward::Subgroup3x3 { chunk },
            None => Forward::Im2col { chunk: im2col::chunk(plan, ctx)?.0 },
        },
        Family::Im2col => Forward::Im2col { chunk: im2col::chunk(plan, ctx)?.0 },
        Family::Direct(kernel) => Forward::Direct(kernel),
    })
}

fn choose_data_grad(
    plan: &ConvPlan,
    ctx: &Context,
    source: Source,
    reads: Reads,
) -> Result<DataGrad> {
    if let Source::Pooled { kept_rows } = source {
        return Ok(match pooled(plan, ctx, kept_rows, reads) {
            Pooled::Subgroup3x3 { chunk } => DataGrad::Subgroup3x3 { chunk },
            Pooled::Gemm { chunk } if pooled_data_rows(plan) => DataGrad::PooledRows { chunk },
            Pooled::Gemm { chunk } => DataGrad::Col2im { chunk },
            Pooled::Tiles3x3 | Pooled::Rows | Pooled::Unpooled => DataGrad::Unpooled,
        });
    }
    if let Some((chunk, col)) = adjoint_gemm(plan, ctx, reads) {
        return Ok(DataGrad::Adjoint { chunk, col });
    }
    Ok(match family(plan, ctx, reads.x_fits) {
        Family::Gemm { chunk } => match subgroup_backward(plan, ctx, chunk, reads) {
            Some(chunk) => DataGrad::Subgroup3x3 { chunk },
            None => gemm_data_grad(plan, ctx, chunk, reads.grad_y_fits),
        },
        Family::Subgroup { chunk } => match subgroup_backward(plan, ctx, chunk, reads) {
            Some(chunk) => DataGrad::Subgroup3x3 { chunk },
            None => DataGrad::Im2col { chunk: im2col::chunk(plan, ctx)?.0 },
        },
        Family::Im2col => DataGrad::Im2col { chunk: im2col::chunk(plan, ctx)?.0 },
        Family::Direct(kernel) => DataGrad::Direct(kernel),
    })
}

fn choose_weight_grad(
    plan: &ConvPlan,
    ctx: &Context,
    source: Source,
    reads: Reads,
) -> Result<WeightGrad> {
    if let Source::Pooled { kept_rows } = source {
        return Ok(match pooled(plan, ctx, kept_rows, reads) {
            Pooled::Subgroup3x3 { chunk } => WeightGrad::Subgroup3x3 { chunk },
            Pooled::Gemm { chunk } => WeightGrad::Gemm { chunk, col: Im2col::Texture },
            Pooled::Tiles3x3 => WeightGrad::Direct(Direct::Tiles3x3),
            Pooled::Rows => WeightGrad::Pooled,
            Pooled::Unpooled => WeightGrad::Unpooled,
        });
    }
    if let Some((chunk, col)) = adjoint_gemm(plan, ctx, reads) {
        return Ok(WeightGrad::Adjoint { chunk, col });
    }
    Ok(match family(plan, ctx, reads.x_fits) {
        Family::Gemm { chunk } => match subgroup_backward(plan, ctx, chunk, reads) {
            Some(chunk) => WeightGrad::Subgroup3x3 { chunk },
            None => {
                match (subgroup_wgrad_s2(plan, ctx, chunk), pointwise_columns(plan, ctx, reads)) {
                    (Some(chunk), _) => WeightGrad::SubgroupRows { chunk },
                    (None, Some(b)) => WeightGrad::Pointwise { chunk, b },
                    (None, None) => WeightGrad::Gemm { chunk, col: im2col_operand(ctx) },
                }
            }
        },
        Family::Subgroup { chunk } => match subgroup_backward(plan, ctx, chunk, reads) {
            Some(chunk) => WeightGrad::Subgroup3x3 { chunk },
            None => WeightGrad::Im2col { chunk: im2col::chunk(plan, ctx)?.0 },
        },
        Family::Im2col => WeightGrad::Im2col { chunk: im2col::chunk(plan, ctx)?.0 },
        Family::Direct(kernel) => WeightGrad::Direct(kernel),
    })
}

/// Which tensor a pointwise convolution's weight gradient reads in place ([`Columns`]): where
/// positions are whole texels and both tensors have texture copies, grad_y if the GEMM over
/// C_in x C_out runs on a kernel that reads its operands in place, else x if the one over
/// C_out x C_in does.
fn pointwise_columns(plan: &ConvPlan, ctx: &Context, reads: Reads) -> Option<Columns> {
    let g = &plan.g;
    let (_, p) = g.col_dims();
    if !g.is_pointwise() || !p.is_multiple_of(4) || !reads.x_fits || !reads.grad_y_fits {
        return None;
    }
    let in_place = |m, n| gemm::tiled::reads_planes(ctx, m, n, p / 4);
    if in_place(g.x.c, g.c_out) {
        Some(Columns::GradY)
    } else if in_place(g.c_out, g.x.c) {
        Some(Columns::X)
    } else {
        None
    }
}

/// A transposed convolution's adjoint on the texture GEMM: its chunk and im2col operand,
/// where the adjoint's passes can read grad_y's texture copy.
fn adjoint_gemm(plan: &ConvPlan, ctx: &Context, reads: Reads) -> Option<(usize, Im2col)> {
    let adjoint = plan.adjoint.as_deref()?;
    match family(adjoint, ctx, true) {
        Family::Gemm { chunk } if reads.grad_y_fits => Some((chunk, im2col_operand(ctx))),
        _ => None,
    }
}

/// The data gradient on the texture GEMM: an implicit GEMM over grad_y's gather on the
/// workgroup layout for stride 1 (with stride s most gathered values would be zeros, s^d
/// times the multiply-adds), where W viewed as (C_in, C_out * taps) fits a texture and grad_y
/// a texture copy; on the register layout a pointwise convolution's reading grad_y's copy in
/// place ([`DataGrad::Pointwise`]) where [`planes_as_b`] allows, with grad_y's C_out channels
/// as K; a GEMM into grad_col and col2im otherwise.
fn gemm_data_grad(plan: &ConvPlan, ctx: &Context, chunk: usize, grad_y_fits: bool) -> DataGrad {
    let g = &plan.g;
    if grad_y_fits && planes_as_b(plan, ctx, chunk, g.x.c, g.c_out) {
        return DataGrad::Pointwise { chunk };
    }
    let kt = g.c_out * g.kernel.iter().product::<usize>();
    let implicit = ctx.gemm_layout() == GemmLayout::Workgroup
        && g.stride.iter().all(|&s| s == 1)
        && fits(ctx, kt.div_ceil(4), g.x.c)
        && grad_y_fits;
    if implicit { DataGrad::Implicit { chunk } } else { DataGrad::Col2im { chunk } }
}

/// The kernels for a fused ReLU + max-pool's pooled gradient.
enum Pooled {
    /// The subgroup kernels, from the gradient unpooled into rows of texels.
    Subgroup3x3 { chunk: usize },
    /// The texture GEMM's register layout, the gradient unpooled into its packed operands.
    Gemm { chunk: usize },
    /// The pooled weight-gradient tiles (a first layer: no data gradient).
    Tiles3x3,
    /// `pooled_backward_weight` (a first layer: no data gradient).
    Rows,
    /// None: unpool into the convolution's output gradient first.
    Unpooled,
}

fn pooled(plan: &ConvPlan, ctx: &Context, kept_rows: bool, reads: Reads) -> Pooled {
    match family(plan, ctx, reads.x_fits) {
        // The pooled tiles bind the pooled gradient whole; the subgroup kernels take it a
        // chunk at a time.
        Family::Direct(Direct::Tiles3x3) if !reads.data => {
            let g = &plan.g;
            let pooled = g.x.n * g.c_out * (g.out[0] / 2) * (g.out[1] / 2);
            match subgroup_backward(plan, ctx, g.x.n, reads) {
                Some(chunk) if pooled as u64 * 4 > ctx.binding_limit() => {
                    Pooled::Subgroup3x3 { chunk }
                }
                _ => Pooled::Tiles3x3,
            }
        }
        Family::Gemm { .. } if !reads.data && pooled_rows(plan, ctx) => Pooled::Rows,
        Family::Gemm { chunk } if ctx.gemm_layout() != GemmLayout::Workgroup => {
            let sub = subgroup_binding_chunk(plan, ctx, chunk).filter(|&c| {
                let kept = kept_rows && c == plan.g.x.n;
                subgroup_3x3(plan, ctx) && subgroup_backward_fits(plan, ctx, c, reads, kept)
            });
            match sub {
                Some(chunk) => Pooled::Subgroup3x3 { chunk },
                None => Pooled::Gemm { chunk },
            }
        }
        Family::Subgroup { chunk } => match subgroup_backward(plan, ctx, chunk, reads) {
            Some(chunk) => Pooled::Subgroup3x3 { chunk },
            None => Pooled::Unpooled,
        },
        _ => Pooled::Unpooled,
    }
}

/// Whether a fused convolution runs its forward pass on `pooled_forward` (x in a texture copy)
/// and, where no data gradient is wanted, its weight gradient on `pooled_backward_weight` (from
/// the pooled gradient): no im2col and no GEMM. On the register layout, a first layer (at
/// most 4 input channels, an image) of one group, 2-D, stride 1 and dilation 1, its kernel up
/// to 7x7 but not 3x3 (the tiles' or the subgroup kernels'), and windows and output planes
/// below 2^24 (their divmod24).
fn pooled_rows(plan: &ConvPlan, ctx: &Context) -> bool {
    let g = &plan.g;
    let windows = g.x.n * g.c_out.max(g.x.c) * (g.out[0] / 2) * (g.out[1] / 2);
    ctx.gemm_layout() != GemmLayout::Workgroup
        && !plan.transposed
        && g.groups == 1
        && g.x.c <= 4
        && g.is_plain_up_to_7x7()
        && !g.is_plain_3x3()
        && windows < 1 << 24
        && g.out.iter().product::<usize>() < 1 << 24
}

/// Whether a fused convolution on the texture GEMM's register layout takes its data gradient
/// from the packed unpooled gradient a row at a time (`pooled_backward_input`): 2-D, stride 1,
/// dilation 1, a kernel up to 5 wide and 7 high but not 3x3 (`col2im_3x3`'s), and at most 32
/// output channels, where grad_col's GEMM (K = C_out) is bound by its stores. Its loops run
/// C_out * taps iterations.
fn pooled_data_rows(plan: &ConvPlan) -> bool {
    let g = &plan.g;
    let taps: usize = g.kernel.iter().product();
    g.is_plain_up_to_7x7()
        && !g.is_plain_3x3()
        && g.kernel[1] <= 5
        && g.c_out <= 32
        && g.c_out * taps <= MAX_LOOP_ITERATIONS
}

/// Whether the subgroup 3x3 kernels (`conv_3x3_sg_r16`, `wgrad_3x3_sg`) can run this
/// convolution: 2-D 3x3 with stride 1, padding 1, no dilation and one group, on the register
/// layout with 8-lane subgroups, their K loops within lavapipe's limit and the weight's
/// kernels below 2^24 (`pack_conv_3x3`'s index). Their textures must
/// fit too (see the callers).
fn subgroup_3x3(plan: &ConvPlan, ctx: &Context) -> bool {
    let g = &plan.g;
    ctx.uses_subgroups()
        && ctx.gemm_layout() != GemmLayout::Workgroup
        && g.is_plain_3x3()
        && g.pad == [1, 1]
        && g.groups == 1
        && 3 * g.c_out.max(g.x.c) <= MAX_LOOP_ITERATIONS
        && g.c_out * g.x.c < 1 << 24
}

/// Whether the subgroup 3x3 kernel runs this forward pass of stride 2 (`COL_STRIDE` 2, from
/// x's plain rows): 2-D, 3x3, stride 2, padding 1, no dilation, one group.
fn subgroup_3x3_s2(plan: &ConvPlan, ctx: &Context) -> bool {
    let g = &plan.g;
    ctx.uses_subgroups()
        && ctx.gemm_layout() != GemmLayout::Workgroup
        && g.out.len() == 2
        && (g.kernel == [3, 3] && g.stride == [2, 2] && g.dilation == [1, 1] && g.pad == [1, 1])
        && g.groups == 1
        && 3 * g.c_out.max(g.x.c) <= MAX_LOOP_ITERATIONS
        && g.c_out * g.x.c < 1 << 24
}

/// Samples per chunk for the subgroup kernels, up to `chunk`, such that `channels` channels of
/// a chunk in rows of texels fit one texture; `None` where they do not apply.
fn subgroup_chunk(plan: &ConvPlan, ctx: &Context, chunk: usize, channels: usize) -> Option<usize> {
    if !subgroup_3x3(plan, ctx) {
        return None;
    }
    rows_chunk(plan, ctx, chunk, 4 * channels * plan.g.row_texels(1))
}

/// `chunk`, halved until `elems` values a sample fit one texture and a chunk's slices a
/// binding ([`subgroup_binding_chunk`]); `None` where one sample does not fit.
fn rows_chunk(plan: &ConvPlan, ctx: &Context, chunk: usize, elems: usize) -> Option<usize> {
    let mut chunk = chunk.min(plan.g.x.n).max(1);
    while !Flat::fits(ctx, chunk * elems) {
        if chunk == 1 {
            return None;
        }
        chunk = chunk.div_ceil(2);
    }
    subgroup_binding_chunk(plan, ctx, chunk)
}

/// `chunk`, or fewer samples where x, y or the pooled y (and their gradients) are larger than
/// a storage binding: the subgroup kernels then bind each chunk's slice.
fn subgroup_binding_chunk(plan: &ConvPlan, ctx: &Context, chunk: usize) -> Option<usize> {
    let g = &plan.g;
    let plane: usize = g.out.iter().product();
    let pooled = g.c_out * (g.out[0] / 2) * (g.out[1] / 2);
    sample_chunk(ctx, g.x.n, chunk, &[g.x_plane(), g.c_out * plane, pooled.max(1)])
}

/// The subgroup forward pass's chunk: the packed weight and x's rows of texels must fit.
/// Fused, the chunk is the texture GEMM's (or the batch, for the tiles' layers): its rows may
/// be kept for the backward pass.
fn subgroup_forward(plan: &ConvPlan, ctx: &Context, chunk: usize, fused: bool) -> Option<usize> {
    let g = &plan.g;
    let chunk = if fused {
        (subgroup_3x3(plan, ctx) && Flat::fits(ctx, 4 * g.row_texels(chunk) * g.x.c))
            .then_some(chunk)?;
        subgroup_binding_chunk(plan, ctx, chunk)?
    } else if subgroup_3x3_s2(plan, ctx) {
        rows_chunk(plan, ctx, chunk, 4 * g.x.c * g.x_row_texels(1))?
    } else {
        subgroup_chunk(plan, ctx, chunk, g.x.c)?
    };
    Packed::fits(ctx, 12 * g.x.c, g.c_out, 1).then_some(chunk)
}

/// The chunk of a first layer's forward pass on the subgroup kernel's phase rows, up to
/// `chunk`: a 2-D convolution of one group and no dilation over at most 4 input channels (an
/// image), not fused with a max-pool, where its textures fit. There im2col writes C_in * taps
/// values for every output position and the GEMM's K is short: the writes, not the
/// multiply-adds, cost the time (ResNet's 7x7 stem).
fn subgroup_rows(plan: &ConvPlan, ctx: &Context, chunk: usize, fused: bool) -> Option<usize> {
    let g = &plan.g;
    let plain = g.kernel.len() == 2 && g.groups == 1 && g.dilation == [1, 1] && g.x.c <= 4;
    if fused
        || plan.transposed
        || !plain
        || !ctx.uses_subgroups()
        || ctx.gemm_layout() == GemmLayout::Workgroup
    {
        return None;
    }
    let rows = RowsGeometry::new(g);
    let cols = 4 * g.kernel[0] * rows.channels;
    if cols / 4 > MAX_LOOP_ITERATIONS || !Packed::fits(ctx, cols, g.c_out, 1) {
        return None;
    }
    rows_chunk(plan, ctx, chunk, 4 * rows.texels(1))
}

/// The chunk of a stride-2 3x3 weight gradient on `wgrad_3x3_sg`, where x's and grad_y's rows
/// of texels fit.
fn subgroup_wgrad_s2(plan: &ConvPlan, ctx: &Context, chunk: usize) -> Option<usize> {
    if !subgroup_3x3_s2(plan, ctx) {
        return None;
    }
    let g = &plan.g;
    let per_sample = (g.x_row_texels(1) * g.x.c).max(g.row_texels(1) * g.c_out);
    rows_chunk(plan, ctx, chunk, 4 * per_sample)
}

/// The subgroup backward pass's chunk, where its textures fit.
fn subgroup_backward(plan: &ConvPlan, ctx: &Context, chunk: usize, reads: Reads) -> Option<usize> {
    let g = &plan.g;
    let chunk = subgroup_chunk(plan, ctx, chunk, g.x.c.max(g.c_out))?;
    subgroup_backward_fits(plan, ctx, chunk, reads, false).then_some(chunk)
}

/// Whether the subgroup backward pass's textures fit for chunks of `chunk` samples: x's rows
/// (unless `kept`), grad_y's, and for a data gradient the packed weight.
fn subgroup_backward_fits(
    plan: &ConvPlan,
    ctx: &Context,
    chunk: usize,
    reads: Reads,
    kept: bool,
) -> bool {
    let g = &plan.g;
    let texels = g.row_texels(chunk);
    (kept || Flat::fits(ctx, 4 * texels * g.x.c))
        && Flat::fits(ctx, 4 * texels * g.c_out)
        && (!reads.data || Packed::fits(ctx, 12 * g.c_out, g.x.c, 1))
}
