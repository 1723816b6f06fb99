// shared/health.wgsl: where a model's running metrics record the first value that was not
// finite, so a training loop learns of divergence with the metrics it reads anyway.
//
// The metrics buffer holds eight 32-bit words: 0 the sum of the losses, 1 the correct
// predictions, 2 the samples, 3 the batches (f32 bits, since the host last reset them), and 4
// the health word: 0 while every checked value was finite, else HEALTH_NONE - key for the
// smallest key seen, key = min(batch, 2^20 - 1) << 12 | min(what, 4095), where `batch` is the
// batch's 1-based index since the reset and `what` is 0 for the loss, 1 + i for the gradient
// of parameter i. atomicMax over the complements keeps the smallest key, so the report names
// the first batch and, within it, the loss before any gradient and then the first parameter.

const BATCHES_WORD: u32 = 3u;
const HEALTH_WORD: u32 = 4u;
const HEALTH_NONE: u32 = 0xffffffffu;

// Whether v is finite, from its bits: a comparison such as v != v may be folded away by
// compilers that assume no NaNs.
fn is_finite_bits(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// The health word's value for `what` going non-finite in batch `batch`.
fn health_mark(batch: u32, what: u32) -> u32 {
    return HEALTH_NONE - ((min(batch, 0xfffffu) << 12u) | min(what, 4095u));
}
