//! The integration suite, one test binary: shader validation, PyTorch goldens, random-shape
//! conformance of every GPU kernel against gconv-ref, and error cases. Runs on whatever adapter
//! `gconv::Context::new()` picks (lavapipe in CI); with no adapter every GPU test fails loudly.

mod augment;
mod branches;
mod common;
mod conformance;
mod conformance_pool;
mod cpu_threads;
mod datasets;
mod embedding;
mod errors;
mod fused;
mod fused_batch_norm;
mod fuzz;
mod goldens;
mod imported_layers;
mod large_sources;
mod onnx;
mod optimizers;
mod pointwise;
mod robustness;
mod shaders;
mod subgroup_rows;
mod tools;
mod torchvision;
mod training;
