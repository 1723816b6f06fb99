// batch_norm.wgsl: batch normalisation over (N, C, *) inputs, per channel.
//
// Training: batch_norm_stats (one workgroup per channel) computes the batch mean and the biased
// variance in one pass (Welford's update per invocation, Chan's merge across the workgroup),
// stores (mean, 1/sqrt(var + eps)) in `stats` for the apply kernel and the backward pass, and
// updates the running statistics as PyTorch does (unbiased variance). Eval:
// batch_norm_eval_stats turns the running statistics into the same (mean, invstd) pair, or
// batch_norm_fold into a scale and shift per channel that a convolution's epilogue applies.
// batch_norm_apply then writes y = (x - mean) * invstd * weight + bias (each optional).
//
// Backward, with xhat = (x - mean) * invstd and M = N * spatial: batch_norm_backward_reduce
// (one workgroup per channel) sums grad_y and grad_y * xhat, which are grad_bias and
// grad_weight; batch_norm_backward_apply writes, in training,
// grad_x = weight * invstd / M * (M * grad_y - sum(grad_y) - xhat * sum(grad_y * xhat)),
// and in evaluation (constant statistics) grad_x = grad_y * weight * invstd.
//
// Every workgroup serves one channel, so the per-channel values are workgroup-uniform loads
// read once: on CPU adapters a load whose address varies across lanes costs a scalar load per
// lane, and the element's own loads and store are then the only such ones. The element loops
// walk each sample's plane where planes are at least a workgroup wide (the apply kernels take
// the sample from grid z), else the channel's N * spatial elements in one flat loop, whose
// positions come from divmod24 (exact below 2^24 elements; larger tensors divide). No kernel
// divides integers per element: CPU adapters do that lane by lane.

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
    // A clamp fused behind the normalisation (its output is the node's): 0 none, 1 ReLU,
    // 2 hardtanh(lo, hi) (ReLU6 too). The backward kernels recompute the normalised value
    // to mask the gradient as relu_backward and hardtanh_backward do.
    clamp: u32,
    lo: f32,
    hi: f32,
    // batch_norm_fold: whether x holds the convolution's bias.
    conv_bias: u32,
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
var<workgroup> moments: array<vec3<f32>, STATS_WG>;

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

// (count, mean, sum of squared deviations) after adding v: Welford's update.
fn welford(m: vec3<f32>, v: f32) -> vec3<f32> {
    let count = m.x + 1.0;
    let d = v - m.y;
    let mean = m.y + d / count;
    return vec3<f32>(count, mean, m.z + d * (v - mean));
}

// The moments of two disjoint sets together (Chan, Golub and LeVeque).
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    if b.x == 0.0 {
        return a;
    }
    let count = a.x + b.x;
    let d = b.y - a.y;
    let f = b.x / count;
    return vec3<f32>(count, a.y + d * f, a.z + b.z + d * d * a.x * f);
}

@compute @workgroup_size(STATS_WG)
fn batch_norm_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wg.x;
    let count = p.n * p.spatial;
    var m = vec3<f32>(0.0);
    if p.spatial >= STATS_WG {
        for (var n = 0u; n < p.n; n++) {
            let plane = (n * p.c + ch) * p.spatial;
            for (var i = lid; i < p.spatial; i += STATS_WG) {
                m = welford(m, x[plane + i]);
            }
        }
    } else {
        for (var i = lid; i < count; i += STATS_WG) {
            m = welford(m, x[channel_index(ch, i)]);
        }
    }
    store_stats(ch, lid, m);
}

// Merges the workgroup's moments of channel ch and stores (mean, invstd) and the running
// statistics.
fn store_stats(ch: u32, lid: u32, m: vec3<f32>) {
    moments[lid] = m;
    workgroupBarrier();
    for (var stride = STATS_WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            moments[lid] = merge(moments[lid], moments[lid + stride]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        finish_stats(ch, moments[0]);
    }
}

// Stores channel ch's (mean, invstd) and running statistics from its moments m.
fn finish_stats(ch: u32, m: vec3<f32>) {
    let count = p.n * p.spatial;
    let mean = m.y;
    stats[ch] = mean;
    stats[p.c + ch] = inverseSqrt(m.z / f32(count) + p.eps);
    if p.has_running != 0u {
        let unbiased = m.z / f32(count - 1u);
        running_mean[ch] = (1.0 - p.momentum) * running_mean[ch] + p.momentum * mean;
        running_var[ch] = (1.0 - p.momentum) * running_var[ch] + p.momentum * unbiased;
    }
}

@compute @workgroup_size(WG)
fn batch_norm_eval_stats(invocation: Invocation) {
    let ch = linear_index(invocation);
    if ch >= p.c { return; }
    stats[ch] = running_mean[ch];
    stats[p.c + ch] = inverseSqrt(running_var[ch] + p.eps);
}

// batch_norm_fold: batch norm in evaluation as each channel's scale and shift for the
// convolution before it (y = conv * scale + shift, in its epilogue), with the convolution's bias
// (bound as x) folded in: scale = weight * invstd, shift = (conv_bias - mean) * scale + bias.
// Into `stats`: the C scales, then the C shifts.
@compute @workgroup_size(WG)
fn batch_norm_fold(invocation: Invocation) {
    let ch = linear_index(invocation);
    if ch >= p.c { return; }
    var scale = inverseSqrt(running_var[ch] + p.eps);
    if p.has_weight != 0u {
        scale *= weight[ch];
    }
    var centre = -running_mean[ch];
    if p.conv_bias != 0u {
        centre += x[ch];
    }
    var shift = centre * scale;
    if p.has_bias != 0u {
        shift += bias[ch];
    }
    stats[ch] = scale;
    stats[p.c + ch] = shift;
}

// The apply kernels' grid is (blocks, C, N) where planes are at least a workgroup wide (each
// workgroup's elements lie in its sample's plane), else (blocks, C, 1) over the channel's
// N * spatial elements. An invocation takes PER elements a workgroup apart, a count fixed per
// pipeline that amortises its per-channel loads (a load per lane on CPU adapters, as costly as
// an element's; a loop over blocks of them cost more than it saved): the host picks 1, 2, 4
// or 8 to fit a row's elements.
override PER: u32 = 8u;

// With SPREAD (a channel's N * spatial elements fewer than PER per lane of a workgroup: the
// later stages of a network), a 1-D grid of invocations each taking PER consecutive elements
// of one channel, the channels one after another: a channel's coefficients are loaded by
// ceil(count / PER) lanes instead of a workgroup's WG, most of which had one element each.
override SPREAD: bool = false;

// An apply invocation's channel, first element index and the step between its elements, for
// a row of `count` elements; the channel is C or past where the invocation has none.
fn apply_span(inv: Invocation, count: u32) -> vec3<u32> {
    if SPREAD {
        let t = divmod24(linear_index(inv), (count + PER - 1u) / PER);
        return vec3<u32>(t.x, t.y * PER, 1u);
    }
    return vec3<u32>(inv.wg.y, inv.wg.x * PER * WG + inv.lid, WG);
}

// Elements per grid row: a plane's, or the channel's.
fn element_count() -> u32 {
    return select(p.n * p.spatial, p.spatial, p.spatial >= WG);
}

// Where the apply kernels' element i of channel ch lies.
fn element_index(inv: Invocation, ch: u32, i: u32) -> u32 {
    if p.spatial >= WG {
        return (inv.wg.z * p.c + ch) * p.spatial + i;
    }
    return channel_index(ch, i);
}

@compute @workgroup_size(WG)
fn batch_norm_apply(inv: Invocation) {
    let end = element_count();
    let span = apply_span(inv, end);
    let ch = span.x;
    if ch >= p.c { return; }
    let k = apply_coefficients(ch);
    for (var j = 0u; j < PER; j++) {
        let i = span.y + j * span.z;
        if i < end {
            let at = element_index(inv, ch, i);
            y[at] = clamp1((x[at] - k.x) * k.y + k.z);
        }
    }
}

// The fused clamp (see BnParams) of normalised values v, as relu_forward and
// hardtanh_forward: NaN stays NaN.
fn clamp4(v: vec4<f32>) -> vec4<f32> {
    return activate4(v, p.clamp, p.lo, p.hi);
}

// The gradient g of the fused clamp's output where its input (the normalised value) is v.
fn unclamp4(g: vec4<f32>, v: vec4<f32>) -> vec4<f32> {
    if p.clamp == 1u {
        return select(vec4<f32>(0.0), g, v > vec4<f32>(0.0));
    }
    if p.clamp == 2u {
        return select(vec4<f32>(0.0), g, v > vec4<f32>(p.lo) & v < vec4<f32>(p.hi));
    }
    return g;
}

fn clamp1(v: f32) -> f32 {
    return clamp4(vec4<f32>(v)).x;
}

fn unclamp1(g: f32, v: f32) -> f32 {
    return unclamp4(vec4<f32>(g), vec4<f32>(v)).x;
}

// (mean, scale, shift) of channel ch: y = (x - mean) * scale + shift.
fn apply_coefficients(ch: u32) -> vec3<f32> {
    var scale = stats[p.c + ch];
    if p.has_weight != 0u {
        scale *= weight[ch];
    }
    var shift = 0.0;
    if p.has_bias != 0u {
        shift = bias[ch];
    }
    return vec3<f32>(stats[ch], scale, shift);
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
    let k = apply_coefficients(ch);
    let mean = k.x;
    let invstd = stats[p.c + ch];
    var sg = 0.0;
    var sgx = 0.0;
    if p.spatial >= STATS_WG {
        for (var n = 0u; n < p.n; n++) {
            let plane = (n * p.c + ch) * p.spatial;
            for (var i = lid; i < p.spatial; i += STATS_WG) {
                let xv = x[plane + i];
                let g = unclamp1(grad_y[plane + i], (xv - mean) * k.y + k.z);
                sg += g;
                sgx += g * (xv - mean) * invstd;
            }
        }
    } else {
        for (var i = lid; i < count; i += STATS_WG) {
            let at = channel_index(ch, i);
            let xv = x[at];
            let g = unclamp1(grad_y[at], (xv - mean) * k.y + k.z);
            sg += g;
            sgx += g * (xv - mean) * invstd;
        }
    }
    store_sums(ch, lid, sg, sgx);
}

// Adds up the workgroup's (sum(grad_y), sum(grad_y * xhat)) of channel ch and stores them.
fn store_sums(ch: u32, lid: u32, sg: f32, sgx: f32) {
    let total_g = workgroup_sum(lid, sg);
    let total_gx = workgroup_sum(lid, sgx);
    if lid == 0u {
        sums[ch] = total_g;
        sums[p.c + ch] = total_gx;
    }
}

// grad_x = a * grad_y + b + c * (x - mean), with the coefficients per channel.
@compute @workgroup_size(WG)
fn batch_norm_backward_apply(inv: Invocation) {
    let end = element_count();
    let span = apply_span(inv, end);
    let ch = span.x;
    if ch >= p.c { return; }
    let k = backward_coefficients(ch);
    let f = apply_coefficients(ch);
    for (var j = 0u; j < PER; j++) {
        let i = span.y + j * span.z;
        if i < end {
            let at = element_index(inv, ch, i);
            let d = x[at] - k.x;
            grad_x[at] = k.y * unclamp1(grad_y[at], d * f.y + f.z) + k.z + k.w * d;
        }
    }
}

// (mean, a, b, c) of channel ch for batch_norm_backward_apply.
fn backward_coefficients(ch: u32) -> vec4<f32> {
    let invstd = stats[p.c + ch];
    var a = invstd;
    if p.has_weight != 0u {
        a *= weight[ch];
    }
    var b = 0.0;
    var c = 0.0;
    if p.training != 0u {
        let m = f32(p.n * p.spatial);
        b = -a / m * sums[ch];
        c = -a / m * sums[p.c + ch] * invstd;
    }
    return vec4<f32>(stats[ch], a, b, c);
}

// The vec4 variants, for planes of a multiple of four values (so a quad never straddles two):
// the same sums and stores through x4, y4, grad_y4 and grad_x4, bound to the same buffers as
// x, y, grad_y and grad_x, four values per load (one per-lane loop on CPU adapters, where
// four scalars take four). `spatial` still counts values; a plane holds spatial / 4 quads,
// and the apply kernels' grid counts quads (see `quad_count`).
@group(0) @binding(11) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> grad_y4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read_write> grad_x4: array<vec4<f32>>;

// Where quad q (over the channel's N * spatial / 4) of channel ch lies, in quads.
fn channel_quad(ch: u32, q: u32) -> u32 {
    let quads = p.spatial / 4u;
    var at = vec2<u32>(q / quads, q % quads);
    if p.total < 16777216u {
        at = divmod24(q, quads);
    }
    return (at.x * p.c + ch) * quads + at.y;
}

// The moments after adding the four values of v.
fn welford4(m: vec3<f32>, v: vec4<f32>) -> vec3<f32> {
    let mean = (v.x + v.y + v.z + v.w) * 0.25;
    let d = v - vec4<f32>(mean);
    return merge(m, vec3<f32>(4.0, mean, dot(d, d)));
}

@compute @workgroup_size(STATS_WG)
fn batch_norm_stats4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ch = wg.x;
    let quads = p.spatial / 4u;
    var m = vec3<f32>(0.0);
    if quads >= STATS_WG {
        for (var n = 0u; n < p.n; n++) {
            let plane = (n * p.c + ch) * quads;
            for (var i = lid; i < quads; i += STATS_WG) {
                m = welford4(m, x4[plane + i]);
            }
        }
    } else {
        for (var i = lid; i < p.n * quads; i += STATS_WG) {
            m = welford4(m, x4[channel_quad(ch, i)]);
        }
    }
    store_stats(ch, lid, m);
}

// The reductions for channels of few quads (the host's `LANE_QUADS`; ResNet's later stages in
// training at 64x64, 16 to 256 quads a channel): one invocation per channel (p.c of them) runs
// the channel's quads in order. A workgroup per channel left most of its 64 invocations idle
// and paid for a tree of seven barriers, each a switch between its SIMD groups on CPU
// adapters: 1.2 ms for 512 channels of 16 quads, where these take a few hundredths of that.
@compute @workgroup_size(WG)
fn batch_norm_stats4_lanes(inv: Invocation) {
    let ch = linear_index(inv);
    if ch >= p.c { return; }
    var m = vec3<f32>(0.0);
    for (var i = 0u; i < p.n * (p.spatial / 4u); i++) {
        m = welford4(m, x4[channel_quad(ch, i)]);
    }
    finish_stats(ch, m);
}

@compute @workgroup_size(WG)
fn batch_norm_backward_reduce4_lanes(inv: Invocation) {
    let ch = linear_index(inv);
    if ch >= p.c { return; }
    let s = grad_sums4(ch, 0u, 1u);
    sums[ch] = s.x;
    sums[p.c + ch] = s.y;
}

// Quads per grid row of the apply kernels: a plane's, or the channel's.
fn quad_count() -> u32 {
    let quads = p.spatial / 4u;
    return select(p.n * quads, quads, quads >= WG);
}

// Where the apply kernels' quad i of channel ch lies.
fn quad_index(inv: Invocation, ch: u32, i: u32) -> u32 {
    let quads = p.spatial / 4u;
    if quads >= WG {
        return (inv.wg.z * p.c + ch) * quads + i;
    }
    return channel_quad(ch, i);
}

@compute @workgroup_size(WG)
fn batch_norm_apply4(inv: Invocation) {
    let end = quad_count();
    let span = apply_span(inv, end);
    let ch = span.x;
    if ch >= p.c { return; }
    let k = apply_coefficients(ch);
    for (var j = 0u; j < PER; j++) {
        let i = span.y + j * span.z;
        if i < end {
            let at = quad_index(inv, ch, i);
            y4[at] = clamp4((x4[at] - k.x) * k.y + k.z);
        }
    }
}

@compute @workgroup_size(STATS_WG)
fn batch_norm_backward_reduce4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = grad_sums4(wg.x, lid, STATS_WG);
    store_sums(wg.x, lid, s.x, s.y);
}

// (sum(grad_y), sum(grad_y * xhat)) over channel ch's quads first, first + step, ...
fn grad_sums4(ch: u32, first: u32, step: u32) -> vec2<f32> {
    let k = apply_coefficients(ch);
    let invstd = stats[p.c + ch];
    var sg = 0.0;
    var sgx = 0.0;
    for (var i = first; i < p.n * (p.spatial / 4u); i += step) {
        let at = channel_quad(ch, i);
        let d = x4[at] - vec4<f32>(k.x);
        let g = unclamp4(grad_y4[at], d * k.y + k.z);
        sg += g.x + g.y + g.z + g.w;
        sgx += dot(g, d) * invstd;
    }
    return vec2<f32>(sg, sgx);
}

@compute @workgroup_size(WG)
fn batch_norm_backward_apply4(inv: Invocation) {
    let end = quad_count();
    let span = apply_span(inv, end);
    let ch = span.x;
    if ch >= p.c { return; }
    let k = backward_coefficients(ch);
    let f = apply_coefficients(ch);
    for (var j = 0u; j < PER; j++) {
        let i = span.y + j * span.z;
        if i < end {
            let at = quad_index(inv, ch, i);
            let d = x4[at] - vec4<f32>(k.x);
            grad_x4[at] = k.y * unclamp4(grad_y4[at], d * f.y + f.z) + k.z + k.w * d;
        }
    }
}
