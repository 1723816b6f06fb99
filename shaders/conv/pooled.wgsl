// conv/pooled.wgsl: convolutions fused with ReLU and a 2x2 max-pool (ops/conv/relu_pool.rs), of
// stride 1 and dilation 1, whose kernels are not 3x3 (those have the 3x3 tiles' and col2im's
// variants): LeNet's 5x5. A first layer's forward pass computes each window's four outputs
// from the patch under it, and its weight gradient reads the pooled gradient and the saved
// argmax: neither writes im2col or runs a GEMM. A later layer's data gradient reads the
// unpooled gradient's rows from the texture GEMM's packed operand instead of grad_col.

@group(0) @binding(7) var<storage, read_write> pool_indices: array<i32>;
@group(0) @binding(8) var tap_weights: texture_storage_2d<rgba32float, write>;

var<workgroup> row_sums: array<vec4<f32>, 128>;

// A first layer's convolution, ReLU and 2x2 max-pool (stride 1, dilation 1, kernels up to 8
// wide): one invocation per (sample, block of four output channels, window) computes the
// window's four outputs in each channel from the patch under it, read from x's texture copy a
// row at a time (two x_row4s a row, each row serving two kernel rows), with a tap's four
// channels' weights in one texel (`pack_taps_by_output`). It pools each channel's outputs and
// stores the maximum and, with pool_indices != 0, the first maximum's flat index in the
// convolution's output plane (-1 where the ReLU was off), as the texture GEMM's pooling
// epilogue does. No im2col and no GEMM: few input channels make a GEMM's K too short to pay
// for either (LeNet's first layer: 25). `total` = N * blocks * pool_h * pool_w.
@compute @workgroup_size(WG)
fn pooled_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let windows = p.pool_h * p.pool_w;
    let blocks = (p.c_out + 3u) / 4u;
    let t = divmod24(idx, windows);
    let nb = divmod24(t.x, blocks);
    let hw = divmod24(t.y, p.pool_w);
    let r0 = i32(2u * hw.x) - i32(p.pad_h);
    let c0 = i32(2u * hw.y) - i32(p.pad_w);
    // Each channel's window outputs (0, 0), (0, 1), (1, 0), (1, 1).
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.c_in; ci++) {
        let plane = (nb.x * p.c_in + ci) * p.in_h;
        var at = (nb.y * p.c_in + ci) * p.k_h * p.k_w;
        var upper = patch_row(plane, r0, c0);
        for (var kh = 1u; kh <= p.k_h; kh++) {
            let lower = patch_row(plane, r0 + i32(kh), c0);
            var top = upper;
            var bottom = lower;
            for (var kw = 0u; kw < p.k_w; kw++) {
                let v = vec4<f32>(top.lo.xy, bottom.lo.xy);
                let w4 = textureLoad(w_tex, flat_xy(at));
                acc0 = fma(vec4<f32>(w4.x), v, acc0);
                acc1 = fma(vec4<f32>(w4.y), v, acc1);
                acc2 = fma(vec4<f32>(w4.z), v, acc2);
                acc3 = fma(vec4<f32>(w4.w), v, acc3);
                top = patch_shift(top);
                bottom = patch_shift(bottom);
                at++;
            }
            upper = lower;
        }
    }
    let first = (nb.x * p.c_out + nb.y * 4u) * windows + t.y;
    pool_store(first, nb.y * 4u, hw, acc0);
    pool_store(first + windows, nb.y * 4u + 1u, hw, acc1);
    pool_store(first + 2u * windows, nb.y * 4u + 2u, hw, acc2);
    pool_store(first + 3u * windows, nb.y * 4u + 3u, hw, acc3);
}

// pooled_forward's epilogue for output channel co (none past C_out): the bias, the ReLU, the
// window's first maximum into y[at] and its position into pool_indices[at].
fn pool_store(at: u32, co: u32, hw: vec2<u32>, acc: vec4<f32>) {
    if co >= p.c_out {
        return;
    }
    var v = acc;
    if p.has_bias == 1u {
        v += vec4<f32>(b[co]);
    }
    let m = first_max4(max(v, vec4<f32>(0.0)));
    y[at] = m.value;
    if p.pool_indices != 0u {
        let flat = (2u * hw.x + m.lane / 2u) * p.out_w + 2u * hw.y + m.lane % 2u;
        pool_indices[at] = select(-1, i32(flat), m.value > 0.0);
    }
}

// Columns c0 .. c0 + 3 of x's row at flat index `base`, zero outside [0, in_w): from x's
// texture copy (x_row4) or, without TEXTURE_INPUTS, its buffer.
fn x_cols4(base: u32, c0: i32) -> vec4<f32> {
    if TEXTURE_INPUTS {
        return x_row4(base, c0, p.in_w, true);
    }
    var v = vec4<f32>(0.0);
    for (var e = 0; e < 4; e++) {
        let c = c0 + e;
        if c >= 0 && c < i32(p.in_w) {
            v[e] = x[base + u32(c)];
        }
    }
    return v;
}

// The weight gradient: only a window's chosen output has a gradient, g (none where the ReLU
// was off: argmax -1), so tap (kh, kw)'s sum over the batch and the positions is the sum over
// windows of g * x[n, ci, oh - pad_h + kh, ow - pad_w + kw] at the chosen (oh, ow): for one
// kernel row, g times the eight columns of x's row from ow - pad_w on (no GEMM over the
// three zeros of every window). Kernel row kh of grad_w for (output channel co, input channel
// ci), kernels up to 8 wide: one workgroup of 64 per (co, ci, kh), its lanes taking windows in
// turn, then a sum of the 64 partial rows. The pooled gradient comes through grad_y's
// bindings. Windows [row_begin, row_end) of the batch's N * pool_h * pool_w (row_end 0: all):
// the host splits the sum into pieces whose loops stay within lavapipe's limit, and every
// piece after the first adds to the sum so far.
@compute @workgroup_size(64)
fn pooled_backward_weight(invocation: Invocation) {
    let slot = workgroup_index(invocation);
    let lid = invocation.lid;
    let t = divmod24(slot, p.k_h);
    let kh = t.y;
    let c = divmod24(t.x, p.c_in);
    let ci = c.y;
    let co = c.x;
    let windows = p.pool_h * p.pool_w;
    let last = select(p.n * windows, p.row_end, p.row_end != 0u);
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    for (var i = p.row_begin + lid; i < last; i += 64u) {
        let win = divmod24(i, windows);
        let at = (win.x * p.c_out + co) * windows + win.y;
        let chosen = pool_indices[at];
        if chosen < 0 {
            continue;
        }
        let o = divmod24(u32(chosen), p.out_w);
        let ih = i32(o.x + kh) - i32(p.pad_h);
        if ih < 0 || ih >= i32(p.in_h) {
            continue;
        }
        let g = load_grad_y(at);
        let base = ((win.x * p.c_in + ci) * p.in_h + u32(ih)) * p.in_w;
        let c0 = i32(o.y) - i32(p.pad_w);
        lo = fma(vec4<f32>(g), x_cols4(base, c0), lo);
        hi = fma(vec4<f32>(g), x_cols4(base, c0 + 4), hi);
    }
    row_sums[lid] = lo;
    row_sums[64u + lid] = hi;
    workgroupBarrier();
    // Invocation e < 2 adds up columns 4e .. 4e + 3 of the 64 partial rows.
    if lid < 2u {
        var v = vec4<f32>(0.0);
        for (var j = 0u; j < 64u; j++) {
            v += row_sums[lid * 64u + j];
        }
        let row = (slot * p.k_w);
        for (var e = 0u; e < 4u; e++) {
            let kw = lid * 4u + e;
            if kw < p.k_w {
                var s = v[e];
                if p.row_begin > 0u {
                    s += grad_w[row + kw];
                }
                grad_w[row + kw] = s;
            }
        }
    }
}

// Texels (q0 + wh * pool_w + ww, co) of the packed unpooled gradient (`grad_y_tex`, the weight
// gradient's GEMM operand: a texel per window, its four outputs row by row): output row
// 2 wh (or with `lower` 2 wh + 1)'s columns 2 ww and 2 ww + 1 of channel co, zero outside the
// windows.
fn window_pair(q0: u32, wh: u32, ww: i32, lower: bool, co: u32) -> vec2<f32> {
    if ww < 0 || ww >= i32(p.pool_w) {
        return vec2<f32>(0.0);
    }
    let t = textureLoad(grad_y_tex, vec2<u32>(q0 + wh * p.pool_w + u32(ww), co));
    return select(t.xy, t.zw, lower);
}

// A weight's taps, four channels to a texel, so that a tap's four channels are one fetch
// (lavapipe loads a storage value lane by lane, even at a uniform index). By output
// (pooled_forward): texel ((block * C_in + ci) * k_h + kh) * k_w + kw of a flat texture
// (`flat_xy`) holds w[4 block + c, ci, kh, kw] for c = 0 .. 3; by input
// (pooled_backward_input): texel ((block * C_out + co) * k_h + kh) * k_w + kw holds
// w[co, 4 block + c, kh, kw]. Zero past the channels. `total` = texels.
fn pack_taps(invocation: Invocation, by_output: bool) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let taps = p.k_h * p.k_w;
    let t = divmod24(idx, taps);
    let bc = divmod24(t.x, select(p.c_out, p.c_in, by_output));
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        let blocked = bc.x * 4u + c;
        let co = select(bc.y, blocked, by_output);
        let ci = select(blocked, bc.y, by_output);
        if co < p.c_out && ci < p.c_in {
            v[c] = w[(co * p.c_in + ci) * taps + t.y];
        }
    }
    textureStore(tap_weights, flat_xy(idx), v);
}

@compute @workgroup_size(WG)
fn pack_taps_by_output(invocation: Invocation) {
    pack_taps(invocation, true);
}

@compute @workgroup_size(WG)
fn pack_taps_by_input(invocation: Invocation) {
    pack_taps(invocation, false);
}

// grad_x of a fused layer with a data gradient (stride 1, dilation 1, kernels up to 5 wide)
// from the unpooled gradient in the weight gradient's packed operand, in place of grad_col's
// GEMM and col2im: grad_x[n, ci, ih, iw] = sum over co, kh, kw of w[co, ci, kh, kw] *
// grad_y[n, co, ih + pad_h - kh, iw + pad_w - kw]. One invocation per (sample of the chunk,
// input row, quad of columns) and block of four input channels (the grid's z): for each
// (co, kh) it reads the eight columns of grad_y's row that the quad's taps reach (four or five
// texels) and shifts through them tap by tap. Samples n_offset + the chunk's; `total` = the
// chunk's samples * in_h * quads of in_w.
// Whether c0 below is odd: the same for every invocation (the host's `pooled_data_grad_chunk`).
override ODD_COLUMNS: bool = false;

@compute @workgroup_size(WG)
fn pooled_backward_input(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let quads = (p.in_w + 3u) / 4u;
    let t = divmod24(idx, quads);
    let s = divmod24(t.x, p.in_h);
    let ih = s.y;
    let iw0 = t.y * 4u;
    let q0 = s.x * p.pool_h * p.pool_w;
    // The block's channels, and the first column the quad's taps reach: its parity is the
    // same for every invocation (iw0 is a multiple of 4).
    let ci0 = invocation.wg.z * 4u;
    let c0 = i32(iw0 + p.pad_w) - i32(p.k_w - 1u);
    let ww0 = c0 >> 1u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var co = 0u; co < p.c_out; co++) {
        for (var kh = 0u; kh < p.k_h; kh++) {
            let oh = i32(ih + p.pad_h) - i32(kh);
            if oh < 0 || oh >= i32(2u * p.pool_h) {
                continue;
            }
            let wh = u32(oh) >> 1u;
            let lower = (oh & 1) != 0;
            let v0 = window_pair(q0, wh, ww0, lower, co);
            let v1 = window_pair(q0, wh, ww0 + 1, lower, co);
            let v2 = window_pair(q0, wh, ww0 + 2, lower, co);
            let v3 = window_pair(q0, wh, ww0 + 3, lower, co);
            var row = PatchRow(vec4<f32>(v0, v1), vec4<f32>(v2, v3));
            if ODD_COLUMNS {
                let v4 = window_pair(q0, wh, ww0 + 4, lower, co);
                row = PatchRow(vec4<f32>(v0.y, v1, v2.x), vec4<f32>(v2.y, v3, v4.x));
            }
            // Tap kw = k_w - 1 reads the row from c0 on, kw = k_w - 2 from c0 + 1, ...: one
            // texel of the packed weight holds the tap's four channels.
            var at = ((invocation.wg.z * p.c_out + co) * p.k_h + kh) * p.k_w + p.k_w - 1u;
            for (var j = 0u; j < p.k_w; j++) {
                let w4 = textureLoad(w_tex, flat_xy(at));
                acc0 = fma(vec4<f32>(w4.x), row.lo, acc0);
                acc1 = fma(vec4<f32>(w4.y), row.lo, acc1);
                acc2 = fma(vec4<f32>(w4.z), row.lo, acc2);
                acc3 = fma(vec4<f32>(w4.w), row.lo, acc3);
                row = patch_shift(row);
                at--;
            }
        }
    }
    let plane = ((s.x + p.n_offset) * p.c_in + ci0) * p.in_h + ih;
    let step = p.in_h * p.in_w;
    dw_store(plane * p.in_w, iw0, p.in_w, acc0);
    if ci0 + 1u < p.c_in {
        dw_store(plane * p.in_w + step, iw0, p.in_w, acc1);
    }
    if ci0 + 2u < p.c_in {
        dw_store(plane * p.in_w + 2u * step, iw0, p.in_w, acc2);
    }
    if ci0 + 3u < p.c_in {
        dw_store(plane * p.in_w + 3u * step, iw0, p.in_w, acc3);
    }
}
