// conv/depthwise.wgsl: depthwise convolution (groups = C_in = C_out), forward and backward.
//
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
fn depthwise_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
fn depthwise_backward_input(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
fn depthwise_backward_weight(invocation: Invocation) {
    let weight = workgroup_index(invocation);
    // (channel, kd, kh, kw) of this weight.
    let tap = split3(min(weight, p.total - 1u), p.k_d, p.k_h, p.k_w);
    let c = tap.x;
    let kd = tap.y;
    let kh = tap.z;
    let kw = tap.w;
    var acc = 0.0;
    let rows = p.n * p.out_d * p.out_h;
    let last = select(rows, p.row_end, p.row_end != 0u);
    for (var r = p.row_begin + invocation.lid; r < last; r += 64u) {
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
    depthwise_sums[invocation.lid] = acc;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if invocation.lid < half {
            depthwise_sums[invocation.lid] += depthwise_sums[invocation.lid + half];
        }
        workgroupBarrier();
    }
    if invocation.lid == 0u && weight < p.total {
        var sum = depthwise_sums[0];
        if p.row_begin > 0u {
            sum += grad_w[weight];
        }
        grad_w[weight] = sum;
    }
}

// 3x3 convolutions of stride 1 and dilation 1 along h and w (any taps, stride and dilation
// along d), any groups, as 4x4 output tiles: the host picks them for depthwise and grouped
