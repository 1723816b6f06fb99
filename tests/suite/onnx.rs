//! The ONNX importer: PyTorch's exports in tests/onnx (residual blocks with and without batch
//! norm, a MobileNetV2 block with ReLU6 as Clip, a SqueezeNet fire module with ceil_mode and
//! count_include_pad = 0 pooling, SimpleCNN with its exported reshape, and the operator
//! coverage models of make_operators.py) reproduce PyTorch's (or ONNX Runtime's) outputs on
//! the GPU; every imported operator has gradients; fine-tuning one trains; files gconv cannot
//! run are errors naming why.

use std::path::{Path, PathBuf};

use gconv::data::{Splits, epoch_order};
use gconv::onnx;
use gconv_tests::compare::{relative_error, widen};
use gconv_tests::golden::{Data, read_tensors};

use super::common::ctx;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx")
}

fn f32s(tensors: &gconv_tests::golden::Tensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    match tensors.get(name) {
        Some((shape, Data::F32(v))) => (shape.clone(), v.clone()),
        _ => panic!("no f32 tensor {name}"),
    }
}

/// Imports `dir/NAME.onnx`, runs it on `NAME.expected.safetensors`'s input and asserts
/// PyTorch's output within 1e-4 relative L2 error.
fn assert_reproduces_pytorch(dir: &Path, name: &str) -> onnx::Imported {
    let imported = onnx::load(&dir.join(format!("{name}.onnx")), None).expect(name);
    let (expected, _) =
        read_tensors(&dir.join(format!("{name}.expected.safetensors"))).expect("expected");
    let (shape, x) = f32s(&expected, "input");
    let (_, want) = f32s(&expected, "output");
    assert_eq!(imported.graph.input_shape, shape[1..], "{name}: input shape");
    let mut model = imported.model(ctx(), name).expect(name);
    let got = model.predict(&x, shape[0]).expect("predict").to_vec().expect("download");
    let err = relative_error(&widen(&got), &widen(&want));
    eprintln!("{name}: relative L2 error {err:.2e} against the expected output");
    assert!(err <= 1e-4, "{name}: relative L2 error {err:.3e}");
    imported
}

#[test]
fn pytorch_exports_reproduce_pytorchs_outputs() {
    let shared =
        ["resblock_digits", "resblock_digits_bn", "inverted_residual", "fire", "simplecnn"];
    // activations.onnx (make_activations.py): LeakyRelu and Sigmoid; operators.onnx and
    // handmade.onnx (make_operators.py): the other operators and attributes.
    for name in shared.into_iter().chain(["activations", "operators", "handmade"]) {
        let imported = assert_reproduces_pytorch(&dir(), name);
        // Weights reach the model under their ONNX names.
        assert!(!imported.names.is_empty(), "{name}: no initializer names");
    }
    // Asymmetric pads become padding layers in front (crops behind a transposed convolution)
    // and the folded part of a ConvTranspose's output_shape becomes output_padding.
    let imported = onnx::load(&dir().join("handmade.onnx"), None).expect("handmade");
    let layers: Vec<String> = imported
        .graph
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.name, n.layer.type_name()))
        .collect();
    for want in [
        "conv1.pad ConstantPad2d",
        "pad1 ConstantPad2d",
        "max1.pad ConstantPad2d",
        "avg1.pad ConstantPad2d",
        "up2.crop ConstantPad2d",
        "clip1 Hardtanh",
        "div1 Scale",
        "gmax MaxPool2d",
        "softmax Softmax",
    ] {
        assert!(layers.iter().any(|l| l == want), "no {want:?} in {layers:?}");
    }
    assert!(imported.names.contains(&("conv1.weight".into(), "w1".into())));
    // Every imported operator has a backward pass: each weight gets a finite, non-zero
    // gradient.
    for name in ["handmade", "operators"] {
        let imported = onnx::load(&dir().join(format!("{name}.onnx")), None).expect(name);
        let mut model = imported.model(ctx(), name).expect(name);
        let (expected, _) =
            read_tensors(&dir().join(format!("{name}.expected.safetensors"))).expect("expected");
        let (shape, x) = f32s(&expected, "input");
        model.compute_gradients(&x, &vec![1; shape[0]]).expect("gradients");
        for (param, _, g) in model.gradients().expect("download") {
            assert!(g.iter().all(|v| v.is_finite()), "{name} {param}: non-finite gradient");
            assert!(g.iter().any(|&v| v != 0.0), "{name} {param}: zero gradient");
        }
    }
    let up1 = imported.graph.nodes.iter().find(|n| n.name == "up1").expect("up1");
    let gconv::nn::Layer::ConvTranspose { options, .. } = &up1.layer else { panic!("up1") };
    assert_eq!(
        (options.padding.0.clone(), options.output_padding.0.clone()),
        (vec![1; 2], vec![1; 2])
    );
}

#[test]
fn an_imported_simplecnn_fine_tunes_on_the_digits_and_saves_under_onnx_names() {
    let imported = onnx::load(&dir().join("simplecnn.onnx"), None).expect("import");
    let mut model = imported.model(ctx(), "simplecnn-onnx").expect("model");
    let data =
        Splits::load_mnist(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/mnist-10k"))
            .expect("digits");
    let (train, test) = (data.train.take(2000), data.test.take(500));
    let evaluate = |model: &mut gconv::nn::Model| {
        let all: Vec<usize> = (0..test.len()).collect();
        for chunk in all.chunks(250) {
            let (x, y) = test.batch(chunk, [1, 28, 28]);
            model.eval_batch(&x, &y).expect("eval");
        }
        model.take_metrics().expect("metrics").accuracy
    };
    let before = evaluate(&mut model);
    for chunk in epoch_order(train.len(), 0, 1).chunks(64) {
        let (x, y) = train.batch(chunk, [1, 28, 28]);
        model.train_step(&x, &y).expect("step");
    }
    model.take_metrics().expect("metrics");
    let after = evaluate(&mut model);
    assert!(after > before + 0.3 && after > 0.7, "accuracy {before:.3} -> {after:.3}");
    // Saved under the file's names, loaded back through them.
    let saved = imported.onnx_names(model.state_dict().expect("state"));
    assert!(
        saved.iter().any(|(n, _, _)| n == "conv1.weight"),
        "{:?}",
        saved.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    let mut again = imported.model(ctx(), "again").expect("model");
    again.load_state_dict(&imported.graph_names(saved)).expect("load back");
    assert!((evaluate(&mut again) - after).abs() < 1e-9);
}

#[test]
fn files_gconv_cannot_run_are_errors_naming_the_cause() {
    let truncated = std::fs::read(dir().join("fire.onnx")).expect("fire");
    let cases: Vec<(Result<onnx::Imported, gconv::Error>, &str)> = vec![
        (
            onnx::from_bytes(&truncated[..truncated.len() / 2], Path::new("fire.onnx"), None),
            "fire.onnx: not an ONNX model",
        ),
        (
            onnx::from_bytes(b"this is not protobuf", Path::new("text.onnx"), None),
            "text.onnx: not an ONNX model",
        ),
        (onnx::load(&dir().join("missing.onnx"), None), "missing.onnx"),
        (
            onnx::load(&dir().join("errors-unsupported-op.onnx"), None),
            "node \"erf\" (Erf): operator Erf is not supported; gconv imports",
        ),
        (
            onnx::load(&dir().join("errors-reflect-pad.onnx"), None),
            "node \"pad\" (Pad): attribute mode is \"reflect\"; gconv pads with a constant",
        ),
        (
            onnx::load(&dir().join("errors-avgpool-asymmetric.onnx"), None),
            "node \"avg\" (AveragePool): attribute pads differ before ([0, 0]) and after ([1, 1]) \
             with count_include_pad = 0",
        ),
        (
            onnx::load(&dir().join("errors-mul-tensors.onnx"), None),
            "node \"square\" (Mul): Mul of these inputs is not supported; gconv multiplies a \
             graph tensor by a constant",
        ),
        (
            onnx::load(&dir().join("errors-two-outputs.onnx"), None),
            "the graph has 2 outputs ([\"y\", \"z\"])",
        ),
        (
            onnx::load(&dir().join("errors-external.onnx"), None),
            "its weights are in the external data file",
        ),
        (
            onnx::load(&dir().join("simplecnn.onnx"), Some(&[3, 32, 32])),
            "input \"input\" has shape [1, 28, 28] per sample in the file, not [3, 32, 32]",
        ),
    ];
    for (result, cause) in cases {
        let e = result.expect_err(cause).to_string();
        assert!(e.contains(cause), "{e:?} does not name {cause:?}");
    }
}

#[test]
fn torchvision_exports_reproduce_pytorchs_logits() {
    // tests/onnx/make_torchvision.py writes them (45 MB for resnet18: not committed).
    let large = dir().join("large");
    for name in ["resnet18", "mobilenet_v2", "squeezenet1_1"] {
        let path = large.join(format!("{name}.onnx"));
        if !path.exists() {
            eprintln!(
                "{name}: not run; python3 tests/onnx/make_torchvision.py writes {}",
                path.display()
            );
            continue;
        }
        assert_reproduces_pytorch(&large, name);
    }
}
