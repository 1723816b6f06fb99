//! conv1d/2d/3d and conv_transpose1d/2d/3d (`conv.wgsl`).

use super::{Dims, Padding, Spatial, check_bias, check_u32, context_of, to3};
use crate::kernel::{Dispatch, Recorder};
use crate::kernel::{Shader, WG};
use crate::ops::gemm::Gemm;
use crate::ops::tiled::{self, Epilogue, Flat, Gather, Packed, View};
use crate::{Context, ConvStrategy, GemmLayout, GemmStrategy};
use crate::{DType, Error, Result, Tensor};

/// Attributes of `conv1d/2d/3d`, with PyTorch's names and defaults (stride 1, padding 0,
/// dilation 1, groups 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvOptions {
    /// Step between windows, per dimension.
    pub stride: Dims,
    /// Zero padding: explicit, `Same` or `Valid`.
    pub padding: Padding,
    /// Spacing between kernel taps, per dimension.
    pub dilation: Dims,
    /// Channel groups: `C_in` and `C_out` are split into this many independent convolutions
    /// (`groups == C_in` is a depthwise convolution).
    pub groups: usize,
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions { stride: 1.into(), padding: 0.into(), dilation: 1.into(), groups: 1 }
    }
}

impl ConvOptions {
    /// Sets `stride`.
    pub fn stride(mut self, v: impl Into<Dims>) -> Self {
        self.stride = v.into();
        self
    }
    /// Sets `padding`.
    pub fn padding(mut self, v: impl Into<Padding>) -> Self {
        self.padding = v.into();
        self
    }
    /// Sets `dilation`.
    pub fn dilation(mut self, v: impl Into<Dims>) -> Self {
        self.dilation = v.into();
        self
    }
    /// Sets `groups`.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// Attributes of `conv_transpose1d/2d/3d`, with PyTorch's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvTransposeOptions {
    /// Step of the (forward) convolution this transposes.
    pub stride: Dims,
    /// `dilation * (kernel - 1) - padding` zero padding is added to both sides of the input.
    pub padding: Dims,
    /// Extra size added to one side of the output (smaller than stride or dilation).
    pub output_padding: Dims,
    /// Spacing between kernel taps.
    pub dilation: Dims,
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvTransposeOptions {
    fn default() -> Self {
        ConvTransposeOptions {
            stride: 1.into(),
            padding: 0.into(),
            output_padding: 0.into(),
            dilation: 1.into(),
            groups: 1,
        }
    }
}

impl ConvTransposeOptions {
    /// Sets `stride`.
    pub fn stride(mut self, v: impl Into<Dims>) -> Self {
        self.stride = v.into();
        self
    }
    /// Sets `padding`.
    pub fn padding(mut self, v: impl Into<Dims>) -> Self {
        self.padding = v.into();
        self
    }
    /// Sets `output_padding`.
    pub fn output_padding(mut self, v: impl Into<Dims>) -> Self {
        self.output_padding = v.into();
        self
    }
    /// Sets `dilation`.
    pub fn dilation(mut self, v: impl Into<Dims>) -> Self {
        self.dilation = v.into();
        self
    }
    /// Sets `groups`.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// The convolution kernels' uniform (`ConvParams` in shaders/shared/im2col.wgsl); the implicit
/// GEMM carries one too.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvParams {
    n: u32,
    pub(crate) c_in: u32,
    pub(crate) c_out: u32,
    groups: u32,
    pub(crate) input: [u32; 3],
    pub(crate) output: [u32; 3],
    kernel: [u32; 3],
    stride: [u32; 3],
    pad: [u32; 3],
    dilation: [u32; 3],
    has_bias: u32,
    pub(crate) total: u32,
    pub(crate) n_offset: u32,
    /// im2col_texture's pooled column order, or tiles_3x3_forward_relu_pool's output: the
    /// pooled (height, width), or zeros.
    pool: [u32; 2],
    /// tiles_3x3_forward_relu_pool: whether to write the pooling indices.
    pool_indices: u32,
    /// conv_backward_weight: the rows (sample, d, h) of this piece, [first, end); end 0 for
    /// all.
    rows: [u32; 2],
    _pad: [u32; 2],
}

/// Where [`ConvPlan::record_implicit_3x3_backward`] takes the output gradient from.
enum GradSource<'a> {
    /// A fused 2x2 max-pool's gradient and argmax.
    Pooled { pool: &'a crate::ops::pool::PoolPlan, grad_p: &'a Tensor, indices: &'a Tensor },
    /// The convolution's own output gradient.
    Plain(&'a Tensor),
}

/// x in rows of texels for the implicit 3x3 kernels: the plan's (filled by the forward pass,
/// read by the backward pass), or a texture of the call's own.
enum XRows<'a> {
    Kept(&'a Flat),
    Own(Flat),
}

impl XRows<'_> {
    fn flat(&self) -> &Flat {
        match self {
            XRows::Kept(f) => f,
            XRows::Own(f) => f,
        }
    }
}

/// What a fused conv -> ReLU -> max-pool's forward pass keeps for its backward pass
/// ([`ConvPlan::relu_pool_col`]): the im2col texture in pooled order (tiled GEMM), or x in rows
/// of texels (the implicit 3x3 kernels).
pub(crate) enum ReluPoolScratch {
    Col(Packed),
    Rows(Flat),
}

impl ReluPoolScratch {
    fn col(&self) -> Option<&Packed> {
        match self {
            ReluPoolScratch::Col(c) => Some(c),
            ReluPoolScratch::Rows(_) => None,
        }
    }

    fn rows(&self) -> Option<&Flat> {
        match self {
            ReluPoolScratch::Rows(r) => Some(r),
            ReluPoolScratch::Col(_) => None,
        }
    }
}

/// What [`ConvPlan::record_implicit_3x3_backward`] works in: x's and the output gradient's
/// rows of texels, the weight gradient's partial sums and, for a data gradient, the packed
/// weight.
struct Implicit3x3<'a> {
    chunk: usize,
    /// x in rows of texels: the forward pass's, or packed here per chunk.
    x_rows: XRows<'a>,
    gy_rows: Flat,
    partial: Tensor,
    dgrad_w: Option<Packed>,
}

/// The geometry both directions share, checked and resolved to 3-D.
struct Geometry {
    x: Spatial,
    c_out: usize,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    pad: Vec<usize>,
    dilation: Vec<usize>,
    out: Vec<usize>,
}

fn weight_kernel(op: &'static str, w: &[usize], sd: usize) -> Result<Vec<usize>> {
    if w.len() != sd + 2 {
        return Err(Error::invalid(op, format!("weight must be {}-D, got shape {w:?}", sd + 2)));
    }
    let k = w[2..].to_vec();
    if k.contains(&0) || w[0] == 0 || w[1] == 0 {
        return Err(Error::invalid(op, format!("weight of shape {w:?} has no elements")));
    }
    Ok(k)
}

fn check_groups(op: &'static str, groups: usize, c_in: usize, c_out: usize) -> Result<()> {
    if groups == 0 {
        return Err(Error::invalid(op, "groups must be positive"));
    }
    if !c_in.is_multiple_of(groups) || !c_out.is_multiple_of(groups) {
        return Err(Error::invalid(
            op,
            format!(
                "in_channels ({c_in}) and out_channels ({c_out}) must both be divisible by \
                 groups ({groups})"
            ),
        ));
    }
    Ok(())
}

fn out_size_error(op: &'static str, x: &[usize], w: &[usize], out: &[i64]) -> Error {
    Error::invalid(
        op,
        format!(
            "output size {out:?} is below 1 for input {x:?} and weight {w:?}: the input is too \
             small for the kernel, stride, padding and dilation"
        ),
    )
}

fn conv_geometry(
    op: &'static str,
    sd: usize,
    x: &[usize],
    w: &[usize],
    o: &ConvOptions,
) -> Result<Geometry> {
    let xs = Spatial::of(op, x, sd)?;
    let kernel = weight_kernel(op, w, sd)?;
    let c_out = w[0];
    check_groups(op, o.groups, xs.c, c_out)?;
    if w[1] * o.groups != xs.c {
        return Err(Error::invalid(
            op,
            format!(
                "weight of shape {:?} expects {} input channels ({} per group x {} groups), but \
                 the input of shape {:?} has {}",
                w,
                w[1] * o.groups,
                w[1],
                o.groups,
                x,
                xs.c
            ),
        ));
    }
    let stride = o.stride.resolve_positive(op, "stride", sd)?;
    let dilation = o.dilation.resolve_positive(op, "dilation", sd)?;
    let pad = match &o.padding {
        Padding::Explicit(p) => p.resolve(op, "padding", sd)?,
        Padding::Valid => vec![0; sd],
        Padding::Same => {
            if stride.iter().any(|&s| s != 1) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "padding='same' is not supported for strided convolutions (stride {stride:?})"
                    ),
                ));
            }
            // Total padding d*(k-1); the smaller half before, any odd remainder after.
            (0..sd).map(|i| dilation[i] * (kernel[i] - 1) / 2).collect()
        }
    };
    let out: Vec<i64> = (0..sd)
        .map(|i| {
            let extent = (dilation[i] * (kernel[i] - 1)) as i64;
            let total_pad = match o.padding {
                Padding::Same => extent,
                _ => 2 * pad[i] as i64,
            };
            (xs.size[i] as i64 + total_pad - extent - 1).div_euclid(stride[i] as i64) + 1
        })
        .collect();
    if out.iter().any(|&v| v < 1) {
        return Err(out_size_error(op, x, w, &out));
    }
    let out = out.into_iter().map(|v| v as usize).collect();
    Ok(Geometry { x: xs, c_out, kernel, stride, pad, dilation, out })
}

fn conv_transpose_geometry(
    op: &'static str,
    sd: usize,
    x: &[usize],
    w: &[usize],
    o: &ConvTransposeOptions,
) -> Result<Geometry> {
    let xs = Spatial::of(op, x, sd)?;
    let kernel = weight_kernel(op, w, sd)?;
    if w[0] != xs.c {
        return Err(Error::invalid(
            op,
            format!(
                "weight of shape {:?} expects {} input channels, but the input of shape {:?} \
                 has {}",
                w, w[0], x, xs.c
            ),
        ));
    }
    let c_out = w[1] * o.groups;
    check_groups(op, o.groups, xs.c, c_out)?;
    let stride = o.stride.resolve_positive(op, "stride", sd)?;
    let dilation = o.dilation.resolve_positive(op, "dilation", sd)?;
    let pad = o.padding.resolve(op, "padding", sd)?;
    let out_pad = o.output_padding.resolve(op, "output_padding", sd)?;
    for i in 0..sd {
        if out_pad[i] >= stride[i] && out_pad[i] >= dilation[i] {
            return Err(Error::invalid(
                op,
                format!(
                    "output_padding ({out_pad:?}) must be smaller than either stride \
                     ({stride:?}) or dilation ({dilation:?})"
                ),
            ));
        }
    }
    let out: Vec<i64> = (0..sd)
        .map(|i| {
            (xs.size[i] as i64 - 1) * stride[i] as i64 - 2 * pad[i] as i64
                + (dilation[i] * (kernel[i] - 1)) as i64
                + out_pad[i] as i64
                + 1
        })
        .collect();
    if out.iter().any(|&v| v < 1) {
        return Err(out_size_error(op, x, w, &out));
    }
    let out = out.into_iter().map(|v| v as usize).collect();
    Ok(Geometry { x: xs, c_out, kernel, stride, pad, dilation, out })
}

impl Geometry {
    /// Kernel parameters for a pass whose "input" has `c_in` channels and size `input`, and
    /// whose "output" has `c_out` channels and size `output` (forward: x and y; the backward
    /// passes swap the roles).
    #[allow(clippy::too_many_arguments)]
    fn params(
        &self,
        groups: usize,
        c_in: usize,
        c_out: usize,
        input: &[usize],
        output: &[usize],
        has_bias: bool,
        total: u32,
    ) -> ConvParams {
        ConvParams {
            n: self.x.n as u32,
            c_in: c_in as u32,
            c_out: c_out as u32,
            groups: groups as u32,
            input: to3(input, 1),
            output: to3(output, 1),
            kernel: to3(&self.kernel, 1),
            stride: to3(&self.stride, 1),
            pad: to3(&self.pad, 0),
            dilation: to3(&self.dilation, 1),
            has_bias: has_bias as u32,
            total,
            n_offset: 0,
            pool: [0, 0],
            pool_indices: 0,
            rows: [0, 0],
            _pad: [0, 0],
        }
    }
}

/// A weight-gradient kernel's parameters in pieces of its output rows (sample, d, h): each of
/// its invocations sums over every row, `lanes` invocations sharing them, so pieces keep their
/// loops within [`tiled::MAX_LOOP_ITERATIONS`] (lavapipe cuts longer loops short). The kernel
/// adds every piece after the first to the sum so far.
fn row_pieces(op: &'static str, params: &ConvParams, lanes: usize) -> Result<Vec<ConvParams>> {
    let rows = params.n as usize * params.output[0] as usize * params.output[1] as usize;
    if rows >= 1 << 24 {
        return Err(Error::invalid(
            op,
            format!("{rows} rows of output are too many for the weight gradient's kernel"),
        ));
    }
    let width = params.output[2] as usize;
    let per = (tiled::MAX_LOOP_ITERATIONS * lanes / (width + 1)).max(lanes);
    Ok((0..rows)
        .step_by(per)
        .map(|first| ConvParams { rows: [first as u32, (first + per).min(rows) as u32], ..*params })
        .collect())
}

fn dispatch<'a>(
    entry: &'static str,
    params: &'a ConvParams,
    buffers: &'a [(u32, &'a wgpu::Buffer)],
    workgroups: [u32; 3],
) -> Dispatch<'a> {
    Dispatch {
        shader: Shader::Conv,
        entry,
        constants: &[("WG", WG as f64)],
        params: bytemuck::bytes_of(params),
        buffers,
        workgroups,
        ranges: &[],
    }
}

/// Invocations of a depthwise kernel writing a tensor of this (N, C, spatial...) shape: one per
/// four values along its last dimension (below 2^24, checked by `ConvPlan::kernel`).
fn quads(shape: &[usize]) -> usize {
    let (last, rows) = shape.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
    rows.iter().product::<usize>() * last.div_ceil(4)
}

/// Invocations of the 3x3 tile kernels writing a tensor of this (N, C, spatial...) shape (at
/// least 2 spatial dimensions): one per 4x4 tile of its last two dimensions.
fn tiles_4x4(shape: &[usize]) -> usize {
    let (w, rest) = shape.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
    let (h, rows) = rest.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
    rows.iter().product::<usize>() * h.div_ceil(4) * w.div_ceil(4)
}

/// Where col2im reads grad_col from.
enum Col<'a> {
    Buffer(&'a Tensor),
    /// The tiled GEMM's texture, with the pooled (height, width) when its columns come in
    /// im2col's pooled order.
    Texture(&'a Packed, Option<[usize; 2]>),
}

/// The kernel a convolution runs on (`GCONV_LOG=debug` prints the choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvKernel {
    /// conv.wgsl's direct kernels: transposed and grouped (depthwise) convolutions, or when
    /// asked for. With `textures`, their inputs are read from texture copies (the fast path
    /// for depthwise and transposed layers); without, from the storage buffers (the
    /// reference that `ConvStrategy::Direct` runs).
    Direct {
        /// Read x, w and grad_y through texture copies.
        textures: bool,
    },
    /// conv.wgsl's depthwise kernels (groups = C_in = C_out): four outputs per invocation,
    /// inputs through texture copies, a workgroup reduction per weight for its gradient.
    Depthwise,
    /// conv.wgsl's 3x3 tile kernels (3x3 over h and w, stride and dilation 1 there, padding
    /// up to 2; grouped, or few input channels): 4x4 output tiles that read each source row
    /// once, a workgroup reduction per weight slot for the weight gradient.
    Tiles3x3,
    /// im2col into a storage buffer, one storage-buffer GEMM per sample.
    Im2col,
    /// im2col into a texture, `chunk` samples folded into one tiled GEMM.
    Tiled {
        /// Samples per GEMM.
        chunk: usize,
    },
}

/// A convolution or transposed convolution resolved for one input and weight shape: the
/// geometry is checked once, then forward and backward passes are recorded into any recorder
/// (at once for the eager operators, into a plan for the executor).
pub(crate) struct ConvPlan {
    op: &'static str,
    g: Geometry,
    groups: usize,
    transposed: bool,
    /// For a transposed convolution (groups 1): the convolution whose data gradient it is.
    /// Its input is this one's output and its output this one's input, with the same weight,
    /// so the tiled kernels run this one's forward pass as that one's data gradient (a GEMM,
    /// then col2im) and its gradients as that one's forward pass and weight gradient.
    adjoint: Option<Box<ConvPlan>>,
}

impl ConvPlan {
    /// Whether conv.wgsl's 3x3 tile kernels can run this convolution: not transposed, a 3x3
    /// kernel over h and w with stride 1, dilation 1 and padding up to 2 there (any taps along
    /// d; the backward-input tiles correlate with padding 2 - pad), and index spaces below
    /// 2^24.
    fn fits_tiles_3x3(&self) -> bool {
        let g = &self.g;
        let k = &g.kernel;
        if self.transposed || k.len() < 2 || k[k.len() - 2..] != [3, 3] {
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

    pub(crate) fn conv(
        op: &'static str,
        sd: usize,
        x: &[usize],
        w: &[usize],
        o: &ConvOptions,
    ) -> Result<Self> {
        Ok(ConvPlan {
            op,
            g: conv_geometry(op, sd, x, w, o)?,
            groups: o.groups,
            transposed: false,
            adjoint: None,
        })
    }

    pub(crate) fn conv_transpose(
        op: &'static str,
        sd: usize,
        x: &[usize],
        w: &[usize],
        o: &ConvTransposeOptions,
    ) -> Result<Self> {
        let g = conv_transpose_geometry(op, sd, x, w, o)?;
        let adjoint = (o.groups == 1).then(|| {
            Box::new(ConvPlan {
                op,
                g: Geometry {
                    x: Spatial { batched: g.x.batched, n: g.x.n, c: g.c_out, size: g.out.clone() },
                    c_out: g.x.c,
                    kernel: g.kernel.clone(),
                    stride: g.stride.clone(),
                    pad: g.pad.clone(),
                    dilation: g.dilation.clone(),
                    out: g.x.size.clone(),
                },
                groups: 1,
                transposed: false,
                adjoint: None,
            })
        });
        Ok(ConvPlan { op, g, groups: o.groups, transposed: true, adjoint })
    }

    /// The output's shape.
    pub(crate) fn output_shape(&self) -> Vec<usize> {
        self.g.x.out_shape(self.g.c_out, &self.g.out)
    }

    fn check(&self, t: &Tensor, name: &str, expected: &[usize]) -> Result<()> {
        if t.shape() != expected {
            return Err(Error::invalid(
                self.op,
                format!("{name} must have shape {expected:?}, got {:?}", t.shape()),
            ));
        }
        Ok(())
    }

    /// Whether this convolution runs on the im2col kernel on `ctx`, and so needs the im2col
    /// scratch of [`Self::col_chunk`].
    pub(crate) fn uses_col_scratch(&self, ctx: &Context) -> Result<bool> {
        Ok(self.kernel(ctx)? == ConvKernel::Im2col)
    }

    /// The kernel this convolution runs on, from the context's strategy and the shapes.
    pub(crate) fn kernel(&self, ctx: &Context) -> Result<ConvKernel> {
        let strategy = ctx.conv_strategy();
        if strategy == ConvStrategy::Direct {
            return Ok(ConvKernel::Direct { textures: false });
        }
        let g = &self.g;
        let fast = matches!(strategy, ConvStrategy::Auto | ConvStrategy::Tiled);
        // Grouped 3x3 convolutions, and those with so few input channels that a GEMM's K
        // (C_in * 9) is too short to pay for im2col, run on the tiles.
        if fast && (self.groups > 1 || g.x.c <= 4) && self.fits_tiles_3x3() {
            return Ok(ConvKernel::Tiles3x3);
        }
        if fast
            && !self.transposed
            && self.groups > 1
            && self.groups == g.x.c
            && self.groups == g.c_out
        {
            // The kernels' index spaces (rows x width / 4 of y and of x) stay below 2^24.
            let y_quads = quads(&g.x.out_shape(g.c_out, &g.out));
            if y_quads < 1 << 24 && quads(&g.x.out_shape(g.x.c, &g.x.size)) < 1 << 24 {
                return Ok(ConvKernel::Depthwise);
            }
        }
        if self.transposed || self.groups != 1 {
            let textures = strategy != ConvStrategy::Im2col;
            return Ok(ConvKernel::Direct { textures });
        }
        let tiled_allowed = matches!(strategy, ConvStrategy::Auto | ConvStrategy::Tiled)
            && ctx.gemm_strategy() != GemmStrategy::Simple;
        if tiled_allowed {
            // The batch is folded into the GEMM's columns, `chunk` samples at a time: chunk * P
            // columns must fit a texture's height (the weight gradient's transposed operand).
            let max = ctx.limits().max_texture_dimension_2d as usize;
            let (k, p) = self.col_dims();
            if p <= max && k.div_ceil(4) * 4 <= max && self.g.c_out.div_ceil(4) * 4 <= max {
                // col2im_texture's index space (chunk * C_in * input positions) stays below
                // 2^24, where its divmod24 is exact, and the textures (chunk * P columns of K
                // rows, rounded up to 4) within tiled::TEXTURE_BUDGET.
                let per_sample = self.g.x.c * self.g.x.size.iter().product::<usize>();
                let texture_per_sample = k.div_ceil(4) * 4 * p * 4;
                if per_sample < 1 << 24 && texture_per_sample <= tiled::TEXTURE_BUDGET {
                    let chunk = (max / p)
                        .min((1 << 24) / per_sample)
                        .min(tiled::TEXTURE_BUDGET / texture_per_sample)
                        .min(self.g.x.n)
                        .max(1);
                    return Ok(ConvKernel::Tiled { chunk });
                }
            }
        }
        Ok(ConvKernel::Im2col)
    }

    /// [`Self::kernel`] for input `x`, with the texture copy of `x` the tiled kernel reads; the
    /// im2col kernel instead when `x` cannot be copied into one.
    fn kernel_for(&self, ctx: &Context, x: &Tensor) -> Result<(ConvKernel, Option<Flat>)> {
        let kernel = self.kernel(ctx)?;
        if let ConvKernel::Tiled { .. } = kernel {
            match Flat::new(ctx, x.numel()) {
                Some(flat) if flat.can_copy(x.buffer()) => return Ok((kernel, Some(flat))),
                _ => return Ok((ConvKernel::Im2col, None)),
            }
        }
        Ok((kernel, None))
    }

    /// A transposed convolution's adjoint and its chunk, when the adjoint runs on the tiled
    /// kernel on `ctx`.
    fn tiled_adjoint(&self, ctx: &Context) -> Result<Option<(&ConvPlan, usize)>> {
        match &self.adjoint {
            Some(adjoint) => match adjoint.kernel(ctx)? {
                ConvKernel::Tiled { chunk } => Ok(Some((adjoint, chunk))),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    fn log_kernel(&self, ctx: &Context, pass: &str, kernel: ConvKernel) {
        if ctx.log_debug() {
            let g = &self.g;
            eprintln!(
                "gconv: {} {pass}: x (N {}, C {}, {:?}) -> (C {}, {:?}), groups {}: {kernel:?}",
                self.op, g.x.n, g.x.c, g.x.size, g.c_out, g.out, self.groups
            );
        }
    }

    /// Records im2col of samples [n0, n0 + len) into the texture `col` (K x len*P), in pooled
    /// order (see conv.wgsl) for a pooled size.
    #[allow(clippy::too_many_arguments)]
    fn record_im2col_texture(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        x: &Flat,
        col: &Packed,
        n0: usize,
        len: usize,
        pooled: Option<[usize; 2]>,
    ) -> Result<()> {
        let (_, p) = self.col_dims();
        let cols = pooled.map_or(p, |[ph, pw]| ph * pw * 4);
        let params = self.im2col_params(n0, len, pooled)?;
        // 64 texels of one row per workgroup (see im2col_texture).
        let texels = ((len * cols).div_ceil(4) as u32).div_ceil(64);
        // A 3x3 kernel of stride 1 in pooled order: one invocation per window and channel.
        let g = &self.g;
        let (entry, groups) = if pooled.is_some() && self.is_plain_3x3() {
            ("im2col_3x3_pooled", [texels, g.x.c as u32, 1])
        } else {
            ("im2col_texture", [texels, col.tex_rows as u32, 1])
        };
        ctx.record_with(
            rec,
            &dispatch(entry, &params, &[], groups),
            &[
                wgpu::BindGroupEntry {
                    binding: 8,
                    resource: wgpu::BindingResource::TextureView(&col.view),
                },
                wgpu::BindGroupEntry {
                    binding: 11,
                    resource: wgpu::BindingResource::TextureView(&x.view),
                },
            ],
        )
    }

    /// Whether this is a 2-D convolution with a 3x3 kernel, stride 1 and dilation 1, which
    /// im2col (in pooled order) and col2im have kernels of their own for.
    fn is_plain_3x3(&self) -> bool {
        let g = &self.g;
        g.out.len() == 2 && g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1]
    }

    /// The parameters of im2col over samples [n0, n0 + len), in pooled order for a pooled
    /// size (conv.wgsl's im2col_texture and the implicit GEMM).
    fn im2col_params(
        &self,
        n0: usize,
        len: usize,
        pooled: Option<[usize; 2]>,
    ) -> Result<ConvParams> {
        let g = &self.g;
        let (_, p) = self.col_dims();
        let cols = pooled.map_or(p, |[ph, pw]| ph * pw * 4);
        let total = check_u32(self.op, "im2col columns", len * cols)?;
        let mut params = g.params(1, g.x.c, g.c_out, &g.x.size, &g.out, false, total);
        params.n_offset = n0 as u32;
        if let Some([ph, pw]) = pooled {
            params.pool = [ph as u32, pw as u32];
        }
        Ok(params)
    }

    /// Samples [n0, n0 + len) of x's im2col matrix (K x len * columns per sample) as a GEMM
    /// operand. On the workgroup GEMM layout (GPUs) it is implicit: the GEMM gathers it from
    /// `x` as it loads its tiles. Otherwise im2col writes it into `col` (lavapipe, where a
    /// gather per lane inside the GEMM would cost more than the pass over memory).
    #[allow(clippy::too_many_arguments)]
    fn im2col_operand(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        x: &Flat,
        col: Option<&Packed>,
        n0: usize,
        len: usize,
        pooled: Option<[usize; 2]>,
    ) -> Result<Packed> {
        let (k, p) = self.col_dims();
        let cols = len * pooled.map_or(p, |[ph, pw]| ph * pw * 4);
        match col {
            Some(col) => {
                self.record_im2col_texture(ctx, rec, x, col, n0, len, pooled)?;
                Ok(col.with_size(k, cols))
            }
            None => {
                let params = self.im2col_params(n0, len, pooled)?;
                Ok(Packed::implicit(x, Gather::Im2col, params, k, cols))
            }
        }
    }

    /// The texture im2col writes `chunk` samples into, or `None` where the GEMM gathers its
    /// columns itself (see [`Self::im2col_operand`]).
    fn col_texture(&self, ctx: &Context, chunk: usize, cols: usize) -> Result<Option<Packed>> {
        if ctx.gemm_layout() == GemmLayout::Workgroup {
            return Ok(None);
        }
        let (k, _) = self.col_dims();
        self.packed(ctx, k, chunk * cols, k.div_ceil(4) * 4).map(Some)
    }

    fn packed(&self, ctx: &Context, rows: usize, cols: usize, tex_rows: usize) -> Result<Packed> {
        Packed::new(ctx, rows, cols, tex_rows, 1).ok_or_else(|| Error::TooLarge {
            what: format!("{}'s packed GEMM operand ({rows} x {cols})", self.op),
            bytes: (tex_rows * cols.div_ceil(4) * 16) as u64,
            limit_name: "max_texture_dimension_2d",
            limit: u64::from(ctx.limits().max_texture_dimension_2d),
        })
    }

    /// (K, P): the im2col rows (in channels x kernel taps) and columns (output positions).
    fn col_dims(&self) -> (usize, usize) {
        let k = self.g.x.c * self.g.kernel.iter().product::<usize>();
        (k, self.g.out.iter().product())
    }

    /// Samples per im2col chunk and the scratch elements it needs: as many samples as fit one
    /// storage binding.
    pub(crate) fn col_chunk(&self, ctx: &Context) -> Result<(usize, usize)> {
        let (k, p) = self.col_dims();
        let per_sample = k * p;
        let max = ctx.binding_limit() as usize / 4;
        if per_sample > max {
            return Err(Error::TooLarge {
                what: format!("{}'s im2col block for one sample", self.op),
                bytes: per_sample as u64 * 4,
                limit_name: "max_storage_buffer_binding_size",
                limit: max as u64 * 4,
            });
        }
        let chunk = (max / per_sample).clamp(1, self.g.x.n);
        Ok((chunk, chunk * per_sample))
    }

    fn scratch(&self, ctx: &Context, col: Option<&Tensor>) -> Result<Tensor> {
        let (_, elems) = self.col_chunk(ctx)?;
        match col {
            Some(t) if t.numel() >= elems => Ok(t.clone()),
            _ => Tensor::zeros(ctx, &[elems]),
        }
    }

    /// Records im2col of samples [n0, n0 + chunk) of `x` into `col`.
    fn record_im2col(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        col: &Tensor,
        n0: usize,
        chunk: usize,
    ) -> Result<()> {
        let g = &self.g;
        let (k, p) = self.col_dims();
        let total = check_u32(self.op, "im2col elements", chunk * k * p)?;
        let mut params = g.params(1, g.x.c, g.c_out, &g.x.size, &g.out, false, total);
        params.n_offset = n0 as u32;
        let buffers = [(1, x.buffer()), (7, col.buffer())];
        ctx.record(
            rec,
            &dispatch("im2col", &params, &buffers, ctx.grid_1d(self.op, u64::from(total), WG)?),
        )
    }

    /// Records a direct kernel. `inputs` are (buffer binding, texture binding, tensor): with
    /// `textures` (and when every input fits a texture copy) the kernel reads their copies and
    /// the buffer bindings get a placeholder, otherwise the reverse. `outputs` are bound as
    /// they are.
    #[allow(clippy::too_many_arguments)]
    fn record_direct(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        entry: &'static str,
        params: &ConvParams,
        grid: [u32; 3],
        inputs: &[(u32, u32, &Tensor)],
        outputs: &[(u32, &wgpu::Buffer)],
        textures: bool,
    ) -> Result<()> {
        let flats: Option<Vec<Flat>> = if textures {
            inputs
                .iter()
                .map(|(_, _, t)| Flat::new(ctx, t.numel()).filter(|f| f.can_copy(t.buffer())))
                .collect()
        } else {
            None
        };
        let mut buffers: Vec<(u32, &wgpu::Buffer)> = outputs.to_vec();
        let mut extra = Vec::new();
        match &flats {
            Some(flats) => {
                for ((binding, tex_binding, t), flat) in inputs.iter().zip(flats) {
                    flat.record_copy(rec, t.buffer());
                    buffers.push((*binding, &ctx.inner.dummy));
                    extra.push(wgpu::BindGroupEntry {
                        binding: *tex_binding,
                        resource: wgpu::BindingResource::TextureView(&flat.view),
                    });
                }
            }
            None => {
                for (binding, tex_binding, t) in inputs {
                    buffers.push((*binding, t.buffer()));
                    extra.push(wgpu::BindGroupEntry {
                        binding: *tex_binding,
                        resource: wgpu::BindingResource::TextureView(&ctx.inner.dummy_texture),
                    });
                }
            }
        }
        let flag = if flats.is_some() { 1.0 } else { 0.0 };
        let d = Dispatch {
            shader: Shader::Conv,
            entry,
            constants: &[("WG", WG as f64), ("TEXTURE_INPUTS", flag)],
            params: bytemuck::bytes_of(params),
            buffers: &buffers,
            workgroups: grid,
            ranges: &[],
        };
        ctx.record_with(rec, &d, &extra)
    }

    /// Records col2im of the chunk's grad_col (a buffer, or the texture the tiled GEMM wrote)
    /// into samples [n0, n0 + len) of `gx`.
    #[allow(clippy::too_many_arguments)]
    fn record_col2im(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        col: Col<'_>,
        gx: &Tensor,
        bias: Option<&Tensor>,
        n0: usize,
        len: usize,
    ) -> Result<()> {
        let g = &self.g;
        let total =
            check_u32(self.op, "input elements", len * g.x.c * g.x.size.iter().product::<usize>())?;
        let has_bias = bias.is_some();
        let mut params = g.params(1, g.x.c, g.c_out, &g.x.size, &g.out, has_bias, total);
        params.n_offset = n0 as u32;
        let grid = ctx.grid_1d(self.op, u64::from(total), WG)?;
        match col {
            Col::Buffer(col) => {
                if has_bias {
                    return Err(Error::invalid(self.op, "col2im adds no bias (an internal error)"));
                }
                let buffers = [(4, gx.buffer()), (7, col.buffer())];
                ctx.record(rec, &dispatch("col2im", &params, &buffers, grid))
            }
            Col::Texture(col, pooled) => {
                if let Some([ph, pw]) = pooled {
                    params.pool = [ph as u32, pw as u32];
                }
                let entry = if self.is_plain_3x3() { "col2im_3x3" } else { "col2im_texture" };
                ctx.record_with(
                    rec,
                    &dispatch(
                        entry,
                        &params,
                        &[(3, bias.map_or(&ctx.inner.dummy, Tensor::buffer)), (4, gx.buffer())],
                        grid,
                    ),
                    &[wgpu::BindGroupEntry {
                        binding: 10,
                        resource: wgpu::BindingResource::TextureView(&col.view),
                    }],
                )
            }
        }
    }

    /// Records the forward pass; `col` is an optional im2col scratch of at least
    /// [`Self::col_chunk`] elements (allocated when absent), `relu` fuses a ReLU.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_forward(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        y: &Tensor,
        col: Option<&Tensor>,
        relu: bool,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let mut tensors = vec![x, w, y];
        tensors.extend(bias);
        let ctx = context_of(op, &tensors)?;
        check_bias(op, bias, g.c_out)?;
        self.check(y, "the output", &self.output_shape())?;
        let total = check_u32(op, "output elements", y.numel())?;
        check_u32(op, "input elements", x.numel())?;
        check_u32(op, "weight elements", w.numel())?;
        if let Some((adjoint, chunk)) = self.tiled_adjoint(&ctx)? {
            // y = the adjoint convolution's data gradient for "grad_y" = x, plus the bias.
            self.log_kernel(
                &ctx,
                "forward (as its adjoint's data gradient)",
                ConvKernel::Tiled { chunk },
            );
            adjoint.record_tiled_data_grad(&ctx, rec, w, x, y, bias, chunk)?;
            if relu {
                crate::ops::activation::record_relu(&ctx, rec, y, y)?;
            }
            return Ok(());
        }
        let (mut kernel, flat) = self.kernel_for(&ctx, x)?;
        // The depthwise and 3x3 tile kernels read texture copies so that CPU adapters gather
        // instead of looping per lane; a GPU reads the storage buffers as fast without the
        // copy, and its direct forward kernel (one output per invocation) beats them there.
        // Their backward passes stay: the direct weight gradient is the slow one.
        if !ctx.is_cpu_adapter() && matches!(kernel, ConvKernel::Depthwise | ConvKernel::Tiles3x3) {
            kernel = ConvKernel::Direct { textures: false };
        }
        self.log_kernel(&ctx, "forward", kernel);
        let chunk = match kernel {
            ConvKernel::Tiled { chunk } => Some(chunk),
            ConvKernel::Tiles3x3 => Some(g.x.n),
            _ => None,
        };
        if let Some(chunk) = chunk.and_then(|c| self.implicit_3x3_chunk(&ctx, c, g.x.c)) {
            if let Some(ops) = self.implicit_3x3_forward_operands(&ctx, chunk, None) {
                let io = (x, w, bias, y);
                return self.record_implicit_3x3_forward(rec, io, (None, relu), chunk, ops);
            }
        }
        if let (ConvKernel::Tiled { chunk }, Some(x_flat)) = (kernel, flat) {
            x_flat.record_copy(rec, x.buffer());
            return self
                .record_tiled_forward(&ctx, rec, &x_flat, w, bias, y, chunk, relu, None, None);
        }
        if kernel == ConvKernel::Im2col {
            let (k, p) = self.col_dims();
            let (chunk, _) = self.col_chunk(&ctx)?;
            let col = self.scratch(&ctx, col)?;
            for n0 in (0..g.x.n).step_by(chunk) {
                let len = chunk.min(g.x.n - n0);
                self.record_im2col(&ctx, rec, x, &col, n0, len)?;
                // y_n (C_out, P) = W (C_out, K) @ col_n (K, P), bias per channel, ReLU fused.
                let mut gemm =
                    Gemm::new(w, &col, bias, (len, g.c_out, p, k), (0, k * p), (false, false));
                gemm.bias_per_row = true;
                gemm.relu = relu;
                gemm.offsets.2 = n0 * g.c_out * p;
                gemm.record(&ctx, op, rec, y)?;
            }
            return Ok(());
        }
        let b = bias.map_or(&ctx.inner.dummy, Tensor::buffer);
        if matches!(kernel, ConvKernel::Depthwise | ConvKernel::Tiles3x3) {
            let tiles = kernel == ConvKernel::Tiles3x3;
            let total = if tiles { tiles_4x4(y.shape()) } else { quads(y.shape()) } as u32;
            let params =
                g.params(self.groups, g.x.c, g.c_out, &g.x.size, &g.out, bias.is_some(), total);
            let grid = ctx.grid_1d(op, u64::from(total), WG)?;
            // The tiles read their source, x here, through grad_y's bindings (see conv.wgsl).
            let inputs = [(if tiles { (5, 13) } else { (1, 11) }, x), ((2, 12), w)]
                .map(|((binding, tex), t)| (binding, tex, t));
            let outputs = [(3, b), (4, y.buffer())];
            let entry = if tiles { "tiles_3x3_forward" } else { "depthwise_forward" };
            self.record_direct(&ctx, rec, entry, &params, grid, &inputs, &outputs, true)?;
            if relu {
                crate::ops::activation::record_relu(&ctx, rec, y, y)?;
            }
            return Ok(());
        }
        let params =
            g.params(self.groups, g.x.c, g.c_out, &g.x.size, &g.out, bias.is_some(), total);
        let entry = if self.transposed { "conv_transpose_forward" } else { "conv_forward" };
        let grid = ctx.grid_1d(op, u64::from(total), WG)?;
        let textures = kernel == ConvKernel::Direct { textures: true };
        let inputs = [(1, 11, x), (2, 12, w)];
        let outputs = [(3, b), (4, y.buffer())];
        self.record_direct(&ctx, rec, entry, &params, grid, &inputs, &outputs, textures)?;
        if relu {
            crate::ops::activation::record_relu(&ctx, rec, y, y)?;
        }
        Ok(())
    }

    /// The tiled forward pass: y (C_out, chunk*P) = W (C_out, K) @ col (K, chunk*P) per chunk,
    /// written to NCHW with the bias per channel and the ReLU applied on the way out. With
    /// `pool` ((pooled height, width), indices), im2col writes the columns in pooled order and
    /// the GEMM max-pools each 2x2 window into y, which then has the pooled shape. `x_flat`
    /// already holds x.
    #[allow(clippy::too_many_arguments)]
    fn record_tiled_forward(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        x_flat: &Flat,
        w: &Tensor,
        bias: Option<&Tensor>,
        y: &Tensor,
        chunk: usize,
        relu: bool,
        pool: Option<([usize; 2], Option<&Tensor>)>,
        col: Option<&Packed>,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let (k, p) = self.col_dims();
        // Columns per sample, and output values per channel and sample.
        let (cols, outs) = match pool {
            Some(([ph, pw], _)) => (ph * pw * 4, ph * pw),
            None => (p, p),
        };
        let a = self.packed(ctx, g.c_out, k, g.c_out)?;
        tiled::record_pack(ctx, op, rec, w.buffer(), None, &View::dense(0, k, false), &a)?;
        let col = match col {
            Some(c) => Some(c.clone()),
            None => self.col_texture(ctx, chunk, cols)?,
        };
        for n0 in (0..g.x.n).step_by(chunk) {
            let len = chunk.min(g.x.n - n0);
            let pooled = pool.map(|(hw, _)| hw);
            let b = self.im2col_operand(ctx, rec, x_flat, col.as_ref(), n0, len, pooled)?;
            let view = View::channels_by_positions(n0 * g.c_out * outs, g.c_out, outs);
            let pool = pool.map(|([_, pw], indices)| tiled::PoolEpilogue {
                indices,
                pooled_w: pw,
                in_w: g.out[g.out.len() - 1],
            });
            let epilogue = Epilogue { bias, bias_per_row: true, relu, pool, ..Epilogue::to(view) };
            tiled::record_gemm(ctx, op, rec, &a, &b, y, &epilogue)?;
        }
        Ok(())
    }

    /// The pooled (height, width) when this convolution, a ReLU and `pool` can run as one
    /// kernel on `ctx`: a 2-D convolution on the tiled GEMM or the 3x3 tiles followed by a 2x2
    /// max-pool with stride 2 (what [`Self::record_forward_relu_pool`] fuses).
    pub(crate) fn relu_pool_fusion(
        &self,
        ctx: &Context,
        pool: &crate::ops::pool::PoolPlan,
    ) -> Result<Option<[usize; 2]>> {
        let g = &self.g;
        let Some(pooled) = pool.window_2x2() else { return Ok(None) };
        let fits = g.out.len() == 2 && (0..2).all(|i| g.out[i] / 2 == pooled[i]);
        let x_elems = g.x.n * g.x.c * g.x.size.iter().product::<usize>();
        Ok(match self.kernel(ctx)? {
            ConvKernel::Tiled { .. } => {
                (fits && Flat::new(ctx, x_elems).is_some()).then_some(pooled)
            }
            ConvKernel::Tiles3x3 => fits.then_some(pooled),
            _ => None,
        })
    }

    /// Records conv -> ReLU -> 2x2 max-pool (stride 2) as one tiled GEMM whose epilogue pools
    /// (see [`Self::relu_pool_fusion`]): `y` has the pooled shape, and `indices` (for the
    /// backward pass) get the argmax within each window's plane, -1 where the ReLU was off.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_forward_relu_pool(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        y: &Tensor,
        indices: Option<&Tensor>,
        pooled: [usize; 2],
        col: Option<&ReluPoolScratch>,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let mut tensors = vec![x, w, y];
        tensors.extend(bias);
        let ctx = context_of(op, &tensors)?;
        check_bias(op, bias, g.c_out)?;
        let out = g.x.out_shape(g.c_out, &pooled);
        self.check(y, "the pooled output", &out)?;
        if let Some(i) = indices {
            self.check(i, "the pooling indices", &out)?;
        }
        let (kernel, flat) = self.kernel_for(&ctx, x)?;
        self.log_kernel(&ctx, "forward + relu + max_pool 2x2", kernel);
        match (kernel, flat) {
            (ConvKernel::Tiled { chunk }, Some(x_flat)) => {
                let kept = col.and_then(ReluPoolScratch::rows);
                let ops = self
                    .implicit_3x3(&ctx)
                    .then(|| self.implicit_3x3_forward_operands(&ctx, chunk, kept));
                if let Some(ops) = ops.flatten() {
                    let (io, pool) = ((x, w, bias, y), (Some((pooled, indices)), true));
                    return self.record_implicit_3x3_forward(rec, io, pool, chunk, ops);
                }
                x_flat.record_copy(rec, x.buffer());
                self.record_tiled_forward(
                    &ctx,
                    rec,
                    &x_flat,
                    w,
                    bias,
                    y,
                    chunk,
                    true,
                    Some((pooled, indices)),
                    col.and_then(ReluPoolScratch::col),
                )
            }
            (ConvKernel::Tiles3x3, _) if self.implicit_3x3(&ctx) => {
                let ops =
                    self.implicit_3x3_forward_operands(&ctx, g.x.n, None).ok_or_else(|| {
                        Error::invalid(op, "no texture for the 3x3 forward (an internal error)")
                    })?;
                let (io, pool) = ((x, w, bias, y), (Some((pooled, indices)), true));
                self.record_implicit_3x3_forward(rec, io, pool, g.x.n, ops)
            }
            (ConvKernel::Tiles3x3, _) => {
                let total = tiles_4x4(&g.x.out_shape(g.c_out, &g.out)) as u32;
                let mut params =
                    g.params(self.groups, g.x.c, g.c_out, &g.x.size, &g.out, bias.is_some(), total);
                params.pool = [pooled[0] as u32, pooled[1] as u32];
                params.pool_indices = indices.is_some() as u32;
                let grid = ctx.grid_1d(op, u64::from(total), WG)?;
                // The tiles read x through grad_y's bindings (see conv.wgsl).
                let inputs = [(5, 13, x), (2, 12, w)];
                let b = bias.map_or(&ctx.inner.dummy, Tensor::buffer);
                let i = indices.map_or(&ctx.inner.dummy_rw, Tensor::buffer);
                let outputs = [(3, b), (4, y.buffer()), (7, i)];
                let entry = "tiles_3x3_forward_relu_pool";
                self.record_direct(&ctx, rec, entry, &params, grid, &inputs, &outputs, true)
            }
            _ => Err(Error::invalid(op, "relu + max-pool fusion needs the tiled kernels")),
        }
    }

    /// The texture that a fused conv -> ReLU -> max-pool's forward pass writes its pooled-order
    /// im2col into, to keep for its backward pass ([`Self::record_backward_relu_pool`] reuses
    /// it for the weight gradient): `Some` where the convolution runs on the tiled GEMM with a
    /// materialised im2col (the register layout) in one chunk.
    pub(crate) fn relu_pool_col(
        &self,
        ctx: &Context,
        [ph, pw]: [usize; 2],
    ) -> Result<Option<ReluPoolScratch>> {
        let g = &self.g;
        Ok(match self.kernel(ctx)? {
            // The implicit 3x3 kernels keep x in rows of texels instead.
            ConvKernel::Tiled { chunk } if chunk == g.x.n && self.implicit_3x3(ctx) => {
                Flat::new(ctx, 4 * self.row_texels(chunk) * g.x.c).map(ReluPoolScratch::Rows)
            }
            ConvKernel::Tiled { chunk } if chunk == g.x.n => {
                self.col_texture(ctx, chunk, ph * pw * 4)?.map(ReluPoolScratch::Col)
            }
            _ => None,
        })
    }

    /// Records the gradients of conv -> ReLU -> 2x2 max-pool fused by
    /// [`Self::record_forward_relu_pool`], from the pooled gradient `grad_p` and the saved
    /// `indices`. On the tiled GEMM's register layout the pooled gradient goes through the
    /// argmax straight into the two GEMMs' packed operands, in im2col's pooled order (pool.wgsl's
    /// `max_pool_2x2_backward_packed`): the convolution's output gradient is never written, the
    /// weight gradient reuses the forward pass's im2col texture `col` (from
    /// [`Self::relu_pool_col`]) and grad_col goes back through col2im in that order. Outputs
    /// that no window covers get no gradient, as in PyTorch. Elsewhere the pooling's backward
    /// pass writes `scratch` (the convolution's output gradient) and the convolution's own
    /// backward pass follows, with `col_scratch` as its im2col scratch.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_backward_relu_pool(
        &self,
        rec: &mut Recorder<'_>,
        pool: &crate::ops::pool::PoolPlan,
        x: &Tensor,
        w: &Tensor,
        grad_p: &Tensor,
        indices: &Tensor,
        grads: (Option<&Tensor>, &Tensor, Option<&Tensor>),
        scratch: &Tensor,
        col: Option<&ReluPoolScratch>,
        col_scratch: Option<&Tensor>,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let (grad_x, grad_w, grad_b) = grads;
        let ctx = context_of(op, &[x, w, grad_p, grad_w])?;
        let (kernel, flat) = self.kernel_for(&ctx, x)?;
        let registers = ctx.gemm_layout() != GemmLayout::Workgroup;
        let pooled = pool.window_2x2();
        let tiles = kernel == ConvKernel::Tiles3x3 && grad_x.is_none();
        let tiled = matches!(kernel, ConvKernel::Tiled { .. }) && flat.is_some() && registers;
        let Some([ph, pw]) = pooled.filter(|_| tiles || tiled) else {
            pool.record_backward(rec, grad_p, Some(indices), scratch)?;
            return self.record_backward(rec, x, w, scratch, grad_x, grad_w, grad_b, col_scratch);
        };
        self.check(grad_w, "grad_weight", w.shape())?;
        if let Some(gx) = grad_x {
            self.check(gx, "grad_input", x.shape())?;
        }
        pool.check_backward_packed(grad_p, indices)?;
        self.log_kernel(&ctx, "backward from the pooled gradient", kernel);
        if let Some(gb) = grad_b {
            self.check(gb, "grad_bias", &[g.c_out])?;
            let n = g.x.n;
            crate::ops::reduce::record_channel_sum_where(
                &ctx, rec, grad_p, indices, n, g.c_out, gb,
            )?;
        }
        let (ConvKernel::Tiled { chunk }, Some(x_flat)) = (kernel, flat) else {
            // The 3x3 tiles (a network's first layer): each 4x4 tile of grad_y holds four
            // whole windows, which the weight-gradient kernel reads in pooled form.
            let (c_x, c_y) = (g.x.c, g.c_out);
            let slots = c_y * (c_x / self.groups);
            let total = (tiles_4x4(&self.output_shape()) / c_y) as u32;
            let mut params = g.params(self.groups, c_x, c_y, &g.x.size, &g.out, false, total);
            params.pool = [ph as u32, pw as u32];
            let grid = ctx.grid_1d(op, slots as u64 * 64, 64)?;
            let inputs = [(5, 13, x), (1, 11, grad_p)];
            let outputs = [(6, grad_w.buffer()), (7, indices.buffer())];
            let entry = "tiles_3x3_backward_weight_pooled";
            return self.record_direct(&ctx, rec, entry, &params, grid, &inputs, &outputs, true);
        };
        // The forward pass's x in rows of texels, when it held the whole batch.
        let kept = col.and_then(ReluPoolScratch::rows).filter(|_| chunk == g.x.n);
        if let Some(ops) = self.implicit_3x3_operands(&ctx, chunk, grad_x.is_some(), kept)? {
            let (grads, source) = ((grad_x, grad_w), GradSource::Pooled { pool, grad_p, indices });
            return self.record_implicit_3x3_backward(rec, source, x, w, grads, ops);
        }
        let (k, _) = self.col_dims();
        let per_sample = ph * pw * 4;
        let cols = chunk * per_sample;
        let gy = self.packed(&ctx, g.c_out, cols, g.c_out.div_ceil(4) * 4)?;
        let gyt = self.packed(&ctx, cols, g.c_out, cols)?;
        let reuse = col.and_then(ReluPoolScratch::col).filter(|_| chunk == g.x.n);
        let col_t = match reuse {
            Some(c) => c.clone(),
            None => {
                x_flat.record_copy(rec, x.buffer());
                self.col_texture(&ctx, chunk, per_sample)?.ok_or_else(|| {
                    Error::invalid(op, "no im2col texture on this layout (an internal error)")
                })?
            }
        };
        // grad_col (K, columns) = W^T (K, C_out) @ grad_y (C_out, columns), then col2im.
        let data = match grad_x {
            Some(gx) => Some((gx, self.data_grad_textures(&ctx, rec, w, cols)?)),
            None => None,
        };
        for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
            let len = chunk.min(g.x.n - n0);
            let c4 = len * per_sample;
            let (b, bt) = (gy.with_size(g.c_out, c4), gyt.with_size(c4, g.c_out));
            pool.record_backward_packed(rec, grad_p, indices, n0, len, &b, &bt)?;
            // grad_W^T (K, C_out) (+)= col (K, columns) @ grad_y^T (columns, C_out).
            let a = match reuse {
                Some(_) => col_t.with_size(k, c4),
                None => {
                    self.im2col_operand(&ctx, rec, &x_flat, Some(&col_t), n0, len, Some([ph, pw]))?
                }
            };
            let epilogue = Epilogue { accumulate: i > 0, ..Epilogue::to(View::dense(0, k, true)) };
            tiled::record_gemm(&ctx, op, rec, &a, &bt, grad_w, &epilogue)?;
            if let Some((gx, (w_t, grad_col))) = &data {
                let grads = (w_t, grad_col, *gx);
                self.record_data_grad_chunk(&ctx, rec, grads, &b, None, Some([ph, pw]), n0, len)?;
            }
        }
        Ok(())
    }

    /// Whether gemm_sg.wgsl's implicit 3x3 kernels (`conv_3x3_sg_r16`, `wgrad_3x3_sg`) run
    /// this convolution: 2-D 3x3 with stride 1, padding 1, no dilation and one group, on the
    /// register layout with 8-lane subgroups. Their textures must fit too (see the callers).
    fn implicit_3x3(&self, ctx: &Context) -> bool {
        let g = &self.g;
        ctx.uses_subgroups()
            && ctx.gemm_layout() != GemmLayout::Workgroup
            && self.is_plain_3x3()
            && g.pad == [1, 1]
            && self.groups == 1
            && 3 * g.c_out.max(g.x.c) <= tiled::MAX_LOOP_ITERATIONS
    }

    /// Samples per chunk for the implicit 3x3 kernels, up to `chunk`: where they apply (see
    /// [`Self::implicit_3x3`]) and rows of texels of `channels` channels fit one texture.
    fn implicit_3x3_chunk(&self, ctx: &Context, chunk: usize, channels: usize) -> Option<usize> {
        if !self.implicit_3x3(ctx) {
            return None;
        }
        let per_sample = channels * self.row_texels(1);
        let mut chunk = chunk.min(self.g.x.n).max(1);
        while !tiled::fits(
            ctx,
            tiled::FLAT_TEXELS,
            (chunk * per_sample).div_ceil(tiled::FLAT_TEXELS),
        ) {
            if chunk == 1 {
                return None;
            }
            chunk = chunk.div_ceil(2);
        }
        Some(chunk)
    }

    /// Texels per channel of `samples` samples in rows of texels (ceil(W / 4) per row of the
    /// output, which for these convolutions has x's size).
    fn row_texels(&self, samples: usize) -> usize {
        samples * self.g.out[0] * self.g.out[1].div_ceil(4)
    }

    /// The packed weight and x's rows of texels (`kept`: the plan's) that
    /// [`Self::record_implicit_3x3_forward`] needs for chunks of `chunk` samples, or `None`
    /// where they do not fit the device.
    fn implicit_3x3_forward_operands<'a>(
        &self,
        ctx: &Context,
        chunk: usize,
        kept: Option<&'a Flat>,
    ) -> Option<(Packed, XRows<'a>)> {
        let g = &self.g;
        let a = Packed::new(ctx, g.c_out, 12 * g.x.c, g.c_out, 1)?;
        let x_rows = match kept {
            Some(k) => XRows::Kept(k),
            None => XRows::Own(Flat::new(ctx, 4 * self.row_texels(chunk) * g.x.c)?),
        };
        Some((a, x_rows))
    }

    /// The forward pass on `conv_3x3_sg_r16` (see [`Self::implicit_3x3`]): per chunk, x into
    /// rows of texels (`pack_texel_rows`) that the kernel gathers its shifted taps from, with
    /// the weight packed flipped into `a`; bias, and ReLU with the 2x2 max-pool `pool`, in its
    /// epilogue.
    #[allow(clippy::type_complexity)]
    fn record_implicit_3x3_forward(
        &self,
        rec: &mut Recorder<'_>,
        (x, w, bias, y): (&Tensor, &Tensor, Option<&Tensor>, &Tensor),
        (pool, relu): (Option<([usize; 2], Option<&Tensor>)>, bool),
        chunk: usize,
        (a, x_rows): (Packed, XRows<'_>),
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let ctx = x.context();
        // The kernel's view: rows are output channels, K runs over input channels.
        let params = g.params(1, g.c_out, g.x.c, &g.x.size, &g.out, false, 0);
        tiled::record_pack_3x3(ctx, op, rec, (w, &a), params, true)?;
        let (plane, x_rows) = (g.x.c * g.x.size.iter().product::<usize>(), x_rows.flat());
        for n0 in (0..g.x.n).step_by(chunk) {
            let len = chunk.min(g.x.n - n0);
            let rows = len * g.x.c * g.out[0];
            tiled::record_pack_texel_rows(ctx, op, rec, x, n0 * plane, rows, params, x_rows)?;
            let conv = ConvParams { n_offset: n0 as u32, ..params };
            let c = tiled::Conv3x3 { a: &a, src: x_rows, out: y, conv, len, bias, relu, pool };
            tiled::record_conv_3x3(ctx, op, rec, &c)?;
        }
        Ok(())
    }

    /// The textures and scratch of [`Self::record_implicit_3x3_backward`] for chunks of `chunk`
    /// samples, where it applies: a 2-D 3x3 convolution with stride 1, padding 1, no dilation
    /// and one group, on the register layout with 8-lane subgroups, within the device's limits.
    fn implicit_3x3_operands<'a>(
        &self,
        ctx: &Context,
        chunk: usize,
        data: bool,
        kept: Option<&'a Flat>,
    ) -> Result<Option<Implicit3x3<'a>>> {
        let g = &self.g;
        if !self.implicit_3x3(ctx) {
            return Ok(None);
        }
        let texels = self.row_texels(chunk);
        let x_rows = match kept {
            Some(k) => Some(XRows::Kept(k)),
            None => Flat::new(ctx, 4 * texels * g.x.c).map(XRows::Own),
        };
        let (Some(x_rows), Some(gy_rows)) = (x_rows, Flat::new(ctx, 4 * texels * g.c_out)) else {
            return Ok(None);
        };
        let dgrad_w = match data {
            true => match Packed::new(ctx, g.x.c, 12 * g.c_out, g.x.c, 1) {
                Some(a) => Some(a),
                None => return Ok(None),
            },
            false => None,
        };
        let splits = tiled::wgrad_3x3_splits(g.x.c, g.c_out, texels);
        let partial = Tensor::zeros(ctx, &[splits * g.c_out * g.x.c * 9])?;
        Ok(Some(Implicit3x3 { chunk, x_rows, gy_rows, partial, dgrad_w }))
    }

    /// The gradients of a 3x3 convolution (see [`Self::implicit_3x3`]) without im2col, grad_col
    /// or col2im (gemm_sg.wgsl): per chunk, the output gradient into rows of texels (for a fused
    /// conv -> ReLU -> 2x2 max-pool, the pooled gradient through the argmax: pool.wgsl's
    /// `max_pool_2x2_backward_spatial`), x into its own (`pack_texel_rows`), and `wgrad_3x3_sg`
    /// and `conv_3x3_sg_r16` gather their shifted taps from those two.
    fn record_implicit_3x3_backward(
        &self,
        rec: &mut Recorder<'_>,
        source: GradSource<'_>,
        x: &Tensor,
        w: &Tensor,
        (grad_x, grad_w): (Option<&Tensor>, &Tensor),
        ops: Implicit3x3<'_>,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let ctx = x.context();
        let params = g.params(1, g.x.c, g.c_out, &g.x.size, &g.out, false, 0);
        if let Some(a) = &ops.dgrad_w {
            tiled::record_pack_3x3(ctx, op, rec, (w, a), params, false)?;
        }
        let plane = g.x.c * g.x.size.iter().product::<usize>();
        for (i, n0) in (0..g.x.n).step_by(ops.chunk).enumerate() {
            let len = ops.chunk.min(g.x.n - n0);
            match source {
                GradSource::Pooled { pool, grad_p, indices } => {
                    pool.record_backward_spatial(rec, grad_p, indices, n0, len, &ops.gy_rows)?
                }
                GradSource::Plain(grad_y) => {
                    let (rows, plane_y) =
                        (len * g.c_out * g.out[0], g.c_out * g.out.iter().product::<usize>());
                    let gy_rows = &ops.gy_rows;
                    tiled::record_pack_texel_rows(
                        ctx,
                        op,
                        rec,
                        grad_y,
                        n0 * plane_y,
                        rows,
                        params,
                        gy_rows,
                    )?
                }
            }
            let x_rows = match &ops.x_rows {
                XRows::Kept(kept) => kept,
                XRows::Own(x_rows) => {
                    let rows = len * g.x.c * g.out[0];
                    tiled::record_pack_texel_rows(
                        ctx,
                        op,
                        rec,
                        x,
                        n0 * plane,
                        rows,
                        params,
                        x_rows,
                    )?;
                    x_rows
                }
            };
            let textures = (x_rows, &ops.gy_rows);
            tiled::record_wgrad_3x3(
                ctx,
                op,
                rec,
                textures,
                grad_w,
                &ops.partial,
                params,
                len,
                i > 0,
            )?;
            if let (Some(gx), Some(a)) = (grad_x, &ops.dgrad_w) {
                let conv = ConvParams { n_offset: n0 as u32, ..params };
                let (src, bias, relu, pool) = (&ops.gy_rows, None, false, None);
                let c = tiled::Conv3x3 { a, src, out: gx, conv, len, bias, relu, pool };
                tiled::record_conv_3x3(ctx, op, rec, &c)?;
            }
        }
        Ok(())
    }

    /// Records the gradients. The data gradient (skipped when `grad_x` is `None`, as for a
    /// network's input) of a convolution is a transposed-convolution gather over grad_y and
    /// vice versa; a transposed convolution's weight gradient is `conv_backward_weight` with x
    /// and grad_y exchanged (see conv.wgsl). On the im2col path both are GEMMs: grad_W sums
    /// grad_y_n col_n^T over the batch, grad_col_n = W^T grad_y_n goes back through col2im.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_backward(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        w: &Tensor,
        grad_y: &Tensor,
        grad_x: Option<&Tensor>,
        grad_w: &Tensor,
        grad_b: Option<&Tensor>,
        col: Option<&Tensor>,
    ) -> Result<()> {
        let (op, g, groups) = (self.op, &self.g, self.groups);
        let mut tensors = vec![x, w, grad_y, grad_w];
        tensors.extend(grad_x.iter().chain(&grad_b));
        let ctx = context_of(op, &tensors)?;
        self.check(grad_y, "grad_output", &self.output_shape())?;
        self.check(grad_w, "grad_weight", w.shape())?;
        check_u32(op, "output elements", grad_y.numel())?;
        if let Some(gx) = grad_x {
            self.check(gx, "grad_input", x.shape())?;
        }
        if let Some(gb) = grad_b {
            self.check(gb, "grad_bias", &[g.c_out])?;
            crate::ops::reduce::record_channel_sum(&ctx, rec, grad_y, g.x.n, g.c_out, gb)?;
        }
        if let Some((adjoint, chunk)) = self.tiled_adjoint(&ctx)? {
            // The adjoint's input is grad_y and its output x: grad_W is its weight gradient
            // and grad_x its forward pass (no bias).
            let flat = Flat::new(&ctx, grad_y.numel()).filter(|f| f.can_copy(grad_y.buffer()));
            if let Some(gy_flat) = flat {
                self.log_kernel(&ctx, "backward (as its adjoint's)", ConvKernel::Tiled { chunk });
                gy_flat.record_copy(rec, grad_y.buffer());
                adjoint.record_tiled_weight_grad(&ctx, rec, &gy_flat, x, grad_w, chunk)?;
                if let Some(gx) = grad_x {
                    adjoint.record_tiled_forward(
                        &ctx, rec, &gy_flat, w, None, gx, chunk, false, None, None,
                    )?;
                }
                return Ok(());
            }
        }
        let (kernel, flat) = self.kernel_for(&ctx, x)?;
        self.log_kernel(&ctx, "backward", kernel);
        // The implicit 3x3 kernels where the tiled GEMM would run (the 3x3 tiles serve layers
        // with few input channels, which wgrad_3x3_sg's lanes would leave idle).
        let implicit = match kernel {
            ConvKernel::Tiled { chunk } => self.implicit_3x3_chunk(&ctx, chunk, g.x.c.max(g.c_out)),
            _ => None,
        };
        if let Some(chunk) = implicit {
            if let Some(ops) = self.implicit_3x3_operands(&ctx, chunk, grad_x.is_some(), None)? {
                let grads = (grad_x, grad_w);
                return self.record_implicit_3x3_backward(
                    rec,
                    GradSource::Plain(grad_y),
                    x,
                    w,
                    grads,
                    ops,
                );
            }
        }
        if let (ConvKernel::Tiled { chunk }, Some(x_flat)) = (kernel, flat) {
            x_flat.record_copy(rec, x.buffer());
            self.record_tiled_weight_grad(&ctx, rec, &x_flat, grad_y, grad_w, chunk)?;
            if let Some(gx) = grad_x {
                self.record_tiled_data_grad(&ctx, rec, w, grad_y, gx, None, chunk)?;
            }
            return Ok(());
        }
        if kernel == ConvKernel::Im2col {
            let (k, p) = self.col_dims();
            let (chunk, _) = self.col_chunk(&ctx)?;
            let col = self.scratch(&ctx, col)?;
            for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
                let len = chunk.min(g.x.n - n0);
                self.record_im2col(&ctx, rec, x, &col, n0, len)?;
                // grad_W (C_out, K) (+)= sum over the chunk of grad_y_n (C_out, P) col_n^T (P, K).
                let mut gemm =
                    Gemm::new(grad_y, &col, None, (1, g.c_out, k, p), (0, 0), (false, true));
                gemm.ldb = p;
                gemm.offsets.0 = n0 * g.c_out * p;
                gemm.k_batches = len;
                gemm.kb_strides = (g.c_out * p, k * p);
                gemm.accumulate = i > 0;
                gemm.record(&ctx, op, rec, grad_w)?;
            }
            if let Some(gx) = grad_x {
                for n0 in (0..g.x.n).step_by(chunk) {
                    let len = chunk.min(g.x.n - n0);
                    // grad_col_n (K, P) = W^T (K, C_out) grad_y_n (C_out, P).
                    let mut gemm = Gemm::new(
                        w,
                        grad_y,
                        None,
                        (len, k, p, g.c_out),
                        (0, g.c_out * p),
                        (true, false),
                    );
                    gemm.lda = k;
                    gemm.offsets.1 = n0 * g.c_out * p;
                    gemm.record(&ctx, op, rec, &col)?;
                    self.record_col2im(&ctx, rec, Col::Buffer(&col), gx, None, n0, len)?;
                }
            }
            return Ok(());
        }
        let (c_x, c_y) = (g.x.c, g.c_out);
        let (size_x, size_y) = (&g.x.size, &g.out);
        if kernel == ConvKernel::Tiles3x3 {
            if let Some(gx) = grad_x {
                let total = tiles_4x4(x.shape()) as u32;
                let params = g.params(groups, c_x, c_y, size_x, size_y, false, total);
                let grid = ctx.grid_1d(op, u64::from(total), WG)?;
                let inputs = [(5, 13, grad_y), (2, 12, w)];
                // A placeholder for the bias the forward tiles add.
                let outputs = [(3, &ctx.inner.dummy), (4, gx.buffer())];
                let entry = "tiles_3x3_backward_input";
                self.record_direct(&ctx, rec, entry, &params, grid, &inputs, &outputs, true)?;
            }
            // One workgroup of 64 per weight slot (output channel, input channel of its group,
            // depth tap); x through grad_y's bindings and grad_y through x's (see conv.wgsl).
            let taps_d = g.kernel[..g.kernel.len() - 2].iter().product::<usize>();
            let slots = c_y * (c_x / groups) * taps_d;
            let total = (tiles_4x4(grad_y.shape()) / c_y) as u32;
            let params = g.params(groups, c_x, c_y, size_x, size_y, false, total);
            let grid = ctx.grid_1d(op, slots as u64 * 64, 64)?;
            let inputs = [(5, 13, x), (1, 11, grad_y)];
            // A placeholder for the pooled variant's indices (the two share their body).
            let outputs = [(6, grad_w.buffer()), (7, &ctx.inner.dummy_rw)];
            let entry = "tiles_3x3_backward_weight";
            return self.record_direct(&ctx, rec, entry, &params, grid, &inputs, &outputs, true);
        }
        if kernel == ConvKernel::Depthwise {
            if let Some(gx) = grad_x {
                let total = quads(x.shape()) as u32;
                let params = g.params(groups, c_x, c_y, size_x, size_y, false, total);
                let grid = ctx.grid_1d(op, u64::from(total), WG)?;
                let inputs = [(5, 13, grad_y), (2, 12, w)];
                let outputs = [(4, gx.buffer())];
                let entry = "depthwise_backward_input";
                self.record_direct(&ctx, rec, entry, &params, grid, &inputs, &outputs, true)?;
            }
            // One workgroup of 64 per weight.
            let total = check_u32(op, "weight elements", w.numel())?;
            let params = g.params(groups, c_x, c_y, size_x, size_y, false, total);
            let grid = ctx.grid_1d(op, u64::from(total) * 64, 64)?;
            let inputs = [(1, 11, x), (5, 13, grad_y)];
            let outputs = [(6, grad_w.buffer())];
            let entry = "depthwise_backward_weight";
            // 64 invocations share each piece's rows.
            for piece in row_pieces(op, &params, 64)? {
                self.record_direct(&ctx, rec, entry, &piece, grid, &inputs, &outputs, true)?;
            }
            return Ok(());
        }
        let textures = kernel == ConvKernel::Direct { textures: true };
        if let Some(gx) = grad_x {
            let total = check_u32(op, "input elements", x.numel())?;
            // A gather from grad_y into an "output" the size of x.
            let entry = if self.transposed { "conv_forward" } else { "conv_transpose_forward" };
            let params = g.params(groups, c_y, c_x, size_y, size_x, false, total);
            let grid = ctx.grid_1d(op, u64::from(total), WG)?;
            let inputs = [(1, 11, grad_y), (2, 12, w)];
            let outputs = [(3, &ctx.inner.dummy), (4, gx.buffer())];
            self.record_direct(&ctx, rec, entry, &params, grid, &inputs, &outputs, textures)?;
        }
        // Sum over the batch and positions of (strided tensor) x (dense tensor).
        let total = check_u32(op, "weight elements", w.numel())?;
        let (params, strided, dense) = if self.transposed {
            (g.params(groups, c_y, c_x, size_y, size_x, false, total), grad_y, x)
        } else {
            (g.params(groups, c_x, c_y, size_x, size_y, false, total), x, grad_y)
        };
        let grid = ctx.grid_1d(op, u64::from(total), WG)?;
        let inputs = [(1, 11, strided), (5, 13, dense)];
        let outputs = [(6, grad_w.buffer())];
        let entry = "conv_backward_weight";
        for piece in row_pieces(op, &params, 1)? {
            self.record_direct(&ctx, rec, entry, &piece, grid, &inputs, &outputs, textures)?;
        }
        Ok(())
    }

    /// grad_W^T (K, C_out) (+)= col (K, len*P) @ grad_y^T (len*P, C_out), per chunk of
    /// `chunk` samples, on the tiled kernel; `x_flat` already holds x.
    fn record_tiled_weight_grad(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        x_flat: &Flat,
        grad_y: &Tensor,
        grad_w: &Tensor,
        chunk: usize,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let (k, p) = self.col_dims();
        let cp = chunk * p;
        let col_t = self.col_texture(ctx, chunk, p)?;
        let gy_t = self.packed(ctx, cp, g.c_out, cp.div_ceil(4) * 4)?;
        for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
            let len = chunk.min(g.x.n - n0);
            let a = self.im2col_operand(ctx, rec, x_flat, col_t.as_ref(), n0, len, None)?;
            let b = gy_t.with_size(len * p, g.c_out);
            let view = View::channels_by_positions(n0 * g.c_out * p, g.c_out, p).t();
            tiled::record_pack(ctx, op, rec, grad_y.buffer(), None, &view, &b)?;
            let epilogue = Epilogue { accumulate: i > 0, ..Epilogue::to(View::dense(0, k, true)) };
            tiled::record_gemm(ctx, op, rec, &a, &b, grad_w, &epilogue)?;
        }
        Ok(())
    }

    /// grad_x (C_in, len*P_in) = W as (C_in, C_out * taps) @ the implicit gather of grad_y
    /// (`dgrad_texel`), per chunk, on the workgroup GEMM layout: no grad_col, no col2im. Only
    /// for stride 1: with stride s most of the gathered values would be zeros, s^d times the
    /// multiply-adds, and col2im's GEMM does not pay that. `gy_flat` already holds grad_y.
    #[allow(clippy::too_many_arguments)]
    fn record_implicit_data_grad(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        w: &Tensor,
        gy_flat: &Flat,
        gx: &Tensor,
        bias: Option<&Tensor>,
        chunk: usize,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let taps: usize = g.kernel.iter().product();
        let kt = g.c_out * taps;
        let p_in: usize = g.x.size.iter().product();
        let a = self.packed(ctx, g.x.c, kt, g.x.c)?;
        let view = View::channels_by_positions(0, g.x.c, taps);
        tiled::record_pack(ctx, op, rec, w.buffer(), None, &view, &a)?;
        for n0 in (0..g.x.n).step_by(chunk) {
            let len = chunk.min(g.x.n - n0);
            let total = check_u32(op, "input positions", len * p_in)?;
            let mut params = g.params(1, g.x.c, g.c_out, &g.x.size, &g.out, false, total);
            params.n_offset = n0 as u32;
            let b = Packed::implicit(gy_flat, Gather::Dgrad, params, kt, len * p_in);
            let view = View::channels_by_positions(n0 * g.x.c * p_in, g.x.c, p_in);
            let epilogue = Epilogue { bias, bias_per_row: true, ..Epilogue::to(view) };
            tiled::record_gemm(ctx, op, rec, &a, &b, gx, &epilogue)?;
        }
        Ok(())
    }

    /// grad_x = col2im(grad_col), grad_col (K, len*P) = W^T (K, C_out) @ grad_y (C_out, len*P)
    /// per chunk, on the tiled kernel: the GEMM writes a texture that col2im_texture gathers
    /// from. With `bias`, col2im adds it per channel of grad_x (a transposed convolution's
    /// forward pass runs here).
    #[allow(clippy::too_many_arguments)]
    fn record_tiled_data_grad(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        w: &Tensor,
        grad_y: &Tensor,
        gx: &Tensor,
        bias: Option<&Tensor>,
        chunk: usize,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        // The implicit path packs W as (C_in, C_out * taps): that texture must fit too.
        let kt = g.c_out * g.kernel.iter().product::<usize>();
        if ctx.gemm_layout() == GemmLayout::Workgroup
            && g.stride.iter().all(|&s| s == 1)
            && tiled::fits(ctx, kt.div_ceil(4), g.x.c)
        {
            let flat = Flat::new(ctx, grad_y.numel()).filter(|f| f.can_copy(grad_y.buffer()));
            if let Some(gy_flat) = flat {
                gy_flat.record_copy(rec, grad_y.buffer());
                return self.record_implicit_data_grad(ctx, rec, w, &gy_flat, gx, bias, chunk);
            }
        }
        let (_, p) = self.col_dims();
        let (w_t, grad_col) = self.data_grad_textures(ctx, rec, w, chunk * p)?;
        let gy = self.packed(ctx, g.c_out, chunk * p, g.c_out.div_ceil(4) * 4)?;
        for n0 in (0..g.x.n).step_by(chunk) {
            let len = chunk.min(g.x.n - n0);
            let b = gy.with_size(g.c_out, len * p);
            let view = View::channels_by_positions(n0 * g.c_out * p, g.c_out, p);
            tiled::record_pack(ctx, op, rec, grad_y.buffer(), None, &view, &b)?;
            let grads = (&w_t, &grad_col, gx);
            self.record_data_grad_chunk(ctx, rec, grads, &b, bias, None, n0, len)?;
        }
        Ok(())
    }

    /// The data gradient's textures on the tiled kernel: W^T (K, C_out), packed here, and
    /// grad_col (K, `cols`), which the GEMM writes and col2im reads.
    fn data_grad_textures(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        w: &Tensor,
        cols: usize,
    ) -> Result<(Packed, Packed)> {
        let (k, _) = self.col_dims();
        let w_t = self.packed(ctx, k, self.g.c_out, k)?;
        tiled::record_pack(ctx, self.op, rec, w.buffer(), None, &View::dense(0, k, true), &w_t)?;
        Ok((w_t, self.packed(ctx, k, cols, k)?))
    }

    /// One chunk of the data gradient: grad_col = W^T @ `b` (grad_y's C_out x columns, in
    /// pooled order for a pooled size), then col2im (adding `bias`) into samples
    /// [n0, n0 + len) of grad_x. `grads` is (W^T, grad_col, grad_x).
    #[allow(clippy::too_many_arguments)]
    fn record_data_grad_chunk(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        (w_t, grad_col, gx): (&Packed, &Packed, &Tensor),
        b: &Packed,
        bias: Option<&Tensor>,
        pooled: Option<[usize; 2]>,
        n0: usize,
        len: usize,
    ) -> Result<()> {
        let epilogue =
            Epilogue { texture: Some(grad_col), ..Epilogue::to(View::dense(0, b.cols, false)) };
        tiled::record_gemm(ctx, self.op, rec, w_t, b, gx, &epilogue)?;
        self.record_col2im(ctx, rec, Col::Texture(grad_col, pooled), gx, bias, n0, len)
    }

    fn forward(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = Tensor::output(x.context(), &self.output_shape(), DType::F32, self.op)?;
        x.context().run(self.op, |rec| self.record_forward(rec, x, w, bias, &y, None, false))?;
        Ok(y)
    }

    fn backward(
        &self,
        grad_y: &Tensor,
        x: &Tensor,
        w: &Tensor,
        has_bias: bool,
    ) -> Result<ConvGrads> {
        let ctx = x.context();
        let grad_input = Tensor::output(ctx, x.shape(), DType::F32, self.op)?;
        let grad_weight = Tensor::output(ctx, w.shape(), DType::F32, self.op)?;
        let grad_bias = if has_bias {
            Some(Tensor::output(ctx, &[self.g.c_out], DType::F32, self.op)?)
        } else {
            None
        };
        ctx.run(self.op, |rec| {
            self.record_backward(
                rec,
                x,
                w,
                grad_y,
                Some(&grad_input),
                &grad_weight,
                grad_bias.as_ref(),
                None,
            )
        })?;
        Ok(ConvGrads { grad_input, grad_weight, grad_bias })
    }
}

/// Gradients of a convolution or transposed convolution with respect to its input, weight and
/// bias.
#[derive(Debug)]
pub struct ConvGrads {
    /// Same shape as the input.
    pub grad_input: Tensor,
    /// Same shape as the weight.
    pub grad_weight: Tensor,
    /// Per output channel; `None` when the layer has no bias.
    pub grad_bias: Option<Tensor>,
}

fn conv_nd(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvOptions,
) -> Result<Tensor> {
    ConvPlan::conv(op, sd, x.shape(), w.shape(), o)?.forward(x, w, bias)
}

fn conv_backward_nd(
    op: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    w: &Tensor,
    has_bias: bool,
    o: &ConvOptions,
) -> Result<ConvGrads> {
    ConvPlan::conv(op, sd, x.shape(), w.shape(), o)?.backward(grad_y, x, w, has_bias)
}

fn conv_transpose_nd(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvTransposeOptions,
) -> Result<Tensor> {
    ConvPlan::conv_transpose(op, sd, x.shape(), w.shape(), o)?.forward(x, w, bias)
}

fn conv_transpose_backward_nd(
    op: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    w: &Tensor,
    has_bias: bool,
    o: &ConvTransposeOptions,
) -> Result<ConvGrads> {
    ConvPlan::conv_transpose(op, sd, x.shape(), w.shape(), o)?.backward(grad_y, x, w, has_bias)
}

/// The output shape of `conv1d/2d/3d` (spatial rank from the weight) for an input and weight
/// shape: PyTorch's floor((in + 2p - d(k-1) - 1) / s) + 1 per dimension.
///
/// # Errors
/// As the operators, without running anything.
pub fn conv_output_shape(x: &[usize], w: &[usize], o: &ConvOptions) -> Result<Vec<usize>> {
    let sd = w.len().saturating_sub(2).clamp(1, 3);
    Ok(ConvPlan::conv(["conv1d", "conv2d", "conv3d"][sd - 1], sd, x, w, o)?.output_shape())
}

/// The output shape of `conv_transpose1d/2d/3d`: (in - 1)s - 2p + d(k-1) + output_padding + 1.
///
/// # Errors
/// As the operators, without running anything.
pub fn conv_transpose_output_shape(
    x: &[usize],
    w: &[usize],
    o: &ConvTransposeOptions,
) -> Result<Vec<usize>> {
    let sd = w.len().saturating_sub(2).clamp(1, 3);
    let op = ["conv_transpose1d", "conv_transpose2d", "conv_transpose3d"][sd - 1];
    Ok(ConvPlan::conv_transpose(op, sd, x, w, o)?.output_shape())
}

/// 1-D convolution: x (N, C_in, L) or (C_in, L); weight (C_out, C_in/groups, k); bias (C_out).
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes or attributes (see [`ConvOptions`]).
pub fn conv1d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, o: &ConvOptions) -> Result<Tensor> {
    conv_nd("conv1d", 1, x, w, bias, o)
}

/// 2-D convolution: x (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in/groups, kH, kW).
///
/// # Errors
/// As [`conv1d`].
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, o: &ConvOptions) -> Result<Tensor> {
    conv_nd("conv2d", 2, x, w, bias, o)
}

/// 3-D convolution: x (N, C_in, D, H, W) or (C_in, D, H, W); weight (C_out, C_in/groups, kD, kH, kW).
///
/// # Errors
/// As [`conv1d`].
pub fn conv3d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, o: &ConvOptions) -> Result<Tensor> {
    conv_nd("conv3d", 3, x, w, bias, o)
}

/// 1-D transposed convolution: x (N, C_in, L); weight (C_in, C_out/groups, k); bias (C_out).
/// Output length `(L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1`.
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes or attributes.
pub fn conv_transpose1d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvTransposeOptions,
) -> Result<Tensor> {
    conv_transpose_nd("conv_transpose1d", 1, x, w, bias, o)
}

/// 2-D transposed convolution: x (N, C_in, H, W); weight (C_in, C_out/groups, kH, kW).
///
/// # Errors
/// As [`conv_transpose1d`].
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvTransposeOptions,
) -> Result<Tensor> {
    conv_transpose_nd("conv_transpose2d", 2, x, w, bias, o)
}

/// 3-D transposed convolution: x (N, C_in, D, H, W); weight (C_in, C_out/groups, kD, kH, kW).
///
/// # Errors
/// As [`conv_transpose1d`].
pub fn conv_transpose3d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvTransposeOptions,
) -> Result<Tensor> {
    conv_transpose_nd("conv_transpose3d", 3, x, w, bias, o)
}

macro_rules! backward_fns {
    ($($name:ident, $inner:ident, $opts:ty, $sd:literal, $fwd:literal;)*) => {$(
        #[doc = concat!("Gradients of [`", $fwd, "`] with respect to its input, weight and bias (when")]
        /// `has_bias`), given the upstream gradient `grad_output` of the output's shape.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for mismatched shapes or attributes.
        pub fn $name(
            grad_output: &Tensor,
            x: &Tensor,
            w: &Tensor,
            has_bias: bool,
            o: &$opts,
        ) -> Result<ConvGrads> {
            $inner(concat!($fwd, "_backward"), $sd, grad_output, x, w, has_bias, o)
        }
    )*};
}

backward_fns! {
    conv1d_backward, conv_backward_nd, ConvOptions, 1, "conv1d";
    conv2d_backward, conv_backward_nd, ConvOptions, 2, "conv2d";
    conv3d_backward, conv_backward_nd, ConvOptions, 3, "conv3d";
    conv_transpose1d_backward, conv_transpose_backward_nd, ConvTransposeOptions, 1, "conv_transpose1d";
    conv_transpose2d_backward, conv_transpose_backward_nd, ConvTransposeOptions, 2, "conv_transpose2d";
    conv_transpose3d_backward, conv_transpose_backward_nd, ConvTransposeOptions, 3, "conv_transpose3d";
}
