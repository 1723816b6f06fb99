//! Max, average and adaptive pooling, 1-D to 3-D: the public operators and their options.
//! `plan.rs` checks the attributes and records the kernels (`shaders/pool/pool.wgsl`);
//! `unpool_2x2.rs` has the fused conv -> ReLU -> 2x2 max-pool's backward pass into textures
//! (`shaders/pool/unpool_2x2.wgsl`).

mod plan;
mod unpool_2x2;

pub(crate) use plan::PoolPlan;

use super::Dims;
use crate::{Error, Result, Tensor};

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

fn max_pool_nd(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    o: &MaxPoolOptions,
) -> Result<(Tensor, Option<Tensor>)> {
    PoolPlan::max(op, sd, x.shape(), o)?.forward(x)
}

fn avg_pool_nd(op: &'static str, sd: usize, x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
    Ok(PoolPlan::avg(op, sd, x.shape(), o)?.forward(x)?.0)
}

fn adaptive_nd(
    op: &'static str,
    max: bool,
    sd: usize,
    x: &Tensor,
    output_size: &Dims,
) -> Result<(Tensor, Option<Tensor>)> {
    PoolPlan::adaptive(op, max, sd, x.shape(), output_size)?.forward(x)
}

fn expect_indices(op: &'static str, r: (Tensor, Option<Tensor>)) -> Result<(Tensor, Tensor)> {
    match r {
        (y, Some(i)) => Ok((y, i)),
        (_, None) => Err(Error::invalid(op, "internal error: no indices were produced")),
    }
}

fn max_pool_backward_nd(
    op: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    indices: &Tensor,
    o: &MaxPoolOptions,
) -> Result<Tensor> {
    PoolPlan::max(op, sd, x.shape(), o)?.backward(grad_y, x, Some(indices))
}

fn avg_pool_backward_nd(
    op: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    o: &AvgPoolOptions,
) -> Result<Tensor> {
    PoolPlan::avg(op, sd, x.shape(), o)?.backward(grad_y, x, None)
}

fn adaptive_backward_nd(
    op: &'static str,
    max: bool,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    indices: Option<&Tensor>,
) -> Result<Tensor> {
    // The output size is grad_output's spatial size.
    let out = grad_y.shape()[grad_y.rank().saturating_sub(sd)..].to_vec();
    PoolPlan::adaptive(op, max, sd, x.shape(), &out.into())?.backward(grad_y, x, indices)
}

/// The output shape of max pooling for an input shape with `sd` spatial dimensions.
///
/// # Errors
/// As the operators, without running anything.
pub fn max_pool_output_shape(x: &[usize], sd: usize, o: &MaxPoolOptions) -> Result<Vec<usize>> {
    Ok(PoolPlan::max("max_pool", sd, x, o)?.output_shape())
}

/// The output shape of average pooling for an input shape with `sd` spatial dimensions.
///
/// # Errors
/// As the operators, without running anything.
pub fn avg_pool_output_shape(x: &[usize], sd: usize, o: &AvgPoolOptions) -> Result<Vec<usize>> {
    Ok(PoolPlan::avg("avg_pool", sd, x, o)?.output_shape())
}

macro_rules! pool_fns {
    ($sd:literal, $max:ident, $max_idx:ident, $avg:ident, $amax:ident, $amax_idx:ident, $aavg:ident) => {
        #[doc = concat!("Max pooling over ", stringify!($sd), "-D windows of an (N, C, ...) or (C, ...) input.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an input of the wrong rank, bad attributes or an
        /// output size below 1.
        pub fn $max(x: &Tensor, o: &MaxPoolOptions) -> Result<Tensor> {
            Ok(max_pool_nd(stringify!($max), $sd, x, o)?.0)
        }

        #[doc = concat!("[`", stringify!($max), "`] that also returns the argmax of each window (i32, ")]
        /// the flat index within the input's (n, c) plane, as PyTorch's `return_indices=True`).
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($max), "`].")]
        pub fn $max_idx(x: &Tensor, o: &MaxPoolOptions) -> Result<(Tensor, Tensor)> {
            expect_indices(stringify!($max), max_pool_nd(stringify!($max), $sd, x, o)?)
        }

        #[doc = concat!("Average pooling over ", stringify!($sd), "-D windows.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an input of the wrong rank, bad attributes or an
        /// output size below 1.
        pub fn $avg(x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
            avg_pool_nd(stringify!($avg), $sd, x, o)
        }

        #[doc = concat!("Adaptive max pooling to `output_size` (", stringify!($sd), "-D); (1, ...) is global max pooling.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an input of the wrong rank or a zero output size.
        pub fn $amax(x: &Tensor, output_size: impl Into<Dims>) -> Result<Tensor> {
            Ok(adaptive_nd(stringify!($amax), true, $sd, x, &output_size.into())?.0)
        }

        #[doc = concat!("[`", stringify!($amax), "`] that also returns the argmax indices.")]
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($amax), "`].")]
        pub fn $amax_idx(x: &Tensor, output_size: impl Into<Dims>) -> Result<(Tensor, Tensor)> {
            expect_indices(stringify!($amax), adaptive_nd(stringify!($amax), true, $sd, x, &output_size.into())?)
        }

        #[doc = concat!("Adaptive average pooling to `output_size` (", stringify!($sd), "-D); (1, ...) is global average pooling.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for an input of the wrong rank or a zero output size.
        pub fn $aavg(x: &Tensor, output_size: impl Into<Dims>) -> Result<Tensor> {
            Ok(adaptive_nd(stringify!($aavg), false, $sd, x, &output_size.into())?.0)
        }
    };
}

macro_rules! pool_backward_fns {
    ($sd:literal, $max:ident, $avg:ident, $amax:ident, $aavg:ident) => {
        /// Gradient of max pooling with respect to its input `x`, through the `indices` the
        /// forward pass returned; windows that overlap add up.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when grad_output or indices do not have the output's shape.
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
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when grad_output does not have the output's shape.
        pub fn $avg(grad_output: &Tensor, x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
            avg_pool_backward_nd(stringify!($avg), $sd, grad_output, x, o)
        }

        /// Gradient of adaptive max pooling with respect to `x`, through the saved `indices`;
        /// the output size is grad_output's.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for mismatched shapes.
        pub fn $amax(grad_output: &Tensor, x: &Tensor, indices: &Tensor) -> Result<Tensor> {
            adaptive_backward_nd(stringify!($amax), true, $sd, grad_output, x, Some(indices))
        }

        /// Gradient of adaptive average pooling with respect to `x`; the output size is
        /// grad_output's.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for mismatched shapes.
        pub fn $aavg(grad_output: &Tensor, x: &Tensor) -> Result<Tensor> {
            adaptive_backward_nd(stringify!($aavg), false, $sd, grad_output, x, None)
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
