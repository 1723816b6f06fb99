//! The tiled GEMM: operands packed into rgba32f textures (`pack.wgsl`, or conv.wgsl's
//! `im2col_texture`), multiplied by `gemm_tex.wgsl` with a strided, fused epilogue.

use super::check_u32;
use super::conv::ConvParams;
use crate::kernel::{Copy, Dispatch, Recorder, Shader, texture_entry};
use crate::{Context, Error, GemmLayout, Result, Tensor};

/// Where element (r, c) of batch z of a matrix lives in a flat buffer:
///
/// ```text
/// offset + z*batch_stride + (r / row_split)*row_split_stride + (r % row_split)*row_stride
///        + (c / col_split)*col_split_stride + (c % col_split)*col_stride
/// ```
///
/// The splits express a matrix whose rows or columns run over two axes of a tensor: a
/// convolution's (C_out, N*P) output in NCHW.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub offset: usize,
    pub batch_stride: usize,
    pub row_stride: usize,
    pub row_split: usize,
    pub row_split_stride: usize,
    pub col_stride: usize,
    pub col_split: usize,
    pub col_split_stride: usize,
}

impl View {
    /// A row-major matrix with leading dimension `ld`, or its transpose.
    pub(crate) fn dense(offset: usize, ld: usize, transposed: bool) -> Self {
        let (row_stride, col_stride) = if transposed { (1, ld) } else { (ld, 1) };
        View {
            offset,
            batch_stride: 0,
            row_stride,
            row_split: usize::MAX,
            row_split_stride: 0,
            col_stride,
            col_split: usize::MAX,
            col_split_stride: 0,
        }
    }

    /// The (channels, N*P) matrix of an NCHW tensor with `channels` channels and `p` positions
    /// per sample: column j is position j % p of sample j / p.
    pub(crate) fn channels_by_positions(offset: usize, channels: usize, p: usize) -> Self {
        View {
            offset,
            batch_stride: 0,
            row_stride: p,
            row_split: usize::MAX,
            row_split_stride: 0,
            col_stride: 1,
            col_split: p,
            col_split_stride: channels * p,
        }
    }

    /// The transpose of this view.
    pub(crate) fn t(self) -> Self {
        View {
            row_stride: self.col_stride,
            row_split: self.col_split,
            row_split_stride: self.col_split_stride,
            col_stride: self.row_stride,
            col_split: self.row_split,
            col_split_stride: self.row_split_stride,
            ..self
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    rows: u32,
    cols: u32,
    tex_rows: u32,
    tex_cols: u32,
    batch: u32,
    offset: u32,
    batch_stride: u32,
    row_stride: u32,
    row_split: u32,
    row_split_stride: u32,
    col_stride: u32,
    col_split: u32,
    col_split_stride: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TexGemmParams {
    m: u32,
    n: u32,
    k4: u32,
    b_rows: u32,
    batch: u32,
    c_offset: u32,
    c_batch_stride: u32,
    c_row_stride: u32,
    c_col_stride: u32,
    c_split: u32,
    c_split_stride: u32,
    bias_mode: u32,
    relu: u32,
    accumulate: u32,
    splits: u32,
    k_split: u32,
    c_texture: u32,
    pool: u32,
    pool_w: u32,
    pool_in_w: u32,
    conv: ConvParams,
}

/// A packed operand: `batch` matrices of `rows` x `cols` stacked along the texture's height,
/// `tex_rows` texture rows each (rows past `rows` are zero), four columns per texel.
#[derive(Clone)]
pub(crate) struct Packed {
    pub view: wgpu::TextureView,
    pub rows: usize,
    pub cols: usize,
    pub tex_rows: usize,
    pub batch: usize,
    /// An implicit operand of this convolution, which the workgroup layout's kernels gather
    /// from `view` (a [`Flat`] copy) as they load their tiles.
    pub gather: Option<(Gather, ConvParams)>,
}

/// What an implicit operand holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gather {
    /// x's im2col matrix (`view` is x's copy): the forward pass's B, the weight gradient's A.
    Im2col,
    /// grad_y per kernel tap at each input position (`view` is grad_y's copy): the data
    /// gradient's B.
    Dgrad,
}

impl Packed {
    /// Texels per row.
    pub(crate) fn tex_cols(&self) -> usize {
        self.cols.div_ceil(4)
    }

    /// The same texture holding a smaller matrix (the last chunk of a batch).
    pub(crate) fn with_size(&self, rows: usize, cols: usize) -> Packed {
        Packed { rows, cols, ..self.clone() }
    }

    /// A `rows` x `cols` gather over `src` for the convolution `params`, never materialised:
    /// the workgroup layout's kernels compute its texels as they load them.
    pub(crate) fn implicit(
        src: &Flat,
        gather: Gather,
        params: ConvParams,
        rows: usize,
        cols: usize,
    ) -> Packed {
        Packed {
            view: src.view.clone(),
            rows,
            cols,
            tex_rows: rows.div_ceil(4) * 4,
            batch: 1,
            gather: Some((gather, params)),
        }
    }

    /// Allocates the texture for `batch` matrices of `rows` x `cols`, each padded to
    /// `tex_rows` rows; `None` when it exceeds the device's 2-D texture size.
    pub(crate) fn new(
        ctx: &Context,
        rows: usize,
        cols: usize,
        tex_rows: usize,
        batch: usize,
    ) -> Option<Packed> {
        let (width, height) = (cols.div_ceil(4), tex_rows * batch);
        if !fits(ctx, width, height) {
            return None;
        }
        let texture = ctx.create_texture(&wgpu::TextureDescriptor {
            label: Some("gconv packed operand"),
            size: wgpu::Extent3d {
                width: width as u32,
                height: height as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Some(Packed { view, rows, cols, tex_rows, batch, gather: None })
    }
}

/// Workgroups a tiled GEMM aims for on a CPU adapter, splitting K when its output has fewer
/// tiles.
const WORKGROUPS_WANTED: u32 = 16;

/// The same for GPUs ([`GemmLayout::Workgroup`]): about two per multiprocessor of a large one.
const GPU_WORKGROUPS_WANTED: u32 = 256;

/// The largest packed operand gconv makes, in bytes. Every GEMM of a plan keeps its own packed
/// textures, so operands beyond this (VGG16's 392 MiB classifier weight) take the
/// storage-buffer kernel, and convolutions fold fewer samples into one GEMM.
pub(crate) const TEXTURE_BUDGET: usize = 64 << 20;

/// Whether a texture of `width` x `height` texels fits the device and the budget.
pub(crate) fn fits(ctx: &Context, width: usize, height: usize) -> bool {
    let max = ctx.limits().max_texture_dimension_2d as usize;
    width >= 1
        && height >= 1
        && width <= max
        && height <= max
        && width.saturating_mul(height).saturating_mul(16) <= TEXTURE_BUDGET
}

/// The most loop iterations one invocation of a kernel may run. llvmpipe (lavapipe) ends every
/// loop of an invocation once their iterations add up to 65535 (`LP_MAX_TGSI_LOOP_ITERATIONS`
/// in Mesa's gallivm), without an error: a longer sum silently drops its tail. Kernels whose
/// loops grow with the data split their work so that no invocation comes near it.
pub(crate) const MAX_LOOP_ITERATIONS: usize = 16384;

/// Splits past every index: the kernels' `divmod24` is exact below 2^24, and texture limits keep
/// rows and columns far below that.
const NO_SPLIT: u32 = 1 << 24;

fn u(op: &'static str, what: &str, v: usize) -> Result<u32> {
    if v == usize::MAX { Ok(NO_SPLIT) } else { check_u32(op, what, v) }
}

/// Records the packing of `view` of `src` (bound whole, or the byte range `range`) into
/// `target`.
pub(crate) fn record_pack(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    src: &wgpu::Buffer,
    range: Option<(u64, u64)>,
    view: &View,
    target: &Packed,
) -> Result<()> {
    if let Some(copies) = plain_rows(src, range, view, target) {
        for op in copies {
            rec.copy_op(op);
        }
        return Ok(());
    }
    let params = PackParams {
        rows: u(op, "rows", target.rows)?,
        cols: u(op, "columns", target.cols)?,
        tex_rows: u(op, "rows", target.tex_rows)?,
        tex_cols: u(op, "columns", target.tex_cols())?,
        batch: u(op, "batch", target.batch)?,
        offset: u(op, "offset", view.offset)?,
        batch_stride: u(op, "stride", view.batch_stride)?,
        row_stride: u(op, "stride", view.row_stride)?,
        row_split: u(op, "stride", view.row_split)?,
        row_split_stride: u(op, "stride", view.row_split_stride)?,
        col_stride: u(op, "stride", view.col_stride)?,
        col_split: u(op, "stride", view.col_split)?,
        col_split_stride: u(op, "stride", view.col_split_stride)?,
    };
    let ranges: Vec<(u32, u64, u64)> = range.map(|(o, s)| (1, o, s)).into_iter().collect();
    // 64 texels of one row per workgroup (see pack.wgsl).
    let groups =
        [(target.tex_cols() as u32).div_ceil(64), (target.tex_rows * target.batch) as u32, 1];
    ctx.record_with(
        rec,
        &Dispatch {
            shader: Shader::Pack,
            entry: "pack",
            constants: &[],
            params: bytemuck::bytes_of(&params),
            buffers: &[(1, src)],
            workgroups: groups,
            ranges: &ranges,
        },
        &[wgpu::BindGroupEntry {
            binding: 2,
            resource: wgpu::BindingResource::TextureView(&target.view),
        }],
    )
}

/// The copies that pack `view` when it is plain rows a texture copy can take as they are:
/// row-major, four whole columns per texel, rows 256-byte aligned (wgpu's copy pitch), no
/// padding rows to zero. `None` when the pack kernel is needed.
fn plain_rows(
    src: &wgpu::Buffer,
    range: Option<(u64, u64)>,
    view: &View,
    target: &Packed,
) -> Option<Vec<Copy>> {
    let pitch = view.row_stride * 4;
    let plain = view.col_stride == 1
        && view.col_split == usize::MAX
        && view.row_split == usize::MAX
        && target.cols.is_multiple_of(4)
        && target.tex_rows == target.rows
        && pitch.is_multiple_of(256)
        && view.row_stride >= target.cols
        && view.offset.is_multiple_of(4)
        && view.batch_stride.is_multiple_of(4)
        && src.usage().contains(wgpu::BufferUsages::COPY_SRC);
    if !plain {
        return None;
    }
    let base = range.map_or(0, |r| r.0);
    let copies = (0..target.batch)
        .map(|z| Copy::ToTexture {
            buffer: src.clone(),
            offset: base + ((view.offset + z * view.batch_stride) * 4) as u64,
            bytes_per_row: pitch as u32,
            texture: target.view.texture().clone(),
            y: (z * target.tex_rows) as u32,
            width: target.tex_cols() as u32,
            height: target.rows as u32,
        })
        .collect();
    Some(copies)
}

/// The output side of a tiled GEMM: where C goes and what the epilogue adds.
pub(crate) struct Epilogue<'a> {
    /// C's layout (its `batch_stride` steps batches).
    pub view: View,
    /// The byte range of C's buffer bound, when C is larger than one binding.
    pub range: Option<(u64, u64)>,
    /// C goes to this texture in the packed layout instead (no bias, ReLU or accumulation).
    pub texture: Option<&'a Packed>,
    pub bias: Option<&'a Tensor>,
    /// The byte range of the bias bound, when the GEMM covers a block of its columns.
    pub bias_range: Option<(u64, u64)>,
    pub bias_per_row: bool,
    pub relu: bool,
    pub accumulate: bool,
    /// Bias per row, ReLU and a 2x2 max-pool of every four columns (B in im2col_texture's
    /// pooled order); `view` addresses the pooled output.
    pub pool: Option<PoolEpilogue<'a>>,
}

/// The fused ReLU + 2x2 max-pool of [`Epilogue::pool`].
#[derive(Clone, Copy)]
pub(crate) struct PoolEpilogue<'a> {
    /// Where the argmax goes (training), laid out as the pooled output; -1 where the ReLU was
    /// off, so no gradient flows there.
    pub indices: Option<&'a Tensor>,
    /// The pooled output's width and the un-pooled width (the indices' row pitch).
    pub pooled_w: usize,
    pub in_w: usize,
}

impl Epilogue<'_> {
    /// C written to `view` as it is: no bias, ReLU or accumulation.
    pub(crate) fn to(view: View) -> Self {
        Epilogue {
            view,
            range: None,
            texture: None,
            bias: None,
            bias_range: None,
            bias_per_row: false,
            relu: false,
            accumulate: false,
            pool: None,
        }
    }
}

/// The GEMM kernels' `bias_mode`: 0 none, 1 per column (linear), 2 per row (channels).
pub(crate) fn bias_mode(bias: bool, per_row: bool) -> u32 {
    match (bias, per_row) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    }
}

/// Records C (batch, M, N) = A B through `epilogue`: A packed as (M x K), B as (K x N), both
/// with the same batch.
pub(crate) fn record_gemm(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    a: &Packed,
    b: &Packed,
    c: &Tensor,
    e: &Epilogue<'_>,
) -> Result<()> {
    let (m, n, batch) = (a.rows, b.cols, a.batch);
    if a.cols != b.rows || a.batch != b.batch || b.tex_rows < a.tex_cols() * 4 {
        return Err(Error::invalid(op, "tiled GEMM operands do not line up (an internal error)"));
    }
    if e.view.row_split != usize::MAX {
        return Err(Error::invalid(op, "the tiled GEMM splits C's columns only"));
    }
    // A gathered operand makes this an implicit GEMM, on the workgroup layout only.
    let implicit: u32 = match (a.gather, b.gather) {
        (None, None) => 0,
        (None, Some((Gather::Im2col, _))) => 1,
        (Some((Gather::Im2col, _)), None) => 2,
        (None, Some((Gather::Dgrad, _))) => 3,
        _ => {
            return Err(Error::invalid(
                op,
                "unsupported implicit GEMM operands (an internal error)",
            ));
        }
    };
    if implicit != 0 && (ctx.gemm_layout() != GemmLayout::Workgroup || batch != 1) {
        return Err(Error::invalid(
            op,
            "implicit GEMM off the workgroup layout (an internal error)",
        ));
    }
    // The register layout's workgroup shape (GEMM_WG_X): 8 x 8 invocations, or narrower for
    // N up to 64 or 32 so that no lane idles past N beside working ones.
    let wg_x: u32 = match n {
        0..=32 => 2,
        33..=64 => 4,
        _ => 8,
    };
    let (entry, tile_rows, tile_cols, wanted) = match ctx.gemm_layout() {
        // Rows per invocation: the workgroup covers 64 / wg_x * rows of C; fewer rows for
        // short matrices keep every invocation busy (conv1's 32 channels, a classifier's 10
        // outputs). Lavapipe runs one workgroup per thread.
        //
        // With 8-lane subgroups, the kernels that share one operand across a subgroup
        // (gemm_sg.wgsl; the same tiles): A where a subgroup spans 8 column blocks (N > 64), B
        // where it spans 8 row blocks of 4 or 2 column blocks (N <= 64). The latter always
        // takes 8 rows per lane: as few fetches per multiply-add as 16 rows, and a subgroup
        // covers 64 rows instead of 128, less of them past M (a weight gradient's C_in * 9).
        GemmLayout::Registers | GemmLayout::Auto => {
            let (entry, rows) = match (m, ctx.uses_subgroups(), wg_x == 8) {
                (0..=32, _, _) => ("gemm_tex_r4", 4),
                (_, true, false) => ("gemm_sgc_r8", 8),
                (33..=64, true, true) => ("gemm_sg_r8", 8),
                (_, true, true) => ("gemm_sg_r16", 16),
                (33..=64, false, _) => ("gemm_tex_r8", 8),
                _ => ("gemm_tex_r16", 16),
            };
            (entry, rows * 64 / wg_x, 16 * wg_x, WORKGROUPS_WANTED)
        }
        // 128x128 tiles where they give every multiprocessor of a large GPU (132 on an H100)
        // about two workgroups; 64x64 tiles below that.
        GemmLayout::Workgroup => {
            let big = (n as u32).div_ceil(128) * (m as u32).div_ceil(128) * batch as u32;
            if big >= GPU_WORKGROUPS_WANTED {
                ("gemm_wg128", 128, 128, GPU_WORKGROUPS_WANTED)
            } else {
                ("gemm_wg64", 64, 64, GPU_WORKGROUPS_WANTED)
            }
        }
    };
    let shader = if entry.starts_with("gemm_sg") { Shader::GemmSubgroup } else { Shader::GemmTex };
    let tiles = (n as u32).div_ceil(tile_cols) * (m as u32).div_ceil(tile_rows) * batch as u32;
    // Split K until there are enough workgroups for the device, keeping at least 256 texels
    // (1024 values of K) per split: below that the reduction pass costs more than the idle
    // cores (a classifier's K = 576 on lavapipe).
    let k4 = u(op, "K", a.tex_cols())?;
    if e.pool.is_some() && (e.texture.is_some() || e.accumulate || !e.relu || m == 0) {
        return Err(Error::invalid(op, "a pooling epilogue needs ReLU (an internal error)"));
    }
    // Every split's loop runs at most MAX_LOOP_ITERATIONS times (see there): once per texel of
    // K on the register layout, up to 17 times per 4-texel stage on the workgroup layout.
    let cap = match ctx.gemm_layout() {
        GemmLayout::Workgroup => MAX_LOOP_ITERATIONS as u32 / 4,
        _ => MAX_LOOP_ITERATIONS as u32,
    };
    let splits = if e.texture.is_some() || e.pool.is_some() {
        if k4 > cap {
            return Err(Error::invalid(
                op,
                format!("K = {} is too long for a texture or pooling epilogue", a.cols),
            ));
        }
        1
    } else {
        (wanted.div_ceil(tiles)).min(k4 / 256).max(k4.div_ceil(cap)).max(1)
    };
    let k_split = k4.div_ceil(splits);
    let splits = k4.div_ceil(k_split);
    let params = TexGemmParams {
        m: u(op, "M", m)?,
        n: u(op, "N", n)?,
        k4,
        b_rows: u(op, "K", b.tex_rows)?,
        batch: u(op, "batch", batch)?,
        c_offset: u(op, "offset", e.view.offset)?,
        c_batch_stride: u(op, "stride", e.view.batch_stride)?,
        c_row_stride: u(op, "stride", e.view.row_stride)?,
        c_col_stride: u(op, "stride", e.view.col_stride)?,
        c_split: u(op, "stride", e.view.col_split)?,
        c_split_stride: u(op, "stride", e.view.col_split_stride)?,
        bias_mode: bias_mode(e.bias.is_some(), e.bias_per_row),
        relu: e.relu as u32,
        accumulate: e.accumulate as u32,
        splits,
        k_split,
        c_texture: e.texture.is_some() as u32,
        pool: e.pool.map_or(0, |pe| if pe.indices.is_some() { 2 } else { 1 }),
        pool_w: u(op, "pooled width", e.pool.map_or(0, |pe| pe.pooled_w))?,
        pool_in_w: u(op, "width", e.pool.map_or(0, |pe| pe.in_w))?,
        conv: a.gather.or(b.gather).map_or_else(bytemuck::Zeroable::zeroed, |(_, c)| c),
    };
    let groups =
        [(n as u32).div_ceil(tile_cols), (m as u32).div_ceil(tile_rows), batch as u32 * splits];
    let max = ctx.limits().max_compute_workgroups_per_dimension;
    if groups.iter().any(|&g| g > max) {
        return Err(Error::invalid(
            op,
            format!("matrix sizes (batch {batch}, M {m}, N {n}) exceed the dispatch limit {max}"),
        ));
    }
    if ctx.log_debug() {
        let gather = ["", ", B implicit (im2col)", ", A implicit (im2col)", ", B implicit (dgrad)"];
        eprintln!(
            "gconv: {op}: tiled GEMM {entry} (batch {batch}, M {m}, N {n}, K {}), {splits} K \
             split(s){}",
            a.cols, gather[implicit as usize]
        );
    }
    let registers = matches!(ctx.gemm_layout(), GemmLayout::Registers | GemmLayout::Auto);
    // GEMM_WG_X for every register kernel (gemm_sg_r16/r8, whose workgroups are fixed at
    // 8 lanes per row, only ever get 8).
    let constants: Vec<(&str, f64)> = if registers {
        vec![("GEMM_WG_X", f64::from(wg_x))]
    } else if implicit != 0 {
        vec![("IMPLICIT", f64::from(implicit))]
    } else {
        Vec::new()
    };
    let bias = e.bias.map_or(&ctx.inner.dummy, Tensor::buffer);
    let mut ranges: Vec<(u32, u64, u64)> = e.range.map(|(o, s)| (4, o, s)).into_iter().collect();
    ranges.extend(e.bias_range.filter(|_| e.bias.is_some()).map(|(o, s)| (3, o, s)));
    // The splits' sums; a placeholder when K is not split.
    let partial = if splits > 1 {
        Some(Tensor::zeros(ctx, &[batch * splits as usize * m * n])?)
    } else {
        None
    };
    let partial_buffer = partial.as_ref().map_or(&ctx.inner.dummy_rw, Tensor::buffer);
    let c_tex = e.texture.map_or(&ctx.inner.dummy_texture, |t| &t.view);
    let indices = e.pool.and_then(|pe| pe.indices).map_or(&ctx.inner.dummy_rw, Tensor::buffer);
    // The register layout reads A and B as storage textures (bindings 8 and 9, see
    // gemm_tex.wgsl), the workgroup layout samples them (1 and 2).
    let (a_binding, b_binding) = if registers { (8, 9) } else { (1, 2) };
    let textures = [
        wgpu::BindGroupEntry {
            binding: a_binding,
            resource: wgpu::BindingResource::TextureView(&a.view),
        },
        wgpu::BindGroupEntry {
            binding: b_binding,
            resource: wgpu::BindingResource::TextureView(&b.view),
        },
        wgpu::BindGroupEntry { binding: 6, resource: wgpu::BindingResource::TextureView(c_tex) },
    ];
    ctx.record_with(
        rec,
        &Dispatch {
            shader,
            entry,
            constants: &constants,
            params: bytemuck::bytes_of(&params),
            buffers: &[(3, bias), (4, c.buffer()), (5, partial_buffer), (7, indices)],
            workgroups: groups,
            ranges: &ranges,
        },
        &textures,
    )?;
    if splits > 1 {
        ctx.record(
            rec,
            &Dispatch {
                shader: Shader::GemmTex,
                entry: "gemm_tex_reduce",
                constants: &[],
                params: bytemuck::bytes_of(&params),
                buffers: &[(3, bias), (4, c.buffer()), (5, partial_buffer)],
                workgroups: [(n as u32).div_ceil(8), (m as u32).div_ceil(8), batch as u32],
                ranges: &ranges,
            },
        )?;
    }
    Ok(())
}

/// Records gemm_sg.wgsl's `pack_dgrad_3x3` (`forward` false) or `pack_conv_3x3`:
/// `conv_3x3_sg_r16`'s A from a 3x3 weight `w`, `conv` in that kernel's view (c_in rows,
/// c_out = the channels K runs over): 3 c_out texels per row, one per (channel, kernel row)
/// with its three taps, flipped for a forward pass.
pub(crate) fn record_pack_3x3(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    (w, a): (&Tensor, &Packed),
    mut conv: ConvParams,
    forward: bool,
) -> Result<()> {
    let (rows, k_c) = (conv.c_in as usize, conv.c_out as usize);
    if a.rows != rows || a.tex_cols() != 3 * k_c || w.numel() != rows * k_c * 9 {
        return Err(Error::invalid(op, "3x3 weight shapes do not line up (an internal error)"));
    }
    let total = check_u32(op, "weight texels", 3 * k_c * rows)?;
    conv.total = total;
    let params = TexGemmParams { conv, ..bytemuck::Zeroable::zeroed() };
    ctx.record_with(
        rec,
        &Dispatch {
            shader: Shader::GemmSubgroup,
            entry: if forward { "pack_conv_3x3" } else { "pack_dgrad_3x3" },
            constants: &[],
            params: bytemuck::bytes_of(&params),
            buffers: &[(3, w.buffer())],
            workgroups: ctx.grid_1d(op, u64::from(total), crate::kernel::WG)?,
            ranges: &[],
        },
        &[texture_entry(6, &a.view)],
    )
}

/// One launch of gemm_sg.wgsl's `conv_3x3_sg_r16` (a 3x3 convolution, stride 1, padding 1)
/// over a chunk of `len` samples.
pub(crate) struct Conv3x3<'a> {
    /// The packed taps ([`record_pack_3x3`]) and the source (grad_y for a data gradient, x for
    /// a forward pass) in rows of ceil(W / 4) texels.
    pub a: &'a Packed,
    pub src: &'a Flat,
    pub out: &'a Tensor,
    /// In the kernel's view: c_in output rows (channels), c_out source channels, input
    /// [1, H, W], n_offset the chunk's first sample.
    pub conv: ConvParams,
    pub len: usize,
    pub bias: Option<&'a Tensor>,
    pub relu: bool,
    /// A fused ReLU and 2x2 max-pool: the pooled size and where its argmax goes.
    pub pool: Option<([usize; 2], Option<&'a Tensor>)>,
}

/// Records gemm_sg.wgsl's `conv_3x3_sg_r16` (see [`Conv3x3`]).
pub(crate) fn record_conv_3x3(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    c: &Conv3x3<'_>,
) -> Result<()> {
    let mut conv = c.conv;
    let (rows, k_c) = (conv.c_in as usize, conv.c_out as usize);
    let (h, w) = (conv.input[1] as usize, conv.input[2] as usize);
    let w4 = w.div_ceil(4);
    let texels = c.len * h * w4;
    let n0 = conv.n_offset as usize;
    let (units, out_plane) = match c.pool {
        Some(([ph, pw], _)) => {
            conv.output = [1, u(op, "pooled height", ph)?, u(op, "pooled width", pw)?];
            (c.len * ph * w4.div_ceil(2), ph * pw)
        }
        None => (texels.div_ceil(4), h * w),
    };
    if c.a.rows != rows
        || c.a.tex_cols() != 3 * k_c
        || c.src.elems < 4 * texels * k_c
        || c.out.numel() < (n0 + c.len) * rows * out_plane
        || 3 * k_c > MAX_LOOP_ITERATIONS
        || c.pool.is_some_and(|([ph, pw], _)| 2 * ph > h || 2 * pw > w)
    {
        return Err(Error::invalid(op, "3x3 convolution shapes do not line up (internal)"));
    }
    conv.total = check_u32(op, "source texels", texels * k_c)?;
    let params = TexGemmParams {
        m: check_u32(op, "rows", rows)?,
        n: check_u32(op, "texels", if c.pool.is_some() { units } else { texels })?,
        bias_mode: bias_mode(c.bias.is_some(), true),
        relu: c.relu as u32,
        pool: c.pool.map_or(0, |(_, indices)| if indices.is_some() { 2 } else { 1 }),
        pool_in_w: u(op, "width", w)?,
        conv,
        ..bytemuck::Zeroable::zeroed()
    };
    // Subgroups of eight lanes by blocks of 16 rows, eight subgroups per workgroup.
    let subgroups = units.div_ceil(8) * rows.div_ceil(16);
    let groups = check_u32(op, "workgroups", subgroups.div_ceil(8))?;
    if groups > ctx.limits().max_compute_workgroups_per_dimension {
        return Err(Error::invalid(op, format!("{texels} texels exceed the dispatch limit")));
    }
    if ctx.log_debug() {
        let what = if c.pool.is_some() { ", relu + max_pool 2x2" } else { "" };
        eprintln!(
            "gconv: {op}: conv_3x3_sg_r16 ({rows} rows, {k_c} channels, {} x {h} x {w}{what}), \
             B gathered from rows of texels",
            c.len
        );
    }
    let bias = c.bias.map_or(&ctx.inner.dummy, Tensor::buffer);
    let indices = c.pool.and_then(|(_, i)| i).map_or(&ctx.inner.dummy_rw, Tensor::buffer);
    ctx.record_with(
        rec,
        &Dispatch {
            shader: Shader::GemmSubgroup,
            entry: "conv_3x3_sg_r16",
            constants: &[],
            params: bytemuck::bytes_of(&params),
            buffers: &[(3, bias), (4, c.out.buffer()), (7, indices)],
            workgroups: [groups, 1, 1],
            ranges: &[],
        },
        &[texture_entry(8, &c.a.view), texture_entry(9, &c.src.view)],
    )
}

/// Records gemm_sg.wgsl's `pack_texel_rows`: `rows` rows of `w` values of `src` from value
/// `offset` on into `dst` in rows of ceil(w / 4) texels (the layout of `conv_3x3_sg_r16`'s
/// and `wgrad_3x3_sg`'s operands).
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_pack_texel_rows(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    src: &Tensor,
    offset: usize,
    rows: usize,
    mut conv: ConvParams,
    dst: &Flat,
) -> Result<()> {
    let w = conv.input[2] as usize;
    let texels = rows * w.div_ceil(4);
    if offset + rows * w > src.numel() || dst.elems < 4 * texels {
        return Err(Error::invalid(op, "texel rows do not line up (an internal error)"));
    }
    conv.total = check_u32(op, "texels", texels)?;
    let params = TexGemmParams {
        c_offset: check_u32(op, "offset", offset)?,
        conv,
        ..bytemuck::Zeroable::zeroed()
    };
    ctx.record_with(
        rec,
        &Dispatch {
            shader: Shader::GemmSubgroup,
            entry: "pack_texel_rows",
            constants: &[],
            params: bytemuck::bytes_of(&params),
            buffers: &[(3, src.buffer())],
            workgroups: ctx.grid_1d(op, texels as u64, crate::kernel::WG)?,
            ranges: &[],
        },
        &[texture_entry(6, &dst.view)],
    )
}

/// The pieces gemm_sg.wgsl's `wgrad_3x3_sg` splits K (`texels` of grad_y per channel) into, for
/// C_in input and C_out output channels: enough workgroups for the device, each piece's loop
/// within [`MAX_LOOP_ITERATIONS`].
pub(crate) fn wgrad_3x3_splits(c_in: usize, c_out: usize, texels: usize) -> usize {
    let subgroups = c_in.div_ceil(8) * c_out.div_ceil(16);
    let wanted = (WORKGROUPS_WANTED as usize * 8).div_ceil(subgroups);
    wanted.min(texels.div_ceil(32)).max(texels.div_ceil(MAX_LOOP_ITERATIONS)).max(1)
}

/// Records gemm_sg.wgsl's `wgrad_3x3_sg` and `wgrad_3x3_reduce`: the weight gradient of a 3x3
/// convolution (stride 1, padding 1) over one chunk of `len` samples from x's and grad_y's rows
/// of texels, added to `grad_w` when `accumulate`. `partial` holds the pieces' sums
/// ([`wgrad_3x3_splits`] of them). `conv` carries C_in, C_out and the size (H, W).
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_wgrad_3x3(
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    (x_rows, gy_rows): (&Flat, &Flat),
    grad_w: &Tensor,
    partial: &Tensor,
    mut conv: ConvParams,
    len: usize,
    accumulate: bool,
) -> Result<()> {
    let (c_in, c_out) = (conv.c_in as usize, conv.c_out as usize);
    let (h, w) = (conv.input[1] as usize, conv.input[2] as usize);
    let texels = len * h * w.div_ceil(4);
    let splits = wgrad_3x3_splits(c_in, c_out, texels);
    let size = c_out * c_in * 9;
    if x_rows.elems < 4 * texels * c_in
        || gy_rows.elems < 4 * texels * c_out
        || grad_w.numel() != size
        || partial.numel() < splits * size
    {
        return Err(Error::invalid(op, "wgrad shapes do not line up (an internal error)"));
    }
    conv.total = check_u32(op, "input texels", texels * c_in)?;
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
            "gconv: {op}: wgrad_3x3_sg (C_in {c_in}, C_out {c_out}, {len} x {h} x {w}), {} \
             K piece(s), no im2col",
            params.splits
        );
    }
    ctx.record_with(
        rec,
        &Dispatch {
            shader: Shader::GemmSubgroup,
            entry: "wgrad_3x3_sg",
            constants: &[],
            params: bytemuck::bytes_of(&params),
            buffers: &[(5, partial.buffer())],
            workgroups: groups,
            ranges: &[],
        },
        &[texture_entry(8, &x_rows.view), texture_entry(9, &gy_rows.view)],
    )?;
    ctx.record(
        rec,
        &Dispatch {
            shader: Shader::GemmSubgroup,
            entry: "wgrad_3x3_reduce",
            constants: &[],
            params: bytemuck::bytes_of(&params),
            buffers: &[(4, grad_w.buffer()), (5, partial.buffer())],
            workgroups: ctx.grid_1d(op, size as u64, crate::kernel::WG)?,
            ranges: &[],
        },
    )
}

/// Texels per row of a [`Flat`] texture (the prelude's `flat_load` assumes it).
pub(crate) const FLAT_TEXELS: usize = 1024;

/// A buffer's values in an rgba32f texture, FLAT_TEXELS texels (4 * FLAT_TEXELS values) per row,
/// so that gather kernels read them with texel fetches instead of storage-buffer loads (one
/// `copy_buffer_to_texture`, at memory speed).
pub(crate) struct Flat {
    texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    elems: usize,
}

impl Flat {
    /// A texture for `elems` f32 values; `None` when it exceeds the device's texture size.
    pub(crate) fn new(ctx: &Context, elems: usize) -> Option<Flat> {
        Self::with_format(ctx, elems, wgpu::TextureFormat::Rgba32Float)
    }

    /// [`Flat::new`] for i32 values (`Rgba32Sint`).
    pub(crate) fn new_i32(ctx: &Context, elems: usize) -> Option<Flat> {
        Self::with_format(ctx, elems, wgpu::TextureFormat::Rgba32Sint)
    }

    fn with_format(ctx: &Context, elems: usize, format: wgpu::TextureFormat) -> Option<Flat> {
        let height = elems.div_ceil(4 * FLAT_TEXELS);
        if !fits(ctx, FLAT_TEXELS, height) {
            return None;
        }
        let texture = ctx.create_texture(&wgpu::TextureDescriptor {
            label: Some("gconv flat copy"),
            size: wgpu::Extent3d {
                width: FLAT_TEXELS as u32,
                height: height as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            // Sampled by some kernels, read as a storage texture by others (conv.wgsl's tiles).
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Some(Flat { texture, view, elems })
    }

    /// The values it holds.
    pub(crate) fn elems(&self) -> usize {
        self.elems
    }

    /// Whether `buffer` can be copied in: it allows copies and holds whole texels.
    pub(crate) fn can_copy(&self, buffer: &wgpu::Buffer) -> bool {
        buffer.usage().contains(wgpu::BufferUsages::COPY_SRC)
            && buffer.size() >= (self.elems.div_ceil(4) * 16) as u64
    }

    /// Records the copy of the buffer's first values into the texture.
    pub(crate) fn record_copy(&self, rec: &mut Recorder<'_>, buffer: &wgpu::Buffer) {
        let texels = self.elems.div_ceil(4);
        let (rows, rest) = (texels / FLAT_TEXELS, texels % FLAT_TEXELS);
        let row_bytes = (FLAT_TEXELS * 16) as u32;
        for (y, width, height) in [(0, FLAT_TEXELS, rows), (rows, rest, 1)] {
            if width > 0 && height > 0 {
                rec.copy_op(Copy::ToTexture {
                    buffer: buffer.clone(),
                    offset: u64::from(row_bytes) * y as u64,
                    bytes_per_row: row_bytes,
                    texture: self.texture.clone(),
                    y: y as u32,
                    width: width as u32,
                    height: height as u32,
                });
            }
        }
    }
}
