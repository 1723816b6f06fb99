//! gconv-tests: the golden runner (PyTorch golden files against the GPU kernels and gconv-ref)
//! and shared helpers of the conformance suite in `suite/`.

pub mod compare;
pub mod golden;
