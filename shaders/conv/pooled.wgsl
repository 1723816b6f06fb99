// conv/pooled.wgsl: the weight gradient of a convolution fused with ReLU and a 2x2 max-pool
// (ops/conv/relu_pool.rs), read straight from the pooled gradient and the saved argmax, for
// first layers (no data gradient) of stride 1 and dilation 1 whose kernels are not 3x3 (those
// have tiles_3x3_backward_weight_pooled): LeNet's 5x5.
//
// Only a window's chosen output has a gradient, g (none where the ReLU was off: argmax -1),
// so tap (kh, kw)'s sum over the batch and the positions is the sum over windows of
// g * x[n, ci, oh - pad_h + kh, ow - pad_w + kw] at the chosen (oh, ow): for one kernel row, g
// times the eight columns of x's row from ow - pad_w on. No im2col, and no GEMM over the
// three zeros of every window.

@group(0) @binding(7) var<storage, read> pool_indices: array<i32>;

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

// grad_w's kernel row kh for (output channel co, input channel ci), kernels up to 8 wide: one
// workgroup of 64 per (co, ci, kh), its lanes taking windows in turn, then a sum of the 64
// partial rows. The pooled gradient comes through grad_y's bindings. Windows [row_begin, row_end) of the batch's N * pool_h * pool_w (row_end 0: all): the
// host splits the sum into pieces whose loops stay within lavapipe's limit, and every piece
// after the first adds to the sum so far.
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
