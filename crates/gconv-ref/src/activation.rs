//! Smooth and leaky activations: `leaky_relu` and `sigmoid`, with their gradients, from
//! PyTorch's definitions.

use super::Array;

/// x where x > 0, else negative_slope * x (`torch.nn.functional.leaky_relu`).
pub fn leaky_relu(x: &Array, negative_slope: f64) -> Array {
    Array::new(
        &x.shape,
        x.data.iter().map(|&v| if v > 0.0 { v } else { negative_slope * v }).collect(),
    )
}

/// Gradient of [`leaky_relu`]: gy where x > 0, else negative_slope * gy.
pub fn leaky_relu_backward(x: &Array, gy: &Array, negative_slope: f64) -> Array {
    let slope = |v: f64| if v > 0.0 { 1.0 } else { negative_slope };
    Array::new(&x.shape, x.data.iter().zip(&gy.data).map(|(&v, &g)| slope(v) * g).collect())
}

/// 1 / (1 + exp(-x)).
pub fn sigmoid(x: &Array) -> Array {
    Array::new(&x.shape, x.data.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect())
}

/// Gradient of [`sigmoid`] from its input: gy * s * (1 - s), s = sigmoid(x).
pub fn sigmoid_backward(x: &Array, gy: &Array) -> Array {
    let s = sigmoid(x);
    Array::new(&x.shape, s.data.iter().zip(&gy.data).map(|(&s, &g)| g * s * (1.0 - s)).collect())
}

/// min(max(x, min_val), max_val) (`torch.nn.functional.hardtanh`, ONNX's Clip).
pub fn hardtanh(x: &Array, min_val: f64, max_val: f64) -> Array {
    Array::new(&x.shape, x.data.iter().map(|&v| v.max(min_val).min(max_val)).collect())
}

/// Gradient of [`hardtanh`]: gy where min_val < x < max_val, else 0.
pub fn hardtanh_backward(x: &Array, gy: &Array, min_val: f64, max_val: f64) -> Array {
    let pass = |v: f64| v > min_val && v < max_val;
    Array::new(
        &x.shape,
        x.data.iter().zip(&gy.data).map(|(&v, &g)| if pass(v) { g } else { 0.0 }).collect(),
    )
}

/// x * factor.
pub fn mul_scalar(x: &Array, factor: f64) -> Array {
    Array::new(&x.shape, x.data.iter().map(|&v| v * factor).collect())
}
