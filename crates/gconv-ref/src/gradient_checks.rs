//! The reference's gradients against central finite differences in f64, on small random
//! cases: the reference is trusted on its own, before it judges the GPU.

use super::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn random(rng: &mut SmallRng, shape: &[usize]) -> Array {
    Array::new(shape, (0..shape.iter().product()).map(|_| rng.random_range(-1.0..1.0)).collect())
}

fn dot(a: &Array, b: &Array) -> f64 {
    a.data.iter().zip(&b.data).map(|(x, y)| x * y).sum()
}

/// d/dv of f at v, by central differences, for every element of v.
fn numeric(v: &Array, f: impl Fn(&Array) -> f64) -> Vec<f64> {
    let h = 1e-6;
    (0..v.len())
        .map(|i| {
            let mut p = v.clone();
            p.data[i] += h;
            let mut m = v.clone();
            m.data[i] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
        .collect()
}

fn assert_close(what: &str, analytic: &[f64], numeric: &[f64]) {
    let diff: f64 = analytic.iter().zip(numeric).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = numeric.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    assert!(
        diff / norm < 1e-6,
        "{what}: relative error {:.3e}\n analytic {analytic:?}\n numeric  {numeric:?}",
        diff / norm
    );
}

#[test]
fn conv_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(1);
    let cases: Vec<(Vec<usize>, Vec<usize>, ConvAttrs)> = vec![
        (
            vec![2, 4, 7],
            vec![6, 2, 3],
            ConvAttrs { stride: vec![2], padding: vec![(2, 2)], dilation: vec![2], groups: 2 },
        ),
        (
            vec![1, 3, 6, 5],
            vec![4, 3, 3, 2],
            ConvAttrs {
                stride: vec![1, 1],
                padding: resolve_padding(&PaddingSpec::Same, &[3, 2], &[2, 1]),
                dilation: vec![2, 1],
                groups: 1,
            },
        ),
        (
            vec![1, 2, 4, 4, 3],
            vec![4, 1, 2, 3, 2],
            ConvAttrs {
                stride: vec![2, 1, 3],
                padding: vec![(1, 1), (0, 0), (1, 1)],
                dilation: vec![1, 1, 1],
                groups: 2,
            },
        ),
    ];
    for (xs, ws, a) in cases {
        let x = random(&mut r, &xs);
        let w = random(&mut r, &ws);
        let b = random(&mut r, &[ws[0]]);
        let y = conv_forward(&x, &w, Some(&b), &a);
        let gy = random(&mut r, &y.shape);
        let (gx, gw, gb) = conv_backward(&x, &w, &gy, &a);
        assert_close(
            "conv grad_x",
            &gx.data,
            &numeric(&x, |v| dot(&conv_forward(v, &w, Some(&b), &a), &gy)),
        );
        assert_close(
            "conv grad_w",
            &gw.data,
            &numeric(&w, |v| dot(&conv_forward(&x, v, Some(&b), &a), &gy)),
        );
        assert_close(
            "conv grad_b",
            &gb,
            &numeric(&b, |v| dot(&conv_forward(&x, &w, Some(v), &a), &gy)),
        );
    }
}

#[test]
fn conv_transpose_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(2);
    let cases = vec![
        (
            vec![2, 4, 5],
            vec![4, 3, 3],
            ConvTransposeAttrs {
                stride: vec![2],
                padding: vec![1],
                output_padding: vec![1],
                dilation: vec![1],
                groups: 2,
            },
        ),
        (
            vec![1, 2, 3, 4],
            vec![2, 3, 2, 3],
            ConvTransposeAttrs {
                stride: vec![3, 1],
                padding: vec![0, 1],
                output_padding: vec![0, 0],
                dilation: vec![1, 2],
                groups: 1,
            },
        ),
        (
            vec![1, 2, 2, 3, 2],
            vec![2, 2, 2, 2, 2],
            ConvTransposeAttrs {
                stride: vec![2, 2, 1],
                padding: vec![1, 0, 0],
                output_padding: vec![1, 0, 0],
                dilation: vec![1, 1, 1],
                groups: 1,
            },
        ),
    ];
    for (xs, ws, a) in cases {
        let x = random(&mut r, &xs);
        let w = random(&mut r, &ws);
        let b = random(&mut r, &[ws[1] * a.groups]);
        let y = conv_transpose_forward(&x, &w, Some(&b), &a);
        let gy = random(&mut r, &y.shape);
        let (gx, gw, gb) = conv_transpose_backward(&x, &w, &gy, &a);
        let f =
            |x: &Array, w: &Array, b: &Array| dot(&conv_transpose_forward(x, w, Some(b), &a), &gy);
        assert_close("conv_transpose grad_x", &gx.data, &numeric(&x, |v| f(v, &w, &b)));
        assert_close("conv_transpose grad_w", &gw.data, &numeric(&w, |v| f(&x, v, &b)));
        assert_close("conv_transpose grad_b", &gb, &numeric(&b, |v| f(&x, &w, v)));
    }
}

fn pool(
    k: &[usize],
    s: &[usize],
    p: &[usize],
    d: &[usize],
    ceil: bool,
    include_pad: bool,
    divisor: Option<usize>,
) -> PoolAttrs {
    PoolAttrs {
        kernel_size: k.to_vec(),
        stride: s.to_vec(),
        padding: p.to_vec(),
        dilation: d.to_vec(),
        ceil_mode: ceil,
        count_include_pad: include_pad,
        divisor_override: divisor,
    }
}

#[test]
fn pooling_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(3);
    let cases = vec![
        (vec![2, 2, 9], pool(&[3], &[2], &[1], &[2], true, true, None)),
        (vec![1, 2, 7, 6], pool(&[3, 2], &[2, 1], &[1, 1], &[1, 2], true, false, None)),
        (vec![1, 2, 7, 6], pool(&[2, 3], &[3, 2], &[1, 0], &[1, 1], false, true, Some(5))),
        (
            vec![1, 1, 4, 5, 3],
            pool(&[2, 2, 2], &[1, 2, 1], &[1, 0, 1], &[1, 1, 1], true, false, None),
        ),
    ];
    for (xs, a) in cases {
        // Distinct values: finite differences need each window's maximum to be unique.
        let x = random(&mut r, &xs);
        let (y, idx) = max_pool_forward(&x, &a);
        let gy = random(&mut r, &y.shape);
        let gx = max_pool_backward(&x, &gy, &idx, &a);
        assert_close(
            "max_pool grad_x",
            &gx.data,
            &numeric(&x, |v| dot(&max_pool_forward(v, &a).0, &gy)),
        );
        let a_avg = PoolAttrs { dilation: vec![1; a.dilation.len()], ..a.clone() };
        let y = avg_pool_forward(&x, &a_avg);
        let gy = random(&mut r, &y.shape);
        let gx = avg_pool_backward(&x, &gy, &a_avg);
        assert_close(
            "avg_pool grad_x",
            &gx.data,
            &numeric(&x, |v| dot(&avg_pool_forward(v, &a_avg), &gy)),
        );
    }
}

/// The fused conv -> ReLU -> max-pool against finite differences of its forward pass: some
/// windows have every value below zero, so no gradient flows through them.
#[test]
fn fused_conv_relu_max_pool_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(9);
    let conv = ConvAttrs {
        stride: vec![1, 1],
        padding: vec![(1, 1), (1, 1)],
        dilation: vec![1, 1],
        groups: 1,
    };
    let pool = pool(&[2, 2], &[2, 2], &[0, 0], &[1, 1], false, false, None);
    let x = random(&mut r, &[2, 3, 5, 6]);
    let w = random(&mut r, &[4, 3, 3, 3]);
    let b = random(&mut r, &[4]);
    let (y, _) = conv_relu_max_pool_forward(&x, &w, Some(&b), &conv, &pool);
    assert_eq!(y.shape, [2, 4, 2, 3]);
    assert!(y.data.contains(&0.0) && y.data.iter().any(|&v| v > 0.0), "ReLU both off and on");
    let gy = random(&mut r, &y.shape);
    let (gx, gw, gb) = conv_relu_max_pool_backward(&x, &w, Some(&b), &gy, &conv, &pool);
    let f = |x: &Array, w: &Array, b: &Array| {
        dot(&conv_relu_max_pool_forward(x, w, Some(b), &conv, &pool).0, &gy)
    };
    assert_close("fused grad_x", &gx.data, &numeric(&x, |v| f(v, &w, &b)));
    assert_close("fused grad_w", &gw.data, &numeric(&w, |v| f(&x, v, &b)));
    assert_close("fused grad_b", &gb, &numeric(&b, |v| f(&x, &w, v)));
}

#[test]
fn adaptive_pooling_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(4);
    for (xs, out) in [
        (vec![2, 2, 7], vec![3]),
        (vec![1, 2, 5, 7], vec![3, 4]),
        (vec![1, 1, 3, 4, 5], vec![2, 3, 7]),
    ] {
        let x = random(&mut r, &xs);
        let y = adaptive_avg_pool_forward(&x, &out);
        let gy = random(&mut r, &y.shape);
        let gx = adaptive_avg_pool_backward(&x, &gy);
        assert_close(
            "adaptive_avg grad_x",
            &gx.data,
            &numeric(&x, |v| dot(&adaptive_avg_pool_forward(v, &out), &gy)),
        );
        let (_, idx) = adaptive_max_pool_forward(&x, &out);
        let gx = adaptive_max_pool_backward(&x, &gy, &idx);
        assert_close(
            "adaptive_max grad_x",
            &gx.data,
            &numeric(&x, |v| dot(&adaptive_max_pool_forward(v, &out).0, &gy)),
        );
    }
}

#[test]
fn gemm_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(5);
    let x = random(&mut r, &[2, 3, 5]);
    let w = random(&mut r, &[4, 5]);
    let b = random(&mut r, &[4]);
    let gy = random(&mut r, &linear(&x, &w, Some(&b)).shape);
    let (gx, gw, gb) = linear_backward(&x, &w, &gy);
    assert_close("linear grad_x", &gx.data, &numeric(&x, |v| dot(&linear(v, &w, Some(&b)), &gy)));
    assert_close("linear grad_w", &gw.data, &numeric(&w, |v| dot(&linear(&x, v, Some(&b)), &gy)));
    assert_close("linear grad_b", &gb, &numeric(&b, |v| dot(&linear(&x, &w, Some(v)), &gy)));
    let a = random(&mut r, &[3, 4, 6]);
    let bm = random(&mut r, &[3, 6, 2]);
    let gy = random(&mut r, &[3, 4, 2]);
    let (ga, gb) = matmul_backward(&a, &bm, &gy);
    assert_close("matmul grad_a", &ga.data, &numeric(&a, |v| dot(&matmul(v, &bm), &gy)));
    assert_close("matmul grad_b", &gb.data, &numeric(&bm, |v| dot(&matmul(&a, v), &gy)));
}

#[test]
fn activation_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(6);
    // Away from 0, where relu has no derivative.
    let mut x = random(&mut r, &[3, 4, 5]);
    for v in &mut x.data {
        if v.abs() < 0.01 {
            *v = 0.5;
        }
    }
    let gy = random(&mut r, &x.shape);
    assert_close("relu grad_x", &relu_backward(&x, &gy).data, &numeric(&x, |v| dot(&relu(v), &gy)));
    // relu6 on both sides of 0 and 6, away from the kinks.
    let mut x6 = x.clone();
    x6.data.iter_mut().for_each(|v| *v = if v.abs() > 0.5 { *v * 8.0 } else { *v * 4.0 + 3.0 });
    let (got, want) = (relu6_backward(&x6, &gy), numeric(&x6, |v| dot(&relu6(v), &gy)));
    assert_close("relu6 grad_x", &got.data, &want);
    let (got, want) =
        (leaky_relu_backward(&x, &gy, 0.1), numeric(&x, |v| dot(&leaky_relu(v, 0.1), &gy)));
    assert_close("leaky_relu grad_x", &got.data, &want);
    let (got, want) = (sigmoid_backward(&x6, &gy), numeric(&x6, |v| dot(&sigmoid(v), &gy)));
    assert_close("sigmoid grad_x", &got.data, &want);
    let (got, want) =
        (hardtanh_backward(&x, &gy, -0.5, 0.3), numeric(&x, |v| dot(&hardtanh(v, -0.5, 0.3), &gy)));
    assert_close("hardtanh grad_x", &got.data, &want);
    for dim in 0..3 {
        let y = softmax(&x, dim);
        assert_close(
            "softmax grad_x",
            &softmax_backward(&y, &gy, dim).data,
            &numeric(&x, |v| dot(&softmax(v, dim), &gy)),
        );
        let y = log_softmax(&x, dim);
        assert_close(
            "log_softmax grad_x",
            &log_softmax_backward(&y, &gy, dim).data,
            &numeric(&x, |v| dot(&log_softmax(v, dim), &gy)),
        );
    }
}

#[test]
fn cat_s_gradient_is_narrow_and_add_s_is_the_identity() {
    let mut r = SmallRng::seed_from_u64(8);
    let (a, b) = (random(&mut r, &[2, 3, 4]), random(&mut r, &[2, 5, 4]));
    let gy = random(&mut r, &[2, 8, 4]);
    let ga = numeric(&a, |v| dot(&cat(&[v, &b], 1), &gy));
    let gb = numeric(&b, |v| dot(&cat(&[&a, v], 1), &gy));
    assert_close("cat grad a", &narrow(&gy, 1, 0, 3).data, &ga);
    assert_close("cat grad b", &narrow(&gy, 1, 3, 5).data, &gb);
    let c = random(&mut r, &a.shape);
    // Along the last dimension too: narrowing a concatenation gives its parts back.
    assert_eq!(narrow(&cat(&[&a, &c], 2), 2, 4, 4), c);
    assert_eq!(narrow(&cat(&[&a, &c], 0), 0, 0, 2), a);
    let gy = random(&mut r, &c.shape);
    assert_close("add grad", &gy.data, &numeric(&a, |v| dot(&add(v, &c), &gy)));
}

#[test]
fn cross_entropy_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(7);
    let x = random(&mut r, &[6, 5]);
    let target = [0i64, 4, -100, 2, 2, 1];
    let g_mean = cross_entropy_backward(&x, &target, -100, &[0.7], "mean");
    assert_close(
        "cross_entropy mean",
        &g_mean.data,
        &numeric(&x, |v| 0.7 * cross_entropy(v, &target, -100).1),
    );
    let g_sum = cross_entropy_backward(&x, &target, -100, &[1.3], "sum");
    assert_close(
        "cross_entropy sum",
        &g_sum.data,
        &numeric(&x, |v| 1.3 * cross_entropy(v, &target, -100).0.iter().sum::<f64>()),
    );
    let g_smooth = cross_entropy_smoothed_backward(&x, &target, -100, &[0.7], "mean", 0.3);
    assert_close(
        "cross_entropy mean, label smoothing 0.3",
        &g_smooth.data,
        &numeric(&x, |v| 0.7 * cross_entropy_smoothed(v, &target, -100, 0.3).1),
    );
    let per: Vec<f64> = (0..6).map(|i| i as f64 * 0.25 - 0.5).collect();
    let g_none = cross_entropy_backward(&x, &target, -100, &per, "none");
    assert_close(
        "cross_entropy none",
        &g_none.data,
        &numeric(&x, |v| {
            cross_entropy(v, &target, -100).0.iter().zip(&per).map(|(l, g)| l * g).sum()
        }),
    );
}

#[test]
fn batch_norm_gradients_match_finite_differences() {
    let mut r = SmallRng::seed_from_u64(8);
    let x = random(&mut r, &[3, 2, 4]);
    let w = random(&mut r, &[2]);
    let b = random(&mut r, &[2]);
    let (rm, rv) = (vec![0.1, -0.2], vec![0.8, 1.5]);
    for training in [true, false] {
        let f = |x: &Array, w: &Array, b: &Array| {
            batch_norm_forward(
                x,
                Some(&rm),
                Some(&rv),
                Some(&w.data),
                Some(&b.data),
                training,
                0.1,
                1e-5,
            )
            .y
        };
        let gy = random(&mut r, &x.shape);
        let (gx, gw, gb) =
            batch_norm_backward(&x, &gy, Some(&rm), Some(&rv), Some(&w.data), training, 1e-5);
        assert_close("batch_norm grad_x", &gx.data, &numeric(&x, |v| dot(&f(v, &w, &b), &gy)));
        assert_close("batch_norm grad_w", &gw, &numeric(&w, |v| dot(&f(&x, v, &b), &gy)));
        assert_close("batch_norm grad_b", &gb, &numeric(&b, |v| dot(&f(&x, &w, v), &gy)));
    }
}

#[test]
fn pad_s_gradient_crops_back_and_zeroes_what_a_crop_removed() {
    let mut r = SmallRng::seed_from_u64(9);
    let x = random(&mut r, &[2, 3, 4, 5]);
    for pad in [vec![1, 2], vec![1, 0, -1, 2], vec![0, -2, 1, 1, 2, -1]] {
        let gy = random(&mut r, &pad_shape(&x.shape, &pad));
        assert_close(
            "pad grad_x",
            &pad_backward(&gy, &x.shape, &pad).data,
            &numeric(&x, |v| dot(&super::pad(v, &pad, 0.5), &gy)),
        );
    }
}
