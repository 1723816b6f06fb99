// optim.wgsl: optimizer updates, four parameter elements per invocation, as PyTorch computes
// them.
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
//
// The buffers are read as vec4s (tensors hold whole texels; elements past `total` are kept
// as they are): on CPU adapters each load is a loop over the lanes, so a vec4 costs one loop
// where four scalars cost four. The step factors are read before any lane can leave, where
// a load the whole workgroup shares is a single one.

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
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> state1: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> state2: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> factors: StepFactors;
// The model's metrics, as words (shared/health.wgsl).
@group(0) @binding(6) var<storage, read_write> health: array<atomic<u32>>;

// Which of the four elements from 4i are parameters; the gradient there (zero elsewhere),
// marking the health word when one is not finite.
struct Elements {
    live: vec4<bool>,
    grad: vec4<f32>,
}

fn elements(i: u32) -> Elements {
    let live = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(o.total);
    let g = select(vec4<f32>(0.0), grad[i], live);
    let finite = is_finite_bits(g.x) && is_finite_bits(g.y) && is_finite_bits(g.z)
        && is_finite_bits(g.w);
    if !finite {
        let batch = u32(bitcast<f32>(atomicLoad(&health[BATCHES_WORD])));
        atomicMax(&health[HEALTH_WORD], health_mark(batch, o.index + 1u));
    }
    return Elements(live, g);
}

// Adam's moments after gradient g, stored; the step they take (before the learning rate).
fn adam_step(i: u32, e: Elements, g: vec4<f32>, f: StepFactors) -> vec4<f32> {
    let m = o.beta1 * state1[i] + (1.0 - o.beta1) * g;
    let v = o.beta2 * state2[i] + (1.0 - o.beta2) * g * g;
    state1[i] = select(state1[i], m, e.live);
    state2[i] = select(state2[i], v, e.live);
    return m / (sqrt(v) / sqrt(f.bc2) + o.eps);
}

@compute @workgroup_size(WG)
fn adam_update(invocation: Invocation) {
    let f = factors;
    let i = linear_index(invocation);
    if 4u * i >= o.total { return; }
    let e = elements(i);
    let p = param[i];
    let step = adam_step(i, e, e.grad + o.weight_decay * p, f);
    param[i] = select(p, p - o.lr * f.lr_scale / f.bc1 * step, e.live);
}

@compute @workgroup_size(WG)
fn adamw_update(invocation: Invocation) {
    let f = factors;
    let i = linear_index(invocation);
    if 4u * i >= o.total { return; }
    let e = elements(i);
    let lr = o.lr * f.lr_scale;
    let p = param[i];
    let step = adam_step(i, e, e.grad, f);
    param[i] = select(p, p * (1.0 - lr * o.weight_decay) - lr / f.bc1 * step, e.live);
}

@compute @workgroup_size(WG)
fn sgd_update(invocation: Invocation) {
    let f = factors;
    let i = linear_index(invocation);
    if 4u * i >= o.total { return; }
    let e = elements(i);
    let p = param[i];
    var g = e.grad + o.weight_decay * p;
    if o.momentum != 0.0 {
        g = o.momentum * state1[i] + g;
        state1[i] = select(state1[i], g, e.live);
    }
    param[i] = select(p, p - o.lr * f.lr_scale * g, e.live);
}
