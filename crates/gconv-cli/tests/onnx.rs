//! `--onnx` end to end: summary, predict (PyTorch's logits), fine-tuning with checkpoints
//! under the file's initializer names, eval of the result, and import errors.

mod common;

use common::{fails, ok, repo, s, scratch};

#[test]
fn an_onnx_export_is_summarised_predicted_fine_tuned_and_evaluated() {
    let dir = scratch("onnx");
    let onnx = repo("tests/onnx/simplecnn.onnx");
    let model = ["--onnx", s(&onnx)];
    let out = ok(&[&["summary"], &model[..]].concat());
    assert!(out.contains("Trainable parameters: 93,322"), "{out}");
    // PyTorch's batch and logits.
    let expected = repo("tests/onnx/simplecnn.expected.safetensors");
    let logits = dir.join("logits.safetensors");
    let args = ["predict", "--tensors", s(&expected), "--logits", s(&logits)];
    ok(&[&args[..], &model[..]].concat());
    let got = gconv::nn::checkpoint::load(&logits).expect("logits");
    let want = gconv::nn::checkpoint::load(&expected).expect("expected");
    let want = &want.iter().find(|t| t.0 == "output").expect("output").2;
    let diff: f32 = got[0].2.iter().zip(want).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
    let norm: f32 = want.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!(diff <= 1e-4 * norm, "logits differ from PyTorch's by {:.3e}", diff / norm);
    // One epoch on 2000 digits from the file's (random) weights, saved under its names.
    let ckpt = dir.join("tuned.safetensors");
    let train = ["train", "--epochs", "1", "--limit", "2000", "--test-limit", "500", "--quiet"];
    let out = ok(&[&train[..], &model[..], &["--save", s(&ckpt)]].concat());
    let accuracy = |out: &str| -> f64 {
        let at = out.find("test accuracy ").expect("accuracy") + "test accuracy ".len();
        out[at..].split('%').next().expect("%").parse().expect("number")
    };
    assert!(accuracy(&out) > 70.0, "{out}");
    let state = gconv::nn::checkpoint::load(&ckpt).expect("checkpoint");
    let names: Vec<&str> = state.iter().map(|t| t.0.as_str()).collect();
    assert!(names.contains(&"conv1.weight") && names.contains(&"fc2.bias"), "{names:?}");
    let out = ok(&[&["eval", "--checkpoint", s(&ckpt)], &model[..]].concat());
    assert!(accuracy(&out) > 70.0, "{out}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn onnx_files_gconv_cannot_run_are_one_line_errors() {
    let unsupported = repo("tests/onnx/errors-unsupported-op.onnx");
    fails(
        &["summary", "--onnx", s(&unsupported)],
        "node \"erf\" (Erf): operator Erf is not supported",
    );
    let text = repo("README.md");
    fails(&["summary", "--onnx", s(&text)], "not an ONNX model");
    let simplecnn = repo("tests/onnx/simplecnn.onnx");
    fails(
        &["summary", "--onnx", s(&simplecnn), "--input", "3x32x32"],
        "has shape [1, 28, 28] per sample in the file, not [3, 32, 32]",
    );
    fails(&["eval", "--model", "lenet5"], "--checkpoint is required");
}
