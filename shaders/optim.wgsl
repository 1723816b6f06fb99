// optim.wgsl: optimizer updates, one invocation per parameter element, as PyTorch computes them.
//
// adam_update (torch.optim.Adam, amsgrad off): g += wd * p; m = b1 m + (1 - b1) g;
// v = b2 v + (1 - b2) g^2; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), with the bias
// corrections bc1 = 1 - b1^t, bc2 = 1 - b2^t of step t.
// adamw_update (torch.optim.AdamW): p *= 1 - lr * wd first (decoupled decay), then Adam's
// update with the plain gradient.
// sgd_update (torch.optim.SGD, dampening 0, not Nesterov): g += wd * p; with momentum,
// buf = mu buf + g (buf starts at 0, so the first step gives buf = g); p -= lr * buf.
// The step-dependent factors live in a storage buffer the host rewrites before each step:
// Adam's bias corrections and the learning rate's factor (a schedule's), so lr above is the
// optimizer's times that factor.
// Both mark the metrics' health word (shared/health.wgsl) when a gradient element is not
// finite; the update itself is PyTorch's either way.

struct OptimParams {
    total: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    momentum: f32,
    // The parameter's index in the model, for the health word.
    index: u32,
}

// Rewritten by the host before each step.
struct StepFactors {
    bc1: f32,
    bc2: f32,
    lr_scale: f32,
    unused: f32,
}

@group(0) @binding(0) var<uniform> o: OptimParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> state1: array<f32>;
@group(0) @binding(4) var<storage, read_write> state2: array<f32>;
@group(0) @binding(5) var<storage, read> factors: StepFactors;
// The model's metrics, as words (shared/health.wgsl).
@group(0) @binding(6) var<storage, read_write> health: array<atomic<u32>>;

// Marks the health word when gradient element g is not finite.
fn check_gradient(g: f32) {
    if !is_finite_bits(g) {
        let batch = u32(bitcast<f32>(atomicLoad(&health[BATCHES_WORD])));
        atomicMax(&health[HEALTH_WORD], health_mark(batch, o.index + 1u));
    }
}

@compute @workgroup_size(WG)
fn adam_update(invocation: Invocation) {
    let i = linear_index(invocation);
    if i >= o.total { return; }
    check_gradient(grad[i]);
    let g = grad[i] + o.weight_decay * param[i];
    let m = o.beta1 * state1[i] + (1.0 - o.beta1) * g;
    let v = o.beta2 * state2[i] + (1.0 - o.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let denom = sqrt(v) / sqrt(factors.bc2) + o.eps;
    param[i] -= o.lr * factors.lr_scale / factors.bc1 * m / denom;
}

@compute @workgroup_size(WG)
fn adamw_update(invocation: Invocation) {
    let i = linear_index(invocation);
    if i >= o.total { return; }
    check_gradient(grad[i]);
    let lr = o.lr * factors.lr_scale;
    let g = grad[i];
    let m = o.beta1 * state1[i] + (1.0 - o.beta1) * g;
    let v = o.beta2 * state2[i] + (1.0 - o.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let denom = sqrt(v) / sqrt(factors.bc2) + o.eps;
    param[i] = param[i] * (1.0 - lr * o.weight_decay) - lr / factors.bc1 * m / denom;
}

@compute @workgroup_size(WG)
fn sgd_update(invocation: Invocation) {
    let i = linear_index(invocation);
    if i >= o.total { return; }
    check_gradient(grad[i]);
    var g = grad[i] + o.weight_decay * param[i];
    if o.momentum != 0.0 {
        g = o.momentum * state1[i] + g;
        state1[i] = g;
    }
    param[i] -= o.lr * factors.lr_scale * g;
}
