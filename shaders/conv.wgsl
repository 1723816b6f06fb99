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

// ConvParams: see shared/im2col.wgsl.

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// The direct kernels read x, w and grad_y from storage buffers, or with TEXTURE_INPUTS from
// their texture copies, bound as read-only storage textures (`x_texel`: a gather instead of a
// per-lane storage-buffer loop on CPU adapters; on lavapipe a storage-image load is inlined,
// a sampled fetch is a call with per-lane mip arithmetic). The host binds placeholders for the
// side it does not use. im2col reads x's copy here too.
override TEXTURE_INPUTS: bool = false;
@group(0) @binding(11) var x_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(12) var w_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(13) var grad_y_tex: texture_storage_2d<rgba32float, read>;

// Texel q of each copy (see `flat_xy`).
fn x_texel(q: u32) -> vec4<f32> {
    return textureLoad(x_tex, flat_xy(q));
}

fn w_texel(q: u32) -> vec4<f32> {
    return textureLoad(w_tex, flat_xy(q));
}

fn grad_y_texel(q: u32) -> vec4<f32> {
    return textureLoad(grad_y_tex, flat_xy(q));
}

// Value i of x's copy.
fn x_value(i: u32) -> f32 {
    return x_texel(i / 4u)[i % 4u];
}

fn load_x(i: u32) -> f32 {
    if TEXTURE_INPUTS {
        return x_value(i);
    }
    return x[i];
}

fn load_w(i: u32) -> f32 {
    if TEXTURE_INPUTS {
        return w_texel(i / 4u)[i % 4u];
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
        return grad_y_texel(i / 4u)[i % 4u];
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
    // Rows (n, od, oh) of grad_y [row_begin, row_end): the host splits the sum into pieces
    // whose loops stay short (lavapipe ends loops past 65535 iterations), and every piece
    // after the first adds to the sum so far.
    let rows = p.n * p.out_d * p.out_h;
    let last = select(rows, p.row_end, p.row_end != 0u);
    var pos = split3(p.row_begin, 1u, p.out_d, p.out_h);
    var acc = 0.0;
    for (var r = p.row_begin; r < last; r++) {
        let n = pos.x;
        let od = pos.z;
        let oh = pos.w;
        pos = next_position(pos, 1u, p.out_d, p.out_h);
        let id = i32(od * p.stride_d) + off_d;
        let ih = i32(oh * p.stride_h) + off_h;
        if id < 0 || id >= i32(p.in_d) || ih < 0 || ih >= i32(p.in_h) {
            continue;
        }
        let gy_row = (((n * p.c_out + co) * p.out_d + od) * p.out_h + oh) * p.out_w;
        let x_row = (((n * p.c_in + c) * p.in_d + u32(id)) * p.in_h + u32(ih)) * p.in_w;
        for (var ow = 0u; ow < p.out_w; ow++) {
            let iw = i32(ow * p.stride_w) + off_w;
            if iw < 0 || iw >= i32(p.in_w) {
                continue;
            }
            acc += load_grad_y(gy_row + ow) * load_x(x_row + u32(iw));
        }
    }
    if p.row_begin > 0u {
        acc += grad_w[idx];
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

// im2col straight into the tiled GEMM's B operand (see gemm_tex.wgsl): texel (q, k) of the
// texture is im2col_texel(q, k) (shared/im2col.wgsl: `im2col_sources`), x read from its flat
// texture copy (x_tex, as a storage texture: with sampled fetches, about four per texel, a
// 3x3 im2col cost several times its GEMM).
// `total` is the number of columns (chunk * P). Grid: (texels per row, rows rounded to 4).
// A workgroup writes 64 texels of one row: on lavapipe 8 x 8 workgroups, which write 8 texels
// in each of 8 rows a texture row apart, made these stores about 5x slower (cache-set
// conflicts at a wide texture's row stride).
@compute @workgroup_size(64, 1, 1)
fn im2col_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let k = gid.y;
    let rows = (p.c_in * p.k_d * p.k_h * p.k_w + 3u) / 4u * 4u;
    if q * 4u >= p.total + 3u || k >= rows {
        return;
    }
    let s = im2col_sources(p, q, k);
    let v = vec4<f32>(x_value(s.at.x), x_value(s.at.y), x_value(s.at.z), x_value(s.at.w));
    textureStore(col_texture, vec2<u32>(q, k), select(vec4<f32>(0.0), v, s.inside));
}

// Columns c0 .. c0 + 3 of the row at flat index `base` of x's texture copy (two texel
// fetches), zero outside [0, width) and when !ok.
fn x_row4(base: u32, c0: i32, width: u32, ok: bool) -> vec4<f32> {
    let s = i32(base) + c0;
    let q = s >> 2u;
    let v = from_offset(x_texel(u32(max(q, 0))), x_texel(u32(q + 1)), u32(s & 3));
    let cols = vec4<i32>(c0) + vec4<i32>(0, 1, 2, 3);
    let inside = cols >= vec4<i32>(0) & cols < vec4<i32>(i32(width));
    return select(vec4<f32>(0.0), v, vec4<bool>(ok) & inside);
}

// im2col_texture for a 3x3 kernel of stride 1 and dilation 1 (2-D) in pooled order: one
// invocation per (window, input channel) writes the nine texels of rows ci * 9 + tap from the
// 4x4 input patch under the window, read once (eight texel fetches where im2col_texel would
// make 36, and one window position's arithmetic for nine texels). Rows past C_in * 9 (up to
// a multiple of 4) keep the zeros the texture was created with: nothing else writes this
// texture. Grid: (windows, c_in); `total` = columns = 4 * windows. 64 windows of one channel
// per workgroup, as in im2col_texture.
@compute @workgroup_size(64, 1, 1)
fn im2col_3x3_pooled(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let ci = gid.y;
    if q >= p.total / 4u || ci >= p.c_in {
        return;
    }
    let t = divmod24(q, p.pool_h * p.pool_w);
    let hw = divmod24(t.y, p.pool_w);
    let plane = ((t.x + p.n_offset) * p.c_in + ci) * p.in_h;
    let r0 = i32(2u * hw.x) - i32(p.pad_h);
    let c0 = i32(2u * hw.y) - i32(p.pad_w);
    let last = i32(p.in_h) - 1;
    let x0 = x_row4((plane + u32(clamp(r0, 0, last))) * p.in_w, c0, p.in_w, r0 >= 0 && r0 <= last);
    let x1 = x_row4((plane + u32(clamp(r0 + 1, 0, last))) * p.in_w, c0, p.in_w,
        r0 + 1 >= 0 && r0 + 1 <= last);
    let x2 = x_row4((plane + u32(clamp(r0 + 2, 0, last))) * p.in_w, c0, p.in_w,
        r0 + 2 >= 0 && r0 + 2 <= last);
    let x3 = x_row4((plane + u32(clamp(r0 + 3, 0, last))) * p.in_w, c0, p.in_w,
        r0 + 3 >= 0 && r0 + 3 <= last);
    // Tap (kh, kw) of the window's four outputs (row by row): rows kh and kh + 1 of the patch,
    // columns kw and kw + 1.
    let k = ci * 9u;
    textureStore(col_texture, vec2<u32>(q, k), vec4<f32>(x0.xy, x1.xy));
    textureStore(col_texture, vec2<u32>(q, k + 1u), vec4<f32>(x0.yz, x1.yz));
    textureStore(col_texture, vec2<u32>(q, k + 2u), vec4<f32>(x0.zw, x1.zw));
    textureStore(col_texture, vec2<u32>(q, k + 3u), vec4<f32>(x1.xy, x2.xy));
    textureStore(col_texture, vec2<u32>(q, k + 4u), vec4<f32>(x1.yz, x2.yz));
    textureStore(col_texture, vec2<u32>(q, k + 5u), vec4<f32>(x1.zw, x2.zw));
    textureStore(col_texture, vec2<u32>(q, k + 6u), vec4<f32>(x2.xy, x3.xy));
    textureStore(col_texture, vec2<u32>(q, k + 7u), vec4<f32>(x2.yz, x3.yz));
    textureStore(col_texture, vec2<u32>(q, k + 8u), vec4<f32>(x2.zw, x3.zw));
}

// grad_col, read as a storage texture: on lavapipe a storage-image load is inlined, while a
// sampled fetch calls a function with per-lane mip-level arithmetic.
@group(0) @binding(10) var col_in: texture_storage_2d<rgba32float, read>;

// The window position that puts tap k on input coordinate i (as tap_source, with divmod24).
fn tap_window(i: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dil);
    let qr = divmod24(u32(max(t, 0)), stride);
    return select(-1, i32(qr.x), t >= 0 && qr.y == 0u && qr.x < size);
}

// col2im (see above) gathering from the texture the tiled GEMM wrote grad_col into: texel
// (j / 4, k) holds row k = (ci, taps) of columns j = (sample in chunk) * P + position, or in
// im2col_texture's pooled order when pool_w > 0 (2-D; outputs outside every window have no
// column, and no gradient). With has_bias, adds b[ci].
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
    let pos = split3(idx, p.in_d, p.in_h, p.in_w);
    let id = pos.y;
    let ih = pos.z;
    let iw = pos.w;
    let t = divmod24(pos.x, p.c_in);
    let ci = t.y;
    let nc = t.x;
    let kk_count = p.k_d * p.k_h * p.k_w;
    var acc = 0.0;
    for (var kd = 0u; kd < p.k_d; kd++) {
        let od = tap_window(id, kd, p.stride_d, p.pad_d, p.dil_d, p.out_d);
        for (var kh = 0u; kh < p.k_h; kh++) {
            let oh = tap_window(ih, kh, p.stride_h, p.pad_h, p.dil_h, p.out_h);
            for (var kw = 0u; kw < p.k_w; kw++) {
                let ow = tap_window(iw, kw, p.stride_w, p.pad_w, p.dil_w, p.out_w);
                let k = (ci * kk_count) + (kd * p.k_h + kh) * p.k_w + kw;
                acc += col_value(nc, od, oh, ow, k);
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

// grad_col's value for output (od, oh, ow) of sample nc (in the chunk) and row k, or 0 where
// that position is outside the output (a tap_window of -1) or, in pooled order (2-D), outside
// every window (see col2im_texture).
fn col_value(nc: u32, od: i32, oh: i32, ow: i32, k: u32) -> f32 {
    var inside = od >= 0 && od < i32(p.out_d) && oh >= 0 && oh < i32(p.out_h) && ow >= 0
        && ow < i32(p.out_w);
    let h = u32(max(oh, 0));
    let w = u32(max(ow, 0));
    var j = ((nc * p.out_d + u32(max(od, 0))) * p.out_h + h) * p.out_w + w;
    if p.pool_w != 0u {
        inside = inside && h / 2u < p.pool_h && w / 2u < p.pool_w;
        j = ((nc * p.pool_h + h / 2u) * p.pool_w + w / 2u) * 4u + (h & 1u) * 2u + (w & 1u);
    }
    let v = textureLoad(col_in, vec2<u32>(j / 4u, k))[j % 4u];
    return select(0.0, v, inside);
}

// col2im_texture for a 3x3 kernel of stride 1 and dilation 1 (2-D): the nine taps written
// out, their output positions without division.
@compute @workgroup_size(WG)
fn col2im_3x3(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let pos = split3(idx, 1u, p.in_h, p.in_w);
    let t = divmod24(pos.x, p.c_in);
    let ci = t.y;
    let nc = t.x;
    let oh = i32(pos.z + p.pad_h);
    let ow = i32(pos.w + p.pad_w);
    let k = ci * 9u;
    var acc = col_value(nc, 0, oh, ow, k) + col_value(nc, 0, oh, ow - 1, k + 1u)
        + col_value(nc, 0, oh, ow - 2, k + 2u);
    acc += col_value(nc, 0, oh - 1, ow, k + 3u) + col_value(nc, 0, oh - 1, ow - 1, k + 4u)
        + col_value(nc, 0, oh - 1, ow - 2, k + 5u);
    acc += col_value(nc, 0, oh - 2, ow, k + 6u) + col_value(nc, 0, oh - 2, ow - 1, k + 7u)
        + col_value(nc, 0, oh - 2, ow - 2, k + 8u);
    if p.has_bias != 0u {
        acc += b[ci];
    }
    let n = nc + p.n_offset;
    y[((n * p.c_in + ci) * p.in_h + pos.z) * p.in_w + pos.w] = acc;
}

// Depthwise convolution (groups = C_in = C_out): every channel convolved with its own filter.
// One invocation computes four outputs along w of one (sample, channel, d, h) row, so the
// row's index arithmetic (divmod24, no integer division) and each tap's weight are shared by
// four outputs. Inputs come through load_x / load_w / load_grad_y (texture copies when the
// host can make them). `total` = rows * ceil(width / 4) of the tensor written, below 2^24.

// Where invocation idx writes, in a tensor of (depth, height, width) planes: four values from
// col0 in row (nc, d, h); c is the channel.
struct DwPosition {
    col0: u32,
    h: u32,
    d: u32,
    nc: u32,
    c: u32,
}

fn dw_position(idx: u32, depth: u32, height: u32, width: u32) -> DwPosition {
    let t = split3(idx, depth, height, (width + 3u) / 4u);
    return DwPosition(t.w * 4u, t.z, t.y, t.x, divmod24(t.x, p.c_out).y);
}

// y[n, c, o] = b[c] + sum over taps k of x[n, c, o*stride - pad + k*dil] * w[c, k].
@compute @workgroup_size(WG)
fn depthwise_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let at = dw_position(idx, p.out_d, p.out_h, p.out_w);
    let ow0 = at.col0;
    let oh = at.h;
    let od = at.d;
    let nc = at.nc;
    let c = at.c;
    let taps = p.k_d * p.k_h * p.k_w;
    var acc = vec4<f32>(0.0);
    for (var kd = 0u; kd < p.k_d; kd++) {
        let id = i32(od * p.stride_d + kd * p.dil_d) - i32(p.pad_d);
        for (var kh = 0u; kh < p.k_h; kh++) {
            let ih = i32(oh * p.stride_h + kh * p.dil_h) - i32(p.pad_h);
            let row_ok = id >= 0 && id < i32(p.in_d) && ih >= 0 && ih < i32(p.in_h);
            let row = ((nc * p.in_d + u32(max(id, 0))) * p.in_h + u32(max(ih, 0))) * p.in_w;
            for (var kw = 0u; kw < p.k_w; kw++) {
                let wv = load_w(c * taps + (kd * p.k_h + kh) * p.k_w + kw);
                let iw0 = i32(ow0 * p.stride_w + kw * p.dil_w) - i32(p.pad_w);
                for (var e = 0u; e < 4u; e++) {
                    let iw = iw0 + i32(e * p.stride_w);
                    let ok = row_ok && iw >= 0 && iw < i32(p.in_w);
                    acc[e] += select(0.0, load_x(row + u32(max(iw, 0))), ok) * wv;
                }
            }
        }
    }
    if p.has_bias != 0u {
        acc += vec4<f32>(b[c]);
    }
    dw_store(((nc * p.out_d + od) * p.out_h + oh) * p.out_w, ow0, p.out_w, acc);
}

// grad_x[n, c, i] = sum over taps k and outputs o with o*stride - pad + k*dil = i of
// grad_y[n, c, o] * w[c, k] (a gather; tap_window finds o). `in_*` describe x, `out_*` grad_y;
// the result goes to y (bound to grad_x).
@compute @workgroup_size(WG)
fn depthwise_backward_input(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let at = dw_position(idx, p.in_d, p.in_h, p.in_w);
    let iw0 = at.col0;
    let ih = at.h;
    let id = at.d;
    let nc = at.nc;
    let c = at.c;
    let taps = p.k_d * p.k_h * p.k_w;
    var acc = vec4<f32>(0.0);
    for (var kd = 0u; kd < p.k_d; kd++) {
        let od = tap_window(id, kd, p.stride_d, p.pad_d, p.dil_d, p.out_d);
        for (var kh = 0u; kh < p.k_h; kh++) {
            let oh = tap_window(ih, kh, p.stride_h, p.pad_h, p.dil_h, p.out_h);
            let row_ok = od >= 0 && oh >= 0;
            let row = ((nc * p.out_d + u32(max(od, 0))) * p.out_h + u32(max(oh, 0))) * p.out_w;
            for (var kw = 0u; kw < p.k_w; kw++) {
                let wv = load_w(c * taps + (kd * p.k_h + kh) * p.k_w + kw);
                for (var e = 0u; e < 4u; e++) {
                    let ow = tap_window(iw0 + e, kw, p.stride_w, p.pad_w, p.dil_w, p.out_w);
                    let ok = row_ok && ow >= 0;
                    acc[e] += select(0.0, load_grad_y(row + u32(max(ow, 0))), ok) * wv;
                }
            }
        }
    }
    dw_store(((nc * p.in_d + id) * p.in_h + ih) * p.in_w, iw0, p.in_w, acc);
}

var<workgroup> depthwise_sums: array<f32, 64>;

// grad_w[c, k] = sum over samples and output positions o of grad_y[n, c, o] *
// x[n, c, o*stride - pad + k*dil]. One workgroup of 64 per weight (c, k): each invocation
// sums whole output rows (n, od, oh), then the workgroup adds its 64 partial sums up.
// Workgroup id = c * taps + k; `total` = weights. Like conv_backward_weight it runs in pieces
// of rows [row_begin, row_end), each adding to the last.
@compute @workgroup_size(64)
fn depthwise_backward_weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let weight = wg.y * nwg.x + wg.x;
    // (channel, kd, kh, kw) of this weight.
    let tap = split3(min(weight, p.total - 1u), p.k_d, p.k_h, p.k_w);
    let c = tap.x;
    let kd = tap.y;
    let kh = tap.z;
    let kw = tap.w;
    var acc = 0.0;
    let rows = p.n * p.out_d * p.out_h;
    let last = select(rows, p.row_end, p.row_end != 0u);
    for (var r = p.row_begin + lid; r < last; r += 64u) {
        var s = divmod24(r, p.out_h);
        let oh = s.y;
        s = divmod24(s.x, p.out_d);
        let od = s.y;
        let nc = s.x * p.c_out + c;
        let id = i32(od * p.stride_d + kd * p.dil_d) - i32(p.pad_d);
        let ih = i32(oh * p.stride_h + kh * p.dil_h) - i32(p.pad_h);
        if id < 0 || id >= i32(p.in_d) || ih < 0 || ih >= i32(p.in_h) {
            continue;
        }
        let x_row = ((nc * p.in_d + u32(id)) * p.in_h + u32(ih)) * p.in_w;
        let y_row = ((nc * p.out_d + od) * p.out_h + oh) * p.out_w;
        for (var ow = 0u; ow < p.out_w; ow++) {
            let iw = i32(ow * p.stride_w + kw * p.dil_w) - i32(p.pad_w);
            let ok = iw >= 0 && iw < i32(p.in_w);
            acc += select(0.0, load_x(x_row + u32(max(iw, 0))), ok) * load_grad_y(y_row + ow);
        }
    }
    depthwise_sums[lid] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if lid < half {
            depthwise_sums[lid] += depthwise_sums[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u && weight < p.total {
        var sum = depthwise_sums[0];
        if p.row_begin > 0u {
            sum += grad_w[weight];
        }
        grad_w[weight] = sum;
    }
}

// 3x3 convolutions of stride 1 and dilation 1 along h and w (any taps, stride and dilation
// along d), any groups, as 4x4 output tiles: the host picks them for depthwise and grouped
// convolutions and for few input channels, where a GEMM's K (C_in / groups * 9) is too short to
// pay for im2col. For each source channel of its group, a tile reads each of its six source
// rows once (three texel fetches for six columns) and feeds up to three output rows with the
// nine weights loaded once, where the direct kernels fetch every input per tap.
// The backward-input pass is the same correlation of grad_y, summed over the group's output
// channels, with the kernel flipped in h and w and padding 2 - pad (needs pad <= 2); along d it
// gathers with tap_window. Both read their source (x forward, grad_y backward) through
// grad_y's bindings, so that one pipeline layout serves both; the backward pass binds a
// placeholder for b.

struct Row6 {
    lo: vec4<f32>,
    hi: vec2<f32>,
}

// Texel q of the source's texture copy.
fn dw_texel(q: i32) -> vec4<f32> {
    return grad_y_texel(u32(max(q, 0)));
}

// The four values from `off` (0 to 3) on of the eight in texels a and b.
fn from_offset(a: vec4<f32>, b: vec4<f32>, off: u32) -> vec4<f32> {
    let v1 = vec4<f32>(a.yzw, b.x);
    let v2 = vec4<f32>(a.zw, b.xy);
    let v3 = vec4<f32>(a.w, b.xyz);
    return select(select(select(a, v1, off == 1u), v2, off == 2u), v3, off == 3u);
}

// A 3x3 kernel's weights w[wb .. wb + 9] as three rows of three: three texel fetches of w's
// copy where the host made one.
fn tile_weights(wb: u32) -> array<vec3<f32>, 3> {
    if TEXTURE_INPUTS {
        let q = wb / 4u;
        let off = wb % 4u;
        let a = w_texel(q);
        let b = w_texel(q + 1u);
        let c = w_texel(q + 2u);
        let first = from_offset(a, b, off);
        let second = from_offset(b, c, off);
        let last = select(select(select(c.x, c.y, off == 1u), c.z, off == 2u), c.w, off == 3u);
        return array<vec3<f32>, 3>(
            first.xyz,
            vec3<f32>(first.w, second.xy),
            vec3<f32>(second.zw, last),
        );
    }
    var k: array<vec3<f32>, 3>;
    for (var kh = 0u; kh < 3u; kh++) {
        let at = wb + kh * 3u;
        k[kh] = vec3<f32>(load_w(at), load_w(at + 1u), load_w(at + 2u));
    }
    return k;
}

// grad_y[at + col0 .. at + col0 + 4] read through x's bindings (the weight gradient's), zero
// from column `width` on and when !ok: two texel fetches where the host made a copy.
fn tile_row4_x(at: u32, col0: u32, width: u32, ok: bool) -> vec4<f32> {
    var v: vec4<f32>;
    if TEXTURE_INPUTS {
        let s = at + col0;
        v = from_offset(x_texel(s / 4u), x_texel(s / 4u + 1u), s % 4u);
    } else {
        for (var e = 0u; e < 4u; e++) {
            v[e] = x[at + min(col0 + e, width - 1u)];
        }
    }
    let cols = vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u);
    return select(vec4<f32>(0.0), v, vec4<bool>(ok) & (cols < vec4<u32>(width)));
}

// Columns c0 .. c0 + 5 of the source row whose column 0 is at flat index `base`: zero outside
// [0, width) and when !ok.
fn dw_row6(base: u32, c0: i32, width: u32, ok: bool) -> Row6 {
    var r: Row6;
    if TEXTURE_INPUTS {
        // Three texels hold the six values; `off` says where they start in the first.
        let s = i32(base) + c0;
        let q = s >> 2u;
        let off = s & 3;
        let b = dw_texel(q + 1);
        r.lo = from_offset(dw_texel(q), b, u32(off));
        r.hi = from_offset(b, dw_texel(q + 2), u32(off)).xy;
    } else {
        let last = i32(width) - 1;
        for (var j = 0; j < 6; j++) {
            let v = grad_y[base + u32(clamp(c0 + j, 0, last))];
            if j < 4 {
                r.lo[j] = v;
            } else {
                r.hi[j - 4] = v;
            }
        }
    }
    let cols = vec4<i32>(c0) + vec4<i32>(0, 1, 2, 3);
    let w = i32(width);
    let lo_ok = vec4<bool>(ok) & (cols >= vec4<i32>(0)) & (cols < vec4<i32>(w));
    let hi_cols = cols.xy + vec2<i32>(4);
    let hi_ok = vec2<bool>(ok) & (hi_cols >= vec2<i32>(0)) & (hi_cols < vec2<i32>(w));
    r.lo = select(vec4<f32>(0.0), r.lo, lo_ok);
    r.hi = select(vec2<f32>(0.0), r.hi, hi_ok);
    return r;
}

// Four outputs of one row: the row's three taps with weights k.
fn dw_taps(r: Row6, k: vec3<f32>) -> vec4<f32> {
    return r.lo * k.x + vec4<f32>(r.lo.yzw, r.hi.x) * k.y + vec4<f32>(r.lo.zw, r.hi) * k.z;
}

// Stores four values of a row, y[at + col0 ..], those from column `width` on left out.
fn dw_store(at: u32, col0: u32, width: u32, v: vec4<f32>) {
    for (var e = 0u; e < 4u; e++) {
        if col0 + e < width {
            y[at + col0 + e] = v[e];
        }
    }
}

// One computed 4x4 tile: rows of four values from (row0, col0) of the plane (n, c, depth)
// `plane` of the tensor written.
struct Tile {
    acc: array<vec4<f32>, 4>,
    plane: u32,
    row0: u32,
    col0: u32,
}

// Source row sr of a plane starting at row `plane` (six values from column c0, zero outside
// the plane), for tiles_3x3.
fn tile_source_row(plane: u32, sr: i32, height: u32, width: u32, c0: i32) -> Row6 {
    let ok = sr >= 0 && sr < i32(height);
    return dw_row6((plane + u32(max(sr, 0))) * width, c0, width, ok);
}

// One 4x4 tile: forward (x -> y) or backward-input (grad_y -> grad_x, bound to y).
// `total` = N * C * depth * ceil(height / 4) * ceil(width / 4) of the tensor written.
fn tiles_3x3(idx: u32, bwd: bool) -> Tile {
    // Source (read) and destination (written) plane sizes and channels per group.
    let src_d = select(p.in_d, p.out_d, bwd);
    let src_h = select(p.in_h, p.out_h, bwd);
    let src_w = select(p.in_w, p.out_w, bwd);
    let dst_d = select(p.out_d, p.in_d, bwd);
    let dst_h = select(p.out_h, p.in_h, bwd);
    let dst_w = select(p.out_w, p.in_w, bwd);
    let src_c = select(p.c_in, p.c_out, bwd);
    let dst_c = select(p.c_out, p.c_in, bwd);
    let cin_g = p.c_in / p.groups;
    let src_g = select(cin_g, p.c_out / p.groups, bwd);
    let dst_g = dst_c / p.groups;
    let pad_h = select(i32(p.pad_h), 2 - i32(p.pad_h), bwd);
    let pad_w = select(i32(p.pad_w), 2 - i32(p.pad_w), bwd);
    let at = split3(idx, dst_d, (dst_h + 3u) / 4u, (dst_w + 3u) / 4u);
    let col0 = at.w * 4u;
    let row0 = at.z * 4u;
    let dep = at.y;
    let t = divmod24(at.x, dst_c);
    let n = t.x;
    let dc = t.y;
    // The destination channel's group, and its first source channel.
    let src0 = divmod24(dc, dst_g).x * src_g;
    let c0 = i32(col0) - pad_w;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var j = 0u; j < src_g; j++) {
        let sc = src0 + j;
        // Weight (output channel, input channel within its group).
        var wc: u32;
        if bwd {
            wc = sc * cin_g + divmod24(dc, cin_g).y;
        } else {
            wc = dc * cin_g + j;
        }
        for (var kd = 0u; kd < p.k_d; kd++) {
            // The source depth this tap reads, or -1.
            var sd: i32;
            if bwd {
                sd = tap_window(dep, kd, p.stride_d, p.pad_d, p.dil_d, p.out_d);
            } else {
                let v = i32(dep * p.stride_d + kd * p.dil_d) - i32(p.pad_d);
                sd = select(-1, v, v < i32(p.in_d));
            }
            if sd < 0 {
                continue;
            }
            let wb = (wc * p.k_d + kd) * 9u;
            let k = tile_weights(wb);
            // The three kernel rows (flipped for the backward pass), and the six source rows
            // under the tile, written out: a loop over them would index `k` and pick the
            // accumulators per iteration, which CPU back ends do through memory.
            let k0 = select(k[0], k[2].zyx, bwd);
            let k1 = select(k[1], k[1].zyx, bwd);
            let k2 = select(k[2], k[0].zyx, bwd);
            let plane = ((n * src_c + sc) * src_d + u32(sd)) * src_h;
            let r0 = tile_source_row(plane, i32(row0) - pad_h, src_h, src_w, c0);
            let r1 = tile_source_row(plane, i32(row0) + 1 - pad_h, src_h, src_w, c0);
            let r2 = tile_source_row(plane, i32(row0) + 2 - pad_h, src_h, src_w, c0);
            let r3 = tile_source_row(plane, i32(row0) + 3 - pad_h, src_h, src_w, c0);
            let r4 = tile_source_row(plane, i32(row0) + 4 - pad_h, src_h, src_w, c0);
            let r5 = tile_source_row(plane, i32(row0) + 5 - pad_h, src_h, src_w, c0);
            acc0 += dw_taps(r0, k0) + dw_taps(r1, k1) + dw_taps(r2, k2);
            acc1 += dw_taps(r1, k0) + dw_taps(r2, k1) + dw_taps(r3, k2);
            acc2 += dw_taps(r2, k0) + dw_taps(r3, k1) + dw_taps(r4, k2);
            acc3 += dw_taps(r3, k0) + dw_taps(r4, k1) + dw_taps(r5, k2);
        }
    }
    if !bwd && p.has_bias != 0u {
        let bias = vec4<f32>(b[dc]);
        acc0 += bias;
        acc1 += bias;
        acc2 += bias;
        acc3 += bias;
    }
    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    return Tile(rows, (n * dst_c + dc) * dst_d + dep, row0, col0);
}

// Stores a tile into planes of height x width.
fn tile_store(t: Tile, height: u32, width: u32) {
    for (var i = 0u; i < 4u; i++) {
        if t.row0 + i < height {
            dw_store((t.plane * height + t.row0 + i) * width, t.col0, width, t.acc[i]);
        }
    }
}

@compute @workgroup_size(WG)
fn tiles_3x3_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx < p.total {
        tile_store(tiles_3x3(idx, false), p.out_h, p.out_w);
    }
}

@group(0) @binding(7) var<storage, read_write> pool_indices: array<i32>;

// tiles_3x3_forward, then ReLU and a 2x2 max-pool of stride 2 over each tile's four windows,
// into (pool_h, pool_w) planes: the conv output is never stored. With pool_indices != 0 each
// window's first maximum's flat index in the conv output plane goes to pool_indices (-1 where
// the ReLU was off), as max-pool backward takes them. 2-D convolutions (out_d = 1).
@compute @workgroup_size(WG)
fn tiles_3x3_forward_relu_pool(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx >= p.total {
        return;
    }
    let t = tiles_3x3(idx, false);
    for (var a = 0u; a < 2u; a++) {
        let pr = t.row0 / 2u + a;
        let top = max(t.acc[2u * a], vec4<f32>(0.0));
        let bottom = max(t.acc[2u * a + 1u], vec4<f32>(0.0));
        for (var e = 0u; e < 2u; e++) {
            let pc = t.col0 / 2u + e;
            if pr >= p.pool_h || pc >= p.pool_w {
                continue;
            }
            let v = vec4<f32>(top[2u * e], top[2u * e + 1u], bottom[2u * e], bottom[2u * e + 1u]);
            let m = first_max4(v);
            let at = (t.plane * p.pool_h + pr) * p.pool_w + pc;
            y[at] = m.value;
            if p.pool_indices != 0u {
                let flat = (2u * pr + m.lane / 2u) * p.out_w + 2u * pc + m.lane % 2u;
                pool_indices[at] = select(-1, i32(flat), m.value > 0.0);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn tiles_3x3_backward_input(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = linear_index(wg, nwg, lid);
    if idx < p.total {
        tile_store(tiles_3x3(idx, true), p.in_h, p.in_w);
    }
}

var<workgroup> dw_sums: array<vec3<f32>, 192>;

// grad_w of the 3x3 tiles' convolutions: one workgroup of 64 per weight slot (output channel,
// input channel within its group, depth tap); each invocation takes 4x4 tiles of grad_y in
// turn, reads the tile's six x rows once and adds all nine taps' products, then the workgroup
// adds its 64 partial sums up. x comes through grad_y's bindings (the source dw_row6 reads)
// and grad_y through x's. `total` = tiles per slot: N * out_d * ceil(out_h / 4) *
// ceil(out_w / 4). It shares its body with the pooled variant below, so it binds
// `pool_indices` too (a placeholder).
@compute @workgroup_size(64)
fn tiles_3x3_backward_weight(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    tiles_weight_slot(wg.y * nwg.x + wg.x, lid, false);
}

// The same for tiles_3x3_forward_relu_pool's convolution (2-D), from the pooled gradient
// (through x's bindings) and the saved argmax (`pool_indices`, -1 where the ReLU was off):
// each 4x4 tile holds four whole windows, so grad_y is never written out un-pooled.
@compute @workgroup_size(64)
fn tiles_3x3_backward_weight_pooled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    tiles_weight_slot(wg.y * nwg.x + wg.x, lid, true);
}

// Row oh, columns col0 .. col0 + 3 (col0 a multiple of 4) of the gradient at the output of a
// fused conv -> ReLU -> 2x2 max-pool: two windows' pooled gradients at their argmax, zero
// elsewhere and outside every window.
fn pooled_row4(n: u32, co: u32, oh: u32, col0: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let ph = oh / 2u;
    if oh >= p.out_h || ph >= p.pool_h {
        return v;
    }
    let plane = (n * p.c_out + co) * p.pool_h * p.pool_w + ph * p.pool_w;
    for (var e = 0u; e < 2u; e++) {
        let pw = col0 / 2u + e;
        if pw < p.pool_w {
            let g = load_x(plane + pw);
            let chosen = pool_indices[plane + pw];
            let first = i32(oh * p.out_w + col0 + 2u * e);
            v[2u * e] = select(0.0, g, chosen == first);
            v[2u * e + 1u] = select(0.0, g, chosen == first + 1);
        }
    }
    return v;
}

fn tiles_weight_slot(slot: u32, lid: u32, pooled: bool) {
    let cin_g = p.c_in / p.groups;
    let slots = p.c_out * cin_g * p.k_d;
    var t0 = divmod24(min(slot, slots - 1u), p.k_d);
    let kd = t0.y;
    t0 = divmod24(t0.x, cin_g);
    let co = t0.x;
    // x's channel: the output channel's group's first input channel, plus t0.y.
    let ci = divmod24(co, p.c_out / p.groups).x * cin_g + t0.y;
    let col_tiles = (p.out_w + 3u) / 4u;
    let row_tiles = (p.out_h + 3u) / 4u;
    var g0 = vec3<f32>(0.0);
    var g1 = vec3<f32>(0.0);
    var g2 = vec3<f32>(0.0);
    for (var tile = lid; tile < p.total; tile += 64u) {
        let at = split3(tile, p.out_d, row_tiles, col_tiles);
        let col0 = at.w * 4u;
        let row0 = at.z * 4u;
        let od = at.y;
        let n = at.x;
        let id = i32(od * p.stride_d + kd * p.dil_d) - i32(p.pad_d);
        if id < 0 || id >= i32(p.in_d) {
            continue;
        }
        // The six x rows under the tile and its four grad_y rows, written out (as in
        // tiles_3x3: no arrays indexed in loops).
        let plane = ((n * p.c_in + ci) * p.in_d + u32(id)) * p.in_h;
        let c0 = i32(col0) - i32(p.pad_w);
        let r = i32(row0) - i32(p.pad_h);
        let x0 = tile_source_row(plane, r, p.in_h, p.in_w, c0);
        let x1 = tile_source_row(plane, r + 1, p.in_h, p.in_w, c0);
        let x2 = tile_source_row(plane, r + 2, p.in_h, p.in_w, c0);
        let x3 = tile_source_row(plane, r + 3, p.in_h, p.in_w, c0);
        let x4 = tile_source_row(plane, r + 4, p.in_h, p.in_w, c0);
        let x5 = tile_source_row(plane, r + 5, p.in_h, p.in_w, c0);
        let gy_plane = ((n * p.c_out + co) * p.out_d + od) * p.out_h;
        let y0 = tile_grad_row(pooled, n, co, gy_plane, row0, col0);
        let y1 = tile_grad_row(pooled, n, co, gy_plane, row0 + 1u, col0);
        let y2 = tile_grad_row(pooled, n, co, gy_plane, row0 + 2u, col0);
        let y3 = tile_grad_row(pooled, n, co, gy_plane, row0 + 3u, col0);
        g0 += dw_products(x0, y0) + dw_products(x1, y1) + dw_products(x2, y2)
            + dw_products(x3, y3);
        g1 += dw_products(x1, y0) + dw_products(x2, y1) + dw_products(x3, y2)
            + dw_products(x4, y3);
        g2 += dw_products(x2, y0) + dw_products(x3, y1) + dw_products(x4, y2)
            + dw_products(x5, y3);
    }
    dw_sums[lid * 3u] = g0;
    dw_sums[lid * 3u + 1u] = g1;
    dw_sums[lid * 3u + 2u] = g2;
    // One barrier, then invocation j < 3 adds up kernel row j's 64 partial sums (on CPU
    // adapters each barrier switches between all of the workgroup's subgroups).
    workgroupBarrier();
    if lid < 3u && slot < slots {
        var v = vec3<f32>(0.0);
        for (var i = 0u; i < 64u; i++) {
            v += dw_sums[i * 3u + lid];
        }
        grad_w[slot * 9u + lid * 3u] = v.x;
        grad_w[slot * 9u + lid * 3u + 1u] = v.y;
        grad_w[slot * 9u + lid * 3u + 2u] = v.z;
    }
}

// Row oh of grad_y's tile at col0 for tiles_weight_slot: from the pooled gradient and its
// argmax when `pooled`, else from plane row gy_plane + oh (zero past the plane).
fn tile_grad_row(pooled: bool, n: u32, co: u32, gy_plane: u32, oh: u32, col0: u32) -> vec4<f32> {
    if pooled {
        return pooled_row4(n, co, oh, col0);
    }
    let at = (gy_plane + min(oh, p.out_h - 1u)) * p.out_w;
    return tile_row4_x(at, col0, p.out_w, oh < p.out_h);
}

// The three taps' sums of products of one x row (six columns) with four grad_y values.
fn dw_products(r: Row6, gy: vec4<f32>) -> vec3<f32> {
    let s1 = vec4<f32>(r.lo.yzw, r.hi.x);
    let s2 = vec4<f32>(r.lo.zw, r.hi);
    return vec3<f32>(dot(r.lo, gy), dot(s1, gy), dot(s2, gy));
}
