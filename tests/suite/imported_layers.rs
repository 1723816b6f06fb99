//! The layers ONNX import needs beyond PyTorch's CNN classics: constant padding and cropping,
//! hardtanh (Clip), products with a constant and softmax. Each operator against gconv-ref on
//! random shapes, and the gradients of a model built from all of them against finite
//! differences of gconv-ref's composition.

use gconv::nn::{Graph, Layer, Model};
use gconv::ops::{self, ConvOptions, ConvTransposeOptions, Dims};
use gconv_ref::Array;
use rand::Rng;

use super::common::{
    Parameter, assert_gradients_match_finite_differences, check, ctx, for_each_config, random,
    trainable_parameters,
};

fn fail(what: &str) -> impl Fn(gconv::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

#[test]
fn random_pads_crops_clips_and_scales_match_reference() {
    for_each_config("pad, hardtanh, mul_scalar", 60, |r| {
        let rank = r.random_range(1..=5);
        let shape: Vec<usize> = (0..rank).map(|_| r.random_range(1..=6)).collect();
        let (x, xa) = random(r, &shape);
        // Up to three trailing dimensions, each padded or cropped (never below zero).
        let pairs = r.random_range(0..=rank.min(3));
        let mut pad = Vec::new();
        for j in 0..pairs {
            let size = shape[rank - 1 - j] as i64;
            let before = r.random_range(-(size / 2)..=3);
            let after = r.random_range(-(size / 2)..=3);
            pad.extend([before, after]);
        }
        let value = r.random_range(-2.0..2.0f32);
        let what = format!("{shape:?} pad {pad:?} value {value}");
        let y = ops::pad(&x, &pad, value).map_err(fail(&what))?;
        let want = gconv_ref::pad(&xa, &pad, f64::from(value));
        check(&format!("pad {what}"), &y, &want)?;
        let (gy, gya) = random(r, &want.shape);
        let gx = ops::pad_backward(&gy, &shape, &pad).map_err(fail(&what))?;
        check(&format!("pad_backward {what}"), &gx, &gconv_ref::pad_backward(&gya, &shape, &pad))?;

        let (lo, hi) = (r.random_range(-1.0..0.0f32), r.random_range(0.0..1.0f32));
        let what = format!("{shape:?} [{lo}, {hi}]");
        let y = ops::hardtanh(&x, lo, hi).map_err(fail(&what))?;
        check(
            &format!("hardtanh {what}"),
            &y,
            &gconv_ref::hardtanh(&xa, f64::from(lo), f64::from(hi)),
        )?;
        let (gy, gya) = random(r, &shape);
        let gx = ops::hardtanh_backward(&gy, &x, lo, hi).map_err(fail(&what))?;
        let want = gconv_ref::hardtanh_backward(&xa, &gya, f64::from(lo), f64::from(hi));
        check(&format!("hardtanh_backward {what}"), &gx, &want)?;
        let factor = r.random_range(-3.0..3.0f32);
        let y = ops::mul_scalar(&x, factor).map_err(fail(&what))?;
        check(&format!("mul_scalar {what}"), &y, &gconv_ref::mul_scalar(&xa, f64::from(factor)))
    });
}

#[test]
fn bad_pads_and_bounds_are_errors_naming_them() {
    let x = gconv::Tensor::zeros(ctx(), &[2, 3, 4]).expect("x");
    let e = ops::pad(&x, &[1, 1, 1], 0.0).expect_err("odd").to_string();
    assert!(e.contains("pairs") && e.contains("3 values"), "{e}");
    let e = ops::pad(&x, &[-3, -2], 0.0).expect_err("negative size").to_string();
    assert!(e.contains("negative"), "{e}");
    let e = ops::pad(&x, &[0, 0, 0, 0, 0, 0, 1, 1], 0.0).expect_err("four dims").to_string();
    assert!(e.contains("4 pairs"), "{e}");
    let e = ops::hardtanh(&x, 1.0, -1.0).expect_err("empty range").to_string();
    assert!(e.contains("min_val 1"), "{e}");
    let e = ops::mul_scalar(&x, f32::NAN).expect_err("NaN").to_string();
    assert!(e.contains("finite"), "{e}");
    let bad = Layer::Pad { padding: vec![1, 1, 1, 1, 1, 1], value: 0.0 };
    let e = bad.output_shape(&[2, 3, 4]).expect_err("batch").to_string();
    assert!(e.contains("batch"), "{e}");
}

/// pad (asymmetric) -> conv -> hardtanh -> scale -> conv_transpose -> crop -> flatten ->
/// linear -> softmax.
fn padded_graph() -> Graph {
    let mut g = Graph::new(&[2, 5, 5]);
    g.push("pad", Layer::Pad { padding: vec![1, 0, 0, 1], value: 0.5 }).expect("pad");
    g.push("conv", Layer::conv2d(2, 3, 3, ConvOptions::default())).expect("conv");
    g.push("clip", Layer::Hardtanh { min_val: -0.5, max_val: 0.8 }).expect("clip");
    g.push("scale", Layer::Scale { factor: 1.5 }).expect("scale");
    let options = ConvTransposeOptions {
        stride: Dims::from(2),
        padding: Dims::from(1),
        output_padding: Dims::from(1),
        ..ConvTransposeOptions::default()
    };
    let up = Layer::ConvTranspose {
        dims: 2,
        in_channels: 3,
        out_channels: 2,
        kernel_size: Dims::from(3),
        options,
        bias: true,
    };
    g.push("up", up).expect("up");
    g.push("crop", Layer::Pad { padding: vec![-1, 0, 0, -2], value: 0.0 }).expect("crop");
    g.push("flatten", Layer::Flatten).expect("flatten");
    g.push("fc", Layer::linear(84, 4)).expect("fc");
    g.push("softmax", Layer::Softmax { dim: 1 }).expect("softmax");
    g
}

fn reference_loss(params: &[Parameter], x: &Array, labels: &[i64]) -> f64 {
    let p = |name: &str| {
        let (_, s, v) = params.iter().find(|(n, _, _)| n == name).expect("parameter");
        Array::new(s, v.clone())
    };
    let x = gconv_ref::pad(x, &[1, 0, 0, 1], 0.5);
    let attrs = gconv_ref::ConvAttrs {
        stride: vec![1, 1],
        padding: vec![(0, 0), (0, 0)],
        dilation: vec![1, 1],
        groups: 1,
    };
    let y = gconv_ref::conv_forward(&x, &p("conv.weight"), Some(&p("conv.bias")), &attrs);
    let y = gconv_ref::mul_scalar(&gconv_ref::hardtanh(&y, -0.5, 0.8), 1.5);
    let t = gconv_ref::ConvTransposeAttrs {
        stride: vec![2, 2],
        padding: vec![1, 1],
        output_padding: vec![1, 1],
        dilation: vec![1, 1],
        groups: 1,
    };
    let y = gconv_ref::conv_transpose_forward(&y, &p("up.weight"), Some(&p("up.bias")), &t);
    let y = gconv_ref::pad(&y, &[-1, 0, 0, -2], 0.0);
    let flat = Array::new(&[y.shape[0], 84], y.data);
    let logits = gconv_ref::linear(&flat, &p("fc.weight"), Some(&p("fc.bias")));
    gconv_ref::cross_entropy(&gconv_ref::softmax(&logits, 1), labels, -100).1
}

#[test]
fn gradients_through_pads_crops_clips_scales_and_softmax_match_finite_differences() {
    let mut model = Model::from_graph(ctx(), "padded", padded_graph(), 3).expect("model");
    let batch = 3;
    let x: Vec<f32> =
        (0..batch * 2 * 5 * 5).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let labels = [1, 3, 0];
    model.compute_gradients(&x, &labels).expect("gradients");
    let grads = model.gradients().expect("download");
    assert_eq!(grads.len(), 6, "conv, up and fc weights and biases");
    let params = trainable_parameters(&model);
    let xa = Array::from_f32(&[batch, 2, 5, 5], &x);
    let l64: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    assert_gradients_match_finite_differences(&grads, &params, |p| reference_loss(p, &xa, &l64));
    // The forward pass agrees too.
    let probs = model.predict(&x, batch).expect("predict").to_vec().expect("download");
    assert!(probs.chunks(4).all(|row| (row.iter().sum::<f32>() - 1.0).abs() < 1e-5));
}

#[test]
fn the_spec_names_the_new_layers() {
    let spec = "pad(1) conv(1,4,k=3) hardtanh(min=-1,max=2) scale(0.5) pad(p=1x0x0x2,value=-1) \
                flatten linear(10) softmax";
    let g = gconv::nn::parse_layers(spec, &[1, 6, 6]).expect("spec");
    let layers: Vec<String> = g.nodes.iter().map(|n| n.layer.type_name()).collect();
    assert_eq!(
        layers,
        [
            "ConstantPad2d",
            "Conv2d",
            "Hardtanh",
            "Scale",
            "ConstantPad2d",
            "Flatten",
            "Linear",
            "Softmax"
        ]
    );
    // 6 + 2 = 8 -> conv 6 -> pad: width 6 + 1 + 0, height 6 + 0 + 2.
    assert_eq!(g.shapes(2).expect("shapes")[5], [2, 4, 8, 7]);
    let e = gconv::nn::parse_layers("scale", &[1, 6, 6]).expect_err("no factor").to_string();
    assert!(e.contains("factor"), "{e}");
}
