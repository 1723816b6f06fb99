// subgroup/conv_3x3_sg.wgsl: 3x3 convolutions (stride 1, padding 1) on 8-lane subgroups.
//
// conv_3x3_sg_r16: a convolution as a GEMM over K = (source channel k, tap row j) whose B
// operand is gathered on the fly from a source kept in rows of WS = ceil(p.conv.in_w / 4)
// texels (flat, at flat_xy): texel ((n * K_C + k) * H_S + r) * WS + t holds values 4t .. 4t + 4
// of row r of source channel k. Output row h's tap row j reads source row s h + j - pad
// (p.conv.stride_h, p.conv.pad_h; rows outside [0, H_S) read as zeros), and A's texel
// (k * k_h + j, row) holds three taps (a.x, a.y, a.z) that multiply that row's values at
// positions w + 1, w and w - 1: three fetches (texels t - 1, t, t + 1) give all three
// four-position vectors of output texel t by swizzles, where an im2col would write and then
// fetch three texels. Texels outside a row read as zeros (padding 1), or with p.margin each
// row carries a texel of values at each end (texel t + 1 holds positions 4t .. 4t + 4). It runs
// - a 3x3 convolution's data gradient (stride 1, padding 1): grad_x[n, c, h, w] = sum over
//   (o, kh, kw) of W[o, c, kh, kw] grad_y[n, o, h + 1 - kh, w + 1 - kw] (src = grad_y, rows =
//   C_in, K_C = C_out: pack_dgrad_3x3),
// - its forward pass, the same sum with the kernel flipped (src = x, rows = C_out, K_C = C_in:
//   pack_conv_3x3), with bias and ReLU, or fused with ReLU and a 2x2 max-pool (p.pool, as in
//   the texture GEMMs), and
// - with COL_STRIDE = 2, the forward pass of a 3x3 convolution of stride 2 and padding 1 from
//   x's plain rows: output texel t's taps read texels 2t - 1, 2t and 2t + 1 (values 8t - 4 ..
//   8t + 8), every tap a swizzle of them, and
// - the forward pass of another 2-D convolution of one group and no dilation (any kernel,
//   stride and padding; the first layers, whose few channels make im2col's writes the cost):
//   its input rows split by phase into source channels of three taps each (p.margin;
//   pack_phase_rows and pack_conv_rows in subgroup/rows_pack.wgsl).
// Lanes compute 16 rows of four texels: four consecutive texels (t fastest) of the output, or
// with p.pool a 2 x 2 block of texels (rows 2 hp and 2 hp + 1, texels 2 tp and 2 tp + 1: four
// 2x2 windows). p.m = rows; p.n = the chunk's output texels, or with p.pool its blocks; p.conv:
// c_in = rows and c_out = K_C (this kernel's view, not the layer's), in_h = H_S, in_w = the
// source rows' width, k_h, stride_h, pad_h, out_h and out_w the output's size (pooled: half
// of it), n_offset (the chunk's first sample), total (src's texels). Subgroup s of the grid
// takes row block s % ceil(M / 16) and the next eight lanes' texels; only whole subgroups
// return early (the lanes share A by broadcast, as in gemm_sg_r16); lanes past the end compute
// clamped copies that are never stored.

// Phase rows (p.margin): a group of fewer than three taps leaves some of A's slots empty, and
// those read real values (0 * inf would be NaN where PyTorch has none), so the B operands of
// an empty slot are zeroed: A's w holds the step's slots as bits (pack_conv_rows).
override TAP_MASK: bool = false;

// A data gradient reading the forward pass's packed taps (pack_conv_3x3's texel (3 c + j, o)
// holds W[o, c, j, 2 - kw]) instead of pack_dgrad_3x3's: row c's step (o, kh) is texel
// (3 c + 2 - kh, o), reversed.
override A_FLIPPED: bool = false;

// A's texel for row mg at step u = k * k_h + kh.
fn conv3_a(u: i32, k: i32, kh: i32, mg: i32) -> vec4<f32> {
    if A_FLIPPED {
        let t = textureLoad(ta_r, vec2<i32>(3 * mg + 2 - kh, k));
        return vec4<f32>(t.zyx, 0.0);
    }
    return textureLoad(ta_r, vec2<i32>(u, mg));
}

struct Conv3Texel {
    // src's flat texel for tap row 0 of channel 0 (unclamped), and that row's index.
    at: i32,
    row: i32,
    // The output's index of the texel's first value in row 0, and how many values to store.
    out: u32,
    count: u32,
    // Which neighbours exist: the texels left and right in the row.
    left: bool,
    right: bool,
}

fn conv3_texel(n: u32, h: u32, t: u32, live: bool) -> Conv3Texel {
    let w4 = (p.conv.out_w + 3u) / 4u;
    let ws = (p.conv.in_w + 3u) / 4u;
    let hh = min(h, p.conv.out_h - 1u);
    let tt = min(t, w4 - 1u);
    var d: Conv3Texel;
    d.row = i32(p.conv.stride_h * hh) - i32(p.conv.pad_h);
    let mid = COL_STRIDE * tt + p.margin;
    d.at = i32(n * p.conv.c_out * p.conv.in_h * ws + mid) + d.row * i32(ws);
    d.out = ((p.conv.n_offset + n) * p.conv.c_in * p.conv.out_h + hh) * p.conv.out_w + 4u * tt;
    d.count = select(0u, min(4u, p.conv.out_w - 4u * tt), live && h < p.conv.out_h && t < w4);
    if ROW_SAMPLES > 1u {
        // Row hh of samples S n .. (p.conv.n: the chunk's samples), out_w values each.
        let first = ROW_SAMPLES * n;
        d.out = ((p.conv.n_offset + first) * p.conv.c_in * p.conv.out_h + hh) * p.conv.out_w;
        let samples = min(ROW_SAMPLES, p.conv.n - min(first, p.conv.n));
        d.count = select(0u, samples * p.conv.out_w, live && h < p.conv.out_h);
    }
    d.left = tt > 0u || p.margin != 0u;
    d.right = mid + 1u < ws || p.margin != 0u;
    return d;
}

// Texel j of lane `unit`'s four (see above).
fn conv3_lane_texel(unit: u32, j: u32) -> Conv3Texel {
    let w4 = (p.conv.out_w + 3u) / 4u;
    if pooled_epilogue() {
        let pairs = (w4 + 1u) / 2u;
        let u = min(unit, p.n - 1u);
        let tp = u % pairs;
        let hp = (u / pairs) % (p.conv.out_h / 2u);
        let n = u / (pairs * (p.conv.out_h / 2u));
        return conv3_texel(n, 2u * hp + j / 2u, 2u * tp + j % 2u, unit < p.n);
    }
    let f = unit * 4u + j;
    let ff = min(f, p.n - 1u);
    let row = ff / w4;
    return conv3_texel(row / p.conv.out_h, row % p.conv.out_h, ff % w4, f < p.n);
}

// One tap row's three B operands for a texel: the source at w + 1, w and w - 1, which A's
// a.x, a.y and a.z multiply.
struct Conv3Taps {
    b0: vec4<f32>,
    b1: vec4<f32>,
    b2: vec4<f32>,
}

fn conv3_taps(left: vec4<f32>, mid: vec4<f32>, right: vec4<f32>) -> Conv3Taps {
    let r = row_taps(left, mid, right);
    return Conv3Taps(r.k2, r.k1, r.k0);
}

// Two steps' taps (a with b, then e with c) in one chain.
fn conv3_fma2(acc: ptr<function, vec4<f32>>, a: vec4<f32>, b: Conv3Taps, e: vec4<f32>,
              c: Conv3Taps) {
    let v = fma(vec4(a.z), b.b2, fma(vec4(a.y), b.b1, fma(vec4(a.x), b.b0, *acc)));
    *acc = fma(vec4(e.z), c.b2, fma(vec4(e.y), c.b1, fma(vec4(e.x), c.b0, v)));
}

// One step's B operands for output texel d: tap row kh of the source at texel shift `shift`
// (clamped into the texture, `last` its last texel), zeros outside the image or where !live,
// and with TAP_MASK where `slots` (A's w) has no tap.
fn conv3_b(d: Conv3Texel, kh: i32, shift: i32, last: i32, live: bool, slots: f32) -> Conv3Taps {
    let on = live && u32(d.row + kh) < p.conv.in_h;
    let q = clamp(d.at + shift, 0, last);
    let m = select(vec4<f32>(0.0), textureLoad(tb_r, flat_xy(u32(q))), on);
    let l = select(vec4<f32>(0.0), textureLoad(tb_r, flat_xy(u32(max(q - 1, 0)))), on && d.left);
    let r = select(vec4<f32>(0.0), textureLoad(tb_r, flat_xy(u32(min(q + 1, last)))), on && d.right);
    var b = conv3_taps(l, m, r);
    if TAP_MASK {
        let bits = u32(slots);
        b.b0 = select(vec4<f32>(0.0), b.b0, (bits & 1u) != 0u);
        b.b1 = select(vec4<f32>(0.0), b.b1, (bits & 2u) != 0u);
        b.b2 = select(vec4<f32>(0.0), b.b2, (bits & 4u) != 0u);
    }
    return b;
}

// The output's values of one texel (the first `count` of them) in row ch, with the row's bias
// or batch norm and the clamp (p.relu), as the GEMMs' epilogue.
fn conv3_store(d: Conv3Texel, ch: u32, acc: vec4<f32>) {
    if ch >= p.m { return; }
    let v = affine_activate4(acc, row_affine(ch));
    let at = d.out + ch * p.conv.out_h * p.conv.out_w;
    if ROW_SAMPLES > 1u {
        // Value i: sample i / W's column i % W, a sample's C * H * W values further each.
        let w = p.conv.out_w;
        for (var i = 0u; i < d.count; i++) {
            c[at + (i / w) * p.conv.c_in * p.conv.out_h * w + i % w] = v[i];
        }
        return;
    }
    if d.count > 0u {
        c[at] = v.x;
    }
    if d.count > 1u {
        c[at + 1u] = v.y;
    }
    if d.count > 2u {
        c[at + 2u] = v.z;
    }
    if d.count > 3u {
        c[at + 3u] = v.w;
    }
}

// Where a lane's four 2x2 windows go (p.pool): the first window's index in row 0 of the pooled
// output, its first value's flat position in the un-pooled plane, and how many of the four
// windows exist.
struct Conv3Windows {
    at: u32,
    first: u32,
    count: u32,
}

fn conv3_windows(unit: u32) -> Conv3Windows {
    let pairs = (p.conv.out_w + 7u) / 8u;
    let ph = p.conv.out_h / 2u;
    let pw = p.conv.out_w / 2u;
    let u = min(unit, p.n - 1u);
    let tp = u % pairs;
    let hp = (u / pairs) % ph;
    let n = u / (pairs * ph);
    var g: Conv3Windows;
    g.at = (p.conv.n_offset + n) * p.conv.c_in * ph * pw + hp * pw + 4u * tp;
    g.first = 2u * hp * p.conv.out_w + 8u * tp;
    g.count = select(0u, min(4u, pw - min(4u * tp, pw)), unit < p.n);
    return g;
}

// Row ch's four windows from the lane's texels (a0, a1: row 2 hp; a2, a3: row 2 hp + 1), with
// bias, ReLU and the first maximum's index (shared/gemm_epilogue.wgsl's store_window).
fn conv3_store_pooled(g: Conv3Windows, ch: u32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>,
                      a3: vec4<f32>) {
    if ch >= p.m { return; }
    let b = row_bias(ch);
    let at = g.at + ch * (p.conv.out_h / 2u) * (p.conv.out_w / 2u);
    if g.count > 0u {
        store_window(at, g.first, vec4<f32>(a0.xy, a2.xy), b);
    }
    if g.count > 1u {
        store_window(at + 1u, g.first + 2u, vec4<f32>(a0.zw, a2.zw), b);
    }
    if g.count > 2u {
        store_window(at + 2u, g.first + 4u, vec4<f32>(a1.xy, a3.xy), b);
    }
    if g.count > 3u {
        store_window(at + 3u, g.first + 6u, vec4<f32>(a1.zw, a3.zw), b);
    }
}

@compute @workgroup_size(64, 1, 1)
fn conv_3x3_sg_r16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
         @builtin(subgroup_invocation_id) lane: u32) {
    let row_blocks = (p.m + 15u) / 16u;
    let s = wid.x * 8u + li / 8u;
    let row0 = (s % row_blocks) * 16u;
    let cb = s / row_blocks;
    let units = select((p.n + 3u) / 4u, p.n, pooled_epilogue());
    if cb * 8u >= units { return; }
    let unit = cb * 8u + lane;
    let d0 = conv3_lane_texel(unit, 0u);
    let d1 = conv3_lane_texel(unit, 1u);
    let d2 = conv3_lane_texel(unit, 2u);
    let d3 = conv3_lane_texel(unit, 3u);
    let last = i32(p.conv.total) - 1;
    let mg0 = i32(min(row0 + lane, p.m - 1u));
    let mg1 = i32(min(row0 + 8u + lane, p.m - 1u));
    let ws = i32((p.conv.in_w + 3u) / 4u);
    let plane = i32(p.conv.in_h) * ws;
    let k_h = i32(p.conv.k_h);
    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0); var acc0_2 = vec4<f32>(0.0); var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0); var acc1_2 = vec4<f32>(0.0); var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0); var acc2_2 = vec4<f32>(0.0); var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0); var acc3_2 = vec4<f32>(0.0); var acc3_3 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0); var acc4_2 = vec4<f32>(0.0); var acc4_3 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0); var acc5_2 = vec4<f32>(0.0); var acc5_3 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0); var acc6_2 = vec4<f32>(0.0); var acc6_3 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0); var acc7_2 = vec4<f32>(0.0); var acc7_3 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0); var acc8_1 = vec4<f32>(0.0); var acc8_2 = vec4<f32>(0.0); var acc8_3 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0); var acc9_1 = vec4<f32>(0.0); var acc9_2 = vec4<f32>(0.0); var acc9_3 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0); var acc10_1 = vec4<f32>(0.0); var acc10_2 = vec4<f32>(0.0); var acc10_3 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0); var acc11_1 = vec4<f32>(0.0); var acc11_2 = vec4<f32>(0.0); var acc11_3 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0); var acc12_1 = vec4<f32>(0.0); var acc12_2 = vec4<f32>(0.0); var acc12_3 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0); var acc13_1 = vec4<f32>(0.0); var acc13_2 = vec4<f32>(0.0); var acc13_3 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0); var acc14_1 = vec4<f32>(0.0); var acc14_2 = vec4<f32>(0.0); var acc14_3 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0); var acc15_1 = vec4<f32>(0.0); var acc15_2 = vec4<f32>(0.0); var acc15_3 = vec4<f32>(0.0);
    let steps = k_h * i32(p.conv.c_out);
    // Steps in pairs (u, u + 1), each accumulator taking both steps' six multiply-adds in one
    // chain: on lavapipe the 64 accumulators live in memory, and the longer chain halves their
    // loads and stores. Step u = k * k_h + kh: tap row kh of channel k, at texel shift
    // k * plane + kh * ws. An odd last step pairs with zeros.
    var k = 0;
    var kh = 0;
    var shift = 0;
    for (var u = 0; u < steps; u += 2) {
        let ag0 = conv3_a(u, k, kh, mg0);
        let ag1 = conv3_a(u, k, kh, mg1);
        let sb = subgroupBroadcast(ag0.w, 0u);
        let b0 = conv3_b(d0, kh, shift, last, true, sb);
        let b1 = conv3_b(d1, kh, shift, last, true, sb);
        let b2 = conv3_b(d2, kh, shift, last, true, sb);
        let b3 = conv3_b(d3, kh, shift, last, true, sb);
        kh += 1;
        shift += ws;
        if kh == k_h {
            k += 1;
            kh = 0;
            shift += plane - k_h * ws;
        }
        let more = u + 1 < steps;
        let u1 = min(u + 1, steps - 1);
        let k1 = min(k, i32(p.conv.c_out) - 1);
        let ah0 = select(vec4<f32>(0.0), conv3_a(u1, k1, kh, mg0), more);
        let ah1 = select(vec4<f32>(0.0), conv3_a(u1, k1, kh, mg1), more);
        let sc = subgroupBroadcast(ah0.w, 0u);
        let c0 = conv3_b(d0, kh, shift, last, more, sc);
        let c1 = conv3_b(d1, kh, shift, last, more, sc);
        let c2 = conv3_b(d2, kh, shift, last, more, sc);
        let c3 = conv3_b(d3, kh, shift, last, more, sc);
        kh += 1;
        shift += ws;
        if kh == k_h {
            k += 1;
            kh = 0;
            shift += plane - k_h * ws;
        }
        let a0 = subgroupBroadcast(ag0, 0u);
        let e0 = subgroupBroadcast(ah0, 0u);
        conv3_fma2(&acc0_0, a0, b0, e0, c0); conv3_fma2(&acc0_1, a0, b1, e0, c1); conv3_fma2(&acc0_2, a0, b2, e0, c2); conv3_fma2(&acc0_3, a0, b3, e0, c3);
        let a1 = subgroupBroadcast(ag0, 1u);
        let e1 = subgroupBroadcast(ah0, 1u);
        conv3_fma2(&acc1_0, a1, b0, e1, c0); conv3_fma2(&acc1_1, a1, b1, e1, c1); conv3_fma2(&acc1_2, a1, b2, e1, c2); conv3_fma2(&acc1_3, a1, b3, e1, c3);
        let a2 = subgroupBroadcast(ag0, 2u);
        let e2 = subgroupBroadcast(ah0, 2u);
        conv3_fma2(&acc2_0, a2, b0, e2, c0); conv3_fma2(&acc2_1, a2, b1, e2, c1); conv3_fma2(&acc2_2, a2, b2, e2, c2); conv3_fma2(&acc2_3, a2, b3, e2, c3);
        let a3 = subgroupBroadcast(ag0, 3u);
        let e3 = subgroupBroadcast(ah0, 3u);
        conv3_fma2(&acc3_0, a3, b0, e3, c0); conv3_fma2(&acc3_1, a3, b1, e3, c1); conv3_fma2(&acc3_2, a3, b2, e3, c2); conv3_fma2(&acc3_3, a3, b3, e3, c3);
        let a4 = subgroupBroadcast(ag0, 4u);
        let e4 = subgroupBroadcast(ah0, 4u);
        conv3_fma2(&acc4_0, a4, b0, e4, c0); conv3_fma2(&acc4_1, a4, b1, e4, c1); conv3_fma2(&acc4_2, a4, b2, e4, c2); conv3_fma2(&acc4_3, a4, b3, e4, c3);
        let a5 = subgroupBroadcast(ag0, 5u);
        let e5 = subgroupBroadcast(ah0, 5u);
        conv3_fma2(&acc5_0, a5, b0, e5, c0); conv3_fma2(&acc5_1, a5, b1, e5, c1); conv3_fma2(&acc5_2, a5, b2, e5, c2); conv3_fma2(&acc5_3, a5, b3, e5, c3);
        let a6 = subgroupBroadcast(ag0, 6u);
        let e6 = subgroupBroadcast(ah0, 6u);
        conv3_fma2(&acc6_0, a6, b0, e6, c0); conv3_fma2(&acc6_1, a6, b1, e6, c1); conv3_fma2(&acc6_2, a6, b2, e6, c2); conv3_fma2(&acc6_3, a6, b3, e6, c3);
        let a7 = subgroupBroadcast(ag0, 7u);
        let e7 = subgroupBroadcast(ah0, 7u);
        conv3_fma2(&acc7_0, a7, b0, e7, c0); conv3_fma2(&acc7_1, a7, b1, e7, c1); conv3_fma2(&acc7_2, a7, b2, e7, c2); conv3_fma2(&acc7_3, a7, b3, e7, c3);
        let a8 = subgroupBroadcast(ag1, 0u);
        let e8 = subgroupBroadcast(ah1, 0u);
        conv3_fma2(&acc8_0, a8, b0, e8, c0); conv3_fma2(&acc8_1, a8, b1, e8, c1); conv3_fma2(&acc8_2, a8, b2, e8, c2); conv3_fma2(&acc8_3, a8, b3, e8, c3);
        let a9 = subgroupBroadcast(ag1, 1u);
        let e9 = subgroupBroadcast(ah1, 1u);
        conv3_fma2(&acc9_0, a9, b0, e9, c0); conv3_fma2(&acc9_1, a9, b1, e9, c1); conv3_fma2(&acc9_2, a9, b2, e9, c2); conv3_fma2(&acc9_3, a9, b3, e9, c3);
        let a10 = subgroupBroadcast(ag1, 2u);
        let e10 = subgroupBroadcast(ah1, 2u);
        conv3_fma2(&acc10_0, a10, b0, e10, c0); conv3_fma2(&acc10_1, a10, b1, e10, c1); conv3_fma2(&acc10_2, a10, b2, e10, c2); conv3_fma2(&acc10_3, a10, b3, e10, c3);
        let a11 = subgroupBroadcast(ag1, 3u);
        let e11 = subgroupBroadcast(ah1, 3u);
        conv3_fma2(&acc11_0, a11, b0, e11, c0); conv3_fma2(&acc11_1, a11, b1, e11, c1); conv3_fma2(&acc11_2, a11, b2, e11, c2); conv3_fma2(&acc11_3, a11, b3, e11, c3);
        let a12 = subgroupBroadcast(ag1, 4u);
        let e12 = subgroupBroadcast(ah1, 4u);
        conv3_fma2(&acc12_0, a12, b0, e12, c0); conv3_fma2(&acc12_1, a12, b1, e12, c1); conv3_fma2(&acc12_2, a12, b2, e12, c2); conv3_fma2(&acc12_3, a12, b3, e12, c3);
        let a13 = subgroupBroadcast(ag1, 5u);
        let e13 = subgroupBroadcast(ah1, 5u);
        conv3_fma2(&acc13_0, a13, b0, e13, c0); conv3_fma2(&acc13_1, a13, b1, e13, c1); conv3_fma2(&acc13_2, a13, b2, e13, c2); conv3_fma2(&acc13_3, a13, b3, e13, c3);
        let a14 = subgroupBroadcast(ag1, 6u);
        let e14 = subgroupBroadcast(ah1, 6u);
        conv3_fma2(&acc14_0, a14, b0, e14, c0); conv3_fma2(&acc14_1, a14, b1, e14, c1); conv3_fma2(&acc14_2, a14, b2, e14, c2); conv3_fma2(&acc14_3, a14, b3, e14, c3);
        let a15 = subgroupBroadcast(ag1, 7u);
        let e15 = subgroupBroadcast(ah1, 7u);
        conv3_fma2(&acc15_0, a15, b0, e15, c0); conv3_fma2(&acc15_1, a15, b1, e15, c1); conv3_fma2(&acc15_2, a15, b2, e15, c2); conv3_fma2(&acc15_3, a15, b3, e15, c3);
    }
    if pooled_epilogue() {
        let g = conv3_windows(unit);
        conv3_store_pooled(g, row0 + 0u, acc0_0, acc0_1, acc0_2, acc0_3);
        conv3_store_pooled(g, row0 + 1u, acc1_0, acc1_1, acc1_2, acc1_3);
        conv3_store_pooled(g, row0 + 2u, acc2_0, acc2_1, acc2_2, acc2_3);
        conv3_store_pooled(g, row0 + 3u, acc3_0, acc3_1, acc3_2, acc3_3);
        conv3_store_pooled(g, row0 + 4u, acc4_0, acc4_1, acc4_2, acc4_3);
        conv3_store_pooled(g, row0 + 5u, acc5_0, acc5_1, acc5_2, acc5_3);
        conv3_store_pooled(g, row0 + 6u, acc6_0, acc6_1, acc6_2, acc6_3);
        conv3_store_pooled(g, row0 + 7u, acc7_0, acc7_1, acc7_2, acc7_3);
        conv3_store_pooled(g, row0 + 8u, acc8_0, acc8_1, acc8_2, acc8_3);
        conv3_store_pooled(g, row0 + 9u, acc9_0, acc9_1, acc9_2, acc9_3);
        conv3_store_pooled(g, row0 + 10u, acc10_0, acc10_1, acc10_2, acc10_3);
        conv3_store_pooled(g, row0 + 11u, acc11_0, acc11_1, acc11_2, acc11_3);
        conv3_store_pooled(g, row0 + 12u, acc12_0, acc12_1, acc12_2, acc12_3);
        conv3_store_pooled(g, row0 + 13u, acc13_0, acc13_1, acc13_2, acc13_3);
        conv3_store_pooled(g, row0 + 14u, acc14_0, acc14_1, acc14_2, acc14_3);
        conv3_store_pooled(g, row0 + 15u, acc15_0, acc15_1, acc15_2, acc15_3);
        return;
    }
    conv3_store(d0, row0 + 0u, acc0_0); conv3_store(d1, row0 + 0u, acc0_1); conv3_store(d2, row0 + 0u, acc0_2); conv3_store(d3, row0 + 0u, acc0_3);
    conv3_store(d0, row0 + 1u, acc1_0); conv3_store(d1, row0 + 1u, acc1_1); conv3_store(d2, row0 + 1u, acc1_2); conv3_store(d3, row0 + 1u, acc1_3);
    conv3_store(d0, row0 + 2u, acc2_0); conv3_store(d1, row0 + 2u, acc2_1); conv3_store(d2, row0 + 2u, acc2_2); conv3_store(d3, row0 + 2u, acc2_3);
    conv3_store(d0, row0 + 3u, acc3_0); conv3_store(d1, row0 + 3u, acc3_1); conv3_store(d2, row0 + 3u, acc3_2); conv3_store(d3, row0 + 3u, acc3_3);
    conv3_store(d0, row0 + 4u, acc4_0); conv3_store(d1, row0 + 4u, acc4_1); conv3_store(d2, row0 + 4u, acc4_2); conv3_store(d3, row0 + 4u, acc4_3);
    conv3_store(d0, row0 + 5u, acc5_0); conv3_store(d1, row0 + 5u, acc5_1); conv3_store(d2, row0 + 5u, acc5_2); conv3_store(d3, row0 + 5u, acc5_3);
    conv3_store(d0, row0 + 6u, acc6_0); conv3_store(d1, row0 + 6u, acc6_1); conv3_store(d2, row0 + 6u, acc6_2); conv3_store(d3, row0 + 6u, acc6_3);
    conv3_store(d0, row0 + 7u, acc7_0); conv3_store(d1, row0 + 7u, acc7_1); conv3_store(d2, row0 + 7u, acc7_2); conv3_store(d3, row0 + 7u, acc7_3);
    conv3_store(d0, row0 + 8u, acc8_0); conv3_store(d1, row0 + 8u, acc8_1); conv3_store(d2, row0 + 8u, acc8_2); conv3_store(d3, row0 + 8u, acc8_3);
    conv3_store(d0, row0 + 9u, acc9_0); conv3_store(d1, row0 + 9u, acc9_1); conv3_store(d2, row0 + 9u, acc9_2); conv3_store(d3, row0 + 9u, acc9_3);
    conv3_store(d0, row0 + 10u, acc10_0); conv3_store(d1, row0 + 10u, acc10_1); conv3_store(d2, row0 + 10u, acc10_2); conv3_store(d3, row0 + 10u, acc10_3);
    conv3_store(d0, row0 + 11u, acc11_0); conv3_store(d1, row0 + 11u, acc11_1); conv3_store(d2, row0 + 11u, acc11_2); conv3_store(d3, row0 + 11u, acc11_3);
    conv3_store(d0, row0 + 12u, acc12_0); conv3_store(d1, row0 + 12u, acc12_1); conv3_store(d2, row0 + 12u, acc12_2); conv3_store(d3, row0 + 12u, acc12_3);
    conv3_store(d0, row0 + 13u, acc13_0); conv3_store(d1, row0 + 13u, acc13_1); conv3_store(d2, row0 + 13u, acc13_2); conv3_store(d3, row0 + 13u, acc13_3);
    conv3_store(d0, row0 + 14u, acc14_0); conv3_store(d1, row0 + 14u, acc14_1); conv3_store(d2, row0 + 14u, acc14_2); conv3_store(d3, row0 + 14u, acc14_3);
    conv3_store(d0, row0 + 15u, acc15_0); conv3_store(d1, row0 + 15u, acc15_1); conv3_store(d2, row0 + 15u, acc15_2); conv3_store(d3, row0 + 15u, acc15_3);
}
