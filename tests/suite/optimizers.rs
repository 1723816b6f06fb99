//! The optimizers against PyTorch: three steps of Adam (L2 weight decay), AdamW (decoupled
//! decay) and SGD with momentum, the learning rate scaled per step as a schedule does and the
//! loss label-smoothed, reach PyTorch's parameters (tests/checkpoints/make_optimizers.py).

use std::path::Path;

use gconv::nn::{Graph, Layer, Model, Optimizer};
use gconv_tests::compare::relative_error;
use gconv_tests::golden::{Data, read_tensors};

use super::common::ctx;

#[test]
fn adam_adamw_and_sgd_with_a_schedule_and_label_smoothing_match_pytorch() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints/optimizers-expected.safetensors");
    let (t, _) = read_tensors(&path).expect("expected");
    let f32s = |name: &str| match t.get(name) {
        Some((shape, Data::F32(v))) => (shape.clone(), v.clone()),
        _ => panic!("no {name}"),
    };
    let x = f32s("x").1;
    let labels: Vec<i32> = match t.get("labels") {
        Some((_, Data::I64(v))) => v.iter().map(|&l| l as i32).collect(),
        _ => panic!("no labels"),
    };
    let names = ["0.weight", "0.bias", "2.weight", "2.bias"];
    let init: Vec<(String, Vec<usize>, Vec<f32>)> = names
        .iter()
        .map(|n| {
            let (s, v) = f32s(&format!("init.{n}"));
            (n.to_string(), s, v)
        })
        .collect();
    let optimizers = [
        ("adam", Optimizer::Adam { lr: 0.01, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.1 }),
        ("adamw", Optimizer::AdamW { lr: 0.01, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.1 }),
        ("sgd", Optimizer::Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.01 }),
    ];
    for (name, optimizer) in optimizers {
        let mut g = Graph::new(&[6]);
        g.push("0", Layer::linear(6, 5)).expect("0");
        g.push("1", Layer::Relu).expect("1");
        g.push("2", Layer::linear(5, 3)).expect("2");
        let mut model = Model::from_graph(ctx(), name, g, 0).expect("model");
        model.load_state_dict(&init).expect("init");
        model.set_optimizer(optimizer).expect("optimizer");
        model.set_label_smoothing(0.1).expect("smoothing");
        for factor in [1.0, 0.5, 0.25] {
            model.set_lr_scale(factor).expect("factor");
            model.train_step(&x, &labels).expect("step");
        }
        for (param, _, got) in model.state_dict().expect("state") {
            let want = f32s(&format!("{name}.{param}")).1;
            let widen = |v: &[f32]| v.iter().map(|&f| f64::from(f)).collect::<Vec<_>>();
            let err = relative_error(&widen(&got), &widen(&want));
            assert!(err < 1e-5, "{name} {param}: relative error {err:.2e} against PyTorch");
        }
    }
    let mut g = Graph::new(&[6]);
    g.push("0", Layer::linear(6, 3)).expect("0");
    let mut model = Model::from_graph(ctx(), "bad", g, 0).expect("model");
    let e = model.set_label_smoothing(1.5).expect_err("smoothing 1.5").to_string();
    assert!(e.contains("label_smoothing must be between 0 and 1, got 1.5"), "{e}");
    let e = model.set_lr_scale(f32::NAN).expect_err("NaN factor").to_string();
    assert!(e.contains("factor must be finite"), "{e}");
}
