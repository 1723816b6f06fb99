// loss.wgsl: cross-entropy from logits (N, C) and integer class targets (N).
//
// cross_entropy_rows: loss_i = logsumexp(x_i) - (1 - e) x_i[t_i] - e mean_j x_i[j] per sample,
// e the label smoothing (PyTorch's: the target's share 1 - e, every class's e / C); 0 where t_i
// is the ignore_index, NaN where t_i is out of range. cross_entropy_reduce: one workgroup sums
// them and divides by the number of samples not ignored (reduction "mean") or not ("sum").
// cross_entropy_backward: grad_x[i, j] = g_i * (softmax(x_i)[j] - (1 - e) [j == t_i] - e / C),
// where g_i is
// the upstream gradient (per sample for "none"), divided by the count for "mean", and 0 for
// ignored samples.
// Rows of many classes run on the `_wide` variants at the end, a workgroup per row
// (ops/loss.rs chooses).

struct LossParams {
    n: u32,
    c: u32,
    ignore_index: i32,
    // 0: none, 1: mean, 2: sum.
    reduction: u32,
    label_smoothing: f32,
}

const REDUCE_WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> target_class: array<i32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn cross_entropy_rows(invocation: Invocation) {
    let i = linear_index(invocation);
    if i >= p.n { return; }
    let t = target_class[i];
    if t == p.ignore_index {
        losses[i] = 0.0;
        return;
    }
    if t < 0 || t >= i32(p.c) {
        losses[i] = bitcast<f32>(0x7fc00000u); // NaN: the target names no class
        return;
    }
    let base = i * p.c;
    var m = logits[base];
    for (var j = 1u; j < p.c; j++) {
        m = max(m, logits[base + j]);
    }
    var s = 0.0;
    var total = 0.0;
    for (var j = 0u; j < p.c; j++) {
        s += exp(logits[base + j] - m);
        total += logits[base + j];
    }
    let e = p.label_smoothing;
    losses[i] = m + log(s) - (1.0 - e) * logits[base + u32(t)] - e * total / f32(p.c);
}

var<workgroup> partial_sum: array<f32, REDUCE_WG>;
var<workgroup> partial_count: array<f32, REDUCE_WG>;
var<workgroup> partial_extra: array<f32, REDUCE_WG>;
// The wide metrics kernel's argmax candidates.
var<workgroup> partial_index: array<u32, REDUCE_WG>;

// The sums of v's components over the first `lanes` lanes (a power of two), for every lane.
// Called in uniform control flow.
fn sum_lanes(lid: u32, lanes: u32, v: vec3<f32>) -> vec3<f32> {
    partial_sum[lid] = v.x;
    partial_count[lid] = v.y;
    partial_extra[lid] = v.z;
    workgroupBarrier();
    for (var stride = lanes / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial_sum[lid] += partial_sum[lid + stride];
            partial_count[lid] += partial_count[lid + stride];
            partial_extra[lid] += partial_extra[lid + stride];
        }
        workgroupBarrier();
    }
    let r = vec3<f32>(partial_sum[0], partial_count[0], partial_extra[0]);
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(REDUCE_WG)
fn cross_entropy_reduce(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    var cnt = 0.0;
    for (var i = lid; i < p.n; i += REDUCE_WG) {
        s += losses[i];
        if target_class[i] != p.ignore_index {
            cnt += 1.0;
        }
    }
    let total = sum_lanes(lid, REDUCE_WG, vec3<f32>(s, cnt, 0.0));
    if lid == 0u {
        if p.reduction == 1u {
            out[0] = total.x / total.y;
        } else {
            out[0] = total.x;
        }
    }
}

@group(0) @binding(5) var<storage, read> grad_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_logits: array<f32>;

@compute @workgroup_size(WG)
fn cross_entropy_backward(invocation: Invocation) {
    let i = linear_index(invocation);
    if i >= p.n { return; }
    let base = i * p.c;
    let t = target_class[i];
    if t == p.ignore_index {
        for (var j = 0u; j < p.c; j++) {
            grad_logits[base + j] = 0.0;
        }
        return;
    }
    let g = upstream_gradient(i);
    var m = logits[base];
    for (var j = 1u; j < p.c; j++) {
        m = max(m, logits[base + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < p.c; j++) {
        s += exp(logits[base + j] - m);
    }
    for (var j = 0u; j < p.c; j++) {
        grad_logits[base + j] = g * logit_gradient(logits[base + j], m, s, j, t);
    }
}

// Sample i's upstream gradient: its own for "none", the scalar's for "sum", divided by the
// number of samples not ignored (in `out`, from cross_entropy_count) for "mean".
fn upstream_gradient(i: u32) -> f32 {
    if p.reduction == 0u {
        return grad_out[i];
    } else if p.reduction == 1u {
        return grad_out[0] / out[0];
    }
    return grad_out[0];
}

// d loss / d x_j for logit v = x_j of a row with maximum m and softmax sum s, target t.
fn logit_gradient(v: f32, m: f32, s: f32, j: u32, t: i32) -> f32 {
    var d = exp(v - m) / s - p.label_smoothing / f32(p.c);
    if i32(j) == t {
        d -= 1.0 - p.label_smoothing;
    }
    return d;
}

// out[0] = the number of samples whose target is not ignore_index (one workgroup).
@compute @workgroup_size(REDUCE_WG)
fn cross_entropy_count(@builtin(local_invocation_index) lid: u32) {
    var cnt = 0.0;
    for (var i = lid; i < p.n; i += REDUCE_WG) {
        if target_class[i] != p.ignore_index {
            cnt += 1.0;
        }
    }
    let total = sum_lanes(lid, REDUCE_WG, vec3<f32>(cnt, 0.0, 0.0));
    if lid == 0u {
        out[0] = total.x;
    }
}

// The running totals a training loop reports, as 32-bit words (shared/health.wgsl): the sum
// of losses, correct predictions, samples and batches as f32 bits, then the health word.
@group(0) @binding(7) var<storage, read_write> metrics: array<u32>;

fn add_to_metric(word: u32, v: f32) {
    metrics[word] = bitcast<u32>(bitcast<f32>(metrics[word]) + v);
}

// Adds this batch's loss sum, correct predictions (argmax of the logits equals the target;
// the first maximum wins ties), sample count and 1 (a batch) to `metrics` (one workgroup),
// and marks the health word when the loss sum is not finite. Ignored samples count nowhere.
@compute @workgroup_size(REDUCE_WG)
fn cross_entropy_metrics(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    var correct = 0.0;
    var samples = 0.0;
    for (var i = lid; i < p.n; i += REDUCE_WG) {
        let t = target_class[i];
        if t == p.ignore_index {
            continue;
        }
        s += losses[i];
        samples += 1.0;
        let base = i * p.c;
        var best = 0u;
        for (var j = 1u; j < p.c; j++) {
            if logits[base + j] > logits[base + best] {
                best = j;
            }
        }
        if i32(best) == t {
            correct += 1.0;
        }
    }
    add_metrics(lid, s, correct, samples);
}

// The tail of both metrics kernels: sums every lane's loss sum, correct count and samples, and
// lane 0 adds them and one batch to `metrics`.
fn add_metrics(lid: u32, s: f32, correct: f32, samples: f32) {
    let total = sum_lanes(lid, REDUCE_WG, vec3<f32>(s, correct, samples));
    if lid == 0u {
        add_to_metric(0u, total.x);
        add_to_metric(1u, total.y);
        add_to_metric(2u, total.z);
        add_to_metric(BATCHES_WORD, 1.0);
        if !is_finite_bits(total.x) {
            let batch = u32(bitcast<f32>(metrics[BATCHES_WORD]));
            metrics[HEALTH_WORD] = max(metrics[HEALTH_WORD], health_mark(batch, 0u));
        }
    }
}

// ---- Wide rows: a workgroup per row ----
//
// With many classes (C >= 128, an ImageNet head's 1000) one invocation's walk along a row is a
// long chain of loads that keeps a GPU idle; these variants share each row among ROW_WG lanes
// and combine the lanes' partial results in workgroup memory. Same results as the kernels above
// (sums in another order).

const ROW_WG: u32 = 64u;

// The maximum of `v` over the ROW_WG lanes.
fn row_max(lid: u32, v: f32) -> f32 {
    partial_sum[lid] = v;
    workgroupBarrier();
    for (var stride = ROW_WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial_sum[lid] = max(partial_sum[lid], partial_sum[lid + stride]);
        }
        workgroupBarrier();
    }
    let m = partial_sum[0];
    workgroupBarrier();
    return m;
}

// Row i's maximum, softmax denominator sum_j exp(x_j - max) and sum of its logits.
fn row_stats(i: u32, lid: u32) -> vec3<f32> {
    let base = i * p.c;
    var m = logits[base + min(lid, p.c - 1u)];
    for (var j = lid; j < p.c; j += ROW_WG) {
        m = max(m, logits[base + j]);
    }
    m = row_max(lid, m);
    var sums = vec2<f32>(0.0);
    for (var j = lid; j < p.c; j += ROW_WG) {
        let v = logits[base + j];
        sums += vec2<f32>(exp(v - m), v);
    }
    return vec3<f32>(m, sum_lanes(lid, ROW_WG, vec3<f32>(sums, 0.0)).xy);
}

// cross_entropy_rows with workgroup i on row i.
@compute @workgroup_size(ROW_WG)
fn cross_entropy_rows_wide(invocation: Invocation) {
    let i = workgroup_index(invocation);
    if i >= p.n { return; }
    let stats = row_stats(i, invocation.lid);
    if invocation.lid != 0u { return; }
    let t = target_class[i];
    if t == p.ignore_index {
        losses[i] = 0.0;
    } else if t < 0 || t >= i32(p.c) {
        losses[i] = bitcast<f32>(0x7fc00000u); // NaN: the target names no class
    } else {
        let e = p.label_smoothing;
        let x_t = logits[i * p.c + u32(t)];
        losses[i] = stats.x + log(stats.y) - (1.0 - e) * x_t - e * stats.z / f32(p.c);
    }
}

// cross_entropy_backward with workgroup i on row i.
@compute @workgroup_size(ROW_WG)
fn cross_entropy_backward_wide(invocation: Invocation) {
    let i = workgroup_index(invocation);
    if i >= p.n { return; }
    let lid = invocation.lid;
    let stats = row_stats(i, lid);
    let t = target_class[i];
    let g = select(upstream_gradient(i), 0.0, t == p.ignore_index);
    let base = i * p.c;
    for (var j = lid; j < p.c; j += ROW_WG) {
        grad_logits[base + j] = g * logit_gradient(logits[base + j], stats.x, stats.y, j, t);
    }
}

// cross_entropy_metrics for wide rows (one workgroup): groups of METRIC_LANES lanes take a row
// each in turn and find its first largest logit together.
const METRIC_LANES: u32 = 16u;

@compute @workgroup_size(REDUCE_WG)
fn cross_entropy_metrics_wide(@builtin(local_invocation_index) lid: u32) {
    let groups = REDUCE_WG / METRIC_LANES;
    let group = lid / METRIC_LANES;
    let lane = lid % METRIC_LANES;
    var s = 0.0;
    var correct = 0.0;
    var samples = 0.0;
    for (var first = 0u; first < p.n; first += groups) {
        let i = first + group;
        var best = 0.0;
        var best_j = 0u;
        if i < p.n {
            let base = i * p.c;
            best_j = min(lane, p.c - 1u);
            best = logits[base + best_j];
            for (var j = lane; j < p.c; j += METRIC_LANES) {
                if logits[base + j] > best {
                    best = logits[base + j];
                    best_j = j;
                }
            }
        }
        partial_sum[lid] = best;
        partial_index[lid] = best_j;
        workgroupBarrier();
        for (var stride = METRIC_LANES / 2u; stride > 0u; stride /= 2u) {
            if lane < stride {
                let v = partial_sum[lid + stride];
                let j = partial_index[lid + stride];
                if v > partial_sum[lid] || (v == partial_sum[lid] && j < partial_index[lid]) {
                    partial_sum[lid] = v;
                    partial_index[lid] = j;
                }
            }
            workgroupBarrier();
        }
        if lane == 0u && i < p.n && target_class[i] != p.ignore_index {
            s += losses[i];
            samples += 1.0;
            if i32(partial_index[lid]) == target_class[i] {
                correct += 1.0;
            }
        }
        workgroupBarrier();
    }
    add_metrics(lid, s, correct, samples);
}
