// conv/pooled.wgsl: a first layer's convolution fused with ReLU and a 2x2 max-pool
// (ops/conv/relu_pool.rs), of stride 1 and dilation 1, whose kernel is not 3x3 (those have the
// 3x3 tiles' variants): LeNet's 5x5. The forward pass computes each window's four outputs from
// the patch under it; the weight gradient (no data gradient) reads the pooled gradient and the
// saved argmax. Neither writes im2col or runs a GEMM.

@group(0) @binding(7) var<storage, read_write> pool_indices: array<i32>;

var<workgroup> row_sums: array<vec4<f32>, 128>;

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

// Row r of x's plane `plane` under a window, columns c0 .. c0 + 7 (zeros outside x).
fn source_row(plane: u32, r: i32, c0: i32) -> PatchRow {
    if TEXTURE_INPUTS {
        return patch_row(plane, r, c0);
    }
    let ok = r >= 0 && r < i32(p.in_h);
    let base = (plane + u32(clamp(r, 0, i32(p.in_h) - 1))) * p.in_w;
    let zero = vec4<f32>(0.0);
    return PatchRow(select(zero, x_cols4(base, c0), ok), select(zero, x_cols4(base, c0 + 4), ok));
}

// A first layer's convolution, ReLU and 2x2 max-pool (stride 1, dilation 1, kernels up to 8
// wide): one invocation per (sample, output channel, window) computes the window's four
// outputs from the patch under it, read a row at a time (two x_row4s a row, each row serving
// two kernel rows), pools them and stores the maximum and, with pool_indices != 0, the first
// maximum's flat index in the convolution's output plane (-1 where the ReLU was off), as the
// texture GEMM's pooling epilogue does. No im2col and no GEMM: few input channels make a
// GEMM's K too short to pay for either (LeNet's first layer: 25). `total` = N * C_out *
// pool_h * pool_w.
@compute @workgroup_size(WG)
fn pooled_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let windows = p.pool_h * p.pool_w;
    let t = divmod24(idx, windows);
    let nc = divmod24(t.x, p.c_out);
    let n = nc.x;
    let co = nc.y;
    let hw = divmod24(t.y, p.pool_w);
    let r0 = i32(2u * hw.x) - i32(p.pad_h);
    let c0 = i32(2u * hw.y) - i32(p.pad_w);
    // The window's outputs (0, 0), (0, 1), (1, 0), (1, 1).
    var acc = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.c_in; ci++) {
        let plane = (n * p.c_in + ci) * p.in_h;
        var w_at = (co * p.c_in + ci) * p.k_h * p.k_w;
        var upper = source_row(plane, r0, c0);
        for (var kh = 1u; kh <= p.k_h; kh++) {
            let lower = source_row(plane, r0 + i32(kh), c0);
            var top = upper;
            var bottom = lower;
            for (var kw = 0u; kw < p.k_w; kw++) {
                acc = fma(vec4<f32>(load_w(w_at)), vec4<f32>(top.lo.xy, bottom.lo.xy), acc);
                top = patch_shift(top);
                bottom = patch_shift(bottom);
                w_at++;
            }
            upper = lower;
        }
    }
    if p.has_bias == 1u {
        acc += vec4<f32>(b[co]);
    }
    let m = first_max4(max(acc, vec4<f32>(0.0)));
    y[idx] = m.value;
    if p.pool_indices != 0u {
        let flat = (2u * hw.x + m.lane / 2u) * p.out_w + 2u * hw.y + m.lane % 2u;
        pool_indices[idx] = select(-1, i32(flat), m.value > 0.0);
    }
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
