// softmax.wgsl: softmax and log_softmax along one dimension, forward and backward.
//
// The tensor is viewed as (outer, dim, inner); one invocation owns one (outer, inner) row of
// `dim` elements. Forward: three passes over it (max, sum of exp(x - max), write). Backward,
// from the forward output y: softmax: grad_x = y * (grad_y - sum(grad_y * y));
// log_softmax: grad_x = grad_y - exp(y) * sum(grad_y).

struct SoftmaxParams {
    outer: u32,
    dim: u32,
    inner: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> p: SoftmaxParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

struct Row {
    base: u32,
    max: f32,
    sum: f32,
}

fn row_stats(row: u32) -> Row {
    var r: Row;
    r.base = (row / p.inner) * p.dim * p.inner + row % p.inner;
    r.max = x[r.base];
    for (var i = 1u; i < p.dim; i++) {
        r.max = max(r.max, x[r.base + i * p.inner]);
    }
    r.sum = 0.0;
    for (var i = 0u; i < p.dim; i++) {
        r.sum += exp(x[r.base + i * p.inner] - r.max);
    }
    return r;
}

@compute @workgroup_size(WG)
fn softmax_forward(invocation: Invocation) {
    let row = linear_index(invocation);
    if row >= p.rows { return; }
    let r = row_stats(row);
    let inv = 1.0 / r.sum;
    for (var i = 0u; i < p.dim; i++) {
        let at = r.base + i * p.inner;
        y[at] = exp(x[at] - r.max) * inv;
    }
}

@compute @workgroup_size(WG)
fn log_softmax_forward(invocation: Invocation) {
    let row = linear_index(invocation);
    if row >= p.rows { return; }
    let r = row_stats(row);
    let lse = r.max + log(r.sum);
    for (var i = 0u; i < p.dim; i++) {
        let at = r.base + i * p.inner;
        y[at] = x[at] - lse;
    }
}

@group(0) @binding(3) var<storage, read> grad_y: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_x: array<f32>;

fn row_base(row: u32) -> u32 {
    return (row / p.inner) * p.dim * p.inner + row % p.inner;
}

// `x` holds the forward output y here.
@compute @workgroup_size(WG)
fn softmax_backward(invocation: Invocation) {
    let row = linear_index(invocation);
    if row >= p.rows { return; }
    let base = row_base(row);
    var dot = 0.0;
    for (var i = 0u; i < p.dim; i++) {
        let at = base + i * p.inner;
        dot += grad_y[at] * x[at];
    }
    for (var i = 0u; i < p.dim; i++) {
        let at = base + i * p.inner;
        grad_x[at] = x[at] * (grad_y[at] - dot);
    }
}

@compute @workgroup_size(WG)
fn log_softmax_backward(invocation: Invocation) {
    let row = linear_index(invocation);
    if row >= p.rows { return; }
    let base = row_base(row);
    var sum = 0.0;
    for (var i = 0u; i < p.dim; i++) {
        sum += grad_y[base + i * p.inner];
    }
    for (var i = 0u; i < p.dim; i++) {
        let at = base + i * p.inner;
        grad_x[at] = grad_y[at] - exp(x[at]) * sum;
    }
}
