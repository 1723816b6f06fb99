// dropout.wgsl: dropout with a seeded GPU mask, forward and backward.
//
// Training zeroes each element with probability p and scales the rest by 1/(1-p), as PyTorch.
// The mask is a counter-based hash of (seed, layer, element): the backward pass recomputes the
// same mask instead of storing it, and the seed changes every step (the host rewrites `seed`
// in a small storage buffer before each submission, so a recorded step replays unchanged).

struct DropoutParams {
    total: u32,
    // Probability of zeroing an element.
    p: f32,
    // Distinguishes the dropout layers of one model.
    layer: u32,
}

@group(0) @binding(0) var<uniform> params: DropoutParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// [seed]: rewritten by the host before each step.
@group(0) @binding(3) var<storage, read> seed: array<u32>;

// PCG's output permutation: a well-mixed 32-bit hash.
fn hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// The mask's scale for element idx: 0 (dropped) or 1/(1-p) (kept).
fn mask(idx: u32) -> f32 {
    let h = hash(idx ^ hash(seed[0] ^ hash(params.layer + 0x9e3779b9u)));
    // The top 24 bits as a uniform number in [0, 1).
    let u = f32(h >> 8u) / 16777216.0;
    return select(0.0, 1.0 / (1.0 - params.p), u >= params.p);
}

// y = x * mask (forward), or grad_x = grad_y * mask (backward: bind grad_y as x, grad_x as y).
@compute @workgroup_size(WG)
fn dropout_apply(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= params.total { return; }
    y[idx] = x[idx] * mask(idx);
}
