//! The texture GEMM path (`Forward::Gemm`, `DataGrad::Col2im` / `Implicit` / `Pointwise`,
//! `WeightGrad::Gemm`, and a transposed convolution's `Adjoint` passes): the batch folded into
//! the GEMM's columns `chunk` samples at a time. On the register layout im2col writes a
//! texture first (but where the subgroup GEMMs read a pointwise convolution's x from its copy
//! in place, `Im2col::Planes`) and the data gradient goes through a grad_col texture and
//! col2im (`shaders/conv/im2col.wgsl`; a pointwise convolution's is grad_x itself, its B
//! grad_y's copy read in place where `DataGrad::Pointwise`); on the workgroup layout the GEMM
//! gathers im2col, and for stride 1 the data gradient's operand, itself
//! (`shaders/shared/im2col.wgsl`).

use super::ConvPlan;
use super::plan::{ConvIo, Pass, Pooling, dispatch};
use super::select::{DataGrad, Im2col};
use crate::kernel::{Recorder, Shader, WG, texture_entry};
use crate::ops::activation::Act;
use crate::ops::check_u32;
use crate::ops::gemm::pack::{View, record_pack};
use crate::ops::gemm::tiled::{
    Epilogue, PoolEpilogue, reads_planes, reads_transposed_a, record_gemm,
};
use crate::ops::texture::{Flat, Gather, Packed};
use crate::ops::uniforms::ConvParams;
use crate::{Context, Error, Result, Tensor};

/// A texture for a packed operand of this convolution, or an error naming it.
pub(super) fn packed(
    plan: &ConvPlan,
    ctx: &Context,
    rows: usize,
    cols: usize,
    tex_rows: usize,
) -> Result<Packed> {
    Packed::new(ctx, rows, cols, tex_rows, 1).ok_or_else(|| Error::TooLarge {
        what: format!("{}'s packed GEMM operand ({rows} x {cols})", plan.op),
        bytes: (tex_rows * cols.div_ceil(4) * 16) as u64,
        limit_name: "max_texture_dimension_2d",
        limit: u64::from(ctx.limits().max_texture_dimension_2d),
    })
}

/// The texture im2col writes `chunk` samples of `cols` columns each into; `None` where the
/// GEMM gathers the columns itself.
pub(super) fn col_texture(
    plan: &ConvPlan,
    ctx: &Context,
    col: Im2col,
    chunk: usize,
    cols: usize,
) -> Result<Option<Packed>> {
    match col {
        Im2col::Implicit | Im2col::Planes => Ok(None),
        Im2col::Texture => {
            let (k, _) = plan.g.col_dims();
            packed(plan, ctx, k, chunk * cols, k.div_ceil(4) * 4).map(Some)
        }
    }
}

/// Where im2col reads x from.
pub(super) enum XSource<'t> {
    /// Its texture copy.
    Flat(Flat),
    /// The buffer itself, for a pointwise convolution on an im2col texture whose sample
    /// planes are whole 256-byte rows: texture copies put each sample's channel planes in
    /// place, with no kernel and no copy of x in between.
    Planes(&'t Tensor),
    /// Its texture copy, which the GEMM reads as its B operand itself ([`Im2col::Planes`]).
    Operand(Flat),
}

/// x's source for the im2col operand `col` of this plan (see [`XSource`]).
pub(super) fn x_source<'t>(
    plan: &ConvPlan,
    rec: &mut Recorder<'_>,
    x: &'t Tensor,
    col: Im2col,
) -> Result<XSource<'t>> {
    let (k, p) = plan.g.col_dims();
    let planes = col == Im2col::Texture
        && plan.g.is_pointwise()
        && p.is_multiple_of(64)
        && k.is_multiple_of(4)
        && x.buffer().usage().contains(wgpu::BufferUsages::COPY_SRC);
    if col == Im2col::Planes {
        copy_of(plan, rec, x).map(XSource::Operand)
    } else if planes {
        Ok(XSource::Planes(x))
    } else {
        copy_of(plan, rec, x).map(XSource::Flat)
    }
}

/// `t`'s texture copy, recorded.
pub(super) fn copy_of(plan: &ConvPlan, rec: &mut Recorder<'_>, t: &Tensor) -> Result<Flat> {
    Flat::copy_of(t.context(), rec, t).ok_or_else(|| {
        Error::invalid(plan.op, "no texture copy for the texture GEMM (an internal error)")
    })
}

/// The parameters of im2col over samples [n0, n0 + len), in pooled order for a pooled size.
fn im2col_params(
    plan: &ConvPlan,
    n0: usize,
    len: usize,
    pooled: Option<[usize; 2]>,
) -> Result<ConvParams> {
    let (_, p) = plan.g.col_dims();
    let cols = pooled.map_or(p, |[ph, pw]| ph * pw * 4);
    let total = check_u32(plan.op, "im2col columns", len * cols)?;
    let pool = pooled.map_or([0, 0], |[ph, pw]| [ph as u32, pw as u32]);
    Ok(ConvParams { pool, ..plan.g.chunk_params(n0, false, total) })
}

/// Samples [n0, n0 + len) of x's im2col matrix (K x len * columns per sample, in pooled order
/// for a pooled size) as a GEMM operand: written into `col` by im2col, or with no `col` an
/// implicit operand the workgroup layout's GEMM gathers from `x`.
#[allow(clippy::too_many_arguments)]
pub(super) fn im2col_operand(
    plan: &ConvPlan,
    ctx: &Context,
    rec: &mut Recorder<'_>,
    x: &XSource<'_>,
    col: Option<&Packed>,
    n0: usize,
    len: usize,
    pooled: Option<[usize; 2]>,
) -> Result<Packed> {
    let (k, p) = plan.g.col_dims();
    let cols = len * pooled.map_or(p, |[ph, pw]| ph * pw * 4);
    let params = im2col_params(plan, n0, len, pooled)?;
    let x = match (x, col, pooled) {
        (XSource::Flat(x), _, _) => x,
        (XSource::Planes(t), Some(col), None) => {
            let b = col.with_size(k, cols);
            let view = View::channels_by_positions(n0 * k * p, k, p);
            record_pack(ctx, plan.op, rec, t.buffer(), None, &view, &b)?;
            return Ok(b);
        }
        (XSource::Operand(x), None, None) => {
            return Ok(Packed::implicit(x, Gather::Planes, params, k, cols));
        }
        (XSource::Planes(_) | XSource::Operand(_), ..) => return Err(plan.mismatch()),
    };
    let Some(col) = col else {
        return Ok(Packed::implicit(x, Gather::Im2col, params, k, cols));
    };
    // In pooled order, kernels of stride 1 up to 7x7 have their own, one invocation per
    // window and channel (a 3x3 one reading its patch at once), 64 windows of a channel per
    // workgroup; else one invocation per texel of the texture (see im2col_texture), and a
    // pointwise convolution's reads four columns of one sample as one or two texels of x.
    let texels = (cols.div_ceil(4) as u32).div_ceil(64);
    let flat = |entry| -> Result<_> {
        let invocations = cols.div_ceil(4) as u64 * col.tex_rows as u64;
        Ok((entry, ctx.grid_1d(plan.op, invocations, WG)?))
    };
    let (entry, groups) = if pooled.is_some() && plan.g.is_plain_3x3() {
        ("im2col_3x3_pooled", [texels, plan.g.x.c as u32, 1])
    } else if pooled.is_some() && plan.g.is_plain_up_to_7x7() {
        ("im2col_pooled", [texels, plan.g.x.c as u32, 1])
    } else if pooled.is_none() && plan.g.is_pointwise() {
        flat("im2col_pointwise")?
    } else {
        flat("im2col_texture")?
    };
    let d = dispatch(Shader::ConvIm2col, entry, &params, &[], groups);
    let textures = [texture_entry(8, &col.view), texture_entry(11, &x.view)];
    ctx.record_with(rec, &d, &textures)?;
    Ok(col.with_size(k, cols))
}

/// The forward pass (`Forward::Gemm`): x's copy, then [`gemm_forward`]; im2col into `kept`
/// (a fused forward pass's texture for its backward pass) or a texture of its own.
pub(super) fn forward(
    pass: &mut Pass<'_, '_>,
    io: &ConvIo<'_>,
    (chunk, col): (usize, Im2col),
    (act, pool): (Act, Option<Pooling<'_>>),
    kept: Option<&Packed>,
) -> Result<()> {
    let plan = pass.plan;
    // A pooled im2col (a fused max-pool's order) reads the texture copy.
    let x_src = match pool {
        None => x_source(plan, pass.rec, io.x, col)?,
        Some(_) => XSource::Flat(copy_of(plan, pass.rec, io.x)?),
    };
    let cols = pool.map_or(plan.g.col_dims().1, |pl| pl.pooled[0] * pl.pooled[1] * 4);
    let col = match kept {
        Some(c) => Some(c.clone()),
        None => col_texture(plan, pass.ctx, col, chunk, cols)?,
    };
    gemm_forward(pass, (&x_src, io), chunk, (act, pool), col.as_ref())
}

/// y (C_out, chunk*P) = W (C_out, K) @ col (K, chunk*P) per chunk, written to NCHW with the bias
/// (or the folded batch norm) per channel and the clamp applied on the way out. With `pool`
/// (and a ReLU), im2col writes the columns in
/// pooled order and the GEMM max-pools each 2x2 window into y, which then has the pooled
/// shape. `x` is where im2col reads x; `col` is im2col's texture (`None`: implicit).
fn gemm_forward(
    pass: &mut Pass<'_, '_>,
    (x, io): (&XSource<'_>, &ConvIo<'_>),
    chunk: usize,
    (act, pool): (Act, Option<Pooling<'_>>),
    col: Option<&Packed>,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let p = g.col_dims().1;
    // Output values per channel and sample.
    let outs = pool.map_or(p, |pl| pl.pooled[0] * pl.pooled[1]);
    // A gathered B (x's planes) puts its chunk's first sample in the parameters A shares.
    let b_chunks = matches!(x, XSource::Operand(_)) && col.is_none() && chunk < g.x.n;
    let a = forward_weight(pass, io.w, g.smallest_chunk(chunk) * outs, b_chunks)?;
    for n0 in (0..g.x.n).step_by(chunk) {
        let len = chunk.min(g.x.n - n0);
        let pooled = pool.map(|pl| pl.pooled);
        let b = im2col_operand(plan, ctx, pass.rec, x, col, n0, len, pooled)?;
        let view = View::channels_by_positions(n0 * g.c_out * outs, g.c_out, outs);
        let pool = pool.map(|pl| PoolEpilogue {
            indices: pl.indices,
            pooled_w: pl.pooled[1],
            in_w: g.out[g.out.len() - 1],
        });
        let (bias, affine) = (io.b(), io.post.affine.is_some());
        let epilogue =
            Epilogue { bias, bias_per_row: true, affine, act, pool, ..Epilogue::to(view) };
        record_gemm(ctx, op, pass.rec, &a, &b, io.y, &epilogue)?;
    }
    Ok(())
}

/// W (C_out, K), the forward pass's A for GEMMs of at least `n_min` columns: read from W's copy
/// in place (`Gather::AlongK`, its rows along K) where K is whole texels and those GEMMs run
/// on the kernels that can ([`reads_planes`]), but not beside a B gathered chunk by chunk
/// (`b_chunks`: the parameters they share hold B's first sample, which A would take for its
/// own); packed (a pass through texture stores, MobileNetV2's training step 9 ms of them)
/// otherwise ([`weight_operand`]).
fn forward_weight(
    pass: &mut Pass<'_, '_>,
    w: &Tensor,
    n_min: usize,
    b_chunks: bool,
) -> Result<Packed> {
    let (k, c_out) = (pass.plan.g.col_dims().0, pass.plan.g.c_out);
    let in_place = k.is_multiple_of(4) && !b_chunks && reads_planes(pass.ctx, c_out, n_min, k / 4);
    weight_operand(pass, w, Gather::AlongK, in_place)
}

/// W as a GEMM operand, its rows K long: A as it lies (`Gather::AlongK`, C_out x K) or A^T's
/// columns (`Gather::Columns`, W^T: K x C_out). Read in place from W's texture copy where
/// `in_place` (the caller's rule) and the copy fits, else packed from W's view (transposed for
/// W^T). Either way steps derived from the parameters alone.
fn weight_operand(
    pass: &mut Pass<'_, '_>,
    w: &Tensor,
    gather: Gather,
    in_place: bool,
) -> Result<Packed> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (k, c_out) = (plan.g.col_dims().0, plan.g.c_out);
    let transposed = gather == Gather::Columns;
    let (rows, cols) = if transposed { (k, c_out) } else { (c_out, k) };
    if in_place && let Some(flat) = Flat::derived_of(ctx, pass.rec, w) {
        let row = check_u32(plan.op, "K", k)?;
        let params = ConvParams { input: [1, 1, row], ..bytemuck::Zeroable::zeroed() };
        return Ok(Packed::implicit(&flat, gather, params, rows, cols));
    }
    let operand = packed(plan, ctx, rows, cols, rows)?;
    let view = View::dense(0, k, transposed);
    let pack =
        |rec: &mut Recorder<'_>| record_pack(ctx, plan.op, rec, w.buffer(), None, &view, &operand);
    pass.rec.parameter_derived(pack)?;
    Ok(operand)
}

/// Both gradients (`WeightGrad::Gemm`, and `DataGrad::Col2im`, `Implicit` or `Pointwise` when
/// grad_x is wanted): grad_W^T (K, C_out) (+)= col (K, len*P) @ grad_y^T (len*P, C_out) per
/// chunk, then the data gradient.
pub(super) fn backward(
    pass: &mut Pass<'_, '_>,
    (x, w, grad_y): (&Tensor, &Tensor, &Tensor),
    (grad_x, grad_w): (Option<&Tensor>, &Tensor),
    (chunk, col): (usize, Im2col),
    data: Option<DataGrad>,
) -> Result<()> {
    let x_src = x_source(pass.plan, pass.rec, x, col)?;
    gemm_weight_grad(pass, (&x_src, grad_y, grad_w), (chunk, col))?;
    data_backward(pass, (w, grad_y, None), grad_x, data)
}

/// The data gradient on the texture GEMM (`data`, where grad_x is wanted), beside a weight
/// gradient recorded elsewhere; `gy_copy`, grad_y's texture copy where that one made it.
pub(super) fn data_backward(
    pass: &mut Pass<'_, '_>,
    (w, grad_y, gy_copy): (&Tensor, &Tensor, Option<&Flat>),
    grad_x: Option<&Tensor>,
    data: Option<DataGrad>,
) -> Result<()> {
    match (grad_x, data) {
        (Some(gx), Some(kernel)) => data_grad(pass, (w, grad_y, gy_copy, gx, None), kernel),
        (None, None) => Ok(()),
        _ => Err(pass.plan.mismatch()),
    }
}

/// The weight gradient, im2col reading x from `x`.
fn gemm_weight_grad(
    pass: &mut Pass<'_, '_>,
    (x, grad_y, grad_w): (&XSource<'_>, &Tensor, &Tensor),
    (chunk, col): (usize, Im2col),
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let (k, p) = g.col_dims();
    let cp = chunk * p;
    let col_t = col_texture(plan, ctx, col, chunk, p)?;
    let gy_t = packed(plan, ctx, cp, g.c_out, cp.div_ceil(4) * 4)?;
    for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
        let len = chunk.min(g.x.n - n0);
        let a = im2col_operand(plan, ctx, pass.rec, x, col_t.as_ref(), n0, len, None)?;
        let b = gy_t.with_size(len * p, g.c_out);
        let view = View::channels_by_positions(n0 * g.c_out * p, g.c_out, p).t();
        record_pack(ctx, op, pass.rec, grad_y.buffer(), None, &view, &b)?;
        let epilogue = Epilogue { accumulate: i > 0, ..Epilogue::to(View::dense(0, k, true)) };
        record_gemm(ctx, op, pass.rec, &a, &b, grad_w, &epilogue)?;
    }
    Ok(())
}

/// The data gradient on the texture GEMM (`DataGrad::Col2im`, `Implicit` or `Pointwise`),
/// adding `bias` per channel of grad_x (a transposed convolution's forward pass runs here);
/// `gy_copy` as in [`data_backward`].
fn data_grad(
    pass: &mut Pass<'_, '_>,
    (w, grad_y, gy_copy, grad_x, bias): GradX<'_>,
    kernel: DataGrad,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let gy_flat = |rec: &mut Recorder<'_>| match gy_copy {
        Some(flat) => Ok(flat.clone()),
        None => copy_of(plan, rec, grad_y),
    };
    match kernel {
        // grad_x (C_in, len*P) = W^T (C_in, C_out) @ grad_y's channel planes, which the
        // subgroup GEMM reads in place (`B_PLANES` 1, as the forward pass reads x's), per chunk.
        DataGrad::Pointwise { chunk } => {
            let (_, p) = g.col_dims();
            let w_t = transposed_weight(pass, w, g.smallest_chunk(chunk) * p)?;
            let gy = gy_flat(pass.rec)?;
            for n0 in (0..g.x.n).step_by(chunk) {
                let len = chunk.min(g.x.n - n0);
                let total = check_u32(op, "positions", len * p)?;
                // grad_y's channels are the planes B's rows run over (A's, if W is read in
                // place, are W's rows: record_gemm takes its `input` from A's parameters).
                let params = ConvParams { n_offset: n0 as u32, ..g.swapped_params(total) };
                let b = Packed::implicit(&gy, Gather::Planes, params, g.c_out, len * p);
                let view = View::channels_by_positions(n0 * g.x.c * p, g.x.c, p);
                let epilogue = Epilogue { bias, bias_per_row: true, ..Epilogue::to(view) };
                record_gemm(ctx, op, pass.rec, &w_t, &b, grad_x, &epilogue)?;
            }
            Ok(())
        }
        // grad_x (C_in, len*P_in) = W as (C_in, C_out * taps) @ the implicit gather of grad_y
        // (`dgrad_texel`), per chunk, on the workgroup GEMM layout: no grad_col, no col2im.
        DataGrad::Implicit { chunk } => {
            let gy_flat = gy_flat(pass.rec)?;
            let taps: usize = g.kernel.iter().product();
            let kt = g.c_out * taps;
            let p_in: usize = g.x.size.iter().product();
            let a = packed(plan, ctx, g.x.c, kt, g.x.c)?;
            let view = View::channels_by_positions(0, g.x.c, taps);
            record_pack(ctx, op, pass.rec, w.buffer(), None, &view, &a)?;
            for n0 in (0..g.x.n).step_by(chunk) {
                let len = chunk.min(g.x.n - n0);
                let total = check_u32(op, "input positions", len * p_in)?;
                let params = g.chunk_params(n0, false, total);
                let b = Packed::implicit(&gy_flat, Gather::Dgrad, params, kt, len * p_in);
                let view = View::channels_by_positions(n0 * g.x.c * p_in, g.x.c, p_in);
                let epilogue = Epilogue { bias, bias_per_row: true, ..Epilogue::to(view) };
                record_gemm(ctx, op, pass.rec, &a, &b, grad_x, &epilogue)?;
            }
            Ok(())
        }
        DataGrad::Col2im { chunk } => {
            let (_, p) = g.col_dims();
            // A pointwise convolution's grad_col is grad_x itself: the GEMM writes it there.
            let fewest = g.smallest_chunk(chunk) * p;
            let (w_t, grad_col) = if g.is_pointwise() {
                (transposed_weight(pass, w, fewest)?, None)
            } else {
                let (w_t, grad_col) = data_grad_textures(pass, w, (chunk * p, fewest))?;
                (w_t, Some(grad_col))
            };
            let gy = packed(plan, ctx, g.c_out, chunk * p, g.c_out.div_ceil(4) * 4)?;
            for n0 in (0..g.x.n).step_by(chunk) {
                let len = chunk.min(g.x.n - n0);
                let b = gy.with_size(g.c_out, len * p);
                let view = View::channels_by_positions(n0 * g.c_out * p, g.c_out, p);
                record_pack(ctx, op, pass.rec, grad_y.buffer(), None, &view, &b)?;
                if let Some(grad_col) = &grad_col {
                    let grads = (&w_t, grad_col, grad_x);
                    data_grad_chunk(pass, grads, (&b, None), bias, (n0, len))?;
                } else {
                    let view = View::channels_by_positions(n0 * g.x.c * p, g.x.c, p);
                    let epilogue = Epilogue { bias, bias_per_row: true, ..Epilogue::to(view) };
                    record_gemm(ctx, op, pass.rec, &w_t, &b, grad_x, &epilogue)?;
                }
            }
            Ok(())
        }
        _ => Err(Error::invalid(op, "not a texture-GEMM kernel (an internal error)")),
    }
}

/// [`data_grad`]'s tensors: W, grad_y, grad_y's texture copy if one was made, grad_x, and a
/// bias to add.
type GradX<'t> = (&'t Tensor, &'t Tensor, Option<&'t Flat>, &'t Tensor, Option<&'t Tensor>);

/// The data gradient's textures: W^T (K, C_out) ([`transposed_weight`]) and grad_col (K,
/// `cols`), which the GEMM writes and col2im reads; `fewest`, the columns of the chunk with the
/// fewest.
pub(super) fn data_grad_textures(
    pass: &mut Pass<'_, '_>,
    w: &Tensor,
    (cols, fewest): (usize, usize),
) -> Result<(Packed, Packed)> {
    let w_t = transposed_weight(pass, w, fewest)?;
    let k = pass.plan.g.col_dims().0;
    Ok((w_t, packed(pass.plan, pass.ctx, k, cols, k)?))
}

/// W^T (K, C_out), the data gradient's A for GEMMs of at least `n_min` columns: W's rows, K
/// long, are its columns, so the subgroup GEMMs read it from W's copy in place
/// ([`Gather::Columns`]) where K and C_out are whole texels and they run
/// ([`reads_transposed_a`]); packed (a transposing pass through texture stores) otherwise
/// ([`weight_operand`]).
fn transposed_weight(pass: &mut Pass<'_, '_>, w: &Tensor, n_min: usize) -> Result<Packed> {
    let (k, c_out) = (pass.plan.g.col_dims().0, pass.plan.g.c_out);
    let whole = k.is_multiple_of(4) && c_out.is_multiple_of(4);
    let in_place = whole && reads_transposed_a(pass.ctx, k, n_min, c_out / 4);
    weight_operand(pass, w, Gather::Columns, in_place)
}

/// One chunk of the data gradient: grad_col = W^T @ `b` (grad_y's C_out x columns, in pooled
/// order for a pooled size), then col2im (adding `bias`) into samples [n0, n0 + len) of
/// grad_x. `grads` is (W^T, grad_col, grad_x).
pub(super) fn data_grad_chunk(
    pass: &mut Pass<'_, '_>,
    (w_t, grad_col, grad_x): (&Packed, &Packed, &Tensor),
    (b, pooled): (&Packed, Option<[usize; 2]>),
    bias: Option<&Tensor>,
    (n0, len): (usize, usize),
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let g = &plan.g;
    let epilogue =
        Epilogue { texture: Some(grad_col), ..Epilogue::to(View::dense(0, b.cols, false)) };
    record_gemm(ctx, plan.op, pass.rec, w_t, b, grad_x, &epilogue)?;
    // Four inputs of a row per invocation with dilation 1 (col2im_texture4), else one.
    let quads = g.dilation.iter().all(|&d| d == 1) && !g.is_plain_3x3();
    let width = g.x.size.last().copied().unwrap_or(1).max(1);
    let positions = if quads { g.x_plane() / width * width.div_ceil(4) } else { g.x_plane() };
    let total = check_u32(plan.op, "input elements", len * positions)?;
    let pool = pooled.map_or([0, 0], |[ph, pw]| [ph as u32, pw as u32]);
    let params = ConvParams { pool, ..g.chunk_params(n0, bias.is_some(), total) };
    let entry = match (g.is_plain_3x3(), quads) {
        (true, _) => "col2im_3x3",
        (false, true) => "col2im_texture4",
        (false, false) => "col2im_texture",
    };
    let buffers = [(3, bias.map_or(&ctx.inner.dummy, Tensor::buffer)), (4, grad_x.buffer())];
    let grid = ctx.grid_1d(plan.op, u64::from(total), WG)?;
    let d = dispatch(Shader::ConvIm2col, entry, &params, &buffers, grid);
    ctx.record_with(pass.rec, &d, &[texture_entry(10, &grad_col.view)])
}

/// A transposed convolution's forward pass: its adjoint's data gradient for "grad_y" = x,
/// plus the bias.
pub(super) fn adjoint_forward(
    pass: &mut Pass<'_, '_>,
    io: &ConvIo<'_>,
    kernel: DataGrad,
) -> Result<()> {
    let plan = pass.plan;
    let adjoint = plan.adjoint()?;
    data_grad(&mut pass.on(adjoint), (io.w, io.x, None, io.y, io.bias), kernel)
}

/// A transposed convolution's gradients: its adjoint's input is grad_y and its output x, so
/// grad_W is the adjoint's weight gradient and grad_x its forward pass (no bias), both from
/// one texture copy of grad_y.
pub(super) fn adjoint_backward(
    pass: &mut Pass<'_, '_>,
    (x, w, grad_y): (&Tensor, &Tensor, &Tensor),
    (grad_x, grad_w): (Option<&Tensor>, &Tensor),
    (chunk, col): (usize, Im2col),
) -> Result<()> {
    let plan = pass.plan;
    let adjoint = plan.adjoint()?;
    let gy_src = x_source(adjoint, pass.rec, grad_y, col)?;
    gemm_weight_grad(&mut pass.on(adjoint), (&gy_src, x, grad_w), (chunk, col))?;
    if let Some(gx) = grad_x {
        let io = ConvIo::new(grad_y, w, None, gx);
        let col = col_texture(adjoint, pass.ctx, col, chunk, adjoint.g.col_dims().1)?;
        let act = Act::NONE;
        gemm_forward(&mut pass.on(adjoint), (&gy_src, &io), chunk, (act, None), col.as_ref())?;
    }
    Ok(())
}
