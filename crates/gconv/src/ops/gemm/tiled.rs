//! The texture GEMM: C = A B from operands packed into rgba32f textures (`pack.rs`, or
//! im2col into a texture), through a strided, fused epilogue (bias, ReLU, accumulation, a 2x2
//! max-pool, or a texture output). Its layout follows the adapter ([`GemmLayout`]): the
//! register layout (`shaders/gemm/registers.wgsl`, and with 8-lane subgroups
//! `shaders/subgroup/gemm_sg.wgsl`) on CPU adapters, the workgroup-memory layout
//! (`shaders/gemm/workgroup.wgsl`, with implicit im2col operands) on GPUs. [`record_gemm`] is the
//! one place its kernel is chosen.

use super::Gemm;
use super::pack::{View, record_pack, u};
use crate::kernel::{Dispatch, Recorder, Shader};
use crate::ops::activation::Act;
use crate::ops::texture::{Flat, Gather, MAX_LOOP_ITERATIONS, Packed};
use crate::ops::uniforms::{ConvParams, bias_mode};
use crate::{Context, Error, GemmLayout, Result, Tensor};

/// The texture GEMMs' uniform (`TexGemmParams` in shaders/shared/gemm_epilogue.wgsl), which the
/// subgroup 3x3 convolutions, sharing the epilogue, fill too.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct TexGemmParams {
    pub(crate) m: u32,
    pub(crate) n: u32,
    pub(crate) k4: u32,
    pub(crate) b_rows: u32,
    pub(crate) batch: u32,
    pub(crate) c_offset: u32,
    pub(crate) c_batch_stride: u32,
    pub(crate) c_row_stride: u32,
    pub(crate) c_col_stride: u32,
    pub(crate) c_split: u32,
    pub(crate) c_split_stride: u32,
    pub(crate) bias_mode: u32,
    pub(crate) relu: u32,
    pub(crate) accumulate: u32,
    pub(crate) splits: u32,
    pub(crate) k_split: u32,
    pub(crate) c_texture: u32,
    pub(crate) pool: u32,
    pub(crate) pool_w: u32,
    pub(crate) pool_in_w: u32,
    pub(crate) lo: f32,
    pub(crate) hi: f32,
    /// `conv_3x3_sg_r16`: the source rows carry a texel of margin at each end.
    pub(crate) margin: u32,
    pub(crate) _pad: u32,
    pub(crate) conv: ConvParams,
}

/// Workgroups a tiled GEMM aims for on a CPU adapter, splitting K when its output has fewer
/// tiles.
pub(crate) const WORKGROUPS_WANTED: u32 = 16;

/// The same for GPUs ([`GemmLayout::Workgroup`]): about two per multiprocessor of a large one.
const GPU_WORKGROUPS_WANTED: u32 = 256;

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
    /// `bias` holds each row's scale, then its shift (batch norm folded into a convolution).
    pub affine: bool,
    /// The clamp behind the bias.
    pub act: Act,
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
            affine: false,
            act: Act::NONE,
            accumulate: false,
            pool: None,
        }
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
    // A gathered operand makes this an implicit GEMM, on the workgroup layout only; operands
    // read in place (gemm_in_place.wgsl's A_PLANES and B_PLANES) are the subgroup kernels'.
    let a_planes: u32 = match a.gather {
        Some((Gather::AlongK, _)) => 1,
        Some((Gather::Columns, _)) => 2,
        _ => 0,
    };
    // A packed or read in place: not a workgroup-layout gather.
    let a_texels = a.gather.is_none() || a_planes != 0;
    let implicit: u32 = match (a.gather, b.gather) {
        (None, None) => 0,
        (None, Some((Gather::Im2col, _))) => 1,
        (Some((Gather::Im2col, _)), None) => 2,
        (None, Some((Gather::Dgrad, _))) => 3,
        (_, Some((Gather::Planes, _))) if a_texels => 4,
        (_, Some((Gather::AlongK, _))) if a_texels => 5,
        (_, None) if a_planes != 0 => 0,
        _ => {
            return Err(Error::invalid(
                op,
                "unsupported implicit GEMM operands (an internal error)",
            ));
        }
    };
    let planes = match implicit {
        4 => 1,
        5 => 2,
        _ => 0,
    };
    let gathers = implicit != 0 && planes == 0;
    if gathers && (ctx.gemm_layout() != GemmLayout::Workgroup || batch != 1) {
        return Err(Error::invalid(
            op,
            "implicit GEMM off the workgroup layout (an internal error)",
        ));
    }
    let wg_x = workgroup_x(n);
    let (entry, lane_rows, tile_rows, tile_cols, wanted) = match ctx.gemm_layout() {
        // The register layout: see register_entry.
        GemmLayout::Registers | GemmLayout::Auto => {
            let (entry, rows) = register_entry(ctx, m, n, a.tex_cols());
            (entry, rows, rows * 64 / wg_x, 16 * wg_x, WORKGROUPS_WANTED)
        }
        // 128x128 tiles where they give every multiprocessor of a large GPU (132 on an H100)
        // about two workgroups; 64x64 tiles below that. Rows per invocation 8 and 4 (their
        // epilogue has no whole-block path, so EDGES goes unread there).
        GemmLayout::Workgroup => {
            let big = (n as u32).div_ceil(128) * (m as u32).div_ceil(128) * batch as u32;
            if big >= GPU_WORKGROUPS_WANTED {
                ("gemm_wg128", 8, 128, 128, GPU_WORKGROUPS_WANTED)
            } else {
                ("gemm_wg64", 4, 64, 64, GPU_WORKGROUPS_WANTED)
            }
        }
    };
    // gemm_sg_r16 / r8's workgroups take only the row blocks M needs.
    let row_blocks = subgroup_row_blocks(entry, m, lane_rows);
    let tile_rows = row_blocks.map_or(tile_rows, |b| lane_rows * b);
    let a_columns_ok = a_planes == 2 && reads_a_columns(entry);
    if (planes != 0 || a_planes != 0) && (!(reads_in_place(entry) || a_columns_ok) || batch != 1) {
        return Err(Error::invalid(
            op,
            format!("an operand read in place on {entry}, which cannot (an internal error)"),
        ));
    }
    let shader = match ctx.gemm_layout() {
        GemmLayout::Workgroup => Shader::GemmWorkgroup,
        _ if entry.starts_with("gemm_sg") => Shader::GemmSubgroup,
        _ => Shader::GemmRegisters,
    };
    let tiles = (n as u32).div_ceil(tile_cols) * (m as u32).div_ceil(tile_rows) * batch as u32;
    // Split K until there are enough workgroups for the device, keeping at least `min_split`
    // texels per split. On a CPU adapter 256 (1024 values of K): below that the reduction pass
    // costs more than the idle cores (a classifier's K = 576 on lavapipe). On a GPU 32: its
    // workgroup kernels wait on memory and barriers, and more workgroups hide that (on an H200,
    // a 64-channel 7x7 layer's GEMM of K = 576 at batch 64 ran 1.6x faster in 4 splits).
    let k4 = u(op, "K", a.tex_cols())?;
    let min_split = if ctx.gemm_layout() == GemmLayout::Workgroup { 32 } else { 256 };
    if e.affine && (e.bias.is_none() || !e.bias_per_row || e.texture.is_some()) {
        return Err(Error::invalid(
            op,
            "a batch-norm epilogue needs its scales (an internal error)",
        ));
    }
    let pool_ok = e.act == Act::RELU && !e.affine && !e.accumulate && e.texture.is_none();
    if e.pool.is_some() && (!pool_ok || m == 0) {
        return Err(Error::invalid(op, "a pooling epilogue needs ReLU (an internal error)"));
    }
    // Every split's loop runs at most MAX_LOOP_ITERATIONS times (see there): once per texel of
    // K on the register layout, once per 4-texel stage on the workgroup layout (whose cap keeps
    // the margin it had when each stage ran a loop of 16 steps).
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
        (wanted.div_ceil(tiles)).min(k4 / min_split).max(k4.div_ceil(cap)).max(1)
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
        bias_mode: bias_mode(e.bias.is_some(), e.bias_per_row, e.affine),
        relu: e.act.kind,
        accumulate: e.accumulate as u32,
        splits,
        k_split,
        c_texture: e.texture.is_some() as u32,
        pool: e.pool.map_or(0, |pe| if pe.indices.is_some() { 2 } else { 1 }),
        pool_w: u(op, "pooled width", e.pool.map_or(0, |pe| pe.pooled_w))?,
        pool_in_w: u(op, "width", e.pool.map_or(0, |pe| pe.in_w))?,
        lo: e.act.lo,
        hi: e.act.hi,
        margin: 0,
        _pad: 0,
        // B's convolution, and A's planes (its `input`) where both are read in place.
        conv: match (a.gather, b.gather) {
            (Some((_, ca)), Some((_, cb))) => ConvParams { input: ca.input, ..cb },
            (Some((_, c)), None) | (None, Some((_, c))) => c,
            (None, None) => bytemuck::Zeroable::zeroed(),
        },
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
        let gather = [
            "",
            ", B implicit (im2col)",
            ", A implicit (im2col)",
            ", B implicit (dgrad)",
            ", B read in place",
            ", B^T read in place",
        ];
        eprintln!(
            "gconv: {op}: tiled GEMM {entry} (batch {batch}, M {m}, N {n}, K {}), {splits} K \
             split(s){}{}",
            a.cols,
            gather[implicit as usize],
            ["", ", A read in place", ", A^T read in place"][a_planes as usize]
        );
    }
    let registers = matches!(ctx.gemm_layout(), GemmLayout::Registers | GemmLayout::Auto);
    // GEMM_WG_X for every register kernel (gemm_sg_r16/r8, whose workgroups are 8 lanes
    // wide, only ever get 8), and for those two WG, 8 lanes per row block they take.
    let mut constants: Vec<(&str, f64)> = if registers {
        let mut c = vec![("GEMM_WG_X", f64::from(wg_x))];
        c.extend(row_blocks.map(|b| ("WG", f64::from(8 * b))));
        c
    } else if implicit != 0 {
        vec![("IMPLICIT", f64::from(implicit))]
    } else {
        Vec::new()
    };
    constants.extend(epilogue_constants(&params, lane_rows));
    // C's texels (binding 10) for the kernels that store whole blocks.
    let quads = matches!(
        entry,
        "gemm_sg_r16" | "gemm_sg_r8" | "gemm_sgc_r8" | "gemm_tex_r16" | "gemm_tex_r8"
    );
    if quads && quad_columns(&params) {
        constants.push(("QUAD_STORES", 1.0));
    }
    if planes != 0 {
        constants.push(("B_PLANES", f64::from(planes)));
    }
    if a_planes != 0 {
        constants.push(("A_PLANES", f64::from(a_planes)));
    }
    let bias = e.bias.map_or(&ctx.inner.dummy, Tensor::buffer);
    let mut ranges: Vec<(u32, u64, u64)> =
        e.range.into_iter().flat_map(|(o, s)| [(4, o, s), (10, o, s)]).collect();
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
    let plain = [(3, bias), (4, c.buffer()), (5, partial_buffer), (7, indices)];
    let with_quads = [plain[0], plain[1], plain[2], plain[3], (10, c.buffer())];
    // The register layout reads A and B as storage textures (bindings 8 and 9, see
    // shared/gemm_epilogue.wgsl), the workgroup layout samples them (1 and 2).
    let (a_binding, b_binding) = if registers { (8, 9) } else { (1, 2) };
    // gemm_sg_r16 / r8 also bind B at 11 and A at 12 (b_planes and a_planes: the copies their
    // operands are read from in place, see shared/gemm_in_place.wgsl); the others that read
    // A^T in place (gemm_sgc_r8) A at 12.
    let in_place = if reads_in_place(entry) {
        [(11, &b.view), (12, &a.view)].to_vec()
    } else if reads_a_columns(entry) {
        [(12, &a.view)].to_vec()
    } else {
        Vec::new()
    };
    let textures: Vec<_> = [(a_binding, &a.view), (b_binding, &b.view), (6, c_tex)]
        .into_iter()
        .chain(in_place)
        .map(|(binding, view)| wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::TextureView(view),
        })
        .collect();
    ctx.record_with(
        rec,
        &Dispatch::new(
            shader,
            entry,
            bytemuck::bytes_of(&params),
            if quads { &with_quads } else { &plain },
            groups,
        )
        .constants(&constants)
        .ranges(&ranges),
        &textures,
    )?;
    if splits > 1 {
        ctx.record(
            rec,
            &Dispatch::new(
                Shader::GemmSplitK,
                "gemm_tex_reduce",
                bytemuck::bytes_of(&params),
                &[(3, bias), (4, c.buffer()), (5, partial_buffer)],
                [(n as u32).div_ceil(8), (m as u32).div_ceil(8), batch as u32],
            )
            .ranges(&ranges),
        )?;
    }
    Ok(())
}

/// Row blocks a workgroup of gemm_sg_r16 / r8 covers (WG / 8: one subgroup of `lane_rows` rows
/// each; `None` for the other kernels): of 1 to 8, the count that leaves the fewest subgroups
/// past M's last block, the largest among equals. Lavapipe runs such a subgroup through a step
/// of K and a masked epilogue (gemm_sg.wgsl): a projection to 16 channels, two blocks of 8,
/// took half its time in workgroups of 8 blocks.
fn subgroup_row_blocks(entry: &str, m: usize, lane_rows: u32) -> Option<u32> {
    if !matches!(entry, "gemm_sg_r16" | "gemm_sg_r8") {
        return None;
    }
    let blocks = u32::try_from(m).unwrap_or(u32::MAX).div_ceil(lane_rows).max(1);
    (1..=8u32).rev().min_by_key(|&r| blocks.div_ceil(r) * r - blocks)
}

/// The register layout's workgroup shape (GEMM_WG_X): 8 x 8 invocations, or narrower for N up
/// to 64 or 32 so that no lane idles past N beside working ones.
fn workgroup_x(n: usize) -> u32 {
    match n {
        0..=32 => 2,
        33..=64 => 4,
        _ => 8,
    }
}

/// The register layout's kernel for C (M x N) over K of `k4` texels, and the rows of C each of
/// its lanes computes.
///
/// Rows per invocation: the workgroup covers 64 / wg_x * rows of C; fewer rows for
/// short matrices keep every invocation busy (conv1's 32 channels, a classifier's 10
/// outputs). Lavapipe runs one workgroup per thread.
///
/// With 8-lane subgroups, the kernels that share one operand across a subgroup
/// (gemm_sg.wgsl; the same tiles): A where a subgroup spans 8 column blocks (N > 64), B
/// where it spans 8 row blocks of 4 or 2 column blocks (N <= 64). The latter always
/// takes 8 rows per lane: as few fetches per multiply-add as 16 rows, and a subgroup
/// covers 64 rows instead of 128, less of them past M (a weight gradient's C_in * 9).
/// Short matrices of 8 rows or more (MobileNet's projections to 16-32 channels,
/// LeNet's 16) also take gemm_sg_r8 where N > 64: a subgroup whose rows are all past M
/// returns at once, and one fetch of A per 8 rows beats gemm_tex_r4's four texels of
/// A per 16 of B (on lavapipe 1.2-1.5x on those layers). So do tall ones with K of 64
/// or less (MobileNet's expansions from 16-32 channels, LeNet's grad_col from 16):
/// there the epilogue outweighs the loop, and gemm_sg_r16's 64 accumulators cost more
/// to keep and store than twice the fetches of B (1.1-1.3x on those layers; LeNet's
/// grad_col 12.5 -> 9 ms). Where N <= 64, gemm_sgc_r8 from 8 rows on: gemm_tex_r4
/// fetches 16 texels of B a step whatever N, and a weight gradient of few taps and
/// channels (LeNet's first layer, 25 x 6 over K = 15,680) took 3.5 ms a chunk on it,
/// 1.3 ms on gemm_sgc_r8.
fn register_entry(ctx: &Context, m: usize, n: usize, k4: usize) -> (&'static str, u32) {
    let short_k = k4 <= 16;
    match (m, ctx.uses_subgroups(), workgroup_x(n) == 8) {
        (8..=64, true, true) => ("gemm_sg_r8", 8),
        (8.., true, false) => ("gemm_sgc_r8", 8),
        (0..=32, _, _) => ("gemm_tex_r4", 4),
        (_, true, true) if short_k => ("gemm_sg_r8", 8),
        (_, true, true) => ("gemm_sg_r16", 16),
        (33..=64, false, _) => ("gemm_tex_r8", 8),
        _ => ("gemm_tex_r16", 16),
    }
}

/// Whether a GEMM of M rows over K of `k4` texels, on every N of `n_min` columns or more, reads
/// its operands through `a_texel` and `b_rows` (gemm_sg_r16 / r8), which can read a pointwise
/// convolution's tensors or a linear layer's in place ([`Gather::Planes`], [`Gather::AlongK`]).
/// Above 64 columns N does not change the kernel.
pub(crate) fn reads_planes(ctx: &Context, m: usize, n_min: usize, k4: usize) -> bool {
    let registers = matches!(ctx.gemm_layout(), GemmLayout::Registers | GemmLayout::Auto);
    registers && n_min > 64 && reads_in_place(register_entry(ctx, m, n_min, k4).0)
}

/// The kernels that read A and B through `a_texel` and `b_rows` (and bind b_planes and a_planes,
/// bindings 11 and 12).
fn reads_in_place(entry: &str) -> bool {
    matches!(entry, "gemm_sg_r16" | "gemm_sg_r8")
}

/// The kernels that can read A^T in place ([`Gather::Columns`]): those and gemm_sgc_r8
/// (`a_rows8`).
fn reads_a_columns(entry: &str) -> bool {
    reads_in_place(entry) || entry == "gemm_sgc_r8"
}

/// Whether every GEMM of M rows over K of `k4` texels, whatever its N from `n_min` on, runs on a
/// kernel that reads A^T in place ([`Gather::Columns`]).
pub(crate) fn reads_transposed_a(ctx: &Context, m: usize, n_min: usize, k4: usize) -> bool {
    let registers = matches!(ctx.gemm_layout(), GemmLayout::Registers | GemmLayout::Auto);
    registers
        && [n_min, usize::MAX].iter().all(|&n| reads_a_columns(register_entry(ctx, m, n, k4).0))
}

/// The epilogue's override constants (shared/gemm_epilogue.wgsl's EPILOGUE and EDGES) for a
/// launch whose lanes each compute `lane_rows` rows of 16 columns: the register kernels'
/// whole-block epilogue covers every lane where M and N are whole blocks, C is written
/// unsplit, and a bias, if any, is per row; pooled and texture outputs need only whole ones.
/// Then the launch's clamp, bias mode and accumulation (GEMM_ACT, GEMM_BIAS, GEMM_ACCUMULATE),
/// so that only the path it takes is compiled in.
fn epilogue_constants(p: &TexGemmParams, lane_rows: u32) -> [(&'static str, f64); 5] {
    let epilogue = if p.pool != 0 {
        2
    } else if p.c_texture != 0 {
        3
    } else {
        1
    };
    let whole = p.m.is_multiple_of(lane_rows) && p.n.is_multiple_of(16);
    let plain = epilogue != 1 || (p.splits == 1 && p.bias_mode != 1);
    [
        ("EPILOGUE", f64::from(epilogue)),
        ("EDGES", if whole && plain { 0.0 } else { 1.0 }),
        ("GEMM_ACT", f64::from(p.relu)),
        ("GEMM_BIAS", f64::from(p.bias_mode)),
        ("GEMM_ACCUMULATE", f64::from(p.accumulate.min(1))),
    ]
}

/// Whether every run of four columns of C from a multiple of 4 is one aligned texel: unit column
/// stride, splits of whole texels and every offset and stride a multiple of 4 (QUAD_STORES).
fn quad_columns(p: &TexGemmParams) -> bool {
    let strides = p.c_offset | p.c_batch_stride | p.c_row_stride | p.c_split | p.c_split_stride;
    p.c_col_stride == 1 && strides.is_multiple_of(4)
}

impl Gemm<'_> {
    /// The byte range `binding` is restricted to, if any (see `Gemm::ranges`).
    fn range(&self, binding: u32) -> Option<(u64, u64)> {
        self.ranges.iter().find(|r| r.0 == binding).map(|&(_, offset, size)| (offset, size))
    }
}

/// Records the dense GEMM `g` on the texture GEMM: A and B packed from their views (or read in
/// place, see [`in_place`]), then [`record_gemm`].
pub(super) fn record_dense(
    g: &Gemm<'_>,
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
    c: &Tensor,
) -> Result<()> {
    let (a, b) = match in_place(g, ctx, op, rec)? {
        Some(operands) => operands,
        None => (pack_a(g, ctx, op, rec)?, pack_b(g, ctx, op, rec)?),
    };
    let mut c_view = View::dense(g.offsets.2, g.ldc, false);
    c_view.batch_stride = g.batch_strides.2;
    let epilogue = Epilogue {
        view: c_view,
        range: g.range(4),
        texture: None,
        bias: g.bias,
        bias_range: g.range(3),
        bias_per_row: g.bias_per_row,
        affine: false,
        act: if g.relu { Act::RELU } else { Act::NONE },
        accumulate: g.accumulate,
        pool: None,
    };
    record_gemm(ctx, op, rec, &a, &b, c, &epilogue)
}

/// A texture for a packed operand of `g` (`rows` x `cols`, `tex_rows` texture rows a batch).
fn operand(
    g: &Gemm<'_>,
    ctx: &Context,
    op: &'static str,
    (rows, cols, tex_rows): (usize, usize, usize),
) -> Result<Packed> {
    Packed::new(ctx, rows, cols, tex_rows, g.batch).ok_or_else(|| Error::TooLarge {
        what: format!("{op}'s packed GEMM operand ({rows} x {cols})"),
        bytes: (tex_rows * g.batch * cols.div_ceil(4) * 16) as u64,
        limit_name: "max_texture_dimension_2d",
        limit: u64::from(ctx.limits().max_texture_dimension_2d),
    })
}

/// A packed from its view.
fn pack_a(g: &Gemm<'_>, ctx: &Context, op: &'static str, rec: &mut Recorder<'_>) -> Result<Packed> {
    let kt = g.k * g.k_batches;
    let a = operand(g, ctx, op, (g.m, kt, g.m))?;
    let mut view = View::dense(g.offsets.0, g.lda, g.trans.0);
    view.batch_stride = g.batch_strides.0;
    if g.k_batches > 1 {
        view.col_split = g.k;
        view.col_split_stride = g.kb_strides.0;
    }
    let pack =
        |rec: &mut Recorder<'_>| record_pack(ctx, op, rec, g.a.buffer(), g.range(1), &view, &a);
    operand_steps(rec, g.parameters.0, pack)?;
    Ok(a)
}

/// B packed from its view.
fn pack_b(g: &Gemm<'_>, ctx: &Context, op: &'static str, rec: &mut Recorder<'_>) -> Result<Packed> {
    let kt = g.k * g.k_batches;
    let b = operand(g, ctx, op, (kt, g.n, kt.div_ceil(4) * 4))?;
    let mut view = View::dense(g.offsets.1, g.ldb, g.trans.1);
    view.batch_stride = g.batch_strides.1;
    if g.k_batches > 1 {
        view.row_split = g.k;
        view.row_split_stride = g.kb_strides.1;
    }
    let pack =
        |rec: &mut Recorder<'_>| record_pack(ctx, op, rec, g.b.buffer(), g.range(2), &view, &b);
    operand_steps(rec, g.parameters.1, pack)?;
    Ok(b)
}

/// Records `f`'s steps, which pack or copy an operand, as derived from parameters where the
/// operand is a weight (`parameter`, from [`Gemm::parameters`]).
fn operand_steps<'r, T>(
    rec: &mut Recorder<'r>,
    parameter: bool,
    f: impl FnOnce(&mut Recorder<'r>) -> T,
) -> T {
    if parameter { rec.parameter_derived(f) } else { f(rec) }
}

/// B, and A where its rows are whole texels, read in place from texture copies of their rows
/// (shared/gemm_in_place.wgsl: A's rows along K as `A_PLANES` 1, or A^T's as `A_PLANES` 2;
/// B's rows as `B_PLANES` 1, or B^T's, rows along K, as `B_PLANES` 2), each row a plane of its
/// row length: a linear layer's x and W^T in its forward pass, grad_y and W for grad_x,
/// grad_y^T and x for grad_W. Only on gemm_sg_r16 / r8 ([`reads_planes`]), for one batch, K
/// and B's row length and offset in whole texels, and the rows within a texture copy; `None`
/// otherwise (both packed).
fn in_place(
    g: &Gemm<'_>,
    ctx: &Context,
    op: &'static str,
    rec: &mut Recorder<'_>,
) -> Result<Option<(Packed, Packed)>> {
    let plain = g.batch == 1 && g.k_batches == 1 && g.ranges.is_empty();
    let whole = [g.k, g.ldb, g.offsets.1].iter().all(|v| v.is_multiple_of(4));
    if !(plain && whole && reads_planes(ctx, g.m, g.n, g.k / 4)) {
        return Ok(None);
    }
    // A texture copy of `rows` rows of `ld` values from `offset`, `used` of the last one read:
    // a parameter's its own, derived from the parameters; an activation's from the plan's pool.
    let mut copy = |t: &Tensor, offset: usize, (rows, ld, used), parameter: bool| {
        let elems = (rows - 1) * ld + used;
        let copy = if parameter { Flat::derived } else { Flat::copied };
        copy(ctx, rec, t.buffer(), offset / 4, elems)
    };
    // B^T's N rows along K, or B's K rows of N columns (whole texels of them).
    let b_shape = if g.trans.1 { (g.n, g.ldb, g.k) } else { (g.k, g.ldb, g.n.div_ceil(4) * 4) };
    let Some(b) = copy(g.b, g.offsets.1, b_shape, g.parameters.1) else {
        return Ok(None);
    };
    // A's M rows along K, or A^T's K rows of M columns (whole texels of them).
    let a_rows = g.lda.is_multiple_of(4) && g.offsets.0.is_multiple_of(4);
    let a_shape = if g.trans.0 { (g.k, g.lda, g.m.div_ceil(4) * 4) } else { (g.m, g.lda, g.k) };
    let a = if a_rows { copy(g.a, g.offsets.0, a_shape, g.parameters.0) } else { None };
    // Each operand's rows as planes of one sample: A's of `lda` values (the input's size), B's
    // of `ldb` (the output's).
    let params = ConvParams {
        c_in: u(op, "K", g.k)?,
        input: [1, 1, u(op, "row length", g.lda)?],
        output: [1, 1, u(op, "row length", g.ldb)?],
        ..bytemuck::Zeroable::zeroed()
    };
    let gather = if g.trans.1 { Gather::AlongK } else { Gather::Planes };
    let b = Packed::implicit(&b, gather, params, g.k, g.n);
    let a = match a {
        Some(flat) => {
            let gather = if g.trans.0 { Gather::Columns } else { Gather::AlongK };
            Packed::implicit(&flat, gather, params, g.m, g.k)
        }
        None => pack_a(g, ctx, op, rec)?,
    };
    Ok(Some((a, b)))
}
