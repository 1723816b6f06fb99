//! ONNX's `onnx.proto` as Rust types (`prost`), generated into `onnx.rs` (see README.md). gconv
//! decodes `.onnx` files with them (`gconv::onnx`).
#![allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]

mod onnx;

pub use onnx::*;
