//! conv1d/2d/3d and conv_transpose1d/2d/3d (`conv.wgsl`).

use super::{Dims, Padding, Spatial, check_bias, check_u32, context_of, to3};
use crate::kernel::Dispatch;
use crate::kernel::{Shader, WG};
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

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvParams {
    n: u32,
    c_in: u32,
    c_out: u32,
    groups: u32,
    input: [u32; 3],
    output: [u32; 3],
    kernel: [u32; 3],
    stride: [u32; 3],
    pad: [u32; 3],
    dilation: [u32; 3],
    has_bias: u32,
    total: u32,
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

fn weight_kernel(op: &'static str, w: &Tensor, sd: usize) -> Result<Vec<usize>> {
    if w.rank() != sd + 2 {
        return Err(Error::invalid(
            op,
            format!("weight must be {}-D, got shape {:?}", sd + 2, w.shape()),
        ));
    }
    let k = w.shape()[2..].to_vec();
    if k.contains(&0) || w.shape()[0] == 0 || w.shape()[1] == 0 {
        return Err(Error::invalid(op, format!("weight of shape {:?} has no elements", w.shape())));
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

fn out_size_error(op: &'static str, x: &Tensor, w: &Tensor, out: &[i64]) -> Error {
    Error::invalid(
        op,
        format!(
            "output size {out:?} is below 1 for input {:?} and weight {:?}: the input is too \
             small for the kernel, stride, padding and dilation",
            x.shape(),
            w.shape()
        ),
    )
}

fn conv_geometry(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    w: &Tensor,
    o: &ConvOptions,
) -> Result<Geometry> {
    let xs = Spatial::of(op, x, sd)?;
    let kernel = weight_kernel(op, w, sd)?;
    let c_out = w.shape()[0];
    check_groups(op, o.groups, xs.c, c_out)?;
    if w.shape()[1] * o.groups != xs.c {
        return Err(Error::invalid(
            op,
            format!(
                "weight of shape {:?} expects {} input channels ({} per group x {} groups), but \
                 the input of shape {:?} has {}",
                w.shape(),
                w.shape()[1] * o.groups,
                w.shape()[1],
                o.groups,
                x.shape(),
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
    x: &Tensor,
    w: &Tensor,
    o: &ConvTransposeOptions,
) -> Result<Geometry> {
    let xs = Spatial::of(op, x, sd)?;
    let kernel = weight_kernel(op, w, sd)?;
    if w.shape()[0] != xs.c {
        return Err(Error::invalid(
            op,
            format!(
                "weight of shape {:?} expects {} input channels, but the input of shape {:?} \
                 has {}",
                w.shape(),
                w.shape()[0],
                x.shape(),
                xs.c
            ),
        ));
    }
    let c_out = w.shape()[1] * o.groups;
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
        }
    }
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
    }
}

fn launch(
    op: &'static str,
    entry: &'static str,
    g: Geometry,
    groups: usize,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let mut tensors = vec![x, w];
    tensors.extend(bias);
    let ctx = context_of(op, &tensors)?;
    check_bias(op, bias, g.c_out)?;
    let shape = g.x.out_shape(g.c_out, &g.out);
    let total = check_u32(op, "output elements", crate::tensor::numel(&shape))?;
    check_u32(op, "input elements", x.numel())?;
    check_u32(op, "weight elements", w.numel())?;
    let y = Tensor::output(&ctx, &shape, DType::F32, op)?;
    let params = g.params(groups, g.x.c, g.c_out, &g.x.size, &g.out, bias.is_some(), total);
    let b = bias.map_or(&ctx.inner.dummy, Tensor::buffer);
    let buffers = [(1, x.buffer()), (2, w.buffer()), (3, b), (4, y.buffer())];
    ctx.run(op, |enc| {
        ctx.record(enc, &dispatch(entry, &params, &buffers, ctx.grid_1d(op, u64::from(total), WG)?))
    })?;
    Ok(y)
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

fn check_grad_output(op: &'static str, grad_y: &Tensor, expected: &[usize]) -> Result<()> {
    if grad_y.shape() != expected {
        return Err(Error::invalid(
            op,
            format!(
                "grad_output must have the output's shape {expected:?}, got {:?}",
                grad_y.shape()
            ),
        ));
    }
    Ok(())
}

/// Records the three gradients. `transposed` swaps the roles as described in conv.wgsl: the
/// data gradient of a convolution is a transposed-convolution gather over grad_y and vice versa,
/// and a transposed convolution's weight gradient is `conv_backward_weight` with x and grad_y
/// exchanged.
#[allow(clippy::too_many_arguments)]
fn backward(
    op: &'static str,
    g: Geometry,
    groups: usize,
    transposed: bool,
    x: &Tensor,
    w: &Tensor,
    has_bias: bool,
    grad_y: &Tensor,
) -> Result<ConvGrads> {
    let ctx = context_of(op, &[x, w, grad_y])?;
    let y_shape = g.x.out_shape(g.c_out, &g.out);
    check_grad_output(op, grad_y, &y_shape)?;
    check_u32(op, "output elements", grad_y.numel())?;
    let gx_total = check_u32(op, "input elements", x.numel())?;
    let gw_total = check_u32(op, "weight elements", w.numel())?;
    let grad_input = Tensor::output(&ctx, x.shape(), DType::F32, op)?;
    let grad_weight = Tensor::output(&ctx, w.shape(), DType::F32, op)?;
    let grad_bias =
        if has_bias { Some(Tensor::output(&ctx, &[g.c_out], DType::F32, op)?) } else { None };
    let (c_x, c_y) = (g.x.c, g.c_out);
    let (size_x, size_y) = (g.x.size.clone(), g.out.clone());
    let dummy = &ctx.inner.dummy;
    // Data gradient: a gather from grad_y into an "output" the size of x.
    let (data_entry, data_params) = if transposed {
        ("conv_forward", g.params(groups, c_y, c_x, &size_y, &size_x, false, gx_total))
    } else {
        ("conv_transpose_forward", g.params(groups, c_y, c_x, &size_y, &size_x, false, gx_total))
    };
    let data_buffers =
        [(1, grad_y.buffer()), (2, w.buffer()), (3, dummy), (4, grad_input.buffer())];
    // Weight gradient: sum over the batch and positions of (strided tensor) x (dense tensor).
    let (weight_params, strided, dense) = if transposed {
        (g.params(groups, c_y, c_x, &size_y, &size_x, false, gw_total), grad_y, x)
    } else {
        (g.params(groups, c_x, c_y, &size_x, &size_y, false, gw_total), x, grad_y)
    };
    let weight_buffers = [(1, strided.buffer()), (5, dense.buffer()), (6, grad_weight.buffer())];
    ctx.run(op, |enc| {
        let grid = ctx.grid_1d(op, u64::from(gx_total), WG)?;
        ctx.record(enc, &dispatch(data_entry, &data_params, &data_buffers, grid))?;
        let grid = ctx.grid_1d(op, u64::from(gw_total), WG)?;
        ctx.record(enc, &dispatch("conv_backward_weight", &weight_params, &weight_buffers, grid))?;
        if let Some(gb) = &grad_bias {
            crate::ops::reduce::record_channel_sum(&ctx, enc, grad_y, g.x.n, g.c_out, gb)?;
        }
        Ok(())
    })?;
    Ok(ConvGrads { grad_input, grad_weight, grad_bias })
}

fn conv_nd(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvOptions,
) -> Result<Tensor> {
    let g = conv_geometry(op, sd, x, w, o)?;
    launch(op, "conv_forward", g, o.groups, x, w, bias)
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
    let g = conv_geometry(op, sd, x, w, o)?;
    backward(op, g, o.groups, false, x, w, has_bias, grad_y)
}

fn conv_transpose_nd(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvTransposeOptions,
) -> Result<Tensor> {
    let g = conv_transpose_geometry(op, sd, x, w, o)?;
    launch(op, "conv_transpose_forward", g, o.groups, x, w, bias)
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
    let g = conv_transpose_geometry(op, sd, x, w, o)?;
    backward(op, g, o.groups, true, x, w, has_bias, grad_y)
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
