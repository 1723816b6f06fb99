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
    dw_store(((nc * p.out_d + od) * p.out_h + oh) * p.out_w, ow0, p.out_w, conv_out4(c, acc));
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

// Four consecutive values of x (grad_y) from flat index i: two texel fetches from the texture
// copy, or four loads. Callers mask what lies outside the row.
fn x4(i: u32) -> vec4<f32> {
    if TEXTURE_INPUTS {
        return from_offset(x_texel(i / 4u), x_texel(i / 4u + 1u), i % 4u);
    }
    let last = arrayLength(&x) - 1u;
    return vec4<f32>(x[min(i, last)], x[min(i + 1u, last)], x[min(i + 2u, last)],
                     x[min(i + 3u, last)]);
}

fn grad_y4(i: u32) -> vec4<f32> {
    if TEXTURE_INPUTS {
        return from_offset(grad_y_texel(i / 4u), grad_y_texel(i / 4u + 1u), i % 4u);
    }
    let last = arrayLength(&grad_y) - 1u;
    return vec4<f32>(grad_y[min(i, last)], grad_y[min(i + 1u, last)],
                     grad_y[min(i + 2u, last)], grad_y[min(i + 3u, last)]);
}

// The taps of row kh of channel c's 3x3 filter.
fn w_row3(c: u32, kh: u32) -> vec3<f32> {
    let at = c * 9u + kh * 3u;
    return vec3<f32>(load_w(at), load_w(at + 1u), load_w(at + 2u));
}

// depthwise_forward for 2-D 3x3 filters of stride 2, padding 1 and dilation 1 (MobileNet's
// downsampling layers), down strips of S2_STRIP output rows: outputs ow0 .. ow0 + 3 read input
// columns c0 - 1 .. c0 + 7 (c0 = 2 * ow0) of each of three rows as one value and two runs of
// four (five texel fetches a row, three where rows are whole texels, IN_QUADS: about 1.15x;
// the generic kernel makes a fetch per tap and output), and an output row's last source row
// (2 oh + 1) is the next one's first, so each output row reads two new rows. The weights and
// the channel's scale and shift are read once per strip.
// `total` = N * C * ceil(out_h / S2_STRIP) * ceil(out_w / 4).
const S2_STRIP: u32 = 8u;

@compute @workgroup_size(WG)
fn depthwise_3x3_s2_strips(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let at = strip_at(idx, S2_STRIP, 4u);
    let nc = at.nc;
    let ow0 = at.col0;
    let row0 = at.row0;
    let w0 = w_row3(at.c, 0u);
    let w1 = w_row3(at.c, 1u);
    let w2 = w_row3(at.c, 2u);
    let st = conv_affine(at.c);
    var top = dw_s2_row(nc, row0, 0u, 2u * ow0);
    let rows = min(S2_STRIP, p.out_h - row0);
    for (var i = 0u; i < rows; i++) {
        let oh = row0 + i;
        let bottom = dw_s2_row(nc, oh, 2u, 2u * ow0);
        let acc = s2_taps(top, w0) + s2_taps(dw_s2_row(nc, oh, 1u, 2u * ow0), w1)
            + s2_taps(bottom, w2);
        strip_store((at.out * p.out_h + oh) * p.out_w, ow0, conv_apply4(acc, st));
        top = bottom;
    }
}

// The three taps' inputs of row kh under outputs ow0 .. ow0 + 3 (c0 = 2 * ow0) of output row
// oh of plane nc, as vectors over the four outputs: output e reads column c0 + 2e - 1 + kw,
// so tap kw = 0 takes `left` (column c0 - 1) for e = 0, then every tap reads runs of four
// from c0 and c0 + 4 (five texel fetches a row, where the generic kernel makes one per tap
// and output). Zeros outside the row, and where row kh lies in the padding.
struct DwS2Row {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
}

fn dw_s2_row(nc: u32, oh: u32, kh: u32, c0: u32) -> DwS2Row {
    let ih = i32(2u * oh + kh) - 1;
    if ih < 0 || ih >= i32(p.in_h) {
        return DwS2Row(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    }
    let width = i32(p.in_w);
    let right = vec4<i32>(i32(c0)) + vec4<i32>(0, 1, 2, 3) < vec4<i32>(width);
    let right2 = vec4<i32>(i32(c0) + 4) + vec4<i32>(0, 1, 2, 3) < vec4<i32>(width);
    let row = (nc * p.in_h + u32(ih)) * p.in_w;
    var lo: vec4<f32>;
    var hi: vec4<f32>;
    var left: f32;
    if IN_QUADS && TEXTURE_INPUTS {
        // c0 = 2 * ow0 is a multiple of 8: three texel fetches, where x4 makes two each.
        let q = (row + c0) / 4u;
        lo = x_texel(q);
        hi = x_texel(q + 1u);
        left = x_texel(max(q, 1u) - 1u).w;
    } else {
        lo = x4(row + c0);
        hi = x4(row + c0 + 4u);
        left = load_x(row + max(c0, 1u) - 1u);
    }
    lo = select(vec4<f32>(0.0), lo, right);
    hi = select(vec4<f32>(0.0), hi, right2);
    left = select(0.0, left, c0 > 0u);
    return DwS2Row(vec4<f32>(left, lo.y, lo.w, hi.y), vec4<f32>(lo.x, lo.z, hi.x, hi.z),
                   vec4<f32>(lo.y, lo.w, hi.y, hi.w));
}

// A row's three taps times its weights k, for the four outputs.
fn s2_taps(r: DwS2Row, k: vec3<f32>) -> vec4<f32> {
    return r.k0 * k.x + r.k1 * k.y + r.k2 * k.z;
}

// depthwise_backward_input for the same layers, down strips of S2_STRIP input rows, with the
// layer's parameters swapped (p.in_* grad_y's size, p.out_* grad_x's: `strip_at` walks grad_x
// and `strip_store` writes it, a run of four as one vec4 where rows are whole texels). Input
// columns iw0 .. iw0 + 3 (iw0 = 4m) gather grad_y columns 2m .. 2m + 2 of the one or two rows
// whose windows reach input row ih (tap kh with ih + 1 - kh even): column iw = iw0 + e takes
// tap kw where iw + 1 - kw is even. The channel's nine weights are read once per strip.
// `total` = N * C * ceil(in_h / S2_STRIP) * ceil(in_w / 4).
@compute @workgroup_size(WG)
fn depthwise_3x3_s2_backward_input_strips(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let at = strip_at(idx, S2_STRIP, 4u);
    let k = array<vec3<f32>, 3>(w_row3(at.c, 0u), w_row3(at.c, 1u), w_row3(at.c, 2u));
    let iw0 = at.col0;
    let o0 = iw0 / 2u;
    let inside = vec4<u32>(o0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.in_w);
    let rows = min(S2_STRIP, p.out_h - at.row0);
    for (var i = 0u; i < rows; i++) {
        let ih = at.row0 + i;
        var acc = vec4<f32>(0.0);
        for (var kh = 0u; kh < 3u; kh++) {
            let t = i32(ih + 1u) - i32(kh);
            let oh = t / 2;
            if t < 0 || (t & 1) != 0 || oh >= i32(p.in_h) {
                continue;
            }
            let row = (at.nc * p.in_h + u32(oh)) * p.in_w + o0;
            let g = select(vec4<f32>(0.0), grad_y4(row), inside);
            let wk = k[kh];
            acc += vec4<f32>(g.x * wk.y, g.y * wk.x + g.x * wk.z, g.y * wk.y, g.z * wk.x + g.y * wk.z);
        }
        strip_store((at.out * p.out_h + ih) * p.out_w, iw0, acc);
    }
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

var<workgroup> dw_tap_sums: array<f32, 576>;

// Row kh's three taps' products with one quad g of grad_y at output row oh of plane nc (its
// columns from ow0 = c0 / 2), from the inputs depthwise_3x3_s2_strips reads.
fn dw_s2_taps(nc: u32, oh: u32, kh: u32, c0: u32, g: vec4<f32>) -> vec3<f32> {
    let r = dw_s2_row(nc, oh, kh, c0);
    return vec3<f32>(dot(r.k0, g), dot(r.k1, g), dot(r.k2, g));
}

// The nine taps' products (rows kh = 0, 1, 2) of quad i of channel ch's grad_y rows (n, oh),
// `quads` to a row, for the two kernels below.
struct DwS2Taps {
    r0: vec3<f32>,
    r1: vec3<f32>,
    r2: vec3<f32>,
}

fn dw_s2_quad(i: u32, quads: u32, ch: u32) -> DwS2Taps {
    let rq = divmod24(i, quads);
    let noh = divmod24(rq.x, p.out_h);
    let nc = noh.x * p.c_out + ch;
    let ow0 = rq.y * 4u;
    let inside = vec4<u32>(ow0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.out_w);
    let gy = grad_y4((nc * p.out_h + noh.y) * p.out_w + ow0);
    let g = select(vec4<f32>(0.0), gy, inside);
    return DwS2Taps(dw_s2_taps(nc, noh.y, 0u, 2u * ow0, g), dw_s2_taps(nc, noh.y, 1u, 2u * ow0, g),
                    dw_s2_taps(nc, noh.y, 2u, 2u * ow0, g));
}

// Channel c's weight gradient from its sums over the piece: added to the last piece's.
fn dw_s2_store(c: u32, t: u32, sum: f32) {
    let at = c * 9u + t;
    grad_w[at] = select(sum, sum + grad_w[at], p.row_begin > 0u);
}

// depthwise_backward_weight for depthwise_3x3_s2_strips' layers: one workgroup of 64 per
// channel, whose invocations stride over the quads of its grad_y rows (n, oh) in the piece
// [row_begin, row_end) and sum all nine taps at once from a quad of grad_y and the input
// columns under it (two texel fetches for grad_y and five a row for x, where the per-weight
// kernel fetches two values per product and tap); then the workgroup adds up each tap's 64
// partial sums. Workgroup id = channel.
@compute @workgroup_size(64)
fn depthwise_3x3_s2_backward_weight(invocation: Invocation) {
    let c = workgroup_index(invocation);
    let ch = min(c, p.c_out - 1u);
    let lid = invocation.lid;
    let quads = (p.out_w + 3u) / 4u;
    let last = select(p.n * p.out_h, p.row_end, p.row_end != 0u);
    var s = DwS2Taps(vec3<f32>(0.0), vec3<f32>(0.0), vec3<f32>(0.0));
    for (var i = p.row_begin * quads + lid; i < last * quads; i += 64u) {
        let q = dw_s2_quad(i, quads, ch);
        s = DwS2Taps(s.r0 + q.r0, s.r1 + q.r1, s.r2 + q.r2);
    }
    let taps = array<f32, 9>(s.r0.x, s.r0.y, s.r0.z, s.r1.x, s.r1.y, s.r1.z, s.r2.x, s.r2.y, s.r2.z);
    for (var t = 0u; t < 9u; t++) {
        dw_tap_sums[t * 64u + lid] = taps[t];
    }
    workgroupBarrier();
    for (var half = 32u; half > 0u; half /= 2u) {
        if lid < half {
            for (var t = 0u; t < 9u; t++) {
                dw_tap_sums[t * 64u + lid] += dw_tap_sums[t * 64u + lid + half];
            }
        }
        workgroupBarrier();
    }
    if lid < 9u && c < p.c_out {
        dw_s2_store(c, lid, dw_tap_sums[lid * 64u]);
    }
}

// The same with one invocation per channel: for channels of few quads (the host's LANE_SUMS),
// where a workgroup's lanes would mostly idle through its barriers, and on CPU adapters,
// whose workgroups run their lanes one after another anyway.
@compute @workgroup_size(WG)
fn depthwise_3x3_s2_backward_weight_lanes(invocation: Invocation) {
    let c = linear_index(invocation);
    if c >= p.c_out { return; }
    let quads = (p.out_w + 3u) / 4u;
    let last = select(p.n * p.out_h, p.row_end, p.row_end != 0u);
    var s = DwS2Taps(vec3<f32>(0.0), vec3<f32>(0.0), vec3<f32>(0.0));
    for (var i = p.row_begin * quads; i < last * quads; i++) {
        let q = dw_s2_quad(i, quads, c);
        s = DwS2Taps(s.r0 + q.r0, s.r1 + q.r1, s.r2 + q.r2);
    }
    dw_s2_store(c, 0u, s.r0.x);
    dw_s2_store(c, 1u, s.r0.y);
    dw_s2_store(c, 2u, s.r0.z);
    dw_s2_store(c, 3u, s.r1.x);
    dw_s2_store(c, 4u, s.r1.y);
    dw_s2_store(c, 5u, s.r1.z);
    dw_s2_store(c, 6u, s.r2.x);
    dw_s2_store(c, 7u, s.r2.y);
    dw_s2_store(c, 8u, s.r2.z);
}
