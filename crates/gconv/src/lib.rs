//! gconv: convolutional networks on the GPU, with WGSL compute kernels on wgpu (Vulkan, Metal,
//! DX12; lavapipe's software Vulkan on machines without a GPU).
//!
//! Operators follow PyTorch's semantics and argument names (`torch.nn.functional`): padding,
//! `same`/`valid`, dilation, groups, `output_padding`, `ceil_mode`, `count_include_pad`.
//!
//! ```no_run
//! use gconv::{Context, Tensor, ops};
//! # fn main() -> gconv::Result<()> {
//! let ctx = Context::new()?;
//! let x = Tensor::from_slice(&ctx, &[1.0; 2 * 3 * 8 * 8], &[2, 3, 8, 8])?;
//! let w = Tensor::from_slice(&ctx, &[0.1; 4 * 3 * 3 * 3], &[4, 3, 3, 3])?;
//! let y = ops::conv2d(&x, &w, None, &ops::ConvOptions::default().padding(1))?;
//! let y = ops::max_pool2d(&ops::relu(&y)?, &ops::MaxPoolOptions::new(2))?;
//! assert_eq!(y.shape(), [2, 4, 4, 4]);
//! # Ok(()) }
//! ```
//!
//! gconv is built against wgpu 30 and re-exports it as [`gconv::wgpu`](wgpu): a host that
//! passes its own device to [`Context::from_wgpu`] must use that same version. A host runs a
//! model on its own buffers or textures with an [`nn::Session`], which records into the
//! host's command encoder; [`Tensor::from_buffer`] lets the eager operators in [`ops`] work
//! on the host's buffers directly.

mod context;
mod cpu_threads;
pub mod data;
mod error;
pub mod kernel;
pub mod nn;
pub mod onnx;
pub mod ops;
mod tensor;

pub use context::{
    ADAPTER_ENV, AdapterSummary, Context, ContextOptions, ConvStrategy, Counters, GemmLayout,
    GemmStrategy, LimitCheck, REQUIRED_LIMITS, adapters,
};
pub use cpu_threads::{PIN_THREADS_ENV, PinnedThread};
pub use error::{Error, Result};
pub use tensor::{DType, Tensor, numel};
pub use wgpu;
