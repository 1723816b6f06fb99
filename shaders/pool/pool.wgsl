// pool/pool.wgsl: max, average and adaptive pooling, forward and backward.
//
// Inputs are viewed as (N*C, D, H, W) planes; lower ranks have D (and H) = 1. Forward: one
// invocation per output element; max pooling also writes the argmax as PyTorch's
// `return_indices=True` does: the flat index d*H*W + h*W + w within the (n, c) plane.
// Backward: one invocation per input element gathers from every window that contains it
// (through the saved argmax for max pooling), so overlapping windows need no atomics.

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
fn max_pool_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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

@group(0) @binding(10) var x_flat: texture_storage_2d<rgba32float, read>;

// One tap of four windows (values v at columns iw of row ih), by max_pool_forward's rule.
fn max_tap(best: ptr<function, vec4<f32>>, best_i: ptr<function, vec4<i32>>, v: vec4<f32>,
    iw: vec4<i32>, ih: i32) {
    let nan = (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    let take = iw >= vec4<i32>(0) & iw < vec4<i32>(i32(p.in_w)) & (v > *best | nan);
    *best = select(*best, v, take);
    *best_i = select(*best_i, vec4<i32>(ih * i32(p.in_w)) + iw, take);
}

// max_pool_forward for 2-D 3x3 windows of stride 2 and dilation 1 (ResNet's stem): four
// outputs of a row per invocation, whose windows span nine columns of each of three input rows,
// read as three texels of x's flat copy (x_flat) a row where max_pool_forward makes 36
// storage-buffer loads; the four windows advance together as vectors. Same rule, in the same
// tap order. `total` counts the rows' quads and stays below 2^24.
@compute @workgroup_size(WG)
fn max_pool_3x3_s2_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let pos = split3(idx, 1u, p.out_h, (p.out_w + 3u) / 4u);
    let plane = pos.x;
    let oh = pos.z;
    let ow0 = pos.w * 4u;
    let h0 = i32(2u * oh) - i32(p.pad_h);
    let w0 = vec4<i32>(2 * i32(ow0)) + vec4<i32>(0, 2, 4, 6) - vec4<i32>(i32(p.pad_w));
    var best = vec4<f32>(bitcast<f32>(0xff800000u)); // -inf
    var best_i = vec4<i32>(max(h0, 0) * i32(p.in_w)) + max(w0, vec4<i32>(0));
    let plane_base = i32(plane * p.in_h * p.in_w);
    for (var kh = 0; kh < 3; kh++) {
        let ih = h0 + kh;
        if ih < 0 || ih >= i32(p.in_h) {
            continue;
        }
        // Columns w0.x .. w0.x + 8 of row ih.
        let s = plane_base + ih * i32(p.in_w) + w0.x;
        let q = s >> 2u;
        let off = u32(s & 3);
        let t0 = textureLoad(x_flat, flat_xy(u32(max(q, 0))));
        let t1 = textureLoad(x_flat, flat_xy(u32(q + 1)));
        let t2 = textureLoad(x_flat, flat_xy(u32(q + 2)));
        let lo = from_offset(t0, t1, off);
        let hi = from_offset(t1, t2, off);
        let last = t2[off];
        // Tap kw of the four windows: columns kw, 2 + kw, 4 + kw, 6 + kw of the nine.
        max_tap(&best, &best_i, vec4<f32>(lo.x, lo.z, hi.x, hi.z), w0, ih);
        max_tap(&best, &best_i, vec4<f32>(lo.y, lo.w, hi.y, hi.w), w0 + vec4<i32>(1), ih);
        max_tap(&best, &best_i, vec4<f32>(lo.z, hi.x, hi.z, last), w0 + vec4<i32>(2), ih);
    }
    let at = (plane * p.out_h + oh) * p.out_w;
    for (var e = 0u; e < 4u; e++) {
        if ow0 + e < p.out_w {
            y[at + ow0 + e] = best[e];
            indices[at + ow0 + e] = best_i[e];
        }
    }
}

@compute @workgroup_size(WG)
fn avg_pool_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
fn adaptive_avg_pool_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
fn adaptive_max_pool_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
fn max_pool_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
fn avg_pool_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
fn adaptive_avg_pool_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    grad_x[idx] = adaptive_backward(idx, false);
}

@compute @workgroup_size(WG)
fn adaptive_max_pool_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    grad_x[idx] = adaptive_backward(idx, true);
}

@group(0) @binding(7) var grad_y_flat: texture_2d<f32>;
@group(0) @binding(8) var indices_flat: texture_2d<i32>;

// The argmax of output o, from the indices' flat texture copy (flat_load's layout).
fn chosen_at(o: u32) -> i32 {
    return textureLoad(indices_flat, flat_xy(o / 4u), 0)[o % 4u];
}

// max_pool_backward for windows that do not overlap (stride >= kernel, dilation 1), the usual
// 2x2/2: each input lies in at most one window, o = (i + pad) / stride per dimension, so there
// is no loop; grad_y and the indices are read from texture copies (flat_load). `total` < 2^24.
@compute @workgroup_size(WG)
fn max_pool_backward_disjoint(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
    let flat = i32((id * p.in_h + ih) * p.in_w + iw);
    grad_x[idx] = select(0.0, flat_load(grad_y_flat, o), inside && chosen_at(o) == flat);
}

// max_pool_backward for 1-D and 2-D windows of dilation 1 that overlap by less than a stride
// (kernel <= 2 * stride: ResNet's 3x3/2), scattered from the windows rather than gathered at
// the inputs: windows of the same parity along each dimension (p.sample_offset: bit 0 ow's,
// bit 1 oh's) share no input, so each adds its gradient at its argmax with no race. The host
// zeroes grad_x and runs the parities in turn, p.total windows of one parity each (below
// 2^24). A window reads its index, its gradient and one input; a gather at the inputs read
// up to four windows' of each per input, and runs over four times as many inputs (3x3/2).
// The sums are PyTorch's but for the order of the terms where three or four windows chose
// the same input.
@compute @workgroup_size(WG)
fn max_pool_backward_scatter(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let a = (p.sample_offset >> 1u) & 1u;
    let b = p.sample_offset & 1u;
    let pos = split3(idx, 1u, (p.out_h - a + 1u) / 2u, (p.out_w - b + 1u) / 2u);
    let o = (pos.x * p.out_h + 2u * pos.z + a) * p.out_w + 2u * pos.w + b;
    let chosen = saved_indices[o];
    if chosen >= 0 {
        let at = pos.x * p.in_h * p.in_w + u32(chosen);
        grad_x[at] += grad_y[o];
    }
}

@group(0) @binding(9) var<storage, read_write> grad_x4: array<vec4<f32>>;

// adaptive_avg_pool_backward with one output per plane (global average pooling): every input
// of plane n * C + c gets grad_y[n * C + c] over the plane's size, with no loop over windows.
@compute @workgroup_size(WG)
fn global_avg_pool_backward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let size = p.in_d * p.in_h * p.in_w;
    grad_x[idx] = grad_y[idx / size] / f32(size);
}

// The same, four values per invocation where planes hold whole quads (`total` counts quads).
@compute @workgroup_size(WG)
fn global_avg_pool_backward4(invocation: Invocation) {
    let q = linear_index(invocation);
    if q >= p.total { return; }
    let size = p.in_d * p.in_h * p.in_w;
    grad_x4[q] = vec4<f32>(grad_y[4u * q / size] / f32(size));
}
