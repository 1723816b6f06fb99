// augment.wgsl: the training batch's random crop with padding and horizontal flip, per sample.
//
// As torchvision's RandomCrop(size, padding=pad) then RandomHorizontalFlip() on each image:
// the image, padded by `pad` on every side with its channel's fill (the normalised value of a
// black pixel), is cropped at offset (pad + dy, pad + dx), dy and dx uniform in [-pad, pad],
// then mirrored with probability 1/2. The choices hash (step seed, sample): reproducible from
// the seed, the same for every element of a sample, and new every step (the host rewrites
// `seed` before each submission, as for dropout).

struct AugmentParams {
    total: u32,
    channels: u32,
    height: u32,
    width: u32,
    pad: u32,
    flip: u32,
}

@group(0) @binding(0) var<uniform> p: AugmentParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// [seed]: rewritten by the host before each step.
@group(0) @binding(3) var<storage, read> seed: array<u32>;
// One value per channel for the padding.
@group(0) @binding(4) var<storage, read> fill: array<f32>;

// PCG's output permutation: a well-mixed 32-bit hash (gconv-ref's augment uses the same).
fn hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

@compute @workgroup_size(WG)
fn augment(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let plane = p.height * p.width;
    let n = idx / (p.channels * plane);
    let c = (idx / plane) % p.channels;
    let oy = (idx % plane) / p.width;
    var ox = idx % p.width;
    let h = hash(seed[0] ^ hash(n + 0x632be5abu));
    let span = 2u * p.pad + 1u;
    let dy = i32(hash(h) % span) - i32(p.pad);
    let dx = i32(hash(h ^ 0x5bd1e995u) % span) - i32(p.pad);
    if p.flip != 0u && (h & 1u) == 1u {
        ox = p.width - 1u - ox;
    }
    let sy = i32(oy) + dy;
    let sx = i32(ox) + dx;
    if sy < 0 || sx < 0 || sy >= i32(p.height) || sx >= i32(p.width) {
        y[idx] = fill[c];
        return;
    }
    y[idx] = x[(n * p.channels + c) * plane + u32(sy) * p.width + u32(sx)];
}
