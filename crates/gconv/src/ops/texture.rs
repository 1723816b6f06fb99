//! The textures kernels read their operands from, and the limits every kernel path respects:
//! [`Flat`] (a buffer's values in an rgba32f texture, for gathers), [`Packed`] (a matrix in
//! the texture GEMMs' layout), the texture budget, and lavapipe's loop limit.

use super::uniforms::ConvParams;
use crate::kernel::{Copy, Recorder};
use crate::{Context, Tensor};

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

/// Texels per row of a [`Flat`] texture (the prelude's `flat_load` assumes it).
pub(crate) const FLAT_TEXELS: usize = 1024;

/// A buffer's values in an rgba32f texture, FLAT_TEXELS texels (4 * FLAT_TEXELS values) per row,
/// so that gather kernels read them with texel fetches instead of storage-buffer loads (one
/// `copy_buffer_to_texture`, at memory speed).
#[derive(Clone)]
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
        if !Self::fits(ctx, elems) {
            return None;
        }
        let height = elems.div_ceil(4 * FLAT_TEXELS);
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
            // Sampled by some kernels, read as a storage texture by others (conv/tiles_3x3.wgsl).
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        Some(Flat { texture, view, elems })
    }

    /// A texture holding `elems` values of `buffer` from texel `first` on, its copy recorded;
    /// `None` where it does not fit or the buffer cannot be copied. In a plan, outside
    /// [`Recorder::parameter_derived`], it comes from the plan's pool
    /// ([`crate::kernel::TexturePool`]): only the current node's kernels may read it, since
    /// a later node's copy may overwrite it. Pooled textures are only written this way, each
    /// user's copy covering the same texels, so none holds another's values past its own.
    pub(crate) fn copied(
        ctx: &Context,
        rec: &mut Recorder<'_>,
        buffer: &wgpu::Buffer,
        first: usize,
        elems: usize,
    ) -> Option<Flat> {
        let texels = Self::copy_texels(ctx, buffer, first, elems)?;
        let key = (wgpu::TextureFormat::Rgba32Float, elems);
        let flat = match rec.take_texture(key) {
            Some((texture, view)) => Flat { texture, view, elems },
            None => {
                let flat = Self::new(ctx, elems)?;
                rec.pool_texture((key, flat.texture.clone(), flat.view.clone()));
                flat
            }
        };
        flat.record_copy_texels(rec, buffer, first, texels);
        Some(flat)
    }

    /// [`Flat::copied`] of all of `t`.
    pub(crate) fn copy_of(ctx: &Context, rec: &mut Recorder<'_>, t: &Tensor) -> Option<Flat> {
        Self::copied(ctx, rec, t.buffer(), 0, t.numel())
    }

    /// The same for a parameter's values (a weight): a texture of its own, its copy recorded
    /// as derived from the parameters alone ([`Recorder::parameter_derived`]: an inference
    /// plan replays it only after they change), so never the pool's.
    pub(crate) fn derived(
        ctx: &Context,
        rec: &mut Recorder<'_>,
        buffer: &wgpu::Buffer,
        first: usize,
        elems: usize,
    ) -> Option<Flat> {
        let texels = Self::copy_texels(ctx, buffer, first, elems)?;
        let flat = Self::new(ctx, elems)?;
        rec.parameter_derived(|rec| flat.record_copy_texels(rec, buffer, first, texels));
        Some(flat)
    }

    /// [`Flat::derived`] of all of `t`.
    pub(crate) fn derived_of(ctx: &Context, rec: &mut Recorder<'_>, t: &Tensor) -> Option<Flat> {
        Self::derived(ctx, rec, t.buffer(), 0, t.numel())
    }

    /// The whole texels a copy of `elems` values of `buffer` from texel `first` on takes,
    /// where the texture fits and the buffer allows the copy and holds them.
    fn copy_texels(
        ctx: &Context,
        buffer: &wgpu::Buffer,
        first: usize,
        elems: usize,
    ) -> Option<usize> {
        let texels = elems.div_ceil(4);
        let copies = buffer.usage().contains(wgpu::BufferUsages::COPY_SRC);
        let holds = buffer.size() >= ((first + texels) * 16) as u64;
        (Self::fits(ctx, elems) && copies && holds).then_some(texels)
    }

    /// The values it holds.
    pub(crate) fn elems(&self) -> usize {
        self.elems
    }

    /// A texture holding `t`'s values once [`Flat::record_copy`] has copied them in, or `None`
    /// where it does not fit or `t`'s buffer cannot be copied (see [`Flat::can_hold`]).
    pub(crate) fn of(ctx: &Context, t: &Tensor) -> Option<Flat> {
        Self::new(ctx, t.numel()).filter(|f| f.can_copy(t.buffer()))
    }

    /// Whether [`Flat::of`] would give a texture for `t`, without making one.
    pub(crate) fn can_hold(ctx: &Context, t: &Tensor) -> bool {
        Self::fits(ctx, t.numel())
            && t.buffer().usage().contains(wgpu::BufferUsages::COPY_SRC)
            && t.buffer().size() >= (t.numel().div_ceil(4) * 16) as u64
    }

    /// Whether a texture for `elems` values fits the device and the budget.
    pub(crate) fn fits(ctx: &Context, elems: usize) -> bool {
        fits(ctx, FLAT_TEXELS, elems.div_ceil(4 * FLAT_TEXELS))
    }

    /// Whether `buffer` can be copied in: it allows copies and holds whole texels.
    pub(crate) fn can_copy(&self, buffer: &wgpu::Buffer) -> bool {
        buffer.usage().contains(wgpu::BufferUsages::COPY_SRC)
            && buffer.size() >= (self.elems.div_ceil(4) * 16) as u64
    }

    /// Records the copy of the buffer's first values into the texture.
    pub(crate) fn record_copy(&self, rec: &mut Recorder<'_>, buffer: &wgpu::Buffer) {
        self.record_copy_texels(rec, buffer, 0, self.elems.div_ceil(4));
    }

    /// Records the copy of `texels` whole texels of the buffer, from texel `first` on, into the
    /// texture's first texels.
    pub(crate) fn record_copy_texels(
        &self,
        rec: &mut Recorder<'_>,
        buffer: &wgpu::Buffer,
        first: usize,
        texels: usize,
    ) {
        let (rows, rest) = (texels / FLAT_TEXELS, texels % FLAT_TEXELS);
        let row_bytes = (FLAT_TEXELS * 16) as u32;
        for (y, width, height) in [(0, FLAT_TEXELS, rows), (rows, rest, 1)] {
            if width > 0 && height > 0 {
                rec.copy_op(Copy::ToTexture {
                    buffer: buffer.clone(),
                    offset: 16 * first as u64 + u64::from(row_bytes) * y as u64,
                    bytes_per_row: row_bytes,
                    texture: self.texture.clone(),
                    x: 0,
                    y: y as u32,
                    width: width as u32,
                    height: height as u32,
                });
            }
        }
    }
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
    /// An implicit operand of this convolution, which the GEMM gathers from `view` (a [`Flat`]
    /// copy) as it loads it: the workgroup layout's kernels, and for [`Gather::Planes`] and
    /// [`Gather::AlongK`] the register layout's subgroup ones.
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
    /// B's rows as a tensor's planes (`view` is its copy): a pointwise convolution's im2col
    /// matrix, x itself (the forward pass), or grad_y (the data gradient), or a row-major
    /// matrix's rows (a linear layer's W for grad_x, x for grad_W), on the register layout's
    /// subgroup kernels (`B_PLANES` 1 in shaders/shared/gemm_in_place.wgsl).
    Planes,
    /// A tensor's planes along K (`view` is its copy): a pointwise convolution's weight
    /// gradient's operands, grad_y and x, K running over the samples' positions (as A's rows
    /// and B's columns), or a row-major matrix's rows (a linear layer's x as A, W as B^T, and
    /// grad_y as A for grad_x), on the same kernels (`A_PLANES` 1, `B_PLANES` 2).
    AlongK,
    /// A's columns as a tensor's planes, A^T row-major (`view` is its copy): a convolution's W
    /// as the data gradient's W^T, a linear layer's grad_y as grad_W's grad_y^T, on the same
    /// kernels (`A_PLANES` 2).
    Columns,
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
    /// the GEMM computes its texels as it loads them.
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

    /// Whether [`Packed::new`] would give a texture, without making one.
    pub(crate) fn fits(ctx: &Context, cols: usize, tex_rows: usize, batch: usize) -> bool {
        fits(ctx, cols.div_ceil(4), tex_rows * batch)
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
        if !Self::fits(ctx, cols, tex_rows, batch) {
            return None;
        }
        let (width, height) = (cols.div_ceil(4), tex_rows * batch);
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
