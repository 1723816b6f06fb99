//! A convolution's geometry: shapes and attributes checked with PyTorch's rules and resolved
//! to 3-D, and the kernels' parameters (`ConvParams`) and index spaces derived from it.

use crate::ops::texture::MAX_LOOP_ITERATIONS;
use crate::ops::uniforms::ConvParams;
use crate::ops::{Padding, Spatial, to3};
use crate::{Error, Result};

use super::{ConvOptions, ConvPlan, ConvTransposeOptions};

/// The geometry both directions share, checked and resolved to 3-D.
pub(crate) struct Geometry {
    /// The input (x for a convolution, its "input" for a transposed one).
    pub(crate) x: Spatial,
    pub(crate) groups: usize,
    pub(crate) c_out: usize,
    pub(crate) kernel: Vec<usize>,
    pub(crate) stride: Vec<usize>,
    pub(crate) pad: Vec<usize>,
    pub(crate) dilation: Vec<usize>,
    pub(crate) out: Vec<usize>,
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

/// A convolution's attributes: either kind's options.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Attrs<'a> {
    Conv(&'a ConvOptions),
    Transpose(&'a ConvTransposeOptions),
}

impl ConvPlan {
    fn of(op: &'static str, g: Geometry, transposed: bool, adjoint: Option<Box<ConvPlan>>) -> Self {
        ConvPlan { op, g, transposed, adjoint, forward_pack: Default::default() }
    }

    /// A convolution, or transposed convolution, of `sd` spatial dimensions for an input of
    /// shape `x` and a weight of shape `w`, its geometry checked with PyTorch's rules.
    pub(crate) fn new(
        op: &'static str,
        sd: usize,
        (x, w): (&[usize], &[usize]),
        attrs: Attrs<'_>,
    ) -> Result<Self> {
        let xs = Spatial::of(op, x, sd)?;
        let kernel = weight_kernel(op, w, sd)?;
        let (groups, stride, dilation) = match attrs {
            Attrs::Conv(o) => (o.groups, &o.stride, &o.dilation),
            Attrs::Transpose(o) => (o.groups, &o.stride, &o.dilation),
        };
        let c_out = match attrs {
            Attrs::Conv(_) => {
                check_groups(op, groups, xs.c, w[0])?;
                if w[1] * groups != xs.c {
                    let (expected, per) = (w[1] * groups, w[1]);
                    return Err(Error::invalid(
                        op,
                        format!(
                            "weight of shape {w:?} expects {expected} input channels ({per} per \
                             group x {groups} groups), but the input of shape {x:?} has {}",
                            xs.c
                        ),
                    ));
                }
                w[0]
            }
            Attrs::Transpose(_) => {
                if w[0] != xs.c {
                    return Err(Error::invalid(
                        op,
                        format!(
                            "weight of shape {w:?} expects {} input channels, but the input of \
                             shape {x:?} has {}",
                            w[0], xs.c
                        ),
                    ));
                }
                check_groups(op, groups, xs.c, w[1] * groups)?;
                w[1] * groups
            }
        };
        let stride = stride.resolve_positive(op, "stride", sd)?;
        let dilation = dilation.resolve_positive(op, "dilation", sd)?;
        let (pad, out) = output(op, &xs, (&kernel, &stride, &dilation), attrs)?;
        if out.iter().any(|&v| v < 1) {
            return Err(out_size_error(op, x, w, &out));
        }
        let out = out.into_iter().map(|v| v as usize).collect();
        let g = Geometry { x: xs, groups, c_out, kernel, stride, pad, dilation, out };
        let transposed = matches!(attrs, Attrs::Transpose(_));
        let adjoint = (transposed && g.groups == 1)
            .then(|| Box::new(ConvPlan::of(op, g.adjoint(), false, None)));
        Ok(ConvPlan::of(op, g, transposed, adjoint))
    }
}

/// Kernel, stride and dilation, resolved per dimension.
type Taps<'a> = (&'a [usize], &'a [usize], &'a [usize]);

/// The padding (`same` and `valid` resolved) and output size: for a convolution
/// floor((in + 2p - d(k-1) - 1) / s) + 1, `same` putting any odd remainder after; for a
/// transposed one (in - 1)s - 2p + d(k-1) + output_padding + 1.
fn output(
    op: &'static str,
    xs: &Spatial,
    (kernel, stride, dilation): Taps<'_>,
    attrs: Attrs<'_>,
) -> Result<(Vec<usize>, Vec<i64>)> {
    let sd = xs.size.len();
    let extent = |i: usize| (dilation[i] * (kernel[i] - 1)) as i64;
    let o = match attrs {
        Attrs::Conv(o) => o,
        Attrs::Transpose(o) => {
            let pad = o.padding.resolve(op, "padding", sd)?;
            let out_pad = o.output_padding.resolve(op, "output_padding", sd)?;
            if (0..sd).any(|i| out_pad[i] >= stride[i] && out_pad[i] >= dilation[i]) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "output_padding ({out_pad:?}) must be smaller than either stride \
                         ({stride:?}) or dilation ({dilation:?})"
                    ),
                ));
            }
            let out = (0..sd).map(|i| {
                (xs.size[i] as i64 - 1) * stride[i] as i64 - 2 * pad[i] as i64
                    + extent(i)
                    + out_pad[i] as i64
                    + 1
            });
            let out = out.collect();
            return Ok((pad, out));
        }
    };
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
    let out = (0..sd).map(|i| {
        let total_pad = if o.padding == Padding::Same { extent(i) } else { 2 * pad[i] as i64 };
        (xs.size[i] as i64 + total_pad - extent(i) - 1).div_euclid(stride[i] as i64) + 1
    });
    let out = out.collect();
    Ok((pad, out))
}

impl Geometry {
    /// The kernels' parameters with x as the input and y as the output (a forward pass, and
    /// the passes that read x and grad_y in those roles), `total` invocations or elements.
    pub(crate) fn params(&self, has_bias: bool, total: u32) -> ConvParams {
        ConvParams {
            n: self.x.n as u32,
            c_in: self.x.c as u32,
            c_out: self.c_out as u32,
            groups: self.groups as u32,
            input: to3(&self.x.size, 1),
            output: to3(&self.out, 1),
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
            act: 0,
            act_lo: 0.0,
            act_hi: 0.0,
            _pad: [0; 3],
        }
    }

    /// [`Geometry::params`] for a chunk of samples from `n0` on.
    pub(crate) fn chunk_params(&self, n0: usize, has_bias: bool, total: u32) -> ConvParams {
        ConvParams { n_offset: n0 as u32, ..self.params(has_bias, total) }
    }

    /// The same with the roles swapped: grad_y (channels and size) as the input and x as the
    /// output, for the gathers that run a convolution's data gradient as the transposed
    /// convolution's forward kernel and the other way round.
    pub(crate) fn swapped_params(&self, total: u32) -> ConvParams {
        let p = self.params(false, total);
        ConvParams { c_in: p.c_out, c_out: p.c_in, input: p.output, output: p.input, ..p }
    }

    /// The adjoint of a transposed convolution (groups 1): the convolution whose data gradient
    /// it is, with this one's output as its input and this one's input as its output.
    pub(crate) fn adjoint(&self) -> Geometry {
        Geometry {
            x: Spatial {
                batched: self.x.batched,
                n: self.x.n,
                c: self.c_out,
                size: self.out.clone(),
            },
            groups: 1,
            c_out: self.x.c,
            kernel: self.kernel.clone(),
            stride: self.stride.clone(),
            pad: self.pad.clone(),
            dilation: self.dilation.clone(),
            out: self.x.size.clone(),
        }
    }
}

/// A weight-gradient kernel's parameters in pieces of its output rows (sample, d, h): each of
/// its invocations sums over every row, `lanes` invocations sharing them, so pieces keep their
/// loops within [`MAX_LOOP_ITERATIONS`] (lavapipe cuts longer loops short). The kernel
/// adds every piece after the first to the sum so far.
pub(super) fn row_pieces(
    op: &'static str,
    params: &ConvParams,
    lanes: usize,
) -> Result<Vec<ConvParams>> {
    let rows = params.n as usize * params.output[0] as usize * params.output[1] as usize;
    if rows >= 1 << 24 {
        return Err(Error::invalid(
            op,
            format!("{rows} rows of output are too many for the weight gradient's kernel"),
        ));
    }
    let width = params.output[2] as usize;
    let per = (MAX_LOOP_ITERATIONS * lanes / (width + 1)).max(lanes);
    Ok((0..rows)
        .step_by(per)
        .map(|first| ConvParams { rows: [first as u32, (first + per).min(rows) as u32], ..*params })
        .collect())
}

impl Geometry {
    /// The output's shape, batched like the input.
    pub(crate) fn output_shape(&self) -> Vec<usize> {
        self.x.out_shape(self.c_out, &self.out)
    }

    /// Samples in the smallest of the chunks of `chunk` samples the batch is taken in (the
    /// last): its GEMMs have the fewest columns.
    pub(crate) fn smallest_chunk(&self, chunk: usize) -> usize {
        match self.x.n % chunk.max(1) {
            0 => chunk.min(self.x.n),
            rest => rest,
        }
    }

    /// (K, P): the im2col rows (input channels x kernel taps) and columns (output positions).
    pub(crate) fn col_dims(&self) -> (usize, usize) {
        (self.x.c * self.kernel.iter().product::<usize>(), self.out.iter().product())
    }

    /// Whether this is a pointwise convolution: a 1x1 kernel of stride 1 with no padding and
    /// the input's size (a transposed convolution's adjoint may cover fewer positions), whose
    /// im2col matrix is x itself.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel.iter().chain(&self.stride).all(|&v| v == 1)
            && self.pad.iter().all(|&v| v == 0)
            && self.out == self.x.size
    }

    /// Whether this is a 2-D convolution with a 3x3 kernel of stride 2, padding 1 and dilation
    /// 1 (MobileNet's downsampling layers), which the depthwise kernels have variants for.
    pub(crate) fn is_3x3_stride_2(&self) -> bool {
        self.out.len() == 2
            && self.kernel == [3, 3]
            && self.stride == [2, 2]
            && self.pad == [1, 1]
            && self.dilation == [1, 1]
    }

    /// Whether this is a 2-D convolution of stride 1 and dilation 1 whose kernel is at most 7
    /// taps high and wide (LeNet's 5x5), which im2col in pooled order has a kernel for.
    pub(crate) fn is_plain_up_to_7x7(&self) -> bool {
        self.out.len() == 2
            && self.kernel.iter().all(|&k| k <= 7)
            && self.stride == [1, 1]
            && self.dilation == [1, 1]
    }

    /// Whether this is a 2-D convolution with a 3x3 kernel, stride 1 and dilation 1, which
    /// im2col (in pooled order), col2im and the subgroup kernels have kernels of their own for.
    pub(crate) fn is_plain_3x3(&self) -> bool {
        self.kernel == [3, 3] && self.is_plain_up_to_7x7()
    }

    /// x's texels per channel of `samples` samples in rows of texels (ceil(W / 4) per row; 2-D).
    pub(crate) fn x_row_texels(&self, samples: usize) -> usize {
        samples * self.x.size[0] * self.x.size[1].div_ceil(4)
    }

    /// Texels per channel of `samples` samples in rows of texels (ceil(W / 4) per row of the
    /// output; the subgroup kernels' backward passes keep x's size).
    pub(crate) fn row_texels(&self, samples: usize) -> usize {
        samples * self.out[0] * self.out[1].div_ceil(4)
    }

    /// Input values per sample.
    pub(crate) fn x_plane(&self) -> usize {
        self.x.c * self.x.size.iter().product::<usize>()
    }
}

/// Invocations of a depthwise kernel writing a tensor of this (N, C, spatial...) shape: one per
/// four values along its last dimension (below 2^24, checked by `select.rs`).
pub(super) fn quads(shape: &[usize]) -> usize {
    let (last, rows) = shape.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
    rows.iter().product::<usize>() * last.div_ceil(4)
}

/// Invocations of the 3x3 tile kernels writing a tensor of this (N, C, spatial...) shape (at
/// least 2 spatial dimensions): one per 4x4 tile of its last two dimensions.
pub(super) fn tiles_4x4(shape: &[usize]) -> usize {
    let (w, rest) = shape.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
    let (h, rows) = rest.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
    rows.iter().product::<usize>() * h.div_ceil(4) * w.div_ceil(4)
}
