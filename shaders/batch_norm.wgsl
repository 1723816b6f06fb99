// batch_norm.wgsl: batch normalisation over (N, C, *) inputs, per channel.
//
// Training: batch_norm_stats (one workgroup per channel) computes the batch mean and the biased
// variance in two passes, stores (mean, 1/sqrt(var + eps)) in `stats` for the apply kernel and
// the backward pass, and updates the running statistics as PyTorch does (unbiased variance).
// Eval: batch_norm_eval_stats turns the running statistics into the same (mean, invstd) pair.
// batch_norm_apply then writes y = (x - mean) * invstd * weight + bias (each optional).

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
fn batch_norm_eval_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = linear_index(wg, nwg, lid);
    if ch >= p.c {
        return;
    }
    stats[ch] = running_mean[ch];
    stats[p.c + ch] = inverseSqrt(running_var[ch] + p.eps);
}

@compute @workgroup_size(WG)
fn batch_norm_apply(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
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
