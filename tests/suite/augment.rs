//! Augmentation on the GPU: random crops with padding and flips against gconv-ref's twin for
//! fixed seeds (eager and inside a training step's plan), choices that cover their range, and
//! evaluation left alone.

use gconv::nn::{Graph, Layer, Model};
use gconv::ops::{self, AugmentOptions};
use gconv_ref::Array;
use rand::Rng;

use super::common::{check, ctx, for_each_config, random};

#[test]
fn random_crops_and_flips_match_the_reference_for_a_seed() {
    for_each_config("augment", 30, |r| {
        let shape = [
            r.random_range(1..=5),
            r.random_range(1..=3),
            r.random_range(5..=12),
            r.random_range(5..=12),
        ];
        let (x, xa) = random(r, &shape);
        let pad = r.random_range(0..=4);
        let flip = r.random_bool(0.7);
        let fill: Vec<f32> = (0..shape[1]).map(|_| r.random_range(-2.0..0.0)).collect();
        let seed = r.random::<u32>();
        let o = AugmentOptions { crop_padding: pad, flip, fill: fill.clone() };
        let what = format!("augment {shape:?} pad {pad} flip {flip} seed {seed}");
        let y = ops::augment(&x, seed, &o).map_err(|e| format!("{what}: {e}"))?;
        let fill: Vec<f64> = fill.iter().map(|&f| f64::from(f)).collect();
        check(&what, &y, &gconv_ref::augment(&xa, seed, pad, flip, &fill))
    });
}

#[test]
fn the_choices_cover_every_offset_and_flip_half_the_samples() {
    let (mut flips, mut seen) = (0, [[false; 9]; 2]);
    for n in 0..2000 {
        let (dy, dx, mirrored) = gconv_ref::augment_choices(12345, n, 4, true);
        flips += usize::from(mirrored);
        seen[0][(dy + 4) as usize] = true;
        seen[1][(dx + 4) as usize] = true;
    }
    assert!((900..1100).contains(&flips), "{flips} of 2000 mirrored");
    assert!(seen.iter().flatten().all(|&s| s), "offsets not all drawn: {seen:?}");
    let x = gconv::Tensor::zeros(ctx(), &[1, 1, 4, 4]).expect("x");
    let too_big = AugmentOptions { crop_padding: 4, flip: false, fill: vec![0.0] };
    let e = ops::augment(&x, 1, &too_big).expect_err("padding").to_string();
    assert!(e.contains("crop padding 4"), "{e}");
}

#[test]
fn a_training_step_augments_its_batch_with_the_steps_seed_and_evaluation_does_not() {
    let (c, h, w, classes, batch) = (2, 6, 5, 3, 4);
    let mut g = Graph::new(&[c, h, w]);
    g.push("flatten", Layer::Flatten).expect("flatten");
    g.push("fc", Layer::linear(c * h * w, classes)).expect("fc");
    let mut model = Model::from_graph(ctx(), "augmented", g, 9).expect("model");
    let fill = vec![-0.5, -1.5];
    let o = AugmentOptions { crop_padding: 2, flip: true, fill: fill.clone() };
    model.set_augmentation(Some(o)).expect("augmentation");
    let x: Vec<f32> =
        (0..batch * c * h * w).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let labels = [0, 2, 1, 2];
    let state = model.state_dict().expect("state");
    let param = |name: &str| {
        let (_, s, v) = state.iter().find(|(n, _, _)| n == name).expect("param");
        Array::from_f32(s, v)
    };
    let (weight, bias) = (param("fc.weight"), param("fc.bias"));
    let xa = Array::from_f32(&[batch, c, h, w], &x);
    let grads_for = |input: &Array| {
        let flat = Array::new(&[batch, c * h * w], input.data.clone());
        let logits = gconv_ref::linear(&flat, &weight, Some(&bias));
        let t: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        let gy = gconv_ref::cross_entropy_backward(&logits, &t, -100, &[1.0], "mean");
        gconv_ref::linear_backward(&flat, &weight, &gy).1
    };
    for _ in 0..2 {
        model.compute_gradients(&x, &labels).expect("gradients");
        let fill64: Vec<f64> = fill.iter().map(|&f| f64::from(f)).collect();
        let augmented = gconv_ref::augment(&xa, model.step_seed(), 2, true, &fill64);
        assert_ne!(augmented.data, xa.data, "the seed changed nothing");
        let grads = model.gradients().expect("gradients");
        let (_, _, gw) = grads.iter().find(|(n, _, _)| n == "fc.weight").expect("fc.weight");
        let got: Vec<f64> = gw.iter().map(|&v| f64::from(v)).collect();
        let err = gconv_tests::compare::relative_error(&got, &grads_for(&augmented).data);
        assert!(err < 1e-5, "weight gradient from the augmented batch differs by {err:.2e}");
    }
    let logits = model.predict(&x, batch).expect("predict").to_vec().expect("download");
    let flat = Array::new(&[batch, c * h * w], xa.data.clone());
    let want = gconv_ref::linear(&flat, &weight, Some(&bias));
    let got: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    assert!(gconv_tests::compare::relative_error(&got, &want.data) < 1e-5, "predict augmented");
}
