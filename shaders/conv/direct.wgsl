// conv/direct.wgsl: direct and transposed convolution, forward and backward.
//
// Every spatial rank runs as 3-D: a 1-D convolution has depth = height = 1, a 2-D one depth = 1.
// An invocation computes four outputs of a row (conv_forward) or one output element (the
// others); layouts are PyTorch's (N, C, D, H, W).
// Weights: conv (C_out, C_in/groups, kD, kH, kW); transposed (C_in, C_out/groups, kD, kH, kW).
//
// The backward passes are gathers, never scatters with atomics:
// - the data gradient of a convolution is `conv_transpose_forward` applied to grad_y with the
//   same weight, and that of a transposed convolution is `conv_forward` applied to grad_y (the
//   weight layouts line up; the host passes the input's size as the output size);
// - `conv_backward_weight` gives each invocation one weight element and sums over the batch and
//   the output positions; with input and grad_y swapped it is the transposed convolution's.

struct OutPos {
    n: u32,
    c: u32,
    d: u32,
    h: u32,
    w: u32,
}

// Output element idx's position, rows counted in `width` steps (p.out_w, or quads of it).
fn out_pos(idx: u32, width: u32) -> OutPos {
    var r = idx;
    var o: OutPos;
    o.w = r % width;
    r = r / width;
    o.h = r % p.out_h;
    r = r / p.out_h;
    o.d = r % p.out_d;
    r = r / p.out_d;
    o.c = r % p.c_out;
    o.n = r / p.c_out;
    return o;
}

// y[n, co, od, oh, ow] = b[co] + sum over the group's input channels and the kernel window of
// x[n, ci, od*s - p + kd*dil, ...] * w[co, ci, kd, kh, kw]. Four outputs of a row per
// invocation (ow = 4q .. 4q + 4, those from out_w on left out): the position's divisions and
// every weight load serve four outputs. `total` counts the rows' quads.
@compute @workgroup_size(WG)
fn conv_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let o = out_pos(idx, (p.out_w + 3u) / 4u);
    let n = o.n;
    let co = o.c;
    let ow0 = o.w * 4u;
    let cin_g = p.c_in / p.groups;
    let g = co / (p.c_out / p.groups);
    let d0 = i32(o.d * p.stride_d) - i32(p.pad_d);
    let h0 = i32(o.h * p.stride_h) - i32(p.pad_h);
    let w0 = i32(ow0 * p.stride_w) - i32(p.pad_w);
    var acc = vec4<f32>(0.0);
    for (var ci = 0u; ci < cin_g; ci++) {
        let x_c = (n * p.c_in + g * cin_g + ci) * p.in_d;
        let w_c = (co * cin_g + ci) * p.k_d;
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
                    let wv = load_w(w_row + kw);
                    let iw0 = w0 + i32(kw * p.dil_w);
                    for (var e = 0u; e < 4u; e++) {
                        let iw = iw0 + i32(e * p.stride_w);
                        let ok = iw >= 0 && iw < i32(p.in_w);
                        let xv = load_x(x_row + min(u32(max(iw, 0)), p.in_w - 1u));
                        acc[e] += select(0.0, xv, ok) * wv;
                    }
                }
            }
        }
    }
    let at = (((n * p.c_out + co) * p.out_d + o.d) * p.out_h + o.h) * p.out_w;
    dw_store(at, ow0, p.out_w, conv_out4(co, acc));
}

// Gather form of the transposed convolution: each invocation owns one output element and sums
// the contributions of every input element that scatters onto it, so no atomics are needed.
@compute @workgroup_size(WG)
fn conv_transpose_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let o = out_pos(idx, p.out_w);
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

// grad_w[co, ci, kd, kh, kw] = sum over n and output positions o of
//     grad_y[n, co, o] * x[n, g*cin_g + ci, o*stride - pad + k*dil].
// Sizes as for conv_forward: `in_*` describe x, `out_*` grad_y; total = weight elements.
@compute @workgroup_size(WG)
fn conv_backward_weight(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
