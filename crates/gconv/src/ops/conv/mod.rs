//! conv1d/2d/3d and conv_transpose1d/2d/3d, forward and backward: the public operators and
//! their options. A [`ConvPlan`] (`plan.rs`) checks the geometry (`geometry.rs`) once and
//! records each pass on the kernel `select.rs` chooses for it, from one strategy module:
//! - `direct.rs`: the direct, depthwise and 3x3-tile kernels (no GEMM);
//! - `im2col.rs`: im2col into a storage buffer and the storage-buffer GEMM;
//! - `tiled.rs`: the texture GEMM, with im2col in a texture or gathered by the GEMM, and a
//!   transposed convolution's passes as its adjoint's;
//! - `relu_pool.rs`: a convolution fused with the ReLU and 2x2 max-pool after it;
//! - `subgroup_3x3.rs`: 3x3 convolutions on 8-lane subgroups (CPU adapters).

mod choice;
mod direct;
mod geometry;
mod im2col;
mod plan;
mod pointwise;
mod relu_pool;
mod select;
mod subgroup_3x3;
mod tiled;

pub(crate) use geometry::Attrs;
pub(crate) use plan::{ConvIo, ConvPlan, GradsOut, Post};
pub(crate) use relu_pool::{ConvReluPool, ReluPoolScratch};

use super::{Dims, Padding};
use crate::{Result, Tensor};

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
    ConvPlan::new(op, sd, (x.shape(), w.shape()), Attrs::Conv(o))?.forward(x, w, bias)
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
    ConvPlan::new(op, sd, (x.shape(), w.shape()), Attrs::Conv(o))?.backward(grad_y, x, w, has_bias)
}

fn conv_transpose_nd(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvTransposeOptions,
) -> Result<Tensor> {
    ConvPlan::new(op, sd, (x.shape(), w.shape()), Attrs::Transpose(o))?.forward(x, w, bias)
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
    ConvPlan::new(op, sd, (x.shape(), w.shape()), Attrs::Transpose(o))?
        .backward(grad_y, x, w, has_bias)
}

/// The output shape of `conv1d/2d/3d` (spatial rank from the weight) for an input and weight
/// shape: PyTorch's floor((in + 2p - d(k-1) - 1) / s) + 1 per dimension.
///
/// # Errors
/// As the operators, without running anything.
pub fn conv_output_shape(x: &[usize], w: &[usize], o: &ConvOptions) -> Result<Vec<usize>> {
    let sd = w.len().saturating_sub(2).clamp(1, 3);
    let op = ["conv1d", "conv2d", "conv3d"][sd - 1];
    Ok(ConvPlan::new(op, sd, (x, w), Attrs::Conv(o))?.output_shape())
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
    Ok(ConvPlan::new(op, sd, (x, w), Attrs::Transpose(o))?.output_shape())
}

/// 1-D convolution: x (N, C_in, L) or (C_in, L); weight (C_out, C_in/groups, k); bias (C_out).
///
/// # Errors
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for mismatched shapes or attributes (see [`ConvOptions`]).
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
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for mismatched shapes or attributes.
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
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for mismatched shapes or attributes.
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
