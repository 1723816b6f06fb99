//! The CPU-adapter strategy for 3x3 convolutions (stride 1, padding 1, one group) on 8-lane
//! subgroups (`shaders/subgroup/conv_3x3_sg.wgsl`, `wgrad_3x3_sg.wgsl`): no im2col, no
//! grad_col, no col2im. x, or grad_y, is laid out in rows of texels (`pack_texel_rows`: each
//! image row in ceil(W / 4) texels, zeros past W; images one or two wide two or four samples
//! to a row, `pack_sample_rows`), so that one fetch of texels t - 1, t and t + 1 of a source
//! row gives all three kw taps of output texel t by swizzles. `conv_3x3_sg_r16` is the forward
//! pass (weight packed, bias and ReLU or the fused ReLU + 2x2 max-pool in its epilogue) and,
//! with the weight flipped over grad_y, the data gradient; `wgrad_3x3_sg` the weight gradient.
//! The same kernels run 3x3 convolutions of stride 2 (the forward pass and, [`weight_grad_rows`],
//! the weight gradient, from x's plain rows), and a first layer's forward pass of any other
//! kernel, stride and padding ([`forward_rows`]) from x's rows split by phase. `select.rs`
//! chooses them; nothing else enters. Remove this file, its shaders and the `Subgroup3x3` /
//! `SubgroupRows` choices, and every convolution still runs.

use super::ConvPlan;
use super::geometry::Geometry;
use super::plan::{self, ConvIo, Pass, Pooling};
use crate::kernel::{Copy, Dispatch, Recorder, Shader, WG, texture_entry};
use crate::ops::activation::Act;
use crate::ops::check_u32;
use crate::ops::gemm::tiled::{TexGemmParams, WORKGROUPS_WANTED};
use crate::ops::pool::PoolPlan;
use crate::ops::slices::slice;
use crate::ops::texture::{Flat, MAX_LOOP_ITERATIONS, Packed};
use crate::ops::uniforms::{ConvParams, bias_mode};
use crate::{Context, Error, Result, Tensor};

/// Where the backward pass takes the output gradient from.
pub(super) enum GradSource<'a> {
    /// The convolution's own output gradient.
    Plain(&'a Tensor),
    /// A fused 2x2 max-pool's gradient and argmax, unpooled into rows of texels by
    /// `pool/unpool_2x2.wgsl`'s `max_pool_2x2_backward_spatial`.
    Pooled { pool: &'a PoolPlan, grad_p: &'a Tensor, indices: &'a Tensor },
}

/// x in rows of texels for `chunk` samples: the plan's (`kept`: filled by a fused forward pass,
/// read by its backward pass) where it holds the whole batch, or a texture of the call's own.
fn x_rows<'a>(
    plan: &ConvPlan,
    ctx: &Context,
    chunk: usize,
    kept: Option<&'a Flat>,
) -> Result<XRows<'a>> {
    let g = &plan.g;
    if let Some(kept) = kept.filter(|_| chunk == g.x.n) {
        return Ok(XRows::Kept(kept));
    }
    let elems = 4 * g.x_row_texels(chunk) * g.x.c;
    Flat::new(ctx, elems).map(XRows::Own).ok_or_else(|| no_texture(plan))
}

/// x's rows of texels: kept by the plan, or the call's own (which the backward pass fills).
enum XRows<'a> {
    Kept(&'a Flat),
    Own(Flat),
}

impl std::ops::Deref for XRows<'_> {
    type Target = Flat;

    fn deref(&self) -> &Flat {
        match self {
            XRows::Kept(f) => f,
            XRows::Own(f) => f,
        }
    }
}

fn no_texture(plan: &ConvPlan) -> Error {
    Error::invalid(plan.op, "the subgroup 3x3 kernels' textures do not fit (an internal error)")
}

/// The forward pass on `conv_3x3_sg_r16`: per chunk, x into rows of texels (`pack_texel_rows`)
/// that the kernel gathers its shifted taps from, with the weight packed flipped; the bias (or
/// the folded batch norm) and the clamp, or ReLU with the 2x2 max-pool `pool`, in its
/// epilogue. `kept`: x's rows to fill for a fused backward pass; `col`: the plan's storage
/// scratch, which the weight goes through on its way into its texture ([`pack_elems`]).
pub(super) fn forward(
    pass: &mut Pass<'_, '_>,
    io: &ConvIo<'_>,
    (act, pool): (Act, Option<Pooling<'_>>),
    chunk: usize,
    (kept, col): (Option<&Flat>, Option<&Tensor>),
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let a = Packed::new(ctx, g.c_out, 12 * g.x.c, g.c_out, 1).ok_or_else(|| no_texture(plan))?;
    let x_rows = x_rows(plan, ctx, chunk, kept)?;
    // The kernel's view: rows are output channels, K runs over input channels.
    let params = ConvParams { c_in: g.c_out as u32, c_out: g.x.c as u32, ..g.params(false, 0) };
    let scratch = plan::scratch(ctx, col, pack_elems(g.c_out, g.x.c))?;
    pass.rec.parameter_derived(|rec| {
        record_pack_3x3(ctx, op, rec, (io.w, &scratch, &a), params, true)
    })?;
    if let Ok(mut kept) = plan.forward_pack.lock() {
        *kept = Some((io.w.buffer().clone(), a.clone()));
    }
    // A fused max-pool's epilogue and the rows it keeps take one sample per row.
    let samples = if pool.is_some() { 1 } else { row_samples(g) };
    for n0 in (0..g.x.n).step_by(chunk) {
        let len = chunk.min(g.x.n - n0);
        let x = (io.x, n0, len, g.x.c);
        record_sample_rows(ctx, op, pass.rec, x, params, (&x_rows, samples))?;
        let conv = ConvParams { n_offset: n0 as u32, ..params };
        let (src, out, bias) = ((&*x_rows, samples), io.y, io.b());
        let pool = pool.map(|pl| (pl.pooled, pl.indices));
        let affine = io.post.affine.is_some();
        let (margin, flipped) = (false, false);
        let c = Conv3x3 { a: &a, flipped, src, margin, out, conv, len, bias, affine, act, pool };
        record_conv_3x3(ctx, op, pass.rec, &c)?;
    }
    Ok(())
}

/// The forward pass of another 2-D convolution of one group and no dilation (a first layer:
/// `select.rs` says which) on `conv_3x3_sg_r16`: per chunk, x's rows split by phase into source
/// channels of three taps each (`pack_phase_rows`), with the weight packed to match
/// (`pack_conv_rows`); the bias (or the folded batch norm) and the clamp in its epilogue.
pub(super) fn forward_rows(
    pass: &mut Pass<'_, '_>,
    io: &ConvIo<'_>,
    act: Act,
    chunk: usize,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let layer = g.params(false, 0);
    let rows = RowsGeometry::new(g);
    let (k_c, k_h) = (rows.channels, g.kernel[0]);
    let a = Packed::new(ctx, g.c_out, 4 * k_h * k_c, g.c_out, 1).ok_or_else(|| no_texture(plan))?;
    let src = Flat::new(ctx, 4 * rows.texels(chunk)).ok_or_else(|| no_texture(plan))?;
    // A texel per (output channel, source channel, kernel row).
    let pack = ("pack_conv_rows", io.w, (0, io.w.numel()), g.c_out * k_c * k_h);
    pass.rec.parameter_derived(|rec| record_pack_rows(ctx, op, rec, pack, layer, &a.view))?;
    // The kernel's view: rows are output channels, K runs over (source channel, kernel row).
    let view = ConvParams {
        c_in: g.c_out as u32,
        c_out: check_u32(op, "phase channels", k_c)?,
        input: [1, g.x.size[0] as u32, 4 * rows.width as u32],
        output: [1, g.out[0] as u32, g.out[1] as u32],
        kernel: [1, k_h as u32, 3],
        stride: [1, g.stride[0] as u32, 1],
        pad: [0, g.pad[0] as u32, 0],
        ..layer
    };
    for n0 in (0..g.x.n).step_by(chunk) {
        let len = chunk.min(g.x.n - n0);
        let values = (n0 * g.x_plane(), len * g.x_plane());
        let pack = ("pack_phase_rows", io.x, values, rows.rows(len));
        record_pack_rows(ctx, op, pass.rec, pack, layer, &src.view)?;
        let conv = ConvParams { n_offset: n0 as u32, ..view };
        let (bias, affine) = (io.b(), io.post.affine.is_some());
        let c = Conv3x3 {
            a: &a,
            flipped: false,
            src: (&src, 1),
            margin: true,
            out: io.y,
            conv,
            len,
            bias,
            affine,
            act,
            pool: None,
        };
        record_conv_3x3(ctx, op, pass.rec, &c)?;
    }
    Ok(())
}

/// [`forward_rows`]'s phase rows: `channels` source channels (G per input channel) of x's
/// height, each row `width` texels (the output's, and a texel of margin at each end).
pub(super) struct RowsGeometry {
    pub(super) channels: usize,
    pub(super) width: usize,
    height: usize,
}

impl RowsGeometry {
    pub(super) fn new(g: &Geometry) -> RowsGeometry {
        let groups = phase_groups(g.kernel[1], g.stride[1], g.pad[1]);
        let width = g.out[1].div_ceil(4) + 2;
        RowsGeometry { channels: g.x.c * groups, width, height: g.x.size[0] }
    }

    /// Rows of `samples` samples' phase rows.
    pub(super) fn rows(&self, samples: usize) -> usize {
        samples * self.channels * self.height
    }

    /// Their texels.
    pub(super) fn texels(&self, samples: usize) -> usize {
        self.rows(samples) * self.width
    }
}

/// Source channels per input channel of the phase rows, for a kernel of `k` taps along w with
/// `stride` and `pad` before: each phase's taps, three consecutive offsets at a time (as
/// rows_pack.wgsl's `phase_group` enumerates them).
pub(super) fn phase_groups(k: usize, stride: usize, pad: usize) -> usize {
    let (k, s, pad) = (k as i64, stride as i64, pad as i64);
    (0..s)
        .map(|f| {
            let lo = (s - 1 - pad - f).div_euclid(s);
            let hi = (k - 1 - pad - f).div_euclid(s);
            ((hi - lo + 3).max(0) / 3) as usize
        })
        .sum()
}

/// Records a rows_pack.wgsl kernel reading `src` (bound as `bias`, only its values from
/// `offset` on, `size` of them, where it is larger than a binding) into `dst`, `count`
/// invocations: `pack_phase_rows` (x; a row each) or `pack_conv_rows` (the weight; a texel
/// each), `conv` the layer's geometry, or `pack_texel_rows` (a texel each).
fn record_pack_rows(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    (entry, src, (offset, size), count): (&'static str, &Tensor, (usize, usize), usize),
    mut conv: ConvParams,
    dst: &wgpu::TextureView,
) -> Result<()> {
    let groups =
        phase_groups(conv.kernel[2] as usize, conv.stride[2] as usize, conv.pad[2] as usize);
    conv.total = check_u32(op, "invocations", count)?;
    // A source larger than a binding: only the values read.
    let range = slice(ctx, op, src, (offset, size))?;
    let c_offset = if range.is_some() { 0 } else { offset };
    let params = TexGemmParams {
        k4: check_u32(op, "phase groups", groups)?,
        c_offset: check_u32(op, "offset", c_offset)?,
        conv,
        ..bytemuck::Zeroable::zeroed()
    };
    let ranges: Vec<(u32, u64, u64)> = range.map(|(o, size)| (3, o, size)).into_iter().collect();
    record_sg(
        ctx,
        rec,
        (Shader::RowsPack, entry, &[], &params),
        (&[(3, src.buffer())], &[texture_entry(6, dst)]),
        (&ranges, ctx.grid_1d(op, count as u64, WG)?),
    )
}

/// The gradients: per chunk, the output gradient into rows of texels (from a fused max-pool's
/// pooled gradient through its argmax), x into its own (or the forward pass's, `kept`), and
/// `wgrad_3x3_sg` and, for grad_x, `conv_3x3_sg_r16` gather their shifted taps from those two.
pub(super) fn backward(
    pass: &mut Pass<'_, '_>,
    (source, x, w): (GradSource<'_>, &Tensor, &Tensor),
    (grad_x, grad_w): (Option<&Tensor>, &Tensor),
    chunk: usize,
    kept: Option<&Flat>,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let params = g.params(false, 0);
    let texels = g.row_texels(chunk);
    let x_rows = x_rows(plan, ctx, chunk, kept)?;
    let gy_rows = Flat::new(ctx, 4 * texels * g.c_out).ok_or_else(|| no_texture(plan))?;
    // A fused max-pool's gradient and the rows its forward pass kept: one sample per row.
    let samples = match source {
        GradSource::Pooled { .. } => 1,
        GradSource::Plain(_) => row_samples(g),
    };
    let partial = wgrad_partial(ctx, g, chunk, samples)?;
    // The data gradient's weight: the forward pass's packed texture, read flipped, where the
    // plan's forward pass packed this weight; else packed flipped here.
    let forward_pack = plan.forward_pack.lock().ok().and_then(|kept| kept.clone());
    let dgrad_w = match (grad_x, forward_pack) {
        (Some(_), Some((buffer, a))) if buffer == *w.buffer() => Some((a, true)),
        (Some(_), _) => {
            let a =
                Packed::new(ctx, g.x.c, 12 * g.c_out, g.x.c, 1).ok_or_else(|| no_texture(plan))?;
            let scratch = Tensor::zeros(ctx, &[pack_elems(g.x.c, g.c_out)])?;
            record_pack_3x3(ctx, op, pass.rec, (w, &scratch, &a), params, false)?;
            Some((a, false))
        }
        (None, _) => None,
    };
    for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
        let len = chunk.min(g.x.n - n0);
        match source {
            GradSource::Pooled { pool, grad_p, indices } => {
                pool.record_backward_spatial(pass.rec, (grad_p, indices), (n0, len), &gy_rows)?
            }
            GradSource::Plain(grad_y) => {
                let gy = (grad_y, n0, len, g.c_out);
                record_sample_rows(ctx, op, pass.rec, gy, params, (&gy_rows, samples))?
            }
        }
        if let XRows::Own(own) = &x_rows {
            let x = (x, n0, len, g.x.c);
            record_sample_rows(ctx, op, pass.rec, x, params, (own, samples))?;
        }
        let chunk_params = (params, len, i > 0);
        let sums = (grad_w, partial.as_ref());
        let rows = ((&*x_rows, &gy_rows), samples);
        record_wgrad_3x3(ctx, op, pass.rec, rows, sums, chunk_params)?;
        if let (Some(gx), Some((a, flipped))) = (grad_x, &dgrad_w) {
            let conv = ConvParams { n_offset: n0 as u32, ..params };
            let (src, bias, act, pool, affine) =
                ((&gy_rows, samples), None, Act::NONE, None, false);
            let (margin, flipped) = (false, *flipped);
            let c =
                Conv3x3 { a, flipped, src, margin, out: gx, conv, len, bias, affine, act, pool };
            record_conv_3x3(ctx, op, pass.rec, &c)?;
        }
    }
    Ok(())
}

/// Texels per row of a packed 3x3 weight of `k_c` channels along K in the storage scratch:
/// whole 256-byte rows, as a copy into a texture wants them.
fn pack_pitch(k_c: usize) -> usize {
    (3 * k_c).next_multiple_of(16)
}

/// The storage scratch (f32 elements) that [`record_pack_3x3`] packs a 3x3 weight of `rows`
/// rows and `k_c` channels along K in: [`forward`]'s is `(C_out, C_in)`.
pub(super) fn pack_elems(rows: usize, k_c: usize) -> usize {
    4 * rows * pack_pitch(k_c)
}

/// The weight gradient of a 3x3 convolution of stride 2 and padding 1 on `wgrad_3x3_sg`
/// (`COL_STRIDE` 2: output texel t's taps in x's texels 2t - 1 .. 2t + 1): per chunk, x's plain
/// rows and grad_y's rows of texels; the data gradient runs elsewhere (`select.rs`).
pub(super) fn weight_grad_rows(
    pass: &mut Pass<'_, '_>,
    (x, grad_y): (&Tensor, &Tensor),
    grad_w: &Tensor,
    chunk: usize,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let params = g.params(false, 0);
    let x_rows =
        Flat::new(ctx, 4 * g.x_row_texels(chunk) * g.x.c).ok_or_else(|| no_texture(plan))?;
    let gy_rows =
        Flat::new(ctx, 4 * g.row_texels(chunk) * g.c_out).ok_or_else(|| no_texture(plan))?;
    let partial = wgrad_partial(ctx, g, chunk, 1)?;
    // grad_y's rows are the output's size.
    let gy_params = ConvParams { input: params.output, ..params };
    for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
        let len = chunk.min(g.x.n - n0);
        let gy = (grad_y, n0, len, g.c_out);
        record_sample_rows(ctx, op, pass.rec, gy, gy_params, (&gy_rows, 1))?;
        record_sample_rows(ctx, op, pass.rec, (x, n0, len, g.x.c), params, (&x_rows, 1))?;
        let rows = ((&x_rows, &gy_rows), 1);
        let sums = (grad_w, partial.as_ref());
        record_wgrad_3x3(ctx, op, pass.rec, rows, sums, (params, len, i > 0))?;
    }
    Ok(())
}

/// Records rows_pack.wgsl's `pack_dgrad_3x3` (`forward` false) or `pack_conv_3x3` into the
/// storage scratch `s` ([`pack_elems`]) and its copy into `a`: `conv_3x3_sg_r16`'s A from a
/// 3x3 weight `w`, `conv` in that kernel's view (c_in rows, c_out = the channels K runs
/// over): 3 c_out texels per row, one per (channel, kernel row) with its three taps, flipped
/// for a forward pass.
fn record_pack_3x3(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    (w, s, a): (&Tensor, &Tensor, &Packed),
    mut conv: ConvParams,
    forward: bool,
) -> Result<()> {
    let (rows, k_c) = (conv.c_in as usize, conv.c_out as usize);
    // The scratch's binding is checked with every other one (`Context::record`).
    let bytes = 4 * pack_elems(rows, k_c) as u64;
    let shapes = a.rows == rows && a.tex_cols() == 3 * k_c && w.numel() == rows * k_c * 9;
    if !shapes || s.numel() < pack_elems(rows, k_c) {
        return Err(Error::invalid(op, "3x3 weight shapes do not line up (an internal error)"));
    }
    // A kernel (three texels) per invocation, its weights read as quads; the kernels' index
    // stays below 2^24 (divmod24; `select::subgroup_3x3` takes no larger weight).
    let pairs = rows * k_c;
    if pairs >= 1 << 24 {
        return Err(Error::invalid(op, "3x3 weight too large to pack (an internal error)"));
    }
    conv.total = check_u32(op, "weight kernels", pairs)?;
    let pitch = pack_pitch(k_c);
    let c_row_stride = pitch as u32;
    let params = TexGemmParams { conv, c_row_stride, ..bytemuck::Zeroable::zeroed() };
    record_sg(
        ctx,
        rec,
        (Shader::RowsPack, if forward { "pack_conv_3x3" } else { "pack_dgrad_3x3" }, &[], &params),
        (&[(12, w.buffer()), (11, s.buffer())], &[]),
        (&[(11, 0, bytes)], ctx.grid_1d(op, u64::from(conv.total), WG)?),
    )?;
    rec.copy_op(Copy::ToTexture {
        buffer: s.buffer().clone(),
        offset: 0,
        bytes_per_row: 16 * pitch as u32,
        texture: a.view.texture().clone(),
        x: 0,
        y: 0,
        width: 3 * k_c as u32,
        height: rows as u32,
    });
    Ok(())
}

/// One launch of conv_3x3_sg.wgsl's `conv_3x3_sg_r16` over a chunk of `len` samples.
struct Conv3x3<'a> {
    /// The packed taps ([`record_pack_3x3`], `pack_conv_rows`), or with `flipped` a forward
    /// pass's taps that a data gradient reads flipped, and the source (grad_y for a data
    /// gradient, x for a forward pass) in rows of texels, with a texel of margin at each end
    /// when `margin` (the phase rows), with its samples per row ([`row_samples`]).
    a: &'a Packed,
    flipped: bool,
    src: (&'a Flat, usize),
    margin: bool,
    out: &'a Tensor,
    /// In the kernel's view: c_in output rows (channels), c_out source channels, input
    /// [1, H_S, W_S] the source rows, output [1, H, W] the output's size, kernel, stride and
    /// padding along h the tap rows, n_offset the chunk's first sample.
    conv: ConvParams,
    len: usize,
    /// The bias, or with `affine` the folded batch norm's scales and shifts.
    bias: Option<&'a Tensor>,
    affine: bool,
    act: Act,
    /// A fused ReLU and 2x2 max-pool: the pooled size and where its argmax goes.
    pool: Option<([usize; 2], Option<&'a Tensor>)>,
}

/// Records conv_3x3_sg.wgsl's `conv_3x3_sg_r16` (see [`Conv3x3`]).
fn record_conv_3x3(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    c: &Conv3x3<'_>,
) -> Result<()> {
    let mut conv = c.conv;
    let (rows, k_c, k_h) = (conv.c_in as usize, conv.c_out as usize, conv.kernel[1] as usize);
    let (h_src, w_src) = (conv.input[1] as usize, conv.input[2] as usize);
    let (h, w) = (conv.output[1] as usize, conv.output[2] as usize);
    let w4 = w.div_ceil(4);
    let (src, samples) = c.src;
    let texels = sample_texels(c.len, h, w, samples);
    let src_texels = sample_texels(c.len, h_src, w_src, samples) * k_c;
    let n0 = conv.n_offset as usize;
    let (units, out_plane) = match c.pool {
        Some(([ph, pw], _)) => (c.len * ph * w4.div_ceil(2), ph * pw),
        None => (texels.div_ceil(4), h * w),
    };
    // With a margin, output texel t reads source texels t .. t + 2 of a row.
    // Flipped, A is the forward pass's: K_C rows of 3 texels per output row.
    let a_shape = if c.flipped { (k_c, 3 * rows) } else { (rows, k_h * k_c) };
    if (c.a.rows, c.a.tex_cols()) != a_shape
        || (c.flipped && (k_h != 3 || c.margin || conv.stride[2] != 1))
        || src.elems() < 4 * src_texels
        || (samples > 1 && (4 / samples != w || w_src != w || c.margin || c.pool.is_some()))
        || (c.margin && w_src.div_ceil(4) < w4 + 2)
        || c.out.numel() < (n0 + c.len) * rows * out_plane
        || k_h * k_c > MAX_LOOP_ITERATIONS
        || c.pool.is_some_and(|([ph, pw], _)| c.margin || ph != h / 2 || pw != w / 2)
    {
        return Err(Error::invalid(op, "row convolution shapes do not line up (internal)"));
    }
    conv.total = check_u32(op, "source texels", src_texels)?;
    // Output columns per source column: 1, or 2 (a 3x3 of stride 2 from plain rows); phase
    // rows mask their empty taps; a data gradient may read the forward pass's taps flipped.
    let mut columns = match (conv.stride[2], c.margin, conv.kernel[2], conv.pad[2]) {
        (1, false, ..) if c.flipped => vec![("A_FLIPPED", 1.0)],
        (1, false, ..) => vec![],
        (1, true, ..) => vec![("TAP_MASK", 1.0)],
        (2, false, 3, 1) if c.pool.is_none() && samples == 1 => vec![("COL_STRIDE", 2.0)],
        _ => return Err(Error::invalid(op, "row convolution stride unsupported (internal)")),
    };
    // Only the epilogue it takes compiled in (see EPILOGUE in shared/gemm_epilogue.wgsl).
    columns.push(("EPILOGUE", if c.pool.is_some() { 2.0 } else { 1.0 }));
    if samples > 1 {
        columns.push(("ROW_SAMPLES", samples as f64));
    }
    // The chunk's samples (the last row of texels may hold fewer than `samples`).
    conv.n = check_u32(op, "samples", c.len)?;
    // Outputs (and argmax indices, of the same size) larger than a binding: the chunk's slice.
    let out_slice = slice(ctx, op, c.out, (n0 * rows * out_plane, c.len * rows * out_plane))?;
    conv.n_offset = check_u32(op, "samples", if out_slice.is_some() { 0 } else { n0 })?;
    let params = TexGemmParams {
        m: check_u32(op, "rows", rows)?,
        n: check_u32(op, "texels", if c.pool.is_some() { units } else { texels })?,
        bias_mode: bias_mode(c.bias.is_some(), true, c.affine),
        relu: c.act.kind,
        lo: c.act.lo,
        hi: c.act.hi,
        pool: c.pool.map_or(0, |(_, indices)| if indices.is_some() { 2 } else { 1 }),
        pool_in_w: check_u32(op, "width", w)?,
        margin: c.margin as u32,
        conv,
        ..bytemuck::Zeroable::zeroed()
    };
    // And only the clamp and bias mode it takes; it never accumulates.
    columns.extend([
        ("GEMM_ACT", f64::from(params.relu)),
        ("GEMM_BIAS", f64::from(params.bias_mode)),
        ("GEMM_ACCUMULATE", 0.0),
    ]);
    // Subgroups of eight lanes by blocks of 16 rows, eight subgroups per workgroup.
    let subgroups = units.div_ceil(8) * rows.div_ceil(16);
    let groups = check_u32(op, "workgroups", subgroups.div_ceil(8))?;
    if groups > ctx.limits().max_compute_workgroups_per_dimension {
        return Err(Error::invalid(op, format!("{texels} texels exceed the dispatch limit")));
    }
    if ctx.log_debug() {
        let what = if c.pool.is_some() { ", relu + max_pool 2x2" } else { "" };
        let from = if c.margin { "phase rows" } else { "rows of texels" };
        eprintln!(
            "gconv: {op}: conv_3x3_sg_r16 ({rows} rows, {k_c} channels x {k_h} tap rows, {} x \
             {h} x {w}{what}), B gathered from {from}",
            c.len
        );
    }
    let bias = c.bias.map_or(&ctx.inner.dummy, Tensor::buffer);
    let pooled_indices = c.pool.and_then(|(_, i)| i);
    let indices = pooled_indices.map_or(&ctx.inner.dummy_rw, Tensor::buffer);
    let mut ranges = Vec::new();
    if let Some((offset, size)) = out_slice {
        ranges.push((4, offset, size));
        if pooled_indices.is_some() {
            ranges.push((7, offset, size));
        }
    }
    record_sg(
        ctx,
        rec,
        (Shader::Conv3x3Subgroup, "conv_3x3_sg_r16", &columns, &params),
        (
            &[(3, bias), (4, c.out.buffer()), (7, indices)],
            &[texture_entry(8, &c.a.view), texture_entry(9, &src.view)],
        ),
        (&ranges, [groups, 1, 1]),
    )
}

/// Records rows_pack.wgsl's `pack_texel_rows`: `rows` rows of `w` values of `src` from value
/// `offset` on into `dst` in rows of ceil(w / 4) texels (the layout of `conv_3x3_sg_r16`'s
/// and `wgrad_3x3_sg`'s operands); a copy where w is a multiple of 4.
fn record_pack_texel_rows(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    (src, offset, rows): (&Tensor, usize, usize),
    conv: ConvParams,
    dst: &Flat,
) -> Result<()> {
    let w = conv.input[2] as usize;
    let texels = rows * w.div_ceil(4);
    if offset + rows * w > src.numel() || dst.elems() < 4 * texels {
        return Err(Error::invalid(op, "texel rows do not line up (an internal error)"));
    }
    // Rows of whole texels are the buffer's own layout: a copy (no kernel, no binding limit).
    let copies = src.buffer().usage().contains(wgpu::BufferUsages::COPY_SRC);
    if copies && w.is_multiple_of(4) && offset.is_multiple_of(4) {
        dst.record_copy_texels(rec, src.buffer(), offset / 4, texels);
        return Ok(());
    }
    let pack = ("pack_texel_rows", src, (offset, rows * w), texels);
    record_pack_rows(ctx, op, rec, pack, conv, &dst.view)
}

/// Samples side by side in a row of texels (shared/texel_rows.wgsl's `ROW_SAMPLES`): 4 / W
/// for a 3x3 convolution of stride 1 on images of width 1 or 2 (ResNet's last stages at 64x64
/// and 32x32, where one sample per row would leave half or three quarters of every texel
/// padding), else 1.
fn row_samples(g: &Geometry) -> usize {
    let w = g.x.size[1];
    if g.stride.iter().all(|&s| s == 1) && w <= 2 { 4 / w.max(1) } else { 1 }
}

/// Texels per channel of `len` samples of (h, w) in rows of texels, `samples` per row.
fn sample_texels(len: usize, h: usize, w: usize, samples: usize) -> usize {
    len.div_ceil(samples) * h * w.div_ceil(4)
}

/// Records `len` samples from sample `n0` on of `src` (`channels` channels of `conv`'s input
/// size (H, W) each) into `dst` in rows of texels, `samples` side by side: `pack_texel_rows`
/// (or a copy) for one, else `pack_sample_rows`.
fn record_sample_rows(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    (src, n0, len, channels): (&Tensor, usize, usize, usize),
    conv: ConvParams,
    (dst, samples): (&Flat, usize),
) -> Result<()> {
    let (h, w) = (conv.input[1] as usize, conv.input[2] as usize);
    let plane = channels * h * w;
    if samples == 1 {
        return record_pack_texel_rows(
            ctx,
            op,
            rec,
            (src, n0 * plane, len * channels * h),
            conv,
            dst,
        );
    }
    let texels = sample_texels(len, h, w, samples) * channels;
    if 4 / samples != w || (n0 + len) * plane > src.numel() || dst.elems() < 4 * texels {
        return Err(Error::invalid(op, "sample rows do not line up (an internal error)"));
    }
    let n = check_u32(op, "samples", len)?;
    let conv = ConvParams { n, c_in: check_u32(op, "channels", channels)?, ..conv };
    let pack = ("pack_sample_rows", src, (n0 * plane, len * plane), texels);
    record_pack_rows(ctx, op, rec, pack, conv, &dst.view)
}

/// The pieces `wgrad_3x3_sg` splits K (`texels` of grad_y per channel) into, for C_in input
/// and C_out output channels: enough workgroups for the device, each piece's loop within
/// [`MAX_LOOP_ITERATIONS`].
fn wgrad_3x3_splits(c_in: usize, c_out: usize, texels: usize) -> usize {
    let subgroups = c_in.div_ceil(8) * c_out.div_ceil(16);
    let wanted = (WORKGROUPS_WANTED as usize * 8).div_ceil(subgroups);
    wanted.min(texels.div_ceil(32)).max(texels.div_ceil(MAX_LOOP_ITERATIONS)).max(1)
}

/// The weight gradient's partial sums for chunks of `chunk` samples, `samples` to a row of
/// texels: [`wgrad_3x3_splits`] pieces of grad_y's texels, none where one piece of one chunk
/// writes grad_W itself (as [`record_wgrad_3x3`] does then).
fn wgrad_partial(
    ctx: &Context,
    g: &Geometry,
    chunk: usize,
    samples: usize,
) -> Result<Option<Tensor>> {
    let texels = sample_texels(chunk, g.out[0], g.out[1], samples);
    let splits = wgrad_3x3_splits(g.x.c, g.c_out, texels);
    match splits > 1 || chunk < g.x.n {
        true => Tensor::zeros(ctx, &[splits * g.c_out * g.x.c * 9]).map(Some),
        false => Ok(None),
    }
}

/// Records wgrad_3x3_sg.wgsl's `wgrad_3x3_sg` and `wgrad_3x3_reduce`: the weight gradient of a 3x3
/// convolution (stride 1, padding 1) over one chunk of `len` samples from x's and grad_y's rows
/// of texels, added to `grad_w` when `accumulate`. `partial` holds the pieces' sums
/// ([`wgrad_3x3_splits`] of them); a single piece not added to anything is written into
/// `grad_w` directly, with no reduction (`partial` may then be `None`). `conv` carries C_in,
/// C_out and the size (H, W).
fn record_wgrad_3x3(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    ((x_rows, gy_rows), samples): ((&Flat, &Flat), usize),
    (grad_w, partial): (&Tensor, Option<&Tensor>),
    (mut conv, len, accumulate): (ConvParams, usize, bool),
) -> Result<()> {
    let (c_in, c_out) = (conv.c_in as usize, conv.c_out as usize);
    // K runs over grad_y's texels (its size is the output's); x's rows hold the input's.
    let (h, w) = (conv.output[1] as usize, conv.output[2] as usize);
    let (h_x, w_x) = (conv.input[1] as usize, conv.input[2] as usize);
    let texels = sample_texels(len, h, w, samples);
    let x_texels = sample_texels(len, h_x, w_x, samples);
    let stride = conv.stride[2];
    let splits = wgrad_3x3_splits(c_in, c_out, texels);
    let size = c_out * c_in * 9;
    // One piece writing grad_W itself, or the pieces' sums then their reduction.
    let sums = match (splits, accumulate, partial) {
        (1, false, _) => grad_w,
        (_, _, Some(partial)) if partial.numel() >= splits * size => partial,
        _ => return Err(Error::invalid(op, "wgrad partial sums missing (an internal error)")),
    };
    if x_rows.elems() < 4 * x_texels * c_in
        || gy_rows.elems() < 4 * texels * c_out
        || grad_w.numel() != size
        || (samples > 1 && (4 / samples != w || stride != 1))
        || conv.stride[1] != stride
        || !(1..=2).contains(&stride)
    {
        return Err(Error::invalid(op, "wgrad shapes do not line up (an internal error)"));
    }
    conv.total = check_u32(op, "input texels", x_texels * c_in)?;
    let k_split = texels.div_ceil(splits);
    let params = TexGemmParams {
        m: check_u32(op, "C_in", c_in)?,
        n: check_u32(op, "C_out", c_out)?,
        k4: check_u32(op, "grad_output texels", texels)?,
        accumulate: accumulate as u32,
        splits: check_u32(op, "pieces", texels.div_ceil(k_split))?,
        k_split: check_u32(op, "piece", k_split)?,
        conv,
        ..bytemuck::Zeroable::zeroed()
    };
    let subgroups = c_in.div_ceil(8) * c_out.div_ceil(16);
    let groups = [check_u32(op, "workgroups", subgroups.div_ceil(8))?, 1, params.splits];
    if groups.iter().any(|&g| g > ctx.limits().max_compute_workgroups_per_dimension) {
        return Err(Error::invalid(op, "the weight gradient exceeds the dispatch limit"));
    }
    if ctx.log_debug() {
        eprintln!(
            "gconv: {op}: wgrad_3x3_sg (C_in {c_in}, C_out {c_out}, stride {stride}, grad_y {len} x \
             {h} x {w}), {} K piece(s), no im2col",
            params.splits
        );
    }
    let constants = [("ROW_SAMPLES", samples as f64), ("COL_STRIDE", f64::from(stride))];
    record_sg(
        ctx,
        rec,
        (Shader::Wgrad3x3Subgroup, "wgrad_3x3_sg", &constants, &params),
        (&[(5, sums.buffer())], &[texture_entry(8, &x_rows.view), texture_entry(9, &gy_rows.view)]),
        (&[], groups),
    )?;
    if std::ptr::eq(sums, grad_w) {
        return Ok(());
    }
    // Four weights per invocation where the weight holds whole quads.
    let (entry, lanes, bindings) = if size.is_multiple_of(4) {
        ("wgrad_3x3_reduce4", size / 4, (11, 12))
    } else {
        ("wgrad_3x3_reduce", size, (4, 5))
    };
    record_sg(
        ctx,
        rec,
        (Shader::Wgrad3x3Subgroup, entry, &[], &params),
        (&[(bindings.0, grad_w.buffer()), (bindings.1, sums.buffer())], &[]),
        (&[], ctx.grid_1d(op, lanes as u64, WG)?),
    )
}

/// Override constants of a launch.
type Constants<'a> = &'a [(&'static str, f64)];

/// One launch of a `shaders/subgroup/conv_3x3_sg.wgsl` or `rows_pack.wgsl` kernel: its shader,
/// entry point and parameters,
/// its storage buffers and textures, the byte ranges bound of buffers larger than a binding,
/// and its grid.
fn record_sg(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    (shader, entry, constants, params): (Shader, &'static str, Constants<'_>, &TexGemmParams),
    (buffers, textures): (&[(u32, &wgpu::Buffer)], &[wgpu::BindGroupEntry<'_>]),
    (ranges, groups): (&[(u32, u64, u64)], [u32; 3]),
) -> Result<()> {
    let params = bytemuck::bytes_of(params);
    let d =
        Dispatch::new(shader, entry, params, buffers, groups).ranges(ranges).constants(constants);
    ctx.record_with(rec, &d, textures)
}
