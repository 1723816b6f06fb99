//! Random-shape conformance of pooling (max, average, adaptive, global), forward and backward,
//! against gconv-ref, as conformance.rs does for the other families; and the max-pool kernel
//! of ResNet's stem on PyTorch's rule for ties, NaNs and infinities.

use gconv::Tensor;
use gconv::ops;
use gconv_ref::Array;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::common::{check, ctx, for_each_config, random};
use super::conformance::{CONFIGS, fail, spatial_rank};

/// A pooling window: kernel, stride (sometimes larger than the kernel), padding within PyTorch's
/// bound, dilation (max pooling only), and an input large enough for one window.
struct PoolCase {
    xs: Vec<usize>,
    k: Vec<usize>,
    stride: Vec<usize>,
    pad: Vec<usize>,
    dil: Vec<usize>,
    ceil: bool,
}

fn pool_case(r: &mut SmallRng, dilated: bool) -> PoolCase {
    let sd = spatial_rank(r);
    let max_in = [0, 16, 10, 6][sd];
    let k: Vec<usize> = (0..sd).map(|_| r.random_range(1..=if sd == 3 { 3 } else { 4 })).collect();
    let dil: Vec<usize> =
        (0..sd).map(|_| if dilated { r.random_range(1..=2) } else { 1 }).collect();
    let stride: Vec<usize> = (0..sd).map(|_| r.random_range(1..=5)).collect();
    let pad: Vec<usize> = (0..sd)
        .map(|i| {
            let window = if dilated { dil[i] * (k[i] - 1) + 1 } else { k[i] };
            r.random_range(0..=window / 2)
        })
        .collect();
    let size: Vec<usize> = (0..sd)
        .map(|i| {
            let need = (dil[i] * (k[i] - 1) + 1).saturating_sub(2 * pad[i]).max(1);
            r.random_range(need..=max_in.max(need))
        })
        .collect();
    let mut xs = vec![r.random_range(1..=2), r.random_range(1..=5)];
    xs.extend(&size);
    PoolCase { xs, k, stride, pad, dil, ceil: r.random_bool(0.5) }
}

impl PoolCase {
    /// The case as gconv's max-pool options and gconv-ref's attributes.
    fn max_pool(&self) -> (ops::MaxPoolOptions, gconv_ref::PoolAttrs) {
        let o = ops::MaxPoolOptions {
            kernel_size: self.k.clone().into(),
            stride: Some(self.stride.clone().into()),
            padding: self.pad.clone().into(),
            dilation: self.dil.clone().into(),
            ceil_mode: self.ceil,
        };
        let attrs = gconv_ref::PoolAttrs {
            kernel_size: self.k.clone(),
            stride: self.stride.clone(),
            padding: self.pad.clone(),
            dilation: self.dil.clone(),
            ceil_mode: self.ceil,
            count_include_pad: false,
            divisor_override: None,
        };
        (o, attrs)
    }
}

fn indices_of(t: &Tensor) -> Result<Vec<i64>, String> {
    Ok(t.to_vec_i32().map_err(|e| e.to_string())?.into_iter().map(i64::from).collect())
}

#[test]
fn random_max_pool_forward_and_backward_match_reference() {
    for_each_config("max_pool", CONFIGS, |r| {
        let c = pool_case(r, true);
        let sd = c.k.len();
        let (x, xa) = random(r, &c.xs);
        let (o, attrs) = c.max_pool();
        let what = format!("max_pool{sd}d x {:?} {o:?}", c.xs);
        let f = [
            ops::max_pool1d_with_indices,
            ops::max_pool2d_with_indices,
            ops::max_pool3d_with_indices,
        ][sd - 1];
        let (y, idx) = f(&x, &o).map_err(fail(&what))?;
        let (ey, eidx) = gconv_ref::max_pool_forward(&xa, &attrs);
        check(&what, &y, &ey)?;
        if indices_of(&idx)? != eidx {
            return Err(format!("{what}: indices differ"));
        }
        let (gy, gya) = random(r, y.shape());
        let f =
            [ops::max_pool1d_backward, ops::max_pool2d_backward, ops::max_pool3d_backward][sd - 1];
        let gx = f(&gy, &x, &idx, &o).map_err(fail(&what))?;
        check(
            &format!("{what} grad_x"),
            &gx,
            &gconv_ref::max_pool_backward(&xa, &gya, &eidx, &attrs),
        )
    });
}

#[test]
fn max_pool_3x3_stride_2_keeps_pytorchs_rule_for_ties_nans_and_infinities() {
    // ResNet's stem pooling has a kernel of its own on CPU adapters (four windows at a time):
    // values from four levels (ties: the first maximum wins), NaNs (the last one wins) and
    // -inf, on odd and even sizes, with and without padding and ceil_mode; and its backward
    // pass (each input in up to four windows) against gconv-ref.
    let mut r = SmallRng::seed_from_u64(23);
    let cases = [
        ([2, 3, 8, 8], 1, false),
        ([1, 2, 7, 9], 1, true),
        ([2, 2, 12, 13], 0, false),
        ([1, 1, 5, 6], 0, true),
        ([1, 2, 3, 3], 1, false),
        ([1, 1, 9, 31], 1, true),
    ];
    for (shape, pad, ceil) in cases {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| match r.random_range(0..24) {
                0 => f32::NAN,
                1 => f32::NEG_INFINITY,
                k => (k % 4) as f32,
            })
            .collect();
        let x = Tensor::from_slice(ctx(), &data, &shape).expect("x");
        let (o, attrs) = PoolCase {
            xs: shape.to_vec(),
            k: vec![3, 3],
            stride: vec![2, 2],
            pad: vec![pad, pad],
            dil: vec![1, 1],
            ceil,
        }
        .max_pool();
        let (y, idx) = ops::max_pool2d_with_indices(&x, &o).expect("max_pool2d");
        let (ey, eidx) = gconv_ref::max_pool_forward(&Array::from_f32(&shape, &data), &attrs);
        let got = y.to_vec().expect("y");
        assert_eq!(y.shape(), &ey.shape[..], "{shape:?}");
        for (i, (g, e)) in got.iter().zip(&ey.data).enumerate() {
            let same = (g.is_nan() && e.is_nan()) || f64::from(*g) == *e;
            assert!(same, "{shape:?} pad {pad} ceil {ceil}: y[{i}] = {g}, reference {e}");
        }
        assert_eq!(indices_of(&idx).expect("indices"), eidx, "{shape:?} pad {pad} ceil {ceil}");
        // Its backward pass (max_pool_backward_scatter: one parity of windows at a time).
        let gy: Vec<f32> = (0..y.numel()).map(|_| r.random_range(-1.0..1.0)).collect();
        let gyt = Tensor::from_slice(ctx(), &gy, y.shape()).expect("grad_y");
        let gx = ops::max_pool2d_backward(&gyt, &x, &idx, &o).expect("max_pool2d_backward");
        let xa = Array::from_f32(&shape, &data);
        let egx =
            gconv_ref::max_pool_backward(&xa, &Array::from_f32(y.shape(), &gy), &eidx, &attrs);
        check(&format!("{shape:?} pad {pad} ceil {ceil}: grad_x"), &gx, &egx)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn random_avg_pool_forward_and_backward_match_reference() {
    for_each_config("avg_pool", CONFIGS, |r| {
        let c = pool_case(r, false);
        let sd = c.k.len();
        let (x, xa) = random(r, &c.xs);
        let count_include_pad = r.random_bool(0.5);
        let divisor_override = r.random_bool(0.15).then(|| r.random_range(1..=7));
        let o = ops::AvgPoolOptions {
            kernel_size: c.k.clone().into(),
            stride: Some(c.stride.clone().into()),
            padding: c.pad.clone().into(),
            ceil_mode: c.ceil,
            count_include_pad,
            divisor_override,
        };
        let what = format!("avg_pool{sd}d x {:?} {o:?}", c.xs);
        let f = [ops::avg_pool1d, ops::avg_pool2d, ops::avg_pool3d][sd - 1];
        let y = f(&x, &o).map_err(fail(&what))?;
        let attrs = gconv_ref::PoolAttrs {
            kernel_size: c.k,
            stride: c.stride,
            padding: c.pad,
            dilation: c.dil,
            ceil_mode: c.ceil,
            count_include_pad,
            divisor_override,
        };
        check(&what, &y, &gconv_ref::avg_pool_forward(&xa, &attrs))?;
        let (gy, gya) = random(r, y.shape());
        let f =
            [ops::avg_pool1d_backward, ops::avg_pool2d_backward, ops::avg_pool3d_backward][sd - 1];
        let gx = f(&gy, &x, &o).map_err(fail(&what))?;
        check(&format!("{what} grad_x"), &gx, &gconv_ref::avg_pool_backward(&xa, &gya, &attrs))
    });
}

#[test]
fn random_adaptive_pool_forward_and_backward_match_reference() {
    for_each_config("adaptive_pool", CONFIGS, |r| {
        let sd = spatial_rank(r);
        let max_in = [0, 20, 12, 6][sd];
        let size: Vec<usize> = (0..sd).map(|_| r.random_range(1..=max_in)).collect();
        // Output sizes from 1 (global pooling) to beyond the input (overlapping windows).
        let out: Vec<usize> = size.iter().map(|&s| r.random_range(1..=s + 2)).collect();
        let mut xs = vec![r.random_range(1..=2), r.random_range(1..=4)];
        xs.extend(&size);
        let (x, xa) = random(r, &xs);
        if r.random_bool(0.5) {
            let what = format!("adaptive_avg_pool{sd}d x {xs:?} -> {out:?}");
            let f = [ops::adaptive_avg_pool1d, ops::adaptive_avg_pool2d, ops::adaptive_avg_pool3d]
                [sd - 1];
            let y = f(&x, out.clone()).map_err(fail(&what))?;
            check(&what, &y, &gconv_ref::adaptive_avg_pool_forward(&xa, &out))?;
            let (gy, gya) = random(r, y.shape());
            let f = [
                ops::adaptive_avg_pool1d_backward,
                ops::adaptive_avg_pool2d_backward,
                ops::adaptive_avg_pool3d_backward,
            ][sd - 1];
            let gx = f(&gy, &x).map_err(fail(&what))?;
            check(&format!("{what} grad_x"), &gx, &gconv_ref::adaptive_avg_pool_backward(&xa, &gya))
        } else {
            let what = format!("adaptive_max_pool{sd}d x {xs:?} -> {out:?}");
            let f = [
                ops::adaptive_max_pool1d_with_indices,
                ops::adaptive_max_pool2d_with_indices,
                ops::adaptive_max_pool3d_with_indices,
            ][sd - 1];
            let (y, idx) = f(&x, out.clone()).map_err(fail(&what))?;
            let (ey, eidx) = gconv_ref::adaptive_max_pool_forward(&xa, &out);
            check(&what, &y, &ey)?;
            if indices_of(&idx)? != eidx {
                return Err(format!("{what}: indices differ"));
            }
            let (gy, gya) = random(r, y.shape());
            let f = [
                ops::adaptive_max_pool1d_backward,
                ops::adaptive_max_pool2d_backward,
                ops::adaptive_max_pool3d_backward,
            ][sd - 1];
            let gx = f(&gy, &x, &idx).map_err(fail(&what))?;
            check(
                &format!("{what} grad_x"),
                &gx,
                &gconv_ref::adaptive_max_pool_backward(&xa, &gya, &eidx),
            )
        }
    });
}

/// Global average pooling (one output per plane), whose backward pass has kernels of its own:
/// planes of whole quads and not, 1-D to 3-D.
#[test]
fn global_avg_pool_backward_matches_reference() {
    let mut r = SmallRng::seed_from_u64(23);
    let cases: [&[usize]; 5] =
        [&[2, 3, 7], &[2, 5, 4, 4], &[2, 3, 5, 3], &[1, 2, 2, 3, 4], &[3, 64, 1, 1]];
    for xs in cases {
        let sd = xs.len() - 2;
        let (x, xa) = random(&mut r, xs);
        let out = vec![1; sd];
        let what = format!("global adaptive_avg_pool{sd}d x {xs:?}");
        let f = [ops::adaptive_avg_pool1d, ops::adaptive_avg_pool2d, ops::adaptive_avg_pool3d];
        let y = f[sd - 1](&x, out.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (gy, gya) = random(&mut r, y.shape());
        let f = [
            ops::adaptive_avg_pool1d_backward,
            ops::adaptive_avg_pool2d_backward,
            ops::adaptive_avg_pool3d_backward,
        ];
        let gx = f[sd - 1](&gy, &x).unwrap_or_else(|e| panic!("{what}: {e}"));
        let want = gconv_ref::adaptive_avg_pool_backward(&xa, &gya);
        check(&format!("{what} grad_x"), &gx, &want).unwrap_or_else(|e| panic!("{e}"));
    }
}
