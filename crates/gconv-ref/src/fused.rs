//! Fused operators, composed from the reference's own: what gconv's fused kernels compute in
//! one pass, here in the steps PyTorch takes (`max_pool2d(relu(conv2d(x)))`).

use super::{
    Array, ConvAttrs, PoolAttrs, conv_backward, conv_forward, max_pool_backward, max_pool_forward,
    relu, relu_backward,
};

/// conv -> ReLU -> max-pool: (the pooled output, max-pool's argmax within each (n, c) plane).
pub fn conv_relu_max_pool_forward(
    x: &Array,
    w: &Array,
    b: Option<&Array>,
    conv: &ConvAttrs,
    pool: &PoolAttrs,
) -> (Array, Vec<i64>) {
    max_pool_forward(&relu(&conv_forward(x, w, b, conv)), pool)
}

/// Gradients of [`conv_relu_max_pool_forward`] from the pooled output's gradient `gy`:
/// (grad_x, grad_w, grad_b). The pooled gradient goes to each window's argmax, through the
/// ReLU (none where the convolution's output was not positive), then through the convolution.
pub fn conv_relu_max_pool_backward(
    x: &Array,
    w: &Array,
    b: Option<&Array>,
    gy: &Array,
    conv: &ConvAttrs,
    pool: &PoolAttrs,
) -> (Array, Array, Vec<f64>) {
    let y = conv_forward(x, w, b, conv);
    let r = relu(&y);
    let (_, indices) = max_pool_forward(&r, pool);
    let g_r = max_pool_backward(&r, gy, &indices, pool);
    conv_backward(x, w, &relu_backward(&y, &g_r), conv)
}
