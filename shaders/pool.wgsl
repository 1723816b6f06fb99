// pool.wgsl: max, average and adaptive pooling, forward and backward, for 1-D, 2-D and 3-D.
//
// Inputs are viewed as (N*C, D, H, W) planes; lower ranks have D (and H) = 1. Forward: one
// invocation per output element; max pooling also writes the argmax as PyTorch's
// `return_indices=True` does: the flat index d*H*W + h*W + w within the (n, c) plane.
// Backward: one invocation per input element gathers from every window that contains it
// (through the saved argmax for max pooling), so overlapping windows need no atomics.

struct PoolParams {
    planes: u32,
    in_d: u32,
    in_h: u32,
    in_w: u32,
    out_d: u32,
    out_h: u32,
    out_w: u32,
    k_d: u32,
    k_h: u32,
    k_w: u32,
    stride_d: u32,
    stride_h: u32,
    stride_w: u32,
    pad_d: u32,
    pad_h: u32,
    pad_w: u32,
    dil_d: u32,
    dil_h: u32,
    dil_w: u32,
    count_include_pad: u32,
    // 0: none; otherwise PyTorch's `divisor_override`.
    divisor_override: u32,
    total: u32,
    // max_pool_2x2_backward_packed: channels per sample and the chunk's first sample.
    channels: u32,
    sample_offset: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> indices: array<i32>;

struct OutPos {
    plane: u32,
    d: u32,
    h: u32,
    w: u32,
}

fn out_pos(idx: u32) -> OutPos {
    var r = idx;
    var o: OutPos;
    o.w = r % p.out_w;
    r = r / p.out_w;
    o.h = r % p.out_h;
    r = r / p.out_h;
    o.d = r % p.out_d;
    o.plane = r / p.out_d;
    return o;
}

fn is_nan(v: f32) -> bool {
    // Test the bits: compilers may fold `v != v` away under fast-math assumptions.
    let bits = bitcast<u32>(v);
    return (bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0u;
}

// The first tap of a dilated window at or past 0, as PyTorch steps over the left padding.
fn first_tap(start: i32, dil: u32) -> i32 {
    var s = start;
    while s < 0 {
        s += i32(dil);
    }
    return s;
}

// PyTorch's rule, exactly: start from -inf with the index of the window's first tap inside
// the padding bound; take a value when it is greater (so the first maximum wins) or NaN (so the
// last NaN wins). A window that lies entirely in the padding yields -inf.
@compute @workgroup_size(WG)
fn max_pool_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let o = out_pos(idx);
    let plane = o.plane * p.in_d * p.in_h * p.in_w;
    let d0 = i32(o.d * p.stride_d) - i32(p.pad_d);
    let h0 = i32(o.h * p.stride_h) - i32(p.pad_h);
    let w0 = i32(o.w * p.stride_w) - i32(p.pad_w);
    var best = bitcast<f32>(0xff800000u); // -inf
    var best_i = (first_tap(d0, p.dil_d) * i32(p.in_h) + first_tap(h0, p.dil_h)) * i32(p.in_w)
        + first_tap(w0, p.dil_w);
    for (var kd = 0u; kd < p.k_d; kd++) {
        let id = d0 + i32(kd * p.dil_d);
        if id < 0 || id >= i32(p.in_d) {
            continue;
        }
        for (var kh = 0u; kh < p.k_h; kh++) {
            let ih = h0 + i32(kh * p.dil_h);
            if ih < 0 || ih >= i32(p.in_h) {
                continue;
            }
            for (var kw = 0u; kw < p.k_w; kw++) {
                let iw = w0 + i32(kw * p.dil_w);
                if iw < 0 || iw >= i32(p.in_w) {
                    continue;
                }
                let flat = (u32(id) * p.in_h + u32(ih)) * p.in_w + u32(iw);
                let v = x[plane + flat];
                if v > best || is_nan(v) {
                    best = v;
                    best_i = i32(flat);
                }
            }
        }
    }
    y[idx] = best;
    indices[idx] = best_i;
}

@compute @workgroup_size(WG)
fn avg_pool_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let o = out_pos(idx);
    let plane = o.plane * p.in_d * p.in_h * p.in_w;
    // The window, clipped to the padded input (this size is the count_include_pad divisor) ...
    var d0 = i32(o.d * p.stride_d) - i32(p.pad_d);
    var h0 = i32(o.h * p.stride_h) - i32(p.pad_h);
    var w0 = i32(o.w * p.stride_w) - i32(p.pad_w);
    var d1 = min(d0 + i32(p.k_d), i32(p.in_d + p.pad_d));
    var h1 = min(h0 + i32(p.k_h), i32(p.in_h + p.pad_h));
    var w1 = min(w0 + i32(p.k_w), i32(p.in_w + p.pad_w));
    let padded_count = (d1 - d0) * (h1 - h0) * (w1 - w0);
    // ... then to the input itself.
    d0 = max(d0, 0);
    h0 = max(h0, 0);
    w0 = max(w0, 0);
    d1 = min(d1, i32(p.in_d));
    h1 = min(h1, i32(p.in_h));
    w1 = min(w1, i32(p.in_w));
    var sum = 0.0;
    for (var id = d0; id < d1; id++) {
        for (var ih = h0; ih < h1; ih++) {
            let row = plane + (u32(id) * p.in_h + u32(ih)) * p.in_w;
            for (var iw = w0; iw < w1; iw++) {
                sum += x[row + u32(iw)];
            }
        }
    }
    var divisor: i32;
    if p.divisor_override != 0u {
        divisor = i32(p.divisor_override);
    } else if p.count_include_pad != 0u {
        divisor = padded_count;
    } else {
        divisor = max(d1 - d0, 0) * max(h1 - h0, 0) * max(w1 - w0, 0);
    }
    y[idx] = sum / f32(divisor);
}

// Adaptive windows, as PyTorch: start = floor(o * in / out), end = ceil((o + 1) * in / out).
fn adaptive_start(o: u32, size_in: u32, size_out: u32) -> u32 {
    return (o * size_in) / size_out;
}

fn adaptive_end(o: u32, size_in: u32, size_out: u32) -> u32 {
    return ((o + 1u) * size_in + size_out - 1u) / size_out;
}

@compute @workgroup_size(WG)
fn adaptive_avg_pool_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let o = out_pos(idx);
    let plane = o.plane * p.in_d * p.in_h * p.in_w;
    let d0 = adaptive_start(o.d, p.in_d, p.out_d);
    let d1 = adaptive_end(o.d, p.in_d, p.out_d);
    let h0 = adaptive_start(o.h, p.in_h, p.out_h);
    let h1 = adaptive_end(o.h, p.in_h, p.out_h);
    let w0 = adaptive_start(o.w, p.in_w, p.out_w);
    let w1 = adaptive_end(o.w, p.in_w, p.out_w);
    var sum = 0.0;
    for (var id = d0; id < d1; id++) {
        for (var ih = h0; ih < h1; ih++) {
            let row = plane + (id * p.in_h + ih) * p.in_w;
            for (var iw = w0; iw < w1; iw++) {
                sum += x[row + iw];
            }
        }
    }
    y[idx] = sum / f32((d1 - d0) * (h1 - h0) * (w1 - w0));
}

@compute @workgroup_size(WG)
fn adaptive_max_pool_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let o = out_pos(idx);
    let plane = o.plane * p.in_d * p.in_h * p.in_w;
    let d0 = adaptive_start(o.d, p.in_d, p.out_d);
    let d1 = adaptive_end(o.d, p.in_d, p.out_d);
    let h0 = adaptive_start(o.h, p.in_h, p.out_h);
    let h1 = adaptive_end(o.h, p.in_h, p.out_h);
    let w0 = adaptive_start(o.w, p.in_w, p.out_w);
    let w1 = adaptive_end(o.w, p.in_w, p.out_w);
    // As max_pool_forward: the first maximum wins, the last NaN wins.
    var best = bitcast<f32>(0xff800000u);
    var best_i = i32((d0 * p.in_h + h0) * p.in_w + w0);
    for (var id = d0; id < d1; id++) {
        for (var ih = h0; ih < h1; ih++) {
            for (var iw = w0; iw < w1; iw++) {
                let flat = (id * p.in_h + ih) * p.in_w + iw;
                let v = x[plane + flat];
                if v > best || is_nan(v) {
                    best = v;
                    best_i = i32(flat);
                }
            }
        }
    }
    y[idx] = best;
    indices[idx] = best_i;
}

@group(0) @binding(4) var<storage, read> grad_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_x: array<f32>;
@group(0) @binding(6) var<storage, read> saved_indices: array<i32>;

struct InPos {
    plane: u32,
    d: u32,
    h: u32,
    w: u32,
}

fn in_pos(idx: u32) -> InPos {
    var r = idx;
    var i: InPos;
    i.w = r % p.in_w;
    r = r / p.in_w;
    i.h = r % p.in_h;
    r = r / p.in_h;
    i.d = r % p.in_d;
    i.plane = r / p.in_d;
    return i;
}

// grad_x[i] = sum of grad_y[o] over the windows o that contain i and chose i as their maximum.
@compute @workgroup_size(WG)
fn max_pool_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let i = in_pos(idx);
    let flat = i32((i.d * p.in_h + i.h) * p.in_w + i.w);
    let out_plane = i.plane * p.out_d * p.out_h * p.out_w;
    var acc = 0.0;
    for (var kd = 0u; kd < p.k_d; kd++) {
        let od = tap_source(i.d, kd, p.stride_d, p.pad_d, p.dil_d, p.out_d);
        if od < 0 {
            continue;
        }
        for (var kh = 0u; kh < p.k_h; kh++) {
            let oh = tap_source(i.h, kh, p.stride_h, p.pad_h, p.dil_h, p.out_h);
            if oh < 0 {
                continue;
            }
            for (var kw = 0u; kw < p.k_w; kw++) {
                let ow = tap_source(i.w, kw, p.stride_w, p.pad_w, p.dil_w, p.out_w);
                if ow < 0 {
                    continue;
                }
                let o = out_plane + (u32(od) * p.out_h + u32(oh)) * p.out_w + u32(ow);
                if saved_indices[o] == flat {
                    acc += grad_y[o];
                }
            }
        }
    }
    grad_x[idx] = acc;
}

// The divisor avg_pool_forward used for output position o.
fn avg_divisor(od: u32, oh: u32, ow: u32) -> f32 {
    if p.divisor_override != 0u {
        return f32(p.divisor_override);
    }
    var d0 = i32(od * p.stride_d) - i32(p.pad_d);
    var h0 = i32(oh * p.stride_h) - i32(p.pad_h);
    var w0 = i32(ow * p.stride_w) - i32(p.pad_w);
    var d1 = min(d0 + i32(p.k_d), i32(p.in_d + p.pad_d));
    var h1 = min(h0 + i32(p.k_h), i32(p.in_h + p.pad_h));
    var w1 = min(w0 + i32(p.k_w), i32(p.in_w + p.pad_w));
    if p.count_include_pad != 0u {
        return f32((d1 - d0) * (h1 - h0) * (w1 - w0));
    }
    d0 = max(d0, 0);
    h0 = max(h0, 0);
    w0 = max(w0, 0);
    d1 = min(d1, i32(p.in_d));
    h1 = min(h1, i32(p.in_h));
    w1 = min(w1, i32(p.in_w));
    return f32((d1 - d0) * (h1 - h0) * (w1 - w0));
}

// grad_x[i] = sum over the windows o containing i of grad_y[o] / divisor(o).
@compute @workgroup_size(WG)
fn avg_pool_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let i = in_pos(idx);
    let out_plane = i.plane * p.out_d * p.out_h * p.out_w;
    var acc = 0.0;
    for (var kd = 0u; kd < p.k_d; kd++) {
        let od = tap_source(i.d, kd, p.stride_d, p.pad_d, 1u, p.out_d);
        if od < 0 {
            continue;
        }
        for (var kh = 0u; kh < p.k_h; kh++) {
            let oh = tap_source(i.h, kh, p.stride_h, p.pad_h, 1u, p.out_h);
            if oh < 0 {
                continue;
            }
            for (var kw = 0u; kw < p.k_w; kw++) {
                let ow = tap_source(i.w, kw, p.stride_w, p.pad_w, 1u, p.out_w);
                if ow < 0 {
                    continue;
                }
                let o = out_plane + (u32(od) * p.out_h + u32(oh)) * p.out_w + u32(ow);
                acc += grad_y[o] / avg_divisor(u32(od), u32(oh), u32(ow));
            }
        }
    }
    grad_x[idx] = acc;
}

// The adaptive windows containing input position i: a range of output positions, checked
// exactly (windows may overlap when the output is not a divisor of the input).
fn adaptive_lo(i: u32, size_in: u32, size_out: u32) -> u32 {
    return (i * size_out) / size_in;
}

fn adaptive_hi(i: u32, size_in: u32, size_out: u32) -> u32 {
    return min(((i + 1u) * size_out + size_in - 1u) / size_in, size_out);
}

fn adaptive_contains(o: u32, i: u32, size_in: u32, size_out: u32) -> bool {
    return adaptive_start(o, size_in, size_out) <= i && i < adaptive_end(o, size_in, size_out);
}

// Gathers grad_y over the adaptive windows containing i: averaged (divided by the window size)
// or, for max pooling, only where the window's saved argmax is i.
fn adaptive_backward(idx: u32, is_max: bool) -> f32 {
    let i = in_pos(idx);
    let flat = i32((i.d * p.in_h + i.h) * p.in_w + i.w);
    let out_plane = i.plane * p.out_d * p.out_h * p.out_w;
    var acc = 0.0;
    for (var od = adaptive_lo(i.d, p.in_d, p.out_d); od < adaptive_hi(i.d, p.in_d, p.out_d); od++) {
        if !adaptive_contains(od, i.d, p.in_d, p.out_d) {
            continue;
        }
        let nd = adaptive_end(od, p.in_d, p.out_d) - adaptive_start(od, p.in_d, p.out_d);
        for (var oh = adaptive_lo(i.h, p.in_h, p.out_h); oh < adaptive_hi(i.h, p.in_h, p.out_h); oh++) {
            if !adaptive_contains(oh, i.h, p.in_h, p.out_h) {
                continue;
            }
            let nh = adaptive_end(oh, p.in_h, p.out_h) - adaptive_start(oh, p.in_h, p.out_h);
            for (var ow = adaptive_lo(i.w, p.in_w, p.out_w); ow < adaptive_hi(i.w, p.in_w, p.out_w); ow++) {
                if !adaptive_contains(ow, i.w, p.in_w, p.out_w) {
                    continue;
                }
                let nw = adaptive_end(ow, p.in_w, p.out_w) - adaptive_start(ow, p.in_w, p.out_w);
                let o = out_plane + (od * p.out_h + oh) * p.out_w + ow;
                if is_max {
                    if saved_indices[o] == flat {
                        acc += grad_y[o];
                    }
                } else {
                    acc += grad_y[o] / f32(nd * nh * nw);
                }
            }
        }
    }
    return acc;
}

@compute @workgroup_size(WG)
fn adaptive_avg_pool_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    grad_x[idx] = adaptive_backward(idx, false);
}

@compute @workgroup_size(WG)
fn adaptive_max_pool_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    grad_x[idx] = adaptive_backward(idx, true);
}

@group(0) @binding(7) var grad_y_flat: texture_2d<f32>;
@group(0) @binding(8) var indices_flat: texture_2d<i32>;

// max_pool_backward for windows that do not overlap (stride >= kernel, dilation 1), the usual
// 2x2/2: each input lies in at most one window, o = (i + pad) / stride per dimension, so there
// is no loop; grad_y and the indices are read from texture copies (flat_load). `total` < 2^24.
@compute @workgroup_size(WG)
fn max_pool_backward_disjoint(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let pos = split3(idx, p.in_d, p.in_h, p.in_w);
    let plane = pos.x;
    let id = pos.y;
    let ih = pos.z;
    let iw = pos.w;
    let od = divmod24(id + p.pad_d, p.stride_d);
    let oh = divmod24(ih + p.pad_h, p.stride_h);
    let ow = divmod24(iw + p.pad_w, p.stride_w);
    let inside = od.x < p.out_d && oh.x < p.out_h && ow.x < p.out_w && od.y < p.k_d
        && oh.y < p.k_h && ow.y < p.k_w;
    let o = ((plane * p.out_d + min(od.x, p.out_d - 1u)) * p.out_h + min(oh.x, p.out_h - 1u))
        * p.out_w + min(ow.x, p.out_w - 1u);
    let q = o / 4u;
    let at = vec2<u32>(q % 1024u, q / 1024u);
    let chosen = textureLoad(indices_flat, at, 0)[o % 4u];
    let g = textureLoad(grad_y_flat, at, 0)[o % 4u];
    let flat = i32((id * p.in_h + ih) * p.in_w + iw);
    grad_x[idx] = select(0.0, g, inside && chosen == flat);
}

@group(0) @binding(9) var gy_packed: texture_storage_2d<rgba32float, write>;
@group(0) @binding(10) var gyt_packed: texture_storage_2d<rgba32float, write>;

// The backward pass of a fused conv -> ReLU -> 2x2 max-pool (stride 2) on the tiled GEMM, up to
// the convolution's output: the pooled gradient goes through the saved argmax (-1 where the
// ReLU was off: no gradient) straight into the two packed operands of the convolution's
// gradient GEMMs, in im2col_texture's pooled order (column 4w + e is lane e = 2 dh + dw of
// window w = (sample in chunk, ph, pw)), so the un-pooled gradient is never written:
// - gy_packed (C x 4W, gemm_tex's B layout): texel (w, c) is window w of channel c, the
//   gradient at its argmax lane and zeros elsewhere (the data gradient's B);
// - gyt_packed (4W x C): its transpose, texel (c / 4, 4w + e) (the weight gradient's B).
// `planes` = samples in the chunk * channels; one invocation per (window, four channels):
// `total` = windows in the chunk * ceil(channels / 4), below 2^24.
@compute @workgroup_size(WG)
fn max_pool_2x2_backward_packed(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let per_sample = p.out_h * p.out_w;
    let windows = (p.planes / p.channels) * per_sample;
    let t = divmod24(idx, windows);
    let c0 = 4u * t.x;
    let w = t.y;
    let s = divmod24(w, per_sample);
    let hw = divmod24(s.y, p.out_w);
    let base = ((p.sample_offset + s.x) * p.channels + c0) * per_sample + s.y;
    // Each channel's window, written out (CPU adapters keep local arrays in memory).
    let v0 = unpooled_window(base, c0, hw.x, hw.y, true);
    let v1 = unpooled_window(base + per_sample, c0 + 1u, hw.x, hw.y, true);
    let v2 = unpooled_window(base + 2u * per_sample, c0 + 2u, hw.x, hw.y, true);
    let v3 = unpooled_window(base + 3u * per_sample, c0 + 3u, hw.x, hw.y, true);
    textureStore(gy_packed, vec2<u32>(w, c0), v0);
    textureStore(gy_packed, vec2<u32>(w, c0 + 1u), v1);
    textureStore(gy_packed, vec2<u32>(w, c0 + 2u), v2);
    textureStore(gy_packed, vec2<u32>(w, c0 + 3u), v3);
    textureStore(gyt_packed, vec2<u32>(t.x, 4u * w), vec4<f32>(v0.x, v1.x, v2.x, v3.x));
    textureStore(gyt_packed, vec2<u32>(t.x, 4u * w + 1u), vec4<f32>(v0.y, v1.y, v2.y, v3.y));
    textureStore(gyt_packed, vec2<u32>(t.x, 4u * w + 2u), vec4<f32>(v0.z, v1.z, v2.z, v3.z));
    textureStore(gyt_packed, vec2<u32>(t.x, 4u * w + 3u), vec4<f32>(v0.w, v1.w, v2.w, v3.w));
}

// The same backward pass for gemm_sg.wgsl's conv_3x3_sg_r16 and wgrad_3x3_sg (a 3x3
// convolution's gradients straight from grad_y): the convolution's output gradient into
// gy_packed in rows of W4 = ceil(in_w / 4) texels, flat (at flat_xy): texel
// ((n * C + c) * in_h + h) * W4 + t holds grad[n, c, h, 4t .. 4t + 4], zeros past in_w and
// wherever no window's argmax lies (rows and columns past the pooled windows).
// One invocation per (sample in chunk, four channels, row pair, texel): `total` = samples *
// ceil(channels / 4) * ceil(in_h / 2) * W4, below 2^24. Its two windows (2t, 2t + 1) cover
// the texel in both rows of the pair.
@compute @workgroup_size(WG)
fn max_pool_2x2_backward_spatial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let w4 = (p.in_w + 3u) / 4u;
    let pairs = (p.in_h + 1u) / 2u;
    let c4 = (p.channels + 3u) / 4u;
    let t = idx % w4;
    let hp = (idx / w4) % pairs;
    let rest = idx / (w4 * pairs);
    let c0 = 4u * (rest % c4);
    let s = rest / c4;
    // The two windows (row hp, columns 2t and 2t + 1), four channels each, written out: no
    // local arrays (CPU adapters keep them in memory).
    let pw = 2u * t;
    let ok0 = hp < p.out_h && pw < p.out_w;
    let ok1 = hp < p.out_h && pw + 1u < p.out_w;
    let plane = p.out_h * p.out_w;
    let base = ((p.sample_offset + s) * p.channels + c0) * plane + hp * p.out_w + pw;
    let a0 = unpooled_window(base, c0, hp, pw, ok0);
    let b0 = unpooled_window(base + 1u, c0, hp, pw + 1u, ok1);
    let a1 = unpooled_window(base + plane, c0 + 1u, hp, pw, ok0);
    let b1 = unpooled_window(base + plane + 1u, c0 + 1u, hp, pw + 1u, ok1);
    let a2 = unpooled_window(base + 2u * plane, c0 + 2u, hp, pw, ok0);
    let b2 = unpooled_window(base + 2u * plane + 1u, c0 + 2u, hp, pw + 1u, ok1);
    let a3 = unpooled_window(base + 3u * plane, c0 + 3u, hp, pw, ok0);
    let b3 = unpooled_window(base + 3u * plane + 1u, c0 + 3u, hp, pw + 1u, ok1);
    let row = ((s * p.channels + c0) * p.in_h + 2u * hp) * w4 + t;
    let channel = p.in_h * w4;
    store_unpooled_rows(row, c0, w4, hp, a0, b0);
    store_unpooled_rows(row + channel, c0 + 1u, w4, hp, a1, b1);
    store_unpooled_rows(row + 2u * channel, c0 + 2u, w4, hp, a2, b2);
    store_unpooled_rows(row + 3u * channel, c0 + 3u, w4, hp, a3, b3);
}

// One window's gradient in its four lanes ((dh, dw) = (0, 0), (0, 1), (1, 0), (1, 1)): the
// pooled gradient at the saved argmax, zeros elsewhere, all zero for a missing window or
// channel or a ReLU that was off (-1).
fn unpooled_window(at: u32, c: u32, ph: u32, pw: u32, ok: bool) -> vec4<f32> {
    if !ok || c >= p.channels {
        return vec4<f32>(0.0);
    }
    let chosen = saved_indices[at];
    if chosen < 0 {
        return vec4<f32>(0.0);
    }
    let pos = divmod24(u32(chosen), p.in_w);
    let lane = (pos.x - 2u * ph) * 2u + pos.y - 2u * pw;
    return select(vec4<f32>(0.0), vec4<f32>(grad_y[at]), vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(lane));
}

// Channel c's two rows (2 hp and 2 hp + 1, when inside) of texel `row` from two windows' lanes.
fn store_unpooled_rows(row: u32, c: u32, w4: u32, hp: u32, a: vec4<f32>, b: vec4<f32>) {
    if c >= p.channels {
        return;
    }
    textureStore(gy_packed, flat_xy(row), vec4<f32>(a.xy, b.xy));
    if 2u * hp + 1u < p.in_h {
        textureStore(gy_packed, flat_xy(row + w4), vec4<f32>(a.zw, b.zw));
    }
}
