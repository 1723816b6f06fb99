// conv.wgsl: direct and transposed convolution, forward and backward.
//
// Every spatial rank runs as 3-D: a 1-D convolution has depth = height = 1, a 2-D one depth = 1.
// One invocation computes one output element; layouts are PyTorch's (N, C, D, H, W).
// Weights: conv (C_out, C_in/groups, kD, kH, kW); transposed (C_in, C_out/groups, kD, kH, kW).
//
// The backward passes are gathers, never scatters with atomics:
// - the data gradient of a convolution is `conv_transpose_forward` applied to grad_y with the
//   same weight, and that of a transposed convolution is `conv_forward` applied to grad_y (the
//   weight layouts line up; the host passes the input's size as the output size);
// - `conv_backward_weight` gives each invocation one weight element and sums over the batch and
//   the output positions; with input and grad_y swapped it is the transposed convolution's.

struct ConvParams {
    n: u32,
    c_in: u32,
    c_out: u32,
    groups: u32,
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
    // Padding before each dimension (`same` padding puts any odd remainder after).
    pad_d: u32,
    pad_h: u32,
    pad_w: u32,
    dil_d: u32,
    dil_h: u32,
    dil_w: u32,
    has_bias: u32,
    total: u32,
    // im2col / col2im: the first sample of this chunk.
    n_offset: u32,
    // im2col_texture: when pool_w > 0, columns come in pooled order (see there) for a
    // (pool_h, pool_w) 2x2 max-pool that the GEMM fuses.
    pool_h: u32,
    pool_w: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// The direct kernels read x, w and grad_y from storage buffers, or with TEXTURE_INPUTS from
// their texture copies (`flat_load`: a gather instead of a per-lane storage-buffer loop on CPU
// adapters). The host binds placeholders for the side it does not use.
override TEXTURE_INPUTS: bool = false;
@group(0) @binding(11) var x_tex: texture_2d<f32>;
@group(0) @binding(12) var w_tex: texture_2d<f32>;
@group(0) @binding(13) var grad_y_tex: texture_2d<f32>;

fn load_x(i: u32) -> f32 {
    if TEXTURE_INPUTS {
        return flat_load(x_tex, i);
    }
    return x[i];
}

fn load_w(i: u32) -> f32 {
    if TEXTURE_INPUTS {
        return flat_load(w_tex, i);
    }
    return w[i];
}

struct OutPos {
    n: u32,
    c: u32,
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
    r = r / p.out_d;
    o.c = r % p.c_out;
    o.n = r / p.c_out;
    return o;
}

// y[n, co, od, oh, ow] = b[co] + sum over the group's input channels and the kernel window of
// x[n, ci, od*s - p + kd*dil, ...] * w[co, ci, kd, kh, kw].
@compute @workgroup_size(WG)
fn conv_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let o = out_pos(idx);
    let cin_g = p.c_in / p.groups;
    let cout_g = p.c_out / p.groups;
    let g = o.c / cout_g;
    let d0 = i32(o.d * p.stride_d) - i32(p.pad_d);
    let h0 = i32(o.h * p.stride_h) - i32(p.pad_h);
    let w0 = i32(o.w * p.stride_w) - i32(p.pad_w);
    var acc = 0.0;
    for (var ci = 0u; ci < cin_g; ci++) {
        let x_c = (o.n * p.c_in + g * cin_g + ci) * p.in_d;
        let w_c = (o.c * cin_g + ci) * p.k_d;
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
                let x_row = ((x_c + u32(id)) * p.in_h + u32(ih)) * p.in_w;
                let w_row = ((w_c + kd) * p.k_h + kh) * p.k_w;
                for (var kw = 0u; kw < p.k_w; kw++) {
                    let iw = w0 + i32(kw * p.dil_w);
                    if iw < 0 || iw >= i32(p.in_w) {
                        continue;
                    }
                    acc += load_x(x_row + u32(iw)) * load_w(w_row + kw);
                }
            }
        }
    }
    if p.has_bias != 0u {
        acc += b[o.c];
    }
    y[idx] = acc;
}

// Gather form of the transposed convolution: each invocation owns one output element and sums
// the contributions of every input element that scatters onto it, so no atomics are needed.
@compute @workgroup_size(WG)
fn conv_transpose_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let o = out_pos(idx);
    let cin_g = p.c_in / p.groups;
    let cout_g = p.c_out / p.groups;
    let g = o.c / cout_g;
    let co_g = o.c % cout_g;
    var acc = 0.0;
    for (var ci = 0u; ci < cin_g; ci++) {
        let c = g * cin_g + ci;
        let x_c = (o.n * p.c_in + c) * p.in_d;
        let w_c = (c * cout_g + co_g) * p.k_d;
        for (var kd = 0u; kd < p.k_d; kd++) {
            let id = tap_source(o.d, kd, p.stride_d, p.pad_d, p.dil_d, p.in_d);
            if id < 0 {
                continue;
            }
            for (var kh = 0u; kh < p.k_h; kh++) {
                let ih = tap_source(o.h, kh, p.stride_h, p.pad_h, p.dil_h, p.in_h);
                if ih < 0 {
                    continue;
                }
                let x_row = ((x_c + u32(id)) * p.in_h + u32(ih)) * p.in_w;
                let w_row = ((w_c + kd) * p.k_h + kh) * p.k_w;
                for (var kw = 0u; kw < p.k_w; kw++) {
                    let iw = tap_source(o.w, kw, p.stride_w, p.pad_w, p.dil_w, p.in_w);
                    if iw < 0 {
                        continue;
                    }
                    acc += load_x(x_row + u32(iw)) * load_w(w_row + kw);
                }
            }
        }
    }
    if p.has_bias != 0u {
        acc += b[o.c];
    }
    y[idx] = acc;
}

@group(0) @binding(5) var<storage, read> grad_y: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_w: array<f32>;

fn load_grad_y(i: u32) -> f32 {
    if TEXTURE_INPUTS {
        return flat_load(grad_y_tex, i);
    }
    return grad_y[i];
}

// grad_w[co, ci, kd, kh, kw] = sum over n and output positions o of
//     grad_y[n, co, o] * x[n, g*cin_g + ci, o*stride - pad + k*dil].
// Sizes as for conv_forward: `in_*` describe x, `out_*` grad_y; total = weight elements.
@compute @workgroup_size(WG)
fn conv_backward_weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let cin_g = p.c_in / p.groups;
    let cout_g = p.c_out / p.groups;
    var r = idx;
    let kw = r % p.k_w;
    r = r / p.k_w;
    let kh = r % p.k_h;
    r = r / p.k_h;
    let kd = r % p.k_d;
    r = r / p.k_d;
    let ci = r % cin_g;
    let co = r / cin_g;
    let c = (co / cout_g) * cin_g + ci;
    let off_d = i32(kd * p.dil_d) - i32(p.pad_d);
    let off_h = i32(kh * p.dil_h) - i32(p.pad_h);
    let off_w = i32(kw * p.dil_w) - i32(p.pad_w);
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let gy_c = (n * p.c_out + co) * p.out_d;
        let x_c = (n * p.c_in + c) * p.in_d;
        for (var od = 0u; od < p.out_d; od++) {
            let id = i32(od * p.stride_d) + off_d;
            if id < 0 || id >= i32(p.in_d) {
                continue;
            }
            for (var oh = 0u; oh < p.out_h; oh++) {
                let ih = i32(oh * p.stride_h) + off_h;
                if ih < 0 || ih >= i32(p.in_h) {
                    continue;
                }
                let gy_row = ((gy_c + od) * p.out_h + oh) * p.out_w;
                let x_row = ((x_c + u32(id)) * p.in_h + u32(ih)) * p.in_w;
                for (var ow = 0u; ow < p.out_w; ow++) {
                    let iw = i32(ow * p.stride_w) + off_w;
                    if iw < 0 || iw >= i32(p.in_w) {
                        continue;
                    }
                    acc += load_grad_y(gy_row + ow) * load_x(x_row + u32(iw));
                }
            }
        }
    }
    grad_w[idx] = acc;
}

// The im2col path (groups = 1): col[n, k, o] = x[n, ci, o*stride - pad + kk*dil] (0 in the
// padding) with k = (ci, kd, kh, kw) and o = (od, oh, ow), for the samples of one chunk
// (n counted from n_offset). A GEMM then multiplies the weight (C_out, K) by each sample's
// (K, P) block. `total` = chunk * K * P.
@group(0) @binding(7) var<storage, read_write> col: array<f32>;

@compute @workgroup_size(WG)
fn im2col(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    var r = idx;
    let ow = r % p.out_w;
    r = r / p.out_w;
    let oh = r % p.out_h;
    r = r / p.out_h;
    let od = r % p.out_d;
    r = r / p.out_d;
    let kw = r % p.k_w;
    r = r / p.k_w;
    let kh = r % p.k_h;
    r = r / p.k_h;
    let kd = r % p.k_d;
    r = r / p.k_d;
    let ci = r % p.c_in;
    let n = r / p.c_in + p.n_offset;
    let id = i32(od * p.stride_d + kd * p.dil_d) - i32(p.pad_d);
    let ih = i32(oh * p.stride_h + kh * p.dil_h) - i32(p.pad_h);
    let iw = i32(ow * p.stride_w + kw * p.dil_w) - i32(p.pad_w);
    var v = 0.0;
    if id >= 0 && id < i32(p.in_d) && ih >= 0 && ih < i32(p.in_h) && iw >= 0 && iw < i32(p.in_w) {
        v = x[(((n * p.c_in + ci) * p.in_d + u32(id)) * p.in_h + u32(ih)) * p.in_w + u32(iw)];
    }
    col[idx] = v;
}

// The data gradient's col2im, as a gather: grad_x[n, ci, i] = sum over taps k and output
// positions o with o*stride - pad + k*dil = i of grad_col[n, (ci, k), o]. One invocation per
// input element of the chunk; `total` = chunk * C_in * input positions.
@compute @workgroup_size(WG)
fn col2im(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    var r = idx;
    let iw = r % p.in_w;
    r = r / p.in_w;
    let ih = r % p.in_h;
    r = r / p.in_h;
    let id = r % p.in_d;
    r = r / p.in_d;
    let ci = r % p.c_in;
    let nc = r / p.c_in;
    let kk_count = p.k_d * p.k_h * p.k_w;
    let positions = p.out_d * p.out_h * p.out_w;
    var acc = 0.0;
    for (var kd = 0u; kd < p.k_d; kd++) {
        let od = tap_source(id, kd, p.stride_d, p.pad_d, p.dil_d, p.out_d);
        if od < 0 {
            continue;
        }
        for (var kh = 0u; kh < p.k_h; kh++) {
            let oh = tap_source(ih, kh, p.stride_h, p.pad_h, p.dil_h, p.out_h);
            if oh < 0 {
                continue;
            }
            for (var kw = 0u; kw < p.k_w; kw++) {
                let ow = tap_source(iw, kw, p.stride_w, p.pad_w, p.dil_w, p.out_w);
                if ow < 0 {
                    continue;
                }
                let k = (ci * kk_count) + (kd * p.k_h + kh) * p.k_w + kw;
                let o = (u32(od) * p.out_h + u32(oh)) * p.out_w + u32(ow);
                acc += col[(nc * p.c_in * kk_count + k) * positions + o];
            }
        }
    }
    let n = nc + p.n_offset;
    y[(((n * p.c_in + ci) * p.in_d + id) * p.in_h + ih) * p.in_w + iw] = acc;
}

@group(0) @binding(8) var col_texture: texture_storage_2d<rgba32float, write>;
@group(0) @binding(9) var x_flat: texture_2d<f32>;

// im2col straight into the tiled GEMM's B operand (see gemm_tex.wgsl), reading x from its
// flat texture copy (`flat_load`): texel (q, k) holds
// rows k = (ci, kd, kh, kw) of columns j = 4q .. 4q+4, where column j is output position
// j % P of sample n_offset + j / P. `total` is the number of columns (chunk * P); columns past
// it and rows past C_in * taps are written as zero. Grid: (texels per row, rows rounded to 4).
// Pooled order (pool_w > 0, 2-D): texel q is instead one 2x2 window, pooled position
// q % (pool_h * pool_w) of sample n_offset + q / (pool_h * pool_w), and its four columns are
// the window's outputs row by row, so that the GEMM can max-pool each texel's columns as it
// writes them. Outputs that no window covers (an odd last row or column, which floor-mode
// pooling drops) are not computed.
@compute @workgroup_size(8, 8, 1)
fn im2col_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let k = gid.y;
    let taps = p.k_d * p.k_h * p.k_w;
    let rows = (p.c_in * taps + 3u) / 4u * 4u;
    if q * 4u >= p.total + 3u || k >= rows {
        return;
    }
    var v = vec4<f32>(0.0);
    if k < p.c_in * taps {
        // The row's tap and channel, and the first column's sample and position; the other
        // three columns step through the positions (divmod24: no integer division).
        var t = divmod24(k, p.k_w);
        let kw = t.y;
        t = divmod24(t.x, p.k_h);
        let kh = t.y;
        t = divmod24(t.x, p.k_d);
        let kd = t.y;
        let ci = t.x;
        let j0 = q * 4u;
        let pooled = p.pool_w != 0u;
        var n: u32;
        var od: u32;
        var oh: u32;
        var ow: u32;
        if pooled {
            t = divmod24(q, p.pool_h * p.pool_w);
            n = t.x + p.n_offset;
            t = divmod24(t.y, p.pool_w);
            od = 0u;
            oh = 2u * t.x;
            ow = 2u * t.y;
        } else {
            t = divmod24(j0, p.out_d * p.out_h * p.out_w);
            n = t.x + p.n_offset;
            t = divmod24(t.y, p.out_w);
            ow = t.y;
            t = divmod24(t.x, p.out_h);
            oh = t.y;
            od = t.x;
        }
        let base_d = i32(kd * p.dil_d) - i32(p.pad_d);
        let base_h = i32(kh * p.dil_h) - i32(p.pad_h);
        let base_w = i32(kw * p.dil_w) - i32(p.pad_w);
        for (var e = 0u; e < 4u; e++) {
            let id = i32(od * p.stride_d) + base_d;
            var ih = i32(oh * p.stride_h) + base_h;
            var iw = i32(ow * p.stride_w) + base_w;
            if pooled {
                ih += i32((e >> 1u) * p.stride_h);
                iw += i32((e & 1u) * p.stride_w);
            }
            let inside = j0 + e < p.total && id >= 0 && id < i32(p.in_d) && ih >= 0
                && ih < i32(p.in_h) && iw >= 0 && iw < i32(p.in_w);
            let at = (((n * p.c_in + ci) * p.in_d + u32(max(id, 0))) * p.in_h + u32(max(ih, 0)))
                * p.in_w + u32(max(iw, 0));
            v[e] = select(0.0, flat_load(x_flat, at), inside);
            if !pooled {
                ow += 1u;
                let wrap_w = ow == p.out_w;
                ow = select(ow, 0u, wrap_w);
                oh = select(oh, oh + 1u, wrap_w);
                let wrap_h = oh == p.out_h;
                oh = select(oh, 0u, wrap_h);
                od = select(od, od + 1u, wrap_h);
                let wrap_d = od == p.out_d;
                od = select(od, 0u, wrap_d);
                n = select(n, n + 1u, wrap_d);
            }
        }
    }
    textureStore(col_texture, vec2<u32>(q, k), v);
}

@group(0) @binding(10) var col_in: texture_2d<f32>;

// The window position that puts tap k on input coordinate i (as tap_source, with divmod24).
fn tap_window(i: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dil);
    let qr = divmod24(u32(max(t, 0)), stride);
    return select(-1, i32(qr.x), t >= 0 && qr.y == 0u && qr.x < size);
}

// col2im (see above) gathering from the texture the tiled GEMM wrote grad_col into: texel
// (j / 4, k) holds row k = (ci, taps) of columns j = (sample in chunk) * P + position. With
// has_bias, adds b[ci].
// `total` = chunk * C_in * input positions, below 2^24 (the host chunks so).
@compute @workgroup_size(WG)
fn col2im_texture(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    var t = divmod24(idx, p.in_w);
    let iw = t.y;
    t = divmod24(t.x, p.in_h);
    let ih = t.y;
    t = divmod24(t.x, p.in_d);
    let id = t.y;
    t = divmod24(t.x, p.c_in);
    let ci = t.y;
    let nc = t.x;
    let kk_count = p.k_d * p.k_h * p.k_w;
    let positions = p.out_d * p.out_h * p.out_w;
    var acc = 0.0;
    for (var kd = 0u; kd < p.k_d; kd++) {
        let od = tap_window(id, kd, p.stride_d, p.pad_d, p.dil_d, p.out_d);
        for (var kh = 0u; kh < p.k_h; kh++) {
            let oh = tap_window(ih, kh, p.stride_h, p.pad_h, p.dil_h, p.out_h);
            for (var kw = 0u; kw < p.k_w; kw++) {
                let ow = tap_window(iw, kw, p.stride_w, p.pad_w, p.dil_w, p.out_w);
                let k = (ci * kk_count) + (kd * p.k_h + kh) * p.k_w + kw;
                let o = (u32(max(od, 0)) * p.out_h + u32(max(oh, 0))) * p.out_w + u32(max(ow, 0));
                let j = nc * positions + o;
                let v = textureLoad(col_in, vec2<u32>(j / 4u, k), 0)[j % 4u];
                acc += select(0.0, v, od >= 0 && oh >= 0 && ow >= 0);
            }
        }
    }
    // A transposed convolution's forward pass runs here and adds its bias.
    if p.has_bias != 0u {
        acc += b[ci];
    }
    let n = nc + p.n_offset;
    y[(((n * p.c_in + ci) * p.in_d + id) * p.in_h + ih) * p.in_w + iw] = acc;
}
