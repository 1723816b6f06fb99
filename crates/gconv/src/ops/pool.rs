//! Max, average and adaptive pooling, 1-D to 3-D (`pool.wgsl`).

use super::{Dims, Spatial, check_u32, context_of, to3};
use crate::kernel::{Dispatch, Shader, WG};
use crate::{DType, Error, Result, Tensor};

/// Attributes of `max_pool1d/2d/3d`, with PyTorch's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxPoolOptions {
    /// Window size per dimension.
    pub kernel_size: Dims,
    /// Step between windows; `None` means `kernel_size`, as in PyTorch.
    pub stride: Option<Dims>,
    /// Implicit negative-infinity padding on both sides (at most half the dilated window).
    pub padding: Dims,
    /// Spacing between window taps.
    pub dilation: Dims,
    /// Use ceil instead of floor for the output size (a last window may start in the input's
    /// tail or the left padding, never in the right padding).
    pub ceil_mode: bool,
}

impl MaxPoolOptions {
    /// A `kernel_size` window with stride = kernel_size, no padding, dilation 1, floor mode.
    pub fn new(kernel_size: impl Into<Dims>) -> Self {
        MaxPoolOptions {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: 0.into(),
            dilation: 1.into(),
            ceil_mode: false,
        }
    }
    /// Sets `stride`.
    pub fn stride(mut self, v: impl Into<Dims>) -> Self {
        self.stride = Some(v.into());
        self
    }
    /// Sets `padding`.
    pub fn padding(mut self, v: impl Into<Dims>) -> Self {
        self.padding = v.into();
        self
    }
    /// Sets `dilation`.
    pub fn dilation(mut self, v: impl Into<Dims>) -> Self {
        self.dilation = v.into();
        self
    }
    /// Sets `ceil_mode`.
    pub fn ceil_mode(mut self, v: bool) -> Self {
        self.ceil_mode = v;
        self
    }
}

/// Attributes of `avg_pool1d/2d/3d`, with PyTorch's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvgPoolOptions {
    /// Window size per dimension.
    pub kernel_size: Dims,
    /// Step between windows; `None` means `kernel_size`.
    pub stride: Option<Dims>,
    /// Implicit zero padding on both sides (at most half the window).
    pub padding: Dims,
    /// Use ceil instead of floor for the output size.
    pub ceil_mode: bool,
    /// Count padding zeros in the divisor (PyTorch's default, true).
    pub count_include_pad: bool,
    /// Divide by this instead of the window size.
    pub divisor_override: Option<usize>,
}

impl AvgPoolOptions {
    /// A `kernel_size` window with stride = kernel_size, no padding, floor mode,
    /// count_include_pad.
    pub fn new(kernel_size: impl Into<Dims>) -> Self {
        AvgPoolOptions {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: 0.into(),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
    /// Sets `stride`.
    pub fn stride(mut self, v: impl Into<Dims>) -> Self {
        self.stride = Some(v.into());
        self
    }
    /// Sets `padding`.
    pub fn padding(mut self, v: impl Into<Dims>) -> Self {
        self.padding = v.into();
        self
    }
    /// Sets `ceil_mode`.
    pub fn ceil_mode(mut self, v: bool) -> Self {
        self.ceil_mode = v;
        self
    }
    /// Sets `count_include_pad`.
    pub fn count_include_pad(mut self, v: bool) -> Self {
        self.count_include_pad = v;
        self
    }
    /// Sets `divisor_override`.
    pub fn divisor_override(mut self, v: usize) -> Self {
        self.divisor_override = Some(v);
        self
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    planes: u32,
    input: [u32; 3],
    output: [u32; 3],
    kernel: [u32; 3],
    stride: [u32; 3],
    pad: [u32; 3],
    dilation: [u32; 3],
    count_include_pad: u32,
    divisor_override: u32,
    total: u32,
}

/// PyTorch's `pooling_output_shape`: floor or ceil, and in ceil mode the last window must start
/// inside the input or its left padding.
fn pool_out_size(input: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> i64 {
    let (input, k, s, p, d) = (input as i64, k as i64, s as i64, p as i64, d as i64);
    let numerator = input + 2 * p - d * (k - 1) - 1 + if ceil { s - 1 } else { 0 };
    let mut out = numerator.div_euclid(s) + 1;
    if ceil && (out - 1) * s >= input + p {
        out -= 1;
    }
    out
}

struct Window {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    pad: Vec<usize>,
    dilation: Vec<usize>,
    out: Vec<usize>,
}

#[allow(clippy::too_many_arguments)]
fn window(
    op: &'static str,
    xs: &Spatial,
    x: &Tensor,
    kernel_size: &Dims,
    stride: Option<&Dims>,
    padding: &Dims,
    dilation: &Dims,
    ceil_mode: bool,
    max_pad_of_window: bool,
) -> Result<Window> {
    let sd = xs.size.len();
    let kernel = kernel_size.resolve_positive(op, "kernel_size", sd)?;
    let stride = match stride {
        Some(s) if !s.0.is_empty() => s.resolve_positive(op, "stride", sd)?,
        _ => kernel.clone(),
    };
    let pad = padding.resolve(op, "padding", sd)?;
    let dilation = dilation.resolve_positive(op, "dilation", sd)?;
    for i in 0..sd {
        // Max pooling bounds padding by the dilated window, average pooling by the window.
        let window = if max_pad_of_window { (kernel[i] - 1) * dilation[i] + 1 } else { kernel[i] };
        if pad[i] > window / 2 {
            return Err(Error::invalid(
                op,
                format!("padding {pad:?} should be at most half of the kernel size {kernel:?}"),
            ));
        }
    }
    let out: Vec<i64> = (0..sd)
        .map(|i| pool_out_size(xs.size[i], kernel[i], stride[i], pad[i], dilation[i], ceil_mode))
        .collect();
    if out.iter().any(|&v| v < 1) {
        return Err(Error::invalid(
            op,
            format!(
                "output size {out:?} is below 1 for input {:?} with kernel_size {kernel:?}, \
                 stride {stride:?}, padding {pad:?}, dilation {dilation:?}",
                x.shape()
            ),
        ));
    }
    let out = out.into_iter().map(|v| v as usize).collect();
    Ok(Window { kernel, stride, pad, dilation, out })
}

struct Launch<'a> {
    op: &'static str,
    entry: &'static str,
    x: &'a Tensor,
    xs: Spatial,
    win: Window,
    count_include_pad: bool,
    divisor_override: usize,
    with_indices: bool,
}

fn launch(l: Launch<'_>) -> Result<(Tensor, Option<Tensor>)> {
    let Launch { op, entry, x, xs, win, .. } = l;
    let ctx = context_of(op, &[x])?;
    let shape = xs.out_shape(xs.c, &win.out);
    let total = check_u32(op, "output elements", crate::tensor::numel(&shape))?;
    check_u32(op, "input elements", x.numel())?;
    let y = Tensor::output(&ctx, &shape, DType::F32, op)?;
    let indices =
        if l.with_indices { Some(Tensor::output(&ctx, &shape, DType::I32, op)?) } else { None };
    let params = PoolParams {
        planes: (xs.n * xs.c) as u32,
        input: to3(&xs.size, 1),
        output: to3(&win.out, 1),
        kernel: to3(&win.kernel, 1),
        stride: to3(&win.stride, 1),
        pad: to3(&win.pad, 0),
        dilation: to3(&win.dilation, 1),
        count_include_pad: l.count_include_pad as u32,
        divisor_override: check_u32(op, "divisor_override", l.divisor_override)?,
        total,
    };
    let mut buffers = vec![(1, x.buffer()), (2, y.buffer())];
    if let Some(i) = &indices {
        buffers.push((3, i.buffer()));
    }
    ctx.run(op, |enc| {
        ctx.record(
            enc,
            &Dispatch {
                shader: Shader::Pool,
                entry,
                constants: &[("WG", f64::from(WG))],
                params: bytemuck::bytes_of(&params),
                buffers: &buffers,
                workgroups: ctx.grid_1d(op, u64::from(total), WG)?,
            },
        )
    })?;
    Ok((y, indices))
}

fn max_pool_nd(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    o: &MaxPoolOptions,
    with_indices: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (xs, win) = max_pool_window(op, sd, x, o)?;
    launch(Launch {
        op,
        entry: "max_pool_forward",
        x,
        xs,
        win,
        count_include_pad: false,
        divisor_override: 0,
        with_indices,
    })
}

fn avg_pool_nd(op: &'static str, sd: usize, x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
    let xs = Spatial::of(op, x, sd)?;
    let win = window(
        op,
        &xs,
        x,
        &o.kernel_size,
        o.stride.as_ref(),
        &o.padding,
        &1.into(),
        o.ceil_mode,
        false,
    )?;
    if o.divisor_override == Some(0) {
        return Err(Error::invalid(op, "divisor_override must be positive"));
    }
    Ok(launch(Launch {
        op,
        entry: "avg_pool_forward",
        x,
        xs,
        win,
        count_include_pad: o.count_include_pad,
        divisor_override: o.divisor_override.unwrap_or(0),
        with_indices: false,
    })?
    .0)
}

fn adaptive_nd(
    op: &'static str,
    entry: &'static str,
    sd: usize,
    x: &Tensor,
    output_size: &Dims,
    with_indices: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (xs, win) =
        adaptive_window(op, sd, x, output_size.resolve_positive(op, "output_size", sd)?)?;
    launch(Launch {
        op,
        entry,
        x,
        xs,
        win,
        count_include_pad: false,
        divisor_override: 0,
        with_indices,
    })
}

fn expect_indices(op: &'static str, r: (Tensor, Option<Tensor>)) -> Result<(Tensor, Tensor)> {
    match r {
        (y, Some(i)) => Ok((y, i)),
        (_, None) => Err(Error::invalid(op, "internal error: no indices were produced")),
    }
}

struct Backward<'a> {
    op: &'static str,
    entry: &'static str,
    x: &'a Tensor,
    xs: Spatial,
    win: Window,
    grad_y: &'a Tensor,
    indices: Option<&'a Tensor>,
    count_include_pad: bool,
    divisor_override: usize,
}

/// grad_x of a pooling: one invocation per input element gathers from the windows holding it.
fn backward(b: Backward<'_>) -> Result<Tensor> {
    let Backward { op, entry, x, xs, win, grad_y, indices, .. } = b;
    let ctx = context_of(op, &[x, grad_y])?;
    let out_shape = xs.out_shape(xs.c, &win.out);
    if grad_y.shape() != out_shape.as_slice() {
        return Err(Error::invalid(
            op,
            format!(
                "grad_output must have the output's shape {out_shape:?}, got {:?}",
                grad_y.shape()
            ),
        ));
    }
    if let Some(i) = indices {
        if !i.context().same(&ctx) {
            return Err(Error::ContextMismatch { op });
        }
        i.expect_dtype(op, DType::I32)?;
        if i.shape() != out_shape.as_slice() {
            return Err(Error::invalid(
                op,
                format!("indices must have the output's shape {out_shape:?}, got {:?}", i.shape()),
            ));
        }
    }
    let total = check_u32(op, "input elements", x.numel())?;
    check_u32(op, "output elements", grad_y.numel())?;
    let grad_x = Tensor::output(&ctx, x.shape(), DType::F32, op)?;
    let params = PoolParams {
        planes: (xs.n * xs.c) as u32,
        input: to3(&xs.size, 1),
        output: to3(&win.out, 1),
        kernel: to3(&win.kernel, 1),
        stride: to3(&win.stride, 1),
        pad: to3(&win.pad, 0),
        dilation: to3(&win.dilation, 1),
        count_include_pad: b.count_include_pad as u32,
        divisor_override: check_u32(op, "divisor_override", b.divisor_override)?,
        total,
    };
    let mut buffers = vec![(4, grad_y.buffer()), (5, grad_x.buffer())];
    if entry != "avg_pool_backward" {
        // The adaptive entries share one function that reads the indices in its max branch.
        buffers.push((6, indices.map_or(&ctx.inner.dummy, Tensor::buffer)));
    }
    ctx.run(op, |enc| {
        ctx.record(
            enc,
            &Dispatch {
                shader: Shader::Pool,
                entry,
                constants: &[("WG", f64::from(WG))],
                params: bytemuck::bytes_of(&params),
                buffers: &buffers,
                workgroups: ctx.grid_1d(op, u64::from(total), WG)?,
            },
        )
    })?;
    Ok(grad_x)
}

fn max_pool_window(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    o: &MaxPoolOptions,
) -> Result<(Spatial, Window)> {
    let xs = Spatial::of(op, x, sd)?;
    let win = window(
        op,
        &xs,
        x,
        &o.kernel_size,
        o.stride.as_ref(),
        &o.padding,
        &o.dilation,
        o.ceil_mode,
        true,
    )?;
    Ok((xs, win))
}

fn avg_pool_window(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    o: &AvgPoolOptions,
) -> Result<(Spatial, Window)> {
    let xs = Spatial::of(op, x, sd)?;
    let win = window(
        op,
        &xs,
        x,
        &o.kernel_size,
        o.stride.as_ref(),
        &o.padding,
        &1.into(),
        o.ceil_mode,
        false,
    )?;
    if o.divisor_override == Some(0) {
        return Err(Error::invalid(op, "divisor_override must be positive"));
    }
    Ok((xs, win))
}

fn adaptive_window(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    out: Vec<usize>,
) -> Result<(Spatial, Window)> {
    let xs = Spatial::of(op, x, sd)?;
    if out.contains(&0) {
        return Err(Error::invalid(op, format!("output_size must be positive, got {out:?}")));
    }
    let win = Window {
        kernel: vec![1; sd],
        stride: vec![1; sd],
        pad: vec![0; sd],
        dilation: vec![1; sd],
        out,
    };
    Ok((xs, win))
}

fn max_pool_backward_nd(
    op: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    indices: &Tensor,
    o: &MaxPoolOptions,
) -> Result<Tensor> {
    let (xs, win) = max_pool_window(op, sd, x, o)?;
    backward(Backward {
        op,
        entry: "max_pool_backward",
        x,
        xs,
        win,
        grad_y,
        indices: Some(indices),
        count_include_pad: false,
        divisor_override: 0,
    })
}

fn avg_pool_backward_nd(
    op: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    o: &AvgPoolOptions,
) -> Result<Tensor> {
    let (xs, win) = avg_pool_window(op, sd, x, o)?;
    backward(Backward {
        op,
        entry: "avg_pool_backward",
        x,
        xs,
        win,
        grad_y,
        indices: None,
        count_include_pad: o.count_include_pad,
        divisor_override: o.divisor_override.unwrap_or(0),
    })
}

fn adaptive_backward_nd(
    op: &'static str,
    entry: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    indices: Option<&Tensor>,
) -> Result<Tensor> {
    // The output size is grad_output's spatial size.
    let out = grad_y.shape()[grad_y.rank().saturating_sub(sd)..].to_vec();
    let (xs, win) = adaptive_window(op, sd, x, out)?;
    backward(Backward {
        op,
        entry,
        x,
        xs,
        win,
        grad_y,
        indices,
        count_include_pad: false,
        divisor_override: 0,
    })
}

macro_rules! pool_fns {
    ($sd:literal, $max:ident, $max_idx:ident, $avg:ident, $amax:ident, $amax_idx:ident, $aavg:ident) => {
        #[doc = concat!("Max pooling over ", stringify!($sd), "-D windows of an (N, C, ...) or (C, ...) input.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for an input of the wrong rank, bad attributes or an
        /// output size below 1.
        pub fn $max(x: &Tensor, o: &MaxPoolOptions) -> Result<Tensor> {
            Ok(max_pool_nd(stringify!($max), $sd, x, o, false)?.0)
        }

        #[doc = concat!("[`", stringify!($max), "`] that also returns the argmax of each window (i32, ")]
        /// the flat index within the input's (n, c) plane, as PyTorch's `return_indices=True`).
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($max), "`].")]
        pub fn $max_idx(x: &Tensor, o: &MaxPoolOptions) -> Result<(Tensor, Tensor)> {
            expect_indices(stringify!($max), max_pool_nd(stringify!($max), $sd, x, o, true)?)
        }

        #[doc = concat!("Average pooling over ", stringify!($sd), "-D windows.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for an input of the wrong rank, bad attributes or an
        /// output size below 1.
        pub fn $avg(x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
            avg_pool_nd(stringify!($avg), $sd, x, o)
        }

        #[doc = concat!("Adaptive max pooling to `output_size` (", stringify!($sd), "-D); (1, ...) is global max pooling.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for an input of the wrong rank or a zero output size.
        pub fn $amax(x: &Tensor, output_size: impl Into<Dims>) -> Result<Tensor> {
            Ok(adaptive_nd(stringify!($amax), "adaptive_max_pool_forward", $sd, x, &output_size.into(), false)?.0)
        }

        #[doc = concat!("[`", stringify!($amax), "`] that also returns the argmax indices.")]
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($amax), "`].")]
        pub fn $amax_idx(x: &Tensor, output_size: impl Into<Dims>) -> Result<(Tensor, Tensor)> {
            expect_indices(stringify!($amax), adaptive_nd(stringify!($amax), "adaptive_max_pool_forward", $sd, x, &output_size.into(), true)?)
        }

        #[doc = concat!("Adaptive average pooling to `output_size` (", stringify!($sd), "-D); (1, ...) is global average pooling.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for an input of the wrong rank or a zero output size.
        pub fn $aavg(x: &Tensor, output_size: impl Into<Dims>) -> Result<Tensor> {
            Ok(adaptive_nd(stringify!($aavg), "adaptive_avg_pool_forward", $sd, x, &output_size.into(), false)?.0)
        }
    };
}

macro_rules! pool_backward_fns {
    ($sd:literal, $max:ident, $avg:ident, $amax:ident, $aavg:ident) => {
        /// Gradient of max pooling with respect to its input `x`, through the `indices` the
        /// forward pass returned; windows that overlap add up.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] when grad_output or indices do not have the output's shape.
        pub fn $max(
            grad_output: &Tensor,
            x: &Tensor,
            indices: &Tensor,
            o: &MaxPoolOptions,
        ) -> Result<Tensor> {
            max_pool_backward_nd(stringify!($max), $sd, grad_output, x, indices, o)
        }

        /// Gradient of average pooling with respect to its input `x`.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] when grad_output does not have the output's shape.
        pub fn $avg(grad_output: &Tensor, x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
            avg_pool_backward_nd(stringify!($avg), $sd, grad_output, x, o)
        }

        /// Gradient of adaptive max pooling with respect to `x`, through the saved `indices`;
        /// the output size is grad_output's.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for mismatched shapes.
        pub fn $amax(grad_output: &Tensor, x: &Tensor, indices: &Tensor) -> Result<Tensor> {
            adaptive_backward_nd(
                stringify!($amax),
                "adaptive_max_pool_backward",
                $sd,
                grad_output,
                x,
                Some(indices),
            )
        }

        /// Gradient of adaptive average pooling with respect to `x`; the output size is
        /// grad_output's.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for mismatched shapes.
        pub fn $aavg(grad_output: &Tensor, x: &Tensor) -> Result<Tensor> {
            adaptive_backward_nd(
                stringify!($aavg),
                "adaptive_avg_pool_backward",
                $sd,
                grad_output,
                x,
                None,
            )
        }
    };
}

pool_backward_fns!(
    1,
    max_pool1d_backward,
    avg_pool1d_backward,
    adaptive_max_pool1d_backward,
    adaptive_avg_pool1d_backward
);
pool_backward_fns!(
    2,
    max_pool2d_backward,
    avg_pool2d_backward,
    adaptive_max_pool2d_backward,
    adaptive_avg_pool2d_backward
);
pool_backward_fns!(
    3,
    max_pool3d_backward,
    avg_pool3d_backward,
    adaptive_max_pool3d_backward,
    adaptive_avg_pool3d_backward
);

pool_fns!(
    1,
    max_pool1d,
    max_pool1d_with_indices,
    avg_pool1d,
    adaptive_max_pool1d,
    adaptive_max_pool1d_with_indices,
    adaptive_avg_pool1d
);
pool_fns!(
    2,
    max_pool2d,
    max_pool2d_with_indices,
    avg_pool2d,
    adaptive_max_pool2d,
    adaptive_max_pool2d_with_indices,
    adaptive_avg_pool2d
);
pool_fns!(
    3,
    max_pool3d,
    max_pool3d_with_indices,
    avg_pool3d,
    adaptive_max_pool3d,
    adaptive_max_pool3d_with_indices,
    adaptive_avg_pool3d
);
