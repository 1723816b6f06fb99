//! Bad arguments return an error that names the operator and the shapes; nothing panics and no
//! wgpu validation error reaches the caller.

use gconv::ops::{self, ConvOptions, ConvTransposeOptions, MaxPoolOptions, Padding};
use gconv::{Error, Tensor};

use super::common::ctx;

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(ctx(), shape).expect("allocate")
}

/// Asserts an `InvalidArgument` error from `op` whose message contains every one of `parts`.
fn assert_invalid<T: std::fmt::Debug>(r: gconv::Result<T>, op: &str, parts: &[&str]) {
    match r {
        Err(Error::InvalidArgument { op: got, message }) => {
            assert_eq!(got, op, "wrong operator in: {message}");
            for p in parts {
                assert!(message.contains(p), "{op}: message {message:?} does not mention {p:?}");
            }
        }
        other => panic!("{op}: expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn conv_channels_not_divisible_by_groups() {
    let r = ops::conv2d(
        &zeros(&[1, 6, 8, 8]),
        &zeros(&[4, 3, 3, 3]),
        None,
        &ConvOptions::default().groups(4),
    );
    assert_invalid(r, "conv2d", &["divisible by groups (4)"]);
}

#[test]
fn conv_weight_that_does_not_match_the_input() {
    let r =
        ops::conv2d(&zeros(&[1, 3, 8, 8]), &zeros(&[4, 2, 3, 3]), None, &ConvOptions::default());
    assert_invalid(r, "conv2d", &["[4, 2, 3, 3]", "[1, 3, 8, 8]"]);
    let r = ops::conv2d(&zeros(&[1, 3, 8, 8]), &zeros(&[4, 3, 3]), None, &ConvOptions::default());
    assert_invalid(r, "conv2d", &["weight must be 4-D"]);
    let r = ops::conv_transpose2d(
        &zeros(&[1, 3, 8, 8]),
        &zeros(&[4, 2, 3, 3]),
        None,
        &ConvTransposeOptions::default(),
    );
    assert_invalid(r, "conv_transpose2d", &["[4, 2, 3, 3]"]);
}

#[test]
fn conv_input_of_the_wrong_rank() {
    let r =
        ops::conv3d(&zeros(&[1, 3, 8, 8]), &zeros(&[4, 3, 3, 3, 3]), None, &ConvOptions::default());
    assert_invalid(r, "conv3d", &["[1, 3, 8, 8]"]);
}

#[test]
fn conv_output_size_below_one() {
    let r =
        ops::conv2d(&zeros(&[1, 3, 4, 4]), &zeros(&[4, 3, 5, 5]), None, &ConvOptions::default());
    assert_invalid(r, "conv2d", &["below 1", "[1, 3, 4, 4]"]);
    let r = ops::conv_transpose1d(
        &zeros(&[1, 2, 1]),
        &zeros(&[2, 2, 1]),
        None,
        &ConvTransposeOptions::default().padding(1),
    );
    assert_invalid(r, "conv_transpose1d", &["below 1"]);
}

#[test]
fn same_padding_with_stride() {
    let o = ConvOptions::default().padding(Padding::Same).stride(2);
    let r = ops::conv2d(&zeros(&[1, 3, 8, 8]), &zeros(&[4, 3, 3, 3]), None, &o);
    assert_invalid(r, "conv2d", &["padding='same'", "stride"]);
}

#[test]
fn mismatched_bias() {
    let r = ops::conv2d(
        &zeros(&[1, 3, 8, 8]),
        &zeros(&[4, 3, 3, 3]),
        Some(&zeros(&[5])),
        &ConvOptions::default(),
    );
    assert_invalid(r, "conv2d", &["bias must have shape [4]", "[5]"]);
    let r = ops::linear(&zeros(&[2, 3]), &zeros(&[4, 3]), Some(&zeros(&[3])));
    assert_invalid(r, "linear", &["bias must have shape [4]"]);
}

#[test]
fn bad_attribute_values() {
    let r = ops::conv2d(
        &zeros(&[1, 3, 8, 8]),
        &zeros(&[4, 3, 3, 3]),
        None,
        &ConvOptions::default().stride(0),
    );
    assert_invalid(r, "conv2d", &["stride must be positive"]);
    let r = ops::conv2d(
        &zeros(&[1, 3, 8, 8]),
        &zeros(&[4, 3, 3, 3]),
        None,
        &ConvOptions::default().stride([1, 2, 3]),
    );
    assert_invalid(r, "conv2d", &["stride must have 1 or 2 values"]);
    let r = ops::conv_transpose2d(
        &zeros(&[1, 3, 8, 8]),
        &zeros(&[3, 2, 3, 3]),
        None,
        &ConvTransposeOptions::default().stride(2).output_padding(2),
    );
    assert_invalid(r, "conv_transpose2d", &["output_padding"]);
}

#[test]
fn pooling_errors() {
    let r = ops::max_pool2d(&zeros(&[1, 1, 8, 8]), &MaxPoolOptions::new(2).padding(2));
    assert_invalid(r, "max_pool2d", &["at most half"]);
    let r = ops::max_pool2d(&zeros(&[1, 1, 2, 2]), &MaxPoolOptions::new(3));
    assert_invalid(r, "max_pool2d", &["below 1", "[1, 1, 2, 2]"]);
    let r = ops::avg_pool1d(&zeros(&[1, 1, 8, 8]), &ops::AvgPoolOptions::new(2));
    assert_invalid(r, "avg_pool1d", &["[1, 1, 8, 8]"]);
    let r = ops::adaptive_avg_pool2d(&zeros(&[1, 1, 8, 8]), [0, 2]);
    assert_invalid(r, "adaptive_avg_pool2d", &["output_size must be positive"]);
}

#[test]
fn gemm_errors() {
    let r = ops::linear(&zeros(&[2, 3]), &zeros(&[4, 5]), None);
    assert_invalid(r, "linear", &["[2, 3]", "[4, 5]"]);
    let r = ops::matmul(&zeros(&[2, 3, 4]), &zeros(&[3, 4, 5]));
    assert_invalid(r, "matmul", &["[2, 3, 4]", "[3, 4, 5]"]);
    let r = ops::matmul(&zeros(&[3, 4]), &zeros(&[5, 6]));
    assert_invalid(r, "matmul", &["[3, 4]", "[5, 6]"]);
}

#[test]
fn softmax_loss_and_norm_errors() {
    assert_invalid(ops::softmax(&zeros(&[2, 3]), 2), "softmax", &["dim 2"]);
    let target = Tensor::from_slice_i32(ctx(), &[0, 1, 2], &[3]).expect("upload");
    assert_invalid(
        ops::cross_entropy(&zeros(&[2, 4]), &target, &Default::default()),
        "cross_entropy",
        &["[2, 4]", "[3]"],
    );
    match ops::cross_entropy(&zeros(&[3, 4]), &zeros(&[3]), &Default::default()) {
        Err(Error::DType { op: "cross_entropy", .. }) => {}
        other => panic!("expected a dtype error, got {other:?}"),
    }
    let eval = ops::BatchNormOptions::default();
    assert_invalid(
        ops::batch_norm(&zeros(&[2, 3, 4]), None, None, None, None, &eval),
        "batch_norm",
        &["running"],
    );
    let train = ops::BatchNormOptions { training: true, ..eval };
    assert_invalid(
        ops::batch_norm(&zeros(&[1, 3]), None, None, None, None, &train),
        "batch_norm",
        &["more than 1 value"],
    );
    assert_invalid(
        ops::batch_norm(&zeros(&[2, 3, 4]), None, None, Some(&zeros(&[4])), None, &train),
        "batch_norm",
        &["weight must have shape [3]"],
    );
}

#[test]
fn tensors_from_two_contexts_are_refused() {
    let other = gconv::Context::new().expect("second context");
    let w = Tensor::zeros(&other, &[4, 3, 3, 3]).expect("allocate");
    match ops::conv2d(&zeros(&[1, 3, 8, 8]), &w, None, &ConvOptions::default()) {
        Err(Error::ContextMismatch { op: "conv2d" }) => {}
        other => panic!("expected a context mismatch, got {other:?}"),
    }
}

#[test]
fn upload_with_the_wrong_length() {
    assert_invalid(
        Tensor::from_slice(ctx(), &[1.0; 5], &[2, 3]),
        "tensor",
        &["5 values", "[2, 3]"],
    );
}
