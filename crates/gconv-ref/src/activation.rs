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
