// reduce.wgsl: sums that gradients need.
//
// channel_sum: x viewed as (N, C, S); y[c] = sum over n and s of x[n, c, s], one workgroup per
// channel (bias gradients of conv and linear). channel_sum_where: the same over the elements
// whose mask is >= 0 (a fused conv -> ReLU -> max-pool's bias gradient, from the pooled
// gradient and its argmax, -1 where the ReLU was off). batch_sum: x viewed as (B, L);
// y[j] = sum over b of x[b, j], one invocation per output (gradients of broadcast operands,
// and the host's channel sums with S = 1 over few rows: linear layers' biases).

struct ReduceParams {
    n: u32,
    c: u32,
    s: u32,
    // batch_sum: the outputs. The channel sums: 1 to add to y (a later chunk of samples), 0 to
    // write it.
    total: u32,
}

const SUM_WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<i32>;

var<workgroup> partial: array<f32, SUM_WG>;

@compute @workgroup_size(SUM_WG)
fn channel_sum(invocation: Invocation) {
    sum_channel(workgroup_index(invocation), invocation.lid, false);
}

@compute @workgroup_size(SUM_WG)
fn channel_sum_where(invocation: Invocation) {
    sum_channel(workgroup_index(invocation), invocation.lid, true);
}

// y[ch], one workgroup's sum (over the elements whose mask is >= 0 when `masked`). Both
// entries bind `mask` (channel_sum a placeholder).
fn sum_channel(ch: u32, lid: u32, masked: bool) {
    // Uniform across the workgroup, so the barriers below stay in uniform control flow.
    if ch >= p.c { return; }
    // Element i = (n, s) of the channel, stepped by SUM_WG without a division per element
    // (a per-lane integer division is a slow loop on CPU adapters).
    let step = vec2<u32>(SUM_WG / p.s, SUM_WG % p.s);
    var n = lid / p.s;
    var s = lid % p.s;
    var acc = 0.0;
    for (; n < p.n; n += step.x) {
        let at = (n * p.c + ch) * p.s + s;
        if masked {
            acc += select(0.0, x[at], mask[at] >= 0);
        } else {
            acc += x[at];
        }
        s += step.y;
        if s >= p.s {
            s -= p.s;
            n += 1u;
        }
    }
    // One barrier, then one invocation adds the partial sums up: on CPU adapters every barrier
    // switches between all of the workgroup's subgroups, which cost more than a tree saves.
    partial[lid] = acc;
    workgroupBarrier();
    if lid == 0u {
        var total = 0.0;
        for (var i = 0u; i < SUM_WG; i++) {
            total += partial[i];
        }
        if p.total != 0u {
            y[ch] += total;
        } else {
            y[ch] = total;
        }
    }
}

@compute @workgroup_size(WG)
fn batch_sum(invocation: Invocation) {
    let j = linear_index(invocation);
    if j >= p.total { return; }
    var acc = 0.0;
    for (var b = 0u; b < p.n; b++) {
        acc += x[b * p.total + j];
    }
    y[j] = acc;
}

// channel_sum_where_tex: channel_sum_where from flat texture copies of x and of the mask (i32),
// four values per load: on CPU adapters a storage-buffer load costs about 20 cycles per lane, a
// storage-texture load about as much for a whole texel. One workgroup of WG lanes per channel;
// lane l sums the channel's plane in samples l, l + WG, ..., a texel at a time, leaving out
// the values of the texels at either end that belong to other planes.
@group(0) @binding(4) var x_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(5) var mask_tex: texture_storage_2d<rgba32sint, read>;

var<workgroup> partial_tex: array<f32, WG>;

@compute @workgroup_size(WG)
fn channel_sum_where_tex(invocation: Invocation) {
    let ch = workgroup_index(invocation);
    if ch >= p.c { return; }
    var acc = vec4<f32>(0.0);
    for (var n = invocation.lid; n < p.n; n += WG) {
        let begin = (n * p.c + ch) * p.s;
        let end = begin + p.s;
        for (var q = begin / 4u; q * 4u < end; q++) {
            let at = flat_xy(q);
            let i = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
            let inside = (i >= vec4<u32>(begin)) & (i < vec4<u32>(end));
            let keep = inside & (textureLoad(mask_tex, at) >= vec4<i32>(0));
            acc += select(vec4<f32>(0.0), textureLoad(x_tex, at), keep);
        }
    }
    partial_tex[invocation.lid] = acc.x + acc.y + acc.z + acc.w;
    workgroupBarrier();
    if invocation.lid == 0u {
        var total = 0.0;
        for (var i = 0u; i < WG; i++) {
            total += partial_tex[i];
        }
        y[ch] = total;
    }
}
