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
//
// No kernel divides per element: CPU adapters divide integers lane by lane. The per-channel
// reductions walk each sample's plane in turn where planes are at least a workgroup wide, else
// the channel's elements in one flat loop; elements' positions come from divmod24 (exact below
// 2^24 elements; larger tensors divide).

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

// Small: on CPU adapters every barrier of the reductions switches between the workgroup's
// invocations, so fewer of them cost less; 64 still fills two GPU warps.
const STATS_WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: BnParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, STATS_WG>;

// The channel of flat element idx of an (N, C, spatial) tensor.
fn channel_of(idx: u32) -> u32 {
    if p.total < 16777216u {
        return divmod24(divmod24(idx, p.spatial).x, p.c).y;
    }
    return (idx / p.spatial) % p.c;
}

// Where element i of channel ch lies (i over N x spatial), for the flat loops.
fn channel_index(ch: u32, i: u32) -> u32 {
    var at = vec2<u32>(i / p.spatial, i % p.spatial);
    if p.total < 16777216u {
        at = divmod24(i, p.spatial);
    }
    return (at.x * p.c + ch) * p.spatial + at.y;
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
    let by_plane = p.spatial >= STATS_WG;
    var s = 0.0;
    if by_plane {
        for (var n = 0u; n < p.n; n++) {
            let plane = (n * p.c + ch) * p.spatial;
            for (var i = lid; i < p.spatial; i += STATS_WG) {
                s += x[plane + i];
            }
        }
    } else {
        for (var i = lid; i < count; i += STATS_WG) {
            s += x[channel_index(ch, i)];
        }
    }
    let mean = workgroup_sum(lid, s) / f32(count);
    var q = 0.0;
    if by_plane {
        for (var n = 0u; n < p.n; n++) {
            let plane = (n * p.c + ch) * p.spatial;
            for (var i = lid; i < p.spatial; i += STATS_WG) {
                let d = x[plane + i] - mean;
                q += d * d;
            }
        }
    } else {
        for (var i = lid; i < count; i += STATS_WG) {
            let d = x[channel_index(ch, i)] - mean;
            q += d * d;
        }
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
    let ch = channel_of(idx);
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
    if p.spatial >= STATS_WG {
        for (var n = 0u; n < p.n; n++) {
            let plane = (n * p.c + ch) * p.spatial;
            for (var i = lid; i < p.spatial; i += STATS_WG) {
                let g = grad_y[plane + i];
                sg += g;
                sgx += g * (x[plane + i] - mean) * invstd;
            }
        }
    } else {
        for (var i = lid; i < count; i += STATS_WG) {
            let at = channel_index(ch, i);
            let g = grad_y[at];
            sg += g;
            sgx += g * (x[at] - mean) * invstd;
        }
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
    let ch = channel_of(idx);
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
