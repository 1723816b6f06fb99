//! Training that fails loudly and loses nothing, at the library's level: hyper-parameters
//! refused, divergence reported with the metrics (the batch, and the loss or the first
//! parameter whose gradient is not finite), the optimizer's state round trip a resumed run
//! needs, large batches, and a soak run whose memory does not grow.

use gconv::nn::{Model, ModelConfig, NonFinite, Optimizer, parse_layers};

use super::common::ctx;

fn digits_like(batch: usize, seed: usize) -> (Vec<f32>, Vec<i32>) {
    let x = (0..batch * 28 * 28).map(|i| (((i + seed) * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let y = (0..batch).map(|i| ((i + seed) % 10) as i32).collect();
    (x, y)
}

#[test]
fn hyperparameters_pytorch_refuses_are_errors_naming_them() {
    let config = ModelConfig { input: [1, 28, 28], num_classes: 10 };
    let mut model = Model::builtin(ctx(), "lenet5", &config, 0).expect("model");
    let adam = |lr, b1, b2, eps, wd| Optimizer::Adam { lr, betas: (b1, b2), eps, weight_decay: wd };
    for (optimizer, named) in [
        (adam(f32::NAN, 0.9, 0.999, 1e-8, 0.0), "Adam's lr must be finite and at least 0, got NaN"),
        (adam(-1e-3, 0.9, 0.999, 1e-8, 0.0), "Adam's lr must be finite and at least 0, got -0.001"),
        (adam(1e-3, 1.0, 0.999, 1e-8, 0.0), "Adam's beta1 must be in [0, 1), got 1"),
        (adam(1e-3, 0.9, 0.999, f32::INFINITY, 0.0), "Adam's eps must be finite"),
        (adam(1e-3, 0.9, 0.999, 1e-8, -0.1), "Adam's weight_decay must be finite"),
        (Optimizer::sgd(f32::INFINITY, 0.9), "SGD's lr must be finite and at least 0, got inf"),
        (Optimizer::sgd(0.1, -0.5), "SGD's momentum must be finite and at least 0, got -0.5"),
    ] {
        let e = model.set_optimizer(optimizer).expect_err("refused").to_string();
        assert!(e.contains(named), "{e}");
    }
    model.set_optimizer(Optimizer::sgd(0.0, 0.0)).expect("lr 0 is allowed, as in PyTorch");
}

#[test]
fn a_diverging_run_reports_the_first_batch_that_was_not_finite() {
    let config = ModelConfig { input: [1, 28, 28], num_classes: 10 };
    let mut model = Model::builtin(ctx(), "simplecnn", &config, 0).expect("model");
    model.set_optimizer(Optimizer::sgd(1e30, 0.0)).expect("optimizer");
    // Read after every step until the report comes: it names batch 1 of that reading.
    let mut diverged = None;
    for step in 1..=20 {
        let (x, y) = digits_like(16, step);
        model.train_step(&x, &y).expect("step");
        let m = model.take_metrics().expect("metrics");
        assert_eq!(m.batches, 1);
        if let Some(bad) = m.nonfinite {
            assert_eq!(bad.batch, 1, "step {step}: {bad:?}");
            if !m.loss.is_finite() {
                assert_eq!(bad.parameter, None, "a non-finite loss is reported before gradients");
            }
            diverged = Some(step);
            break;
        }
        assert!(m.loss.is_finite(), "step {step}: a non-finite loss went unreported: {m:?}");
    }
    assert!(diverged.is_some(), "SGD at lr 1e30 diverges within 20 steps");
    // The update wrote NaN into the parameters: every later batch's loss is NaN, and a
    // reading of three steps reports the first.
    for step in 0..3 {
        let (x, y) = digits_like(16, 100 + step);
        model.train_step(&x, &y).expect("step");
    }
    let m = model.take_metrics().expect("metrics");
    assert_eq!(m.batches, 3, "{m:?}");
    assert_eq!(m.nonfinite, Some(NonFinite { batch: 1, parameter: None }), "{m:?}");
    let fresh = model.take_metrics().expect("metrics");
    assert_eq!((fresh.batches, fresh.nonfinite), (0, None), "reading starts again from zero");
}

#[test]
fn a_gradient_that_is_not_finite_is_named_while_the_loss_is_finite() {
    // +inf pixels under a negative 1x1 convolution: ReLU's zeros hide them from the loss, but
    // the weight's gradient multiplies them by zero, which is NaN.
    let graph =
        parse_layers("conv(1,2,k=1,bias=false) relu flatten linear(10)", &[1, 4, 4]).expect("spec");
    let mut model = Model::from_graph(ctx(), "inf", graph, 0).expect("model");
    let mut state = model.state_dict().expect("state");
    for (name, _, values) in &mut state {
        if name == "0.weight" {
            values.iter_mut().for_each(|v| *v = -1.0);
        }
    }
    model.load_state_dict(&state).expect("load");
    let mut x = vec![0.5f32; 2 * 16];
    x[3] = f32::INFINITY;
    for _ in 0..2 {
        model.train_step(&[0.25; 2 * 16], &[1, 2]).expect("a clean step");
    }
    model.train_step(&x, &[1, 2]).expect("step");
    let m = model.take_metrics().expect("metrics");
    assert!(m.loss.is_finite(), "{m:?}");
    let bad = m.nonfinite.expect("the gradient is flagged");
    assert_eq!((bad.batch, bad.to_string()), (3, "the gradient of 0.weight is not finite".into()));
}

#[test]
fn the_optimizer_state_round_trips_and_a_resumed_run_takes_the_same_steps() {
    let config = ModelConfig { input: [1, 28, 28], num_classes: 10 };
    let batches: Vec<_> = (0..4).map(|s| digits_like(8, s)).collect();
    let mut straight = Model::builtin(ctx(), "lenet5", &config, 3).expect("model");
    for (x, y) in &batches {
        straight.train_step(x, y).expect("step");
    }
    let mut first = Model::builtin(ctx(), "lenet5", &config, 3).expect("model");
    for (x, y) in &batches[..2] {
        first.train_step(x, y).expect("step");
    }
    let (opt, steps) = first.optimizer_state().expect("optimizer state");
    assert_eq!(steps, 2);
    assert!(opt.iter().any(|(n, _, _)| n == "conv1.weight.exp_avg_sq"), "PyTorch's names");
    let mut resumed = Model::builtin(ctx(), "lenet5", &config, 3).expect("model");
    resumed.load_state_dict(&first.state_dict().expect("state")).expect("load");
    resumed.load_optimizer_state(&opt, steps).expect("load optimizer state");
    for (x, y) in &batches[2..] {
        resumed.train_step(x, y).expect("step");
    }
    let (a, b) = (straight.state_dict().expect("a"), resumed.state_dict().expect("b"));
    for ((name, _, va), (_, _, vb)) in a.iter().zip(&b) {
        let worst = va.iter().zip(vb).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "{name}: resumed differs from straight by {worst}");
    }
    let mut wrong = opt.clone();
    wrong.pop();
    let e = resumed.load_optimizer_state(&wrong, 2).expect_err("refused").to_string();
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn a_soak_run_allocates_nothing_on_the_device_after_its_first_epoch() {
    // Its own context: the counters are per context. Each epoch trains, reads the metrics,
    // evaluates and reads them again, as `gconv train` does.
    let own = gconv::Context::new().expect("context");
    let config = ModelConfig { input: [1, 28, 28], num_classes: 10 };
    let mut model = Model::builtin(&own, "simplecnn", &config, 0).expect("model");
    let mut epoch = |e: usize| {
        for step in 0..12 {
            let (x, y) = digits_like(16, e * 100 + step);
            model.train_step(&x, &y).expect("step");
        }
        let m = model.take_metrics().expect("metrics");
        assert!(m.loss.is_finite() && m.nonfinite.is_none(), "{m:?}");
        let (x, y) = digits_like(50, e);
        model.eval_batch(&x, &y).expect("eval");
        model.take_metrics().expect("metrics");
        own.counters()
    };
    let first = epoch(0);
    let mut previous = first;
    for e in 1..6 {
        let now = epoch(e);
        assert_eq!(now.textures, first.textures, "epoch {e} created textures");
        assert_eq!(now.bind_groups, first.bind_groups, "epoch {e} created bind groups");
        // Reading the metrics back needs a small staging buffer each time, freed at once.
        let (buffers, bytes) = (now.buffers - previous.buffers, now.bytes - previous.bytes);
        assert!(buffers <= 2 && bytes <= 1024, "epoch {e}: {buffers} buffers, {bytes} bytes");
        previous = now;
    }
}

#[test]
fn activations_larger_than_a_binding_train_in_slices_and_match_the_whole_batch() {
    // A device whose bindings stop at 32 KiB: x (36 KiB), the first convolution's output
    // (288 KiB) and its pooled output (72 KiB) are bound a chunk of samples at a time, on
    // every kernel the plan chose. Gradients and parameters must equal the unchunked run's.
    let small = gconv::Context::new().expect("context");
    small.limit_binding_size(32 << 10);
    let spec = "conv(1,8,k=3,p=1) relu maxpool(2) conv(8,16,k=3,p=1) relu maxpool(2) flatten \
                linear(16)";
    let graph = || parse_layers(spec, &[1, 12, 12]).expect("spec");
    let mut sliced = Model::from_graph(&small, "sliced", graph(), 4).expect("model");
    let mut whole = Model::from_graph(ctx(), "whole", graph(), 4).expect("model");
    let batch: usize = 64;
    let x: Vec<f32> = (0..batch * 144).map(|i| ((i * 29 % 97) as f32 / 48.0) - 1.0).collect();
    let labels: Vec<i32> = (0..batch as i32).map(|i| i % 16).collect();
    let close = |a: gconv::nn::checkpoint::StateDict, b: gconv::nn::checkpoint::StateDict, what| {
        for ((name, _, va), (_, _, vb)) in a.iter().zip(&b) {
            let scale = vb.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let worst = va.iter().zip(vb).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-4 * scale, "{what} {name}: sliced and whole differ by {worst}");
        }
    };
    for model in [&mut sliced, &mut whole] {
        model.compute_gradients(&x, &labels).expect("gradients");
    }
    close(sliced.gradients().expect("grads"), whole.gradients().expect("grads"), "gradient");
    for _ in 0..2 {
        for model in [&mut sliced, &mut whole] {
            model.train_step(&x, &labels).expect("step");
        }
    }
    close(sliced.state_dict().expect("a"), whole.state_dict().expect("b"), "after 2 steps");
    let m = sliced.take_metrics().expect("metrics");
    assert!(m.loss.is_finite() && m.nonfinite.is_none(), "{m:?}");
}

#[test]
fn elementwise_kernels_take_tensors_larger_than_a_binding_in_blocks() {
    let small = gconv::Context::new().expect("context");
    small.limit_binding_size(16 << 10);
    let n = 10_000 + 3; // 40 KiB and a ragged last block
    let a: Vec<f32> = (0..n).map(|i| (i % 17) as f32 - 8.0).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5).collect();
    let ta = gconv::Tensor::from_slice(&small, &a, &[n]).expect("a");
    let tb = gconv::Tensor::from_slice(&small, &b, &[n]).expect("b");
    let y = gconv::ops::relu6(&ta).expect("relu6").to_vec().expect("y");
    assert!(y.iter().zip(&a).all(|(y, a)| *y == a.clamp(0.0, 6.0)), "relu6 in blocks");
    let s = gconv::ops::add(&ta, &tb).expect("add").to_vec().expect("sum");
    assert!(s.iter().zip(a.iter().zip(&b)).all(|(s, (a, b))| *s == a + b), "add in blocks");
}
