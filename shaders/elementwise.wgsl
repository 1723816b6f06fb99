// elementwise.wgsl: per-element maps over tensors of one shape, forward and backward.

struct ElementwiseParams {
    total: u32,
    // leaky_relu's negative slope, hardtanh's (and relu6's) lower bound, scale's factor.
    alpha: f32,
    // hardtanh's upper bound.
    beta: f32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// max(x, 0); NaN stays NaN, as in PyTorch.
@compute @workgroup_size(WG)
fn relu_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let v = x[idx];
    y[idx] = select(v, 0.0, v < 0.0);
}

@group(0) @binding(3) var<storage, read> grad_y: array<f32>;

// grad_x = grad_y where x > 0, else 0 (PyTorch's threshold_backward; written into `y`).
@compute @workgroup_size(WG)
fn relu_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    y[idx] = select(0.0, grad_y[idx], x[idx] > 0.0);
}


// y += x, elementwise: gradients of a value or parameter used more than once accumulate.
@compute @workgroup_size(WG)
fn add_inplace(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    y[idx] += x[idx];
}

@group(0) @binding(4) var<storage, read> x2: array<f32>;

// y = x + x2: a residual connection's sum.
@compute @workgroup_size(WG)
fn add(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    y[idx] = x[idx] + x2[idx];
}

// y = x + x2 clamped to [alpha, beta] (ReLU: [0, inf], ReLU6, hardtanh) as hardtanh_forward
// clamps, NaN staying NaN: a residual sum and the clamp behind it in one pass (inference).
@compute @workgroup_size(WG)
fn add_clamp(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    y[idx] = clamp_nan(x[idx] + x2[idx]);
}

// v clamped to [alpha, beta], NaN staying NaN (WGSL's clamp leaves NaN to the driver).
fn clamp_nan(v: f32) -> f32 {
    return select(select(v, p.beta, v > p.beta), p.alpha, v < p.alpha);
}

// x where x > 0, else alpha * x (leaky ReLU); NaN stays NaN.
@compute @workgroup_size(WG)
fn leaky_relu_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let v = x[idx];
    y[idx] = select(v, p.alpha * v, v < 0.0);
}

// grad_x = grad_y where x > 0, else alpha * grad_y (written into `y`).
@compute @workgroup_size(WG)
fn leaky_relu_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let g = grad_y[idx];
    y[idx] = select(p.alpha * g, g, x[idx] > 0.0);
}

// 1 / (1 + exp(-x)), from the side that cannot overflow.
fn sigmoid(v: f32) -> f32 {
    if v >= 0.0 {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

@compute @workgroup_size(WG)
fn sigmoid_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    y[idx] = sigmoid(x[idx]);
}

// grad_x = grad_y * s * (1 - s), s = sigmoid(x) recomputed from the input (written into `y`).
@compute @workgroup_size(WG)
fn sigmoid_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let s = sigmoid(x[idx]);
    y[idx] = grad_y[idx] * s * (1.0 - s);
}

// min(max(x, alpha), beta) (PyTorch's hardtanh(min_val, max_val), ONNX's Clip; ReLU6 is
// hardtanh(0, 6)); NaN stays NaN.
@compute @workgroup_size(WG)
fn hardtanh_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    y[idx] = clamp_nan(x[idx]);
}

// grad_x = grad_y where alpha < x < beta, else 0 (PyTorch's hardtanh_backward; into `y`).
@compute @workgroup_size(WG)
fn hardtanh_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let v = x[idx];
    y[idx] = select(0.0, grad_y[idx], v > p.alpha && v < p.beta);
}

// alpha * x: a product with a constant (ONNX's Mul by a scalar).
@compute @workgroup_size(WG)
fn scale_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    y[idx] = p.alpha * x[idx];
}

// grad_x = alpha * grad_y (written into `y`).
@compute @workgroup_size(WG)
fn scale_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    y[idx] = p.alpha * grad_y[idx];
}

// The vec4 variants of the hot maps: the same values through x4, y4, grad_y4 and x2_4, bound
// to the same buffers as x, y, grad_y and x2 (which then hold whole quads up to `total`):
// four values per load, one per-lane loop on CPU adapters where four scalars take four.
// `total` still counts values; invocation i takes quad i.
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> grad_y4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> x2_4: array<vec4<f32>>;

// Stores quad i of y, keeping what lies past `total` in the last one.
fn store4(i: u32, v: vec4<f32>) {
    if 4u * i + 4u <= p.total {
        y4[i] = v;
        return;
    }
    let live = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.total);
    y4[i] = select(y4[i], v, live);
}

@compute @workgroup_size(WG)
fn relu_forward4(invocation: Invocation) {
    let i = linear_index(invocation);
    if 4u * i >= p.total { return; }
    let v = x4[i];
    store4(i, select(v, vec4<f32>(0.0), v < vec4<f32>(0.0)));
}

@compute @workgroup_size(WG)
fn relu_backward4(invocation: Invocation) {
    let i = linear_index(invocation);
    if 4u * i >= p.total { return; }
    store4(i, select(vec4<f32>(0.0), grad_y4[i], x4[i] > vec4<f32>(0.0)));
}

@compute @workgroup_size(WG)
fn add_inplace4(invocation: Invocation) {
    let i = linear_index(invocation);
    if 4u * i >= p.total { return; }
    store4(i, y4[i] + x4[i]);
}

@compute @workgroup_size(WG)
fn add4(invocation: Invocation) {
    let i = linear_index(invocation);
    if 4u * i >= p.total { return; }
    store4(i, x4[i] + x2_4[i]);
}

@compute @workgroup_size(WG)
fn add_clamp4(invocation: Invocation) {
    let i = linear_index(invocation);
    if 4u * i >= p.total { return; }
    store4(i, activate4(x4[i] + x2_4[i], 2u, p.alpha, p.beta));
}

@compute @workgroup_size(WG)
fn hardtanh_forward4(invocation: Invocation) {
    let i = linear_index(invocation);
    if 4u * i >= p.total { return; }
    store4(i, activate4(x4[i], 2u, p.alpha, p.beta));
}

@compute @workgroup_size(WG)
fn hardtanh_backward4(invocation: Invocation) {
    let i = linear_index(invocation);
    if 4u * i >= p.total { return; }
    let v = x4[i];
    let inside = v > vec4<f32>(p.alpha) & v < vec4<f32>(p.beta);
    store4(i, select(vec4<f32>(0.0), grad_y4[i], inside));
}
