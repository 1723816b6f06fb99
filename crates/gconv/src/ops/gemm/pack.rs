//! Packing: a strided view of a buffer ([`View`]) into the texture GEMMs' operand layout
//! ([`Packed`]), by `shaders/gemm/pack.wgsl` or, for plain rows, a texture copy.

use crate::kernel::{Copy, Dispatch, Recorder, Shader};
use crate::ops::check_u32;
use crate::ops::texture::Packed;
use crate::{Context, Result};

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

/// Splits past every index: the kernels' `divmod24` is exact below 2^24, and texture limits keep
/// rows and columns far below that.
const NO_SPLIT: u32 = 1 << 24;

pub(super) fn u(op: &'static str, what: &str, v: usize) -> Result<u32> {
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
    // 64 texels of one row per workgroup, or of consecutive rows where a row has fewer (see
    // pack.wgsl); a matrix stored by columns in blocks of four rows.
    let rows = target.tex_rows * target.batch;
    // pack_columns4 reads quads (binding 3), the others scalars (binding 1).
    let columns = by_columns(range, view, target);
    let binding = if columns { 3 } else { 1 };
    let (entry, groups) = if columns {
        let invocations = target.tex_cols() * target.tex_rows.div_ceil(4);
        ("pack_columns4", ctx.grid_1d(op, invocations as u64, 64)?)
    } else if target.tex_cols() < 64 {
        ("pack_narrow", ctx.grid_1d(op, (target.tex_cols() * rows) as u64, 64)?)
    } else {
        ("pack", [(target.tex_cols() as u32).div_ceil(64), rows as u32, 1])
    };
    ctx.record_with(
        rec,
        &Dispatch::new(
            Shader::GemmPack,
            entry,
            bytemuck::bytes_of(&params),
            &[(binding, src)],
            groups,
        )
        .ranges(&ranges),
        &[wgpu::BindGroupEntry {
            binding: 2,
            resource: wgpu::BindingResource::TextureView(&target.view),
        }],
    )
}

/// Whether `view` is a matrix stored by columns that `pack_columns4` takes: rows adjacent (in
/// splits of whole quads, if split), no column splits, one batch, each column starting on a
/// whole quad, the buffer bound whole, fewer than 2^24 invocations.
fn by_columns(range: Option<(u64, u64)>, view: &View, target: &Packed) -> bool {
    let quads = |v: usize| v.is_multiple_of(4);
    range.is_none()
        && target.batch == 1
        && view.row_stride == 1
        && (view.row_split == usize::MAX || (quads(view.row_split) && quads(view.row_split_stride)))
        && view.col_split == usize::MAX
        && quads(view.col_stride)
        && quads(view.offset)
        && target.tex_cols() * target.tex_rows.div_ceil(4) < 1 << 24
}

/// The copies that pack `view` when it is plain rows a texture copy can take as they are:
/// row-major, four whole columns per texel, rows 256-byte aligned (wgpu's copy pitch), no
/// padding rows to zero; the columns may come in splits (a sample's positions, channel by
/// channel) of whole texels, each split its own copy. `None` when the pack kernel is needed.
fn plain_rows(
    src: &wgpu::Buffer,
    range: Option<(u64, u64)>,
    view: &View,
    target: &Packed,
) -> Option<Vec<Copy>> {
    let pitch = view.row_stride * 4;
    let split = view.col_split.min(target.cols);
    let plain = view.col_stride == 1
        && view.row_split == usize::MAX
        && split > 0
        && split.is_multiple_of(4)
        && target.cols.is_multiple_of(4)
        && target.tex_rows == target.rows
        && pitch.is_multiple_of(256)
        && view.row_stride >= split
        && view.offset.is_multiple_of(4)
        && view.batch_stride.is_multiple_of(4)
        && (target.cols == split || view.col_split_stride.is_multiple_of(4))
        && src.usage().contains(wgpu::BufferUsages::COPY_SRC);
    if !plain {
        return None;
    }
    let base = range.map_or(0, |r| r.0);
    let splits = target.cols.div_ceil(split);
    let copies = (0..target.batch)
        .flat_map(|z| (0..splits).map(move |s| (z, s)))
        .map(|(z, s)| Copy::ToTexture {
            buffer: src.clone(),
            offset: base
                + ((view.offset + z * view.batch_stride + s * view.col_split_stride) * 4) as u64,
            bytes_per_row: pitch as u32,
            texture: target.view.texture().clone(),
            x: (s * split / 4) as u32,
            y: (z * target.tex_rows) as u32,
            width: (split.min(target.cols - s * split) / 4) as u32,
            height: target.rows as u32,
        })
        .collect();
    Some(copies)
}
