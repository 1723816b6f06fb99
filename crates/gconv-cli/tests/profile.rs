//! `gconv profile`: every layer's forward and backward parts timed with their kernels, shares
//! that add up, GFLOP/s where a layer multiplies, and the depthwise-separable comparison of
//! the course's fourth exercise.

mod common;

use common::{fails, ok};

#[test]
fn a_training_step_is_profiled_layer_by_layer() {
    let spec = "conv(3,8,k=3,p=1,g=1) bn relu conv(8,8,k=3,p=1,g=8) conv(8,16,k=1) relu gap \
                flatten linear(10)";
    let json = ok(&[
        "profile", "--layers", spec, "--input", "3x16x16", "--batch", "4", "--train", "--json",
        "--runs", "1",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).expect("profile --json is JSON");
    let layers = report["layers"].as_array().expect("layers");
    let part = |node: &str, phase: &str| {
        layers
            .iter()
            .find(|l| l["node"] == node && l["phase"] == phase)
            .unwrap_or_else(|| panic!("no {phase} of {node} in {layers:?}"))
    };
    for node in ["0", "3", "4", "8"] {
        for phase in ["forward", "backward"] {
            let l = part(node, phase);
            assert!(l["ms"].as_f64().expect("ms") > 0.0, "{l}");
            assert!(l["gflops_per_sec"].as_f64().expect("GFLOP/s") > 0.0, "{l}");
            assert!(!l["kernels"].as_array().expect("kernels").is_empty(), "{l}");
        }
    }
    assert_eq!(part("3", "forward")["type"], "Conv2d");
    part("(loss)", "loss");
    part("(optimizer)", "optimizer");
    let shares: f64 = layers.iter().map(|l| l["share"].as_f64().expect("share")).sum();
    assert!((shares - 1.0).abs() < 1e-6, "shares add up to {shares}");
    assert!(report["images_per_sec"].as_f64().expect("rate") > 0.0);
    // A CPU adapter's parts are timed on the host (lavapipe's timestamps do not wait for
    // earlier work); recording the step's commands takes the host some time.
    let adapter = report["adapter"].as_str().expect("adapter");
    let clock = report["clock"].as_str().expect("clock");
    assert!(clock == "host" || (clock == "device" && !adapter.contains("Cpu")), "{report}");
    assert!(report["recording_ms"].as_f64().expect("recording") > 0.0, "{report}");
    // Inference has no backward parts; the table names the kernels.
    let text =
        ok(&["profile", "--layers", spec, "--input", "3x16x16", "--batch", "2", "--runs", "1"]);
    assert!(text.contains("forward") && !text.contains("backward"), "{text}");
    fails(
        &["profile", "--model", "lenet5", "--batch", "0"],
        "--batch and --runs must be at least 1",
    );
}
