//! Operators with PyTorch's semantics and argument names (`torch.nn.functional`), and their
//! gradients (`*_backward`, taking the upstream gradient first, as PyTorch's derivative
//! functions). Each one validates its arguments (a clear [`Error`] naming the operator and the
//! shapes, never a panic), allocates its outputs, and records its kernels through the one
//! dispatch path.

pub(crate) mod activation;
pub(crate) mod augment;
pub(crate) mod combine;
pub(crate) mod conv;
pub(crate) mod gemm;
pub(crate) mod loss;
pub(crate) mod norm;
pub(crate) mod pad;
pub(crate) mod pool;
pub(crate) mod reduce;
pub(crate) mod slices;
pub(crate) mod texture;
pub(crate) mod uniforms;

pub use activation::{
    hardtanh, hardtanh_backward, leaky_relu, leaky_relu_backward, log_softmax,
    log_softmax_backward, mul_scalar, relu, relu_backward, relu6, relu6_backward, sigmoid,
    sigmoid_backward, softmax, softmax_backward,
};
pub use augment::{AugmentOptions, augment};
pub use combine::{add, cat, narrow};
pub use conv::{
    ConvGrads, ConvOptions, ConvTransposeOptions, conv_output_shape, conv_transpose_output_shape,
    conv_transpose1d, conv_transpose1d_backward, conv_transpose2d, conv_transpose2d_backward,
    conv_transpose3d, conv_transpose3d_backward, conv1d, conv1d_backward, conv2d, conv2d_backward,
    conv3d, conv3d_backward,
};
pub use gemm::{LinearGrads, linear, linear_backward, matmul, matmul_backward};
pub use loss::{CrossEntropyOptions, Reduction, cross_entropy, cross_entropy_backward};
pub use norm::{
    BatchNormGrads, BatchNormOptions, batch_norm, batch_norm_backward, batch_norm_with_stats,
};
pub use pad::{pad, pad_backward, pad_output_shape};
pub use pool::{
    AvgPoolOptions, MaxPoolOptions, adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,
    adaptive_max_pool1d, adaptive_max_pool1d_with_indices, adaptive_max_pool2d,
    adaptive_max_pool2d_with_indices, adaptive_max_pool3d, adaptive_max_pool3d_with_indices,
    avg_pool_output_shape, avg_pool1d, avg_pool2d, avg_pool3d, max_pool_output_shape, max_pool1d,
    max_pool1d_with_indices, max_pool2d, max_pool2d_with_indices, max_pool3d,
    max_pool3d_with_indices,
};
pub use pool::{
    adaptive_avg_pool1d_backward, adaptive_avg_pool2d_backward, adaptive_avg_pool3d_backward,
    adaptive_max_pool1d_backward, adaptive_max_pool2d_backward, adaptive_max_pool3d_backward,
    avg_pool1d_backward, avg_pool2d_backward, avg_pool3d_backward, max_pool1d_backward,
    max_pool2d_backward, max_pool3d_backward,
};

use crate::{Context, DType, Error, Result, Tensor};

/// A per-dimension argument as PyTorch takes it: one value for every spatial dimension
/// (`Dims::from(2)`) or one per dimension (`Dims::from([2, 3])`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dims(pub Vec<usize>);

impl From<usize> for Dims {
    fn from(v: usize) -> Self {
        Dims(vec![v])
    }
}

impl<const N: usize> From<[usize; N]> for Dims {
    fn from(v: [usize; N]) -> Self {
        Dims(v.to_vec())
    }
}

impl From<Vec<usize>> for Dims {
    fn from(v: Vec<usize>) -> Self {
        Dims(v)
    }
}

impl From<&[usize]> for Dims {
    fn from(v: &[usize]) -> Self {
        Dims(v.to_vec())
    }
}

impl Dims {
    /// The value for each of `rank` dimensions.
    pub(crate) fn resolve(&self, op: &'static str, name: &str, rank: usize) -> Result<Vec<usize>> {
        match self.0.len() {
            1 => Ok(vec![self.0[0]; rank]),
            n if n == rank => Ok(self.0.clone()),
            n => Err(Error::invalid(
                op,
                format!("{name} must have 1 or {rank} values, got {n} ({:?})", self.0),
            )),
        }
    }

    pub(crate) fn resolve_positive(
        &self,
        op: &'static str,
        name: &str,
        rank: usize,
    ) -> Result<Vec<usize>> {
        let v = self.resolve(op, name, rank)?;
        if v.contains(&0) {
            return Err(Error::invalid(op, format!("{name} must be positive, got {v:?}")));
        }
        Ok(v)
    }
}

/// Convolution padding, as PyTorch's `padding` argument: explicit sizes, `"same"` (output as
/// large as the input; stride 1 only) or `"valid"` (no padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Padding {
    /// The same amount before and after, per dimension.
    Explicit(Dims),
    /// Pad so the output has the input's size; an odd total goes after, as PyTorch does.
    Same,
    /// No padding.
    Valid,
}

impl<T: Into<Dims>> From<T> for Padding {
    fn from(v: T) -> Self {
        Padding::Explicit(v.into())
    }
}

/// The shared context of `tensors`, or an error when they come from different devices.
pub(crate) fn context_of(op: &'static str, tensors: &[&Tensor]) -> Result<Context> {
    let first = tensors[0].context();
    if tensors.iter().any(|t| !t.context().same(first)) {
        return Err(Error::ContextMismatch { op });
    }
    for t in tensors {
        t.expect_dtype(op, DType::F32)?;
    }
    Ok(first.clone())
}

/// An input of shape (N, C, *spatial) or, unbatched, (C, *spatial).
pub(crate) struct Spatial {
    pub batched: bool,
    pub n: usize,
    pub c: usize,
    pub size: Vec<usize>,
}

impl Spatial {
    pub(crate) fn of(op: &'static str, s: &[usize], spatial_rank: usize) -> Result<Spatial> {
        let (batched, n, rest) = if s.len() == spatial_rank + 2 {
            (true, s[0], &s[1..])
        } else if s.len() == spatial_rank + 1 {
            (false, 1, s)
        } else {
            return Err(Error::invalid(
                op,
                format!(
                    "expected a {}-D (batched) or {}-D (unbatched) input, got shape {s:?}",
                    spatial_rank + 2,
                    spatial_rank + 1
                ),
            ));
        };
        let size = rest[1..].to_vec();
        if n == 0 || rest[0] == 0 || size.contains(&0) {
            return Err(Error::invalid(op, format!("input of shape {s:?} has no elements")));
        }
        Ok(Spatial { batched, n, c: rest[0], size })
    }

    /// The output shape for `channels` and `spatial`, batched like the input.
    pub(crate) fn out_shape(&self, channels: usize, spatial: &[usize]) -> Vec<usize> {
        let mut shape = Vec::with_capacity(spatial.len() + 2);
        if self.batched {
            shape.push(self.n);
        }
        shape.push(channels);
        shape.extend_from_slice(spatial);
        shape
    }
}

/// `v` padded at the front with `fill` to three entries (1-D and 2-D run as 3-D), as u32.
pub(crate) fn to3(v: &[usize], fill: usize) -> [u32; 3] {
    let mut out = [fill as u32; 3];
    let off = 3 - v.len();
    for (i, x) in v.iter().enumerate() {
        out[off + i] = *x as u32;
    }
    out
}

/// Checks that every element count the kernels index with u32 fits.
pub(crate) fn check_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::invalid(op, format!("{what} ({v}) exceeds the 2^32 indexing limit")))
}

/// The optional bias check every layer with a bias shares: shape (channels,).
pub(crate) fn check_bias(op: &'static str, bias: Option<&Tensor>, channels: usize) -> Result<()> {
    if let Some(b) = bias
        && b.shape() != [channels]
    {
        return Err(Error::invalid(
            op,
            format!("bias must have shape [{channels}], got {:?}", b.shape()),
        ));
    }
    Ok(())
}
