// subgroup/wgrad_3x3_sg.wgsl: the weight gradients of subgroup/conv_3x3_sg.wgsl's 3x3
// convolutions, from x's and grad_y's rows of texels (shared/texel_rows.wgsl), on 8-lane
// subgroups, and the sum of their pieces.

// wgrad_3x3_sg: the weight gradient of the same convolutions (3x3, stride s = 1 or 2, padding
// 1, no dilation, one group) straight from x and grad_y, both in rows of texels (ceil(W / 4)
// per row, zeros past W): no im2col. grad_W[o, c, kh, kw] = sum over (n, h, w) of
// grad_y[n, o, h, w] x[n, c, s h + kh - 1, s w + kw - 1]: K runs over grad_y's texels
// (n, h, t), the same for every lane, four positions at a time.
// - A (ta_r): x's rows (H_x, W4_x = ceil(W_x / 4)), texel ((n * C_in + c) * H_x + r) * W4_x + t;
// - B (tb_r): grad_y's rows (H, W4), texel ((n * C_out + o) * H + h) * W4 + t.
// Lane l of a subgroup takes input channel c0 + l and its nine taps: three x rows (s h - 1,
// s h, s h + 1), three fetches each (texels t - 1, t, t + 1, or with COL_STRIDE 2 texels 2t - 1,
// 2t and 2t + 1), give the nine shifted four-position vectors (zeros outside the image). The
// subgroup's 16 output channels o0 .. o0 + 16 share grad_y: lane l fetches channels o0 + 2l
// and o0 + 2l + 1 and broadcasts them. Each product is a dot over the four positions.
// p.m = C_in, p.n = C_out, p.k4 = grad_y's texels per channel of the chunk (len * H * W4),
// p.splits pieces of K of p.k_split texels; piece s writes partial[(s * C_out + o) * C_in * 9
// + c * 9 + tap] (grad_W's layout), which wgrad_3x3_reduce sums. p.conv: c_in, c_out, x's
// size (in_h, in_w), grad_y's (out_h, out_w), stride_h = s. Grid: x = channel blocks of 8 (one
// subgroup each, eight per workgroup) over (ceil(C_out / 16), ceil(C_in / 8)), z = pieces.
fn wgrad3_dots(a: vec4<f32>, g0: vec4<f32>, g1: vec4<f32>, g2: vec4<f32>, g3: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(a, g0), dot(a, g1), dot(a, g2), dot(a, g3));
}

// One tap's 16 sums (four texels of four output channels) into piece `split`'s partial sums.
fn wgrad3_store(split: u32, ch: u32, o0: u32, tap: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>,
                v3: vec4<f32>) {
    if ch >= p.m { return; }
    let per_o = p.m * 9u;
    let base = split * p.n * per_o + ch * 9u + tap;
    wgrad3_store4(base, o0, per_o, v0);
    wgrad3_store4(base, o0 + 4u, per_o, v1);
    wgrad3_store4(base, o0 + 8u, per_o, v2);
    wgrad3_store4(base, o0 + 12u, per_o, v3);
}

fn wgrad3_store4(base: u32, o: u32, per_o: u32, v: vec4<f32>) {
    if o < p.n {
        partial[base + o * per_o] = v.x;
    }
    if o + 1u < p.n {
        partial[base + (o + 1u) * per_o] = v.y;
    }
    if o + 2u < p.n {
        partial[base + (o + 2u) * per_o] = v.z;
    }
    if o + 3u < p.n {
        partial[base + (o + 3u) * per_o] = v.w;
    }
}

// x's row texel q (clamped into the texture, `last` its last texel) and its neighbours, as
// the three taps' vectors: zeros where the row is outside the image (!on) or has no
// neighbour that side.
fn wgrad3_x_row(q: i32, on: bool, left: bool, right: bool, last: i32) -> RowTaps {
    let qc = clamp(q, 0, last);
    let m = select(vec4<f32>(0.0), textureLoad(ta_r, flat_xy(u32(qc))), on);
    let l = select(vec4<f32>(0.0), textureLoad(ta_r, flat_xy(u32(max(qc - 1, 0)))), on && left);
    let r = select(vec4<f32>(0.0), textureLoad(ta_r, flat_xy(u32(min(qc + 1, last)))), on && right);
    return row_taps(l, m, r);
}

@compute @workgroup_size(64, 1, 1)
fn wgrad_3x3_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
                @builtin(subgroup_invocation_id) lane: u32) {
    let o_blocks = (p.n + 15u) / 16u;
    let s = wid.x * 8u + li / 8u;
    let ob = s % o_blocks;
    let cb = s / o_blocks;
    if cb * 8u >= p.m { return; }
    let split = wid.z;
    let o0 = ob * 16u;
    let ch = cb * 8u + lane;
    let cc = min(ch, p.m - 1u);
    // grad_y's rows (K) and x's, whose row s h - 1 + kh and texel COL_STRIDE t hold the taps of
    // output row h and texel t (s = p.conv.stride_h: 1, or 2 with COL_STRIDE 2).
    let w4 = (p.conv.out_w + 3u) / 4u;
    let h_count = p.conv.out_h;
    let hw4 = h_count * w4;
    let xw4 = (p.conv.in_w + 3u) / 4u;
    let og0 = min(o0 + 2u * lane, p.n - 1u);
    let og1 = min(o0 + 2u * lane + 1u, p.n - 1u);
    let last_a = i32(p.conv.total) - 1;
    var acc00_0 = vec4<f32>(0.0); var acc00_1 = vec4<f32>(0.0); var acc00_2 = vec4<f32>(0.0); var acc00_3 = vec4<f32>(0.0); var acc01_0 = vec4<f32>(0.0); var acc01_1 = vec4<f32>(0.0); var acc01_2 = vec4<f32>(0.0); var acc01_3 = vec4<f32>(0.0); var acc02_0 = vec4<f32>(0.0); var acc02_1 = vec4<f32>(0.0); var acc02_2 = vec4<f32>(0.0); var acc02_3 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0); var acc10_1 = vec4<f32>(0.0); var acc10_2 = vec4<f32>(0.0); var acc10_3 = vec4<f32>(0.0); var acc11_0 = vec4<f32>(0.0); var acc11_1 = vec4<f32>(0.0); var acc11_2 = vec4<f32>(0.0); var acc11_3 = vec4<f32>(0.0); var acc12_0 = vec4<f32>(0.0); var acc12_1 = vec4<f32>(0.0); var acc12_2 = vec4<f32>(0.0); var acc12_3 = vec4<f32>(0.0);
    var acc20_0 = vec4<f32>(0.0); var acc20_1 = vec4<f32>(0.0); var acc20_2 = vec4<f32>(0.0); var acc20_3 = vec4<f32>(0.0); var acc21_0 = vec4<f32>(0.0); var acc21_1 = vec4<f32>(0.0); var acc21_2 = vec4<f32>(0.0); var acc21_3 = vec4<f32>(0.0); var acc22_0 = vec4<f32>(0.0); var acc22_1 = vec4<f32>(0.0); var acc22_2 = vec4<f32>(0.0); var acc22_3 = vec4<f32>(0.0);
    let k_lo = split * p.k_split;
    let k_hi = min(k_lo + p.k_split, p.k4);
    // The first texel's position (n, h, t), then stepped along K.
    var t = k_lo % w4;
    var h = (k_lo / w4) % h_count;
    var n = k_lo / hw4;
    for (var k = k_lo; k < k_hi; k++) {
        // grad_y: channels og0, og1 of this lane, then all 16 by broadcast.
        let gb = i32((n * p.n) * hw4 + h * w4 + t);
        let gl0 = textureLoad(tb_r, flat_xy(u32(gb + i32(og0 * hw4))));
        let gl1 = textureLoad(tb_r, flat_xy(u32(gb + i32(og1 * hw4))));
        let g0 = subgroupBroadcast(gl0, 0u);
        let g1 = subgroupBroadcast(gl1, 0u);
        let g2 = subgroupBroadcast(gl0, 1u);
        let g3 = subgroupBroadcast(gl1, 1u);
        let g4 = subgroupBroadcast(gl0, 2u);
        let g5 = subgroupBroadcast(gl1, 2u);
        let g6 = subgroupBroadcast(gl0, 3u);
        let g7 = subgroupBroadcast(gl1, 3u);
        let g8 = subgroupBroadcast(gl0, 4u);
        let g9 = subgroupBroadcast(gl1, 4u);
        let g10 = subgroupBroadcast(gl0, 5u);
        let g11 = subgroupBroadcast(gl1, 5u);
        let g12 = subgroupBroadcast(gl0, 6u);
        let g13 = subgroupBroadcast(gl1, 6u);
        let g14 = subgroupBroadcast(gl0, 7u);
        let g15 = subgroupBroadcast(gl1, 7u);
        // x: rows s h - 1, s h, s h + 1 of channel c.
        let xh = p.conv.stride_h * h;
        let xb = i32(((n * p.m + cc) * p.conv.in_h + xh) * xw4 + COL_STRIDE * t);
        let left = t > 0u;
        let right = COL_STRIDE * t + 1u < xw4;
        let x0 = wgrad3_x_row(xb - i32(xw4), xh > 0u, left, right, last_a);
        acc00_0 += wgrad3_dots(x0.k0, g0, g1, g2, g3); acc00_1 += wgrad3_dots(x0.k0, g4, g5, g6, g7); acc00_2 += wgrad3_dots(x0.k0, g8, g9, g10, g11); acc00_3 += wgrad3_dots(x0.k0, g12, g13, g14, g15);
        acc01_0 += wgrad3_dots(x0.k1, g0, g1, g2, g3); acc01_1 += wgrad3_dots(x0.k1, g4, g5, g6, g7); acc01_2 += wgrad3_dots(x0.k1, g8, g9, g10, g11); acc01_3 += wgrad3_dots(x0.k1, g12, g13, g14, g15);
        acc02_0 += wgrad3_dots(x0.k2, g0, g1, g2, g3); acc02_1 += wgrad3_dots(x0.k2, g4, g5, g6, g7); acc02_2 += wgrad3_dots(x0.k2, g8, g9, g10, g11); acc02_3 += wgrad3_dots(x0.k2, g12, g13, g14, g15);
        let x1 = wgrad3_x_row(xb, true, left, right, last_a);
        acc10_0 += wgrad3_dots(x1.k0, g0, g1, g2, g3); acc10_1 += wgrad3_dots(x1.k0, g4, g5, g6, g7); acc10_2 += wgrad3_dots(x1.k0, g8, g9, g10, g11); acc10_3 += wgrad3_dots(x1.k0, g12, g13, g14, g15);
        acc11_0 += wgrad3_dots(x1.k1, g0, g1, g2, g3); acc11_1 += wgrad3_dots(x1.k1, g4, g5, g6, g7); acc11_2 += wgrad3_dots(x1.k1, g8, g9, g10, g11); acc11_3 += wgrad3_dots(x1.k1, g12, g13, g14, g15);
        acc12_0 += wgrad3_dots(x1.k2, g0, g1, g2, g3); acc12_1 += wgrad3_dots(x1.k2, g4, g5, g6, g7); acc12_2 += wgrad3_dots(x1.k2, g8, g9, g10, g11); acc12_3 += wgrad3_dots(x1.k2, g12, g13, g14, g15);
        let x2 = wgrad3_x_row(xb + i32(xw4), xh + 1u < p.conv.in_h, left, right, last_a);
        acc20_0 += wgrad3_dots(x2.k0, g0, g1, g2, g3); acc20_1 += wgrad3_dots(x2.k0, g4, g5, g6, g7); acc20_2 += wgrad3_dots(x2.k0, g8, g9, g10, g11); acc20_3 += wgrad3_dots(x2.k0, g12, g13, g14, g15);
        acc21_0 += wgrad3_dots(x2.k1, g0, g1, g2, g3); acc21_1 += wgrad3_dots(x2.k1, g4, g5, g6, g7); acc21_2 += wgrad3_dots(x2.k1, g8, g9, g10, g11); acc21_3 += wgrad3_dots(x2.k1, g12, g13, g14, g15);
        acc22_0 += wgrad3_dots(x2.k2, g0, g1, g2, g3); acc22_1 += wgrad3_dots(x2.k2, g4, g5, g6, g7); acc22_2 += wgrad3_dots(x2.k2, g8, g9, g10, g11); acc22_3 += wgrad3_dots(x2.k2, g12, g13, g14, g15);
        t += 1u;
        if t == w4 {
            t = 0u;
            h += 1u;
            if h == h_count {
                h = 0u;
                n += 1u;
            }
        }
    }
    wgrad3_store(split, ch, o0, 0u, acc00_0, acc00_1, acc00_2, acc00_3);
    wgrad3_store(split, ch, o0, 1u, acc01_0, acc01_1, acc01_2, acc01_3);
    wgrad3_store(split, ch, o0, 2u, acc02_0, acc02_1, acc02_2, acc02_3);
    wgrad3_store(split, ch, o0, 3u, acc10_0, acc10_1, acc10_2, acc10_3);
    wgrad3_store(split, ch, o0, 4u, acc11_0, acc11_1, acc11_2, acc11_3);
    wgrad3_store(split, ch, o0, 5u, acc12_0, acc12_1, acc12_2, acc12_3);
    wgrad3_store(split, ch, o0, 6u, acc20_0, acc20_1, acc20_2, acc20_3);
    wgrad3_store(split, ch, o0, 7u, acc21_0, acc21_1, acc21_2, acc21_3);
    wgrad3_store(split, ch, o0, 8u, acc22_0, acc22_1, acc22_2, acc22_3);
}

// wgrad_3x3_reduce: grad_W (c, (C_out, C_in, 3, 3)) = the sum of wgrad_3x3_sg's p.splits pieces
// (+ grad_W when p.accumulate: the batch's later chunks), one invocation per weight.
@compute @workgroup_size(WG)
fn wgrad_3x3_reduce(invocation: Invocation) {
    let i = linear_index(invocation);
    let size = p.m * p.n * 9u;
    if i >= size { return; }
    var v = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        v += partial[s * size + i];
    }
    if p.accumulate != 0u {
        v += c[i];
    }
    c[i] = v;
}

@group(0) @binding(11) var<storage, read_write> c4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> partial4: array<vec4<f32>>;

// wgrad_3x3_reduce where the weight holds whole quads (C_out * C_in a multiple of 4): four
// weights per invocation (on lavapipe a load costs a loop over the lanes, whatever its width),
// summed in the same order.
@compute @workgroup_size(WG)
fn wgrad_3x3_reduce4(invocation: Invocation) {
    let q = linear_index(invocation);
    let quads = p.m * p.n * 9u / 4u;
    if q >= quads { return; }
    var v = vec4<f32>(0.0);
    for (var s = 0u; s < p.splits; s++) {
        v += partial4[s * quads + q];
    }
    if p.accumulate != 0u {
        v += c4[q];
    }
    c4[q] = v;
}
