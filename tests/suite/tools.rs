//! The course's tools in the library: model summaries (shapes, parameters, MACs, receptive
//! fields), the one-line layer spec and its errors, and feature-map capture from the executor.

use gconv::nn::{Layer, Model, ModelConfig, models, parse_layers, summarize};
use gconv::ops::{self, ConvOptions};
use gconv_ref::Array;

use super::common::{check, ctx, rng};

#[test]
fn summaries_of_the_builtin_models_match_pytorch_and_the_literature() {
    for (name, params) in
        [("lenet5", 61_706), ("simplecnn", 93_322), ("convnet", 206_922), ("vgg16", 138_357_544)]
    {
        let g = models::build(name, &ModelConfig::default_for(name)).expect("model");
        let s = summarize(&g, 1).expect("summary");
        assert_eq!(s.trainable_params, params, "{name}");
        assert_eq!(s.layers.iter().map(|l| l.params).sum::<usize>(), params, "{name} rows");
        assert_eq!(s.layers.len(), g.nodes.len());
    }
    // VGG16 at 224x224: 15.47 GMACs (the figure in every model zoo), receptive field 212 and
    // jump 32 after the last pool.
    let g = models::build("vgg16", &ModelConfig::default_for("vgg16")).expect("vgg16");
    let s = summarize(&g, 2).expect("summary");
    assert_eq!(s.macs, 2 * 15_470_264_320);
    let last_pool = s.layers.iter().find(|l| l.name == "features.30").expect("pool");
    assert_eq!(last_pool.output_shape, [2, 512, 7, 7]);
    assert_eq!(last_pool.receptive_field.as_deref(), Some(&[212.0, 212.0][..]));
    assert_eq!(last_pool.jump.as_deref(), Some(&[32.0, 32.0][..]));
    assert_eq!(s.weight_bytes, 138_357_544 * 4);
    // SimpleCNN's first conv: 28x28x32 outputs of 9 MACs each.
    let g = models::build("simplecnn", &ModelConfig::default_for("simplecnn")).expect("model");
    let s = summarize(&g, 1).expect("summary");
    assert_eq!(s.layers[0].macs, 28 * 28 * 32 * 9);
    assert_eq!(s.layers[0].receptive_field.as_deref(), Some(&[3.0, 3.0][..]));
    let fc = s.layers.iter().find(|l| l.name == "fc1").expect("fc1");
    assert_eq!((fc.macs, fc.receptive_field.clone()), (576 * 64, None));
}

#[test]
fn a_layer_spec_builds_the_stack_it_describes() {
    let g = parse_layers(
        "conv(3,64,k=3,p=1) relu maxpool(2) conv(64,128,k=3,s=2,p=1) -> bn \
         convt(128, 32, k=4, s=2, p=1) avgpool(k=2, ceil=true) conv2d(32,8,k=3x1,d=2,g=8,bias=false) \
         gap flatten linear(10) dropout(p=0.2)",
        &[3, 32, 32],
    )
    .expect("spec");
    let shapes = g.shapes(4).expect("shapes");
    let expected: [&[usize]; 13] = [
        &[4, 3, 32, 32],
        &[4, 64, 32, 32],
        &[4, 64, 32, 32],
        &[4, 64, 16, 16],
        &[4, 128, 8, 8],
        &[4, 128, 8, 8],
        &[4, 32, 16, 16],
        &[4, 32, 8, 8],
        &[4, 8, 4, 8],
        &[4, 8, 1, 1],
        &[4, 8],
        &[4, 10],
        &[4, 10],
    ];
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(shapes[i], *want, "value {i}");
    }
    assert_eq!(g.nodes.len(), 12);
    assert_eq!(g.nodes[0].name, "0");
    let Layer::Conv { options, bias, .. } = &g.nodes[7].layer else { panic!("conv") };
    assert_eq!((options.groups, *bias), (8, false));
    // Parameters as PyTorch counts them: conv 1792, conv 73856, bn 256, convt 65568,
    // grouped conv 8x4x3x1 without bias, linear 90.
    assert_eq!(g.parameter_count(), 1792 + 73_856 + 256 + 65_568 + 96 + 90);
    // Receptive field through the first conv, pool and strided conv: 3, 4, 4 + 2*2 = 8.
    let s = summarize(&g, 1).expect("summary");
    assert_eq!(s.layers[3].receptive_field.as_deref(), Some(&[8.0, 8.0][..]));
    assert_eq!(s.layers[3].jump.as_deref(), Some(&[4.0, 4.0][..]));
    // Transposed conv k4 s2 halves the jump and sees 2 input neighbours.
    assert_eq!(s.layers[5].jump.as_deref(), Some(&[2.0, 2.0][..]));
    assert_eq!(s.layers[5].receptive_field.as_deref(), Some(&[12.0, 12.0][..]));
}

/// The error message and the column its caret points at.
fn spec_error(spec: &str) -> (String, usize) {
    let e = parse_layers(spec, &[3, 32, 32]).err().unwrap_or_else(|| panic!("{spec} parsed"));
    let text = e.to_string();
    let caret_line = text.lines().last().unwrap_or("");
    let col = caret_line.find('^').unwrap_or_else(|| panic!("no caret in {text}")) - 2;
    (text, col)
}

#[test]
fn layer_spec_errors_point_at_the_offending_token() {
    let cases = [
        ("conv(3,64,k=3) relu maxpol(2)", "maxpol", "unknown layer"),
        ("conv(3,64,k=3,q=1)", "q=1", "no argument \"q\""),
        ("conv(3,64,k=three)", "three", "not a size"),
        ("conv(3,64,k=3", "(3,64", "never closed"),
        ("conv(4,64,k=3)", "conv(4", "expects 4 input channels"),
        ("conv(3,8,k=3) maxpool(64)", "maxpool(64)", "below 1"),
        ("relu(1)", "1)", "takes no arguments"),
        ("conv(3,64)", "conv(3,64)", "needs kernel_size"),
        ("dropout(p=2)", "2)", "probability"),
        ("conv(3,8,k=3,k=5)", "k=5", "given twice"),
        ("conv(3,8,k=3) % relu", "%", "expected a layer name"),
    ];
    for (spec, at, message) in cases {
        let (text, col) = spec_error(spec);
        assert!(text.contains(message), "{spec}: {text}");
        assert_eq!(col, spec.find(at).expect("marker"), "{spec}: caret misplaced in\n{text}");
    }
    assert!(parse_layers("  ", &[1, 4, 4]).is_err());
}

#[test]
fn captured_feature_maps_are_each_layers_own_output() {
    let ctx = ctx();
    let config = ModelConfig::default_for("lenet5");
    let mut model = Model::builtin(ctx, "lenet5", &config, 7).expect("model");
    let mut r = rng(11);
    let (x, _) = super::common::random(&mut r, &[2, 1, 28, 28]);
    let images = x.to_vec().expect("download");
    let values = model.forward_capture(&images, 2).expect("capture");
    let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..4], ["input", "conv1", "relu1", "pool1"]);
    // Recompute conv1 eagerly from the model's own parameters, and relu1 from it: in an
    // evaluation plan conv1's buffer would be reused by later layers; here each value is kept.
    let state = model.state_dict().expect("state");
    let param = |name: &str| {
        let (_, shape, data) = state.iter().find(|(n, _, _)| n == name).expect(name);
        gconv::Tensor::from_slice(ctx, data, shape).expect("upload")
    };
    let (w, b) = (param("conv1.weight"), param("conv1.bias"));
    let conv1 = ops::conv2d(&x, &w, Some(&b), &ConvOptions::default().padding(2)).expect("conv");
    let want = conv1.to_vec().expect("download");
    let as_ref = |v: &[f32], shape: &[usize]| Array::from_f32(shape, v);
    check("conv1", &values[1].1, &as_ref(&want, conv1.shape())).expect("conv1 kept");
    let relu: Vec<f32> = want.iter().map(|v| v.max(0.0)).collect();
    check("relu1", &values[2].1, &as_ref(&relu, conv1.shape())).expect("relu1 kept");
    // The last value is the logits predict() returns.
    let logits = model.predict(&images, 2).expect("predict").to_vec().expect("download");
    let last = &values[values.len() - 1].1;
    check("logits", last, &as_ref(&logits, &[2, 10])).expect("logits");
}
