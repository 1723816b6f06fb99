// batch_norm.wgsl: batch normalisation over (N, C, *) inputs, per channel.
//
// Training: batch_norm_stats (one workgroup per channel) computes the batch mean and the biased
// variance in two passes, stores (mean, 1/sqrt(var + eps)) in `stats` for the apply kernel and
// the backward pass, and updates the running statistics as PyTorch does (unbiased variance).
// Eval: batch_norm_eval_stats turns the running statistics into the same (mean, invstd) pair.
// batch_norm_apply then writes y = (x - mean) * invstd * weight + bias (each optional).
//
// Backward, with xhat = (x - mean) * invstd and M = N * spatial: batch_norm_backward_reduce
// (one workgroup per channel) sums grad_y and grad_y * xhat, which are grad_bias and
// grad_weight; batch_norm_backward_apply writes, in training,
// grad_x = weight * invstd / M * (M * grad_y - sum(grad_y) - xhat * sum(grad_y * xhat)),
// and in evaluation (constant statistics) grad_x = grad_y * weight * invstd.

struct BnParams {
    n: u32,
    c: u32,
    spatial: u32,
    has_weight: u32,
    has_bias: u32,
    has_running: u32,
    eps: f32,
    momentum: f32,
    total: u32,
    training: u32,
}

const STATS_WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: BnParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, STATS_WG>;

fn channel_element(ch: u32, i: u32) -> f32 {
    let n = i / p.spatial;
    let s = i % p.spatial;
    return x[(n * p.c + ch) * p.spatial + s];
}

// Sum of `partial` over the workgroup; every invocation gets the result.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var stride = STATS_WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(STATS_WG)
fn batch_norm_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wg.x;
    let count = p.n * p.spatial;
    var s = 0.0;
    for (var i = lid; i < count; i += STATS_WG) {
        s += channel_element(ch, i);
    }
    let mean = workgroup_sum(lid, s) / f32(count);
    var q = 0.0;
    for (var i = lid; i < count; i += STATS_WG) {
        let d = channel_element(ch, i) - mean;
        q += d * d;
    }
    let var_biased = workgroup_sum(lid, q) / f32(count);
    if lid == 0u {
        stats[ch] = mean;
        stats[p.c + ch] = inverseSqrt(var_biased + p.eps);
        if p.has_running != 0u {
            let unbiased = var_biased * f32(count) / f32(count - 1u);
            running_mean[ch] = (1.0 - p.momentum) * running_mean[ch] + p.momentum * mean;
            running_var[ch] = (1.0 - p.momentum) * running_var[ch] + p.momentum * unbiased;
        }
    }
}

@compute @workgroup_size(WG)
fn batch_norm_eval_stats(invocation: Invocation) {
    let ch = linear_index(invocation);
    if ch >= p.c { return; }
    stats[ch] = running_mean[ch];
    stats[p.c + ch] = inverseSqrt(running_var[ch] + p.eps);
}

@compute @workgroup_size(WG)
fn batch_norm_apply(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let ch = (idx / p.spatial) % p.c;
    var v = (x[idx] - stats[ch]) * stats[p.c + ch];
    if p.has_weight != 0u {
        v *= weight[ch];
    }
    if p.has_bias != 0u {
        v += bias[ch];
    }
    y[idx] = v;
}

@group(0) @binding(8) var<storage, read> grad_y: array<f32>;
@group(0) @binding(9) var<storage, read_write> grad_x: array<f32>;
// (sum(grad_y), sum(grad_y * xhat)) per channel: grad_bias then grad_weight.
@group(0) @binding(10) var<storage, read_write> sums: array<f32>;

fn channel_index(ch: u32, i: u32) -> u32 {
    return ((i / p.spatial) * p.c + ch) * p.spatial + i % p.spatial;
}

@compute @workgroup_size(STATS_WG)
fn batch_norm_backward_reduce(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wg.x;
    let count = p.n * p.spatial;
    let mean = stats[ch];
    let invstd = stats[p.c + ch];
    var sg = 0.0;
    var sgx = 0.0;
    for (var i = lid; i < count; i += STATS_WG) {
        let at = channel_index(ch, i);
        let g = grad_y[at];
        sg += g;
        sgx += g * (x[at] - mean) * invstd;
    }
    let total_g = workgroup_sum(lid, sg);
    let total_gx = workgroup_sum(lid, sgx);
    if lid == 0u {
        sums[ch] = total_g;
        sums[p.c + ch] = total_gx;
    }
}

@compute @workgroup_size(WG)
fn batch_norm_backward_apply(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let ch = (idx / p.spatial) % p.c;
    let invstd = stats[p.c + ch];
    var scale = invstd;
    if p.has_weight != 0u {
        scale *= weight[ch];
    }
    if p.training == 0u {
        grad_x[idx] = grad_y[idx] * scale;
        return;
    }
    let m = f32(p.n * p.spatial);
    let xhat = (x[idx] - stats[ch]) * invstd;
    grad_x[idx] = scale / m * (m * grad_y[idx] - sums[ch] - xhat * sums[p.c + ch]);
}
