//! ReLU6 and the operators that join branches: element-wise `add`, `cat` along a dimension and
//! `narrow`, its gradient.

use super::Array;

/// relu6: min(max(x, 0), 6).
pub fn relu6(x: &Array) -> Array {
    Array::new(&x.shape, x.data.iter().map(|&v| v.clamp(0.0, 6.0)).collect())
}

/// Gradient of [`relu6`]: gy where 0 < x < 6 (PyTorch's `hardtanh_backward`).
pub fn relu6_backward(x: &Array, gy: &Array) -> Array {
    let pass = |v: f64| v > 0.0 && v < 6.0;
    Array::new(
        &x.shape,
        x.data.iter().zip(&gy.data).map(|(&v, &g)| if pass(v) { g } else { 0.0 }).collect(),
    )
}

/// a + b for arrays of one shape.
pub fn add(a: &Array, b: &Array) -> Array {
    assert_eq!(a.shape, b.shape, "add: shapes differ");
    Array::new(&a.shape, a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect())
}

/// The arrays joined along `dim`: `torch.cat(xs, dim)`.
pub fn cat(xs: &[&Array], dim: usize) -> Array {
    let first = xs[0];
    let outer: usize = first.shape[..dim].iter().product();
    let inner: usize = first.shape[dim + 1..].iter().product();
    let mut shape = first.shape.clone();
    shape[dim] = xs.iter().map(|x| x.shape[dim]).sum();
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for x in xs {
            let block = x.shape[dim] * inner;
            data.extend_from_slice(&x.data[o * block..(o + 1) * block]);
        }
    }
    Array::new(&shape, data)
}

/// Elements `start..start + length` of `x` along `dim`: `torch.narrow`.
pub fn narrow(x: &Array, dim: usize, start: usize, length: usize) -> Array {
    let outer: usize = x.shape[..dim].iter().product();
    let inner: usize = x.shape[dim + 1..].iter().product();
    let row = x.shape[dim] * inner;
    let mut shape = x.shape.clone();
    shape[dim] = length;
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        data.extend_from_slice(
            &x.data[o * row + start * inner..o * row + (start + length) * inner],
        );
    }
    Array::new(&shape, data)
}
