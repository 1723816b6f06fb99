// conv/im2col.wgsl: im2col and col2im, into and out of a storage buffer (the storage-buffer
// GEMM's operands) or a texture (the tiled GEMM's), with 3x3 stride-1 variants written out.

// The im2col path (groups = 1): col[n, k, o] = x[n, ci, o*stride - pad + kk*dil] (0 in the
// padding) with k = (ci, kd, kh, kw) and o = (od, oh, ow), for the samples of one chunk
// (n counted from n_offset). A GEMM then multiplies the weight (C_out, K) by each sample's
// (K, P) block. `total` = chunk * K * P.
@group(0) @binding(7) var<storage, read_write> col: array<f32>;

@compute @workgroup_size(WG)
fn im2col(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
fn col2im(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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

// The texel (column texel q, row k) of im2col's texture that an invocation of a flat grid
// writes: rows of ceil(total / 4) texels one after another (k = `rows` and past: none).
fn col_texel(invocation: Invocation, rows: u32) -> vec2<u32> {
    let t = divmod24(linear_index(invocation), (p.total + 3u) / 4u);
    return vec2<u32>(t.y, min(t.x, rows));
}

// im2col straight into the tiled GEMM's B operand (see shared/gemm_epilogue.wgsl): texel (q, k) of the
// texture is im2col_texel(q, k) (shared/im2col.wgsl: `im2col_sources`), x read from its flat
// texture copy (x_tex, as a storage texture: with sampled fetches, about four per texel, a
// 3x3 im2col cost several times its GEMM).
// `total` is the number of columns (chunk * P). One invocation per texel of the texture
// (rows rounded to 4), a row's texels consecutive (`col_texel`): on lavapipe 8 x 8
// workgroups, which write 8 texels in each of 8 rows a texture row apart, made these stores
// about 5x slower (cache-set conflicts at a wide texture's row stride), and a workgroup per
// row left most of its lanes idle where rows are short (a 7x7 map at batch 1: 13 texels).
@compute @workgroup_size(WG)
fn im2col_texture(invocation: Invocation) {
    let rows = (p.c_in * p.k_d * p.k_h * p.k_w + 3u) / 4u * 4u;
    let at = col_texel(invocation, rows);
    if at.y >= rows { return; }
    let q = at.x;
    let k = at.y;
    let s = im2col_sources(p, q, k);
    let v = vec4<f32>(x_value(s.at.x), x_value(s.at.y), x_value(s.at.z), x_value(s.at.w));
    textureStore(col_texture, vec2<u32>(q, k), select(vec4<f32>(0.0), v, s.inside));
}

// im2col_texture for a pointwise convolution (1x1 kernel, stride 1, no padding): texel (q, k)
// is channel k's values at the four columns' samples and positions. Four columns within one
// sample are four consecutive values of x, two texels of x's flat copy (`from_offset`). Where
// a sample's positions are not whole texels (MobileNetV2's 7x7 stage), every lane also takes
// the next sample's first values and picks per column, with no branch: lavapipe runs both
// sides of a branch its lanes split on, and a fetch per column on straddling texels made the
// kernel 1.3x slower. im2col_texture's general path makes four fetches and the index
// arithmetic of four columns every time. Same grid.
@compute @workgroup_size(WG)
fn im2col_pointwise(invocation: Invocation) {
    let rows = (p.c_in + 3u) / 4u * 4u;
    let texel = col_texel(invocation, rows);
    if texel.y >= rows { return; }
    let q = texel.x;
    let k = texel.y;
    let positions = p.out_d * p.out_h * p.out_w;
    let at = divmod24(q * 4u, positions);
    // Columns 4q .. 4q + 3 from position at.y of sample at.x; those past the sample's last
    // position come from the next sample's first (`next`, four values from before its plane).
    let s = ((at.x + p.n_offset) * p.c_in + min(k, p.c_in - 1u)) * positions + at.y;
    var v = from_offset(x_texel(s / 4u), x_texel(s / 4u + 1u), s % 4u);
    if positions % 4u != 0u {
        let t = s + p.c_in * positions - positions;
        let next = from_offset(x_texel(t / 4u), x_texel(t / 4u + 1u), t % 4u);
        let e = vec4<u32>(0u, 1u, 2u, 3u);
        v = select(v, next, vec4<u32>(at.y) + e >= vec4<u32>(positions));
    }
    let cols = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    v = select(vec4<f32>(0.0), v, (cols < vec4<u32>(p.total)) & vec4<bool>(k < p.c_in));
    textureStore(col_texture, vec2<u32>(q, k), v);
}

// Window q of im2col's pooled order (a 2x2 window of sample n_offset + q / (pool_h * pool_w))
// over input channel ci: the first row of x's channel plane, and the patch's top-left (row,
// column) in x, padding included.
struct PooledWindow {
    plane: u32,
    r0: i32,
    c0: i32,
}

fn pooled_window(q: u32, ci: u32) -> PooledWindow {
    let t = divmod24(q, p.pool_h * p.pool_w);
    let hw = divmod24(t.y, p.pool_w);
    let plane = ((t.x + p.n_offset) * p.c_in + ci) * p.in_h;
    return PooledWindow(plane, i32(2u * hw.x) - i32(p.pad_h), i32(2u * hw.y) - i32(p.pad_w));
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
    if q >= p.total / 4u || ci >= p.c_in { return; }
    let win = pooled_window(q, ci);
    let x0 = patch_row4(win.plane, win.r0, win.c0);
    let x1 = patch_row4(win.plane, win.r0 + 1, win.c0);
    let x2 = patch_row4(win.plane, win.r0 + 2, win.c0);
    let x3 = patch_row4(win.plane, win.r0 + 3, win.c0);
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

// im2col_3x3_pooled for any 2-D kernel of stride 1 and dilation 1 up to 7 taps wide (LeNet's
// 5x5): one invocation per (window, input channel) reads the (k_h + 1) x (k_w + 1) patch under
// the window a row at a time, two x_row4s a row (four texel fetches, where im2col_texture's
// four fetches and their index arithmetic are per texel), and writes the k_h * k_w texels of
// rows ci * taps ..: tap (kh, kw) is patch rows kh and kh + 1, columns kw and kw + 1. Rows past
// C_in * taps keep their zeros, grid and `total` as im2col_3x3_pooled's.
@compute @workgroup_size(64, 1, 1)
fn im2col_pooled(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let ci = gid.y;
    if q >= p.total / 4u || ci >= p.c_in { return; }
    let win = pooled_window(q, ci);
    var k = ci * p.k_h * p.k_w;
    var upper = patch_row(win.plane, win.r0, win.c0);
    for (var kh = 1u; kh <= p.k_h; kh++) {
        let lower = patch_row(win.plane, win.r0 + i32(kh), win.c0);
        var top = upper;
        var bottom = lower;
        for (var kw = 0u; kw < p.k_w; kw++) {
            textureStore(col_texture, vec2<u32>(q, k), vec4<f32>(top.lo.xy, bottom.lo.xy));
            top = patch_shift(top);
            bottom = patch_shift(bottom);
            k++;
        }
        upper = lower;
    }
}

// grad_col, read as a storage texture: on lavapipe a storage-image load is inlined, while a
// sampled fetch calls a function with per-lane mip-level arithmetic.
@group(0) @binding(10) var col_in: texture_storage_2d<rgba32float, read>;


// col2im (see above) gathering from the texture the tiled GEMM wrote grad_col into: texel
// (j / 4, k) holds row k = (ci, taps) of columns j = (sample in chunk) * P + position, or in
// im2col_texture's pooled order when pool_w > 0 (2-D; outputs outside every window have no
// column, and no gradient). With has_bias, adds b[ci].
// `total` = chunk * C_in * input positions, below 2^24 (the host chunks so).
@compute @workgroup_size(WG)
fn col2im_texture(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let pos = split3(idx, p.in_d, p.in_h, p.in_w);
    let id = pos.y;
    let ih = pos.z;
    let iw = pos.w;
    let t = divmod24(pos.x, p.c_in);
    let ci = t.y;
    let nc = t.x;
    let kk_count = p.k_d * p.k_h * p.k_w;
    var acc = 0.0;
    if p.dil_d == 1u && p.dil_h == 1u && p.dil_w == 1u {
        let dh = reaching_dh(id, ih);
        acc = col2im_reaching(nc, ci * kk_count, dh, reaching(iw, p.pad_w, p.stride_w));
    } else {
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
    }
    // A transposed convolution's forward pass runs here and adds its bias.
    if p.has_bias != 0u {
        acc += b[ci];
    }
    let n = nc + p.n_offset;
    y[(((n * p.c_in + ci) * p.in_d + id) * p.in_h + ih) * p.in_w + iw] = acc;
}

// col2im_texture with dilation 1 for four consecutive inputs of a row (iw0 .. iw0 + 3, those
// from in_w on left out): the position's divisions once for four sums, where the gather per
// input cost more than its few taps (a stride-2 layer's inputs are reached by 2.25 of 9 taps,
// a 1x1 stride-2 layer's by one in four). `total` = rows (chunk * C_in * in_d * in_h) *
// ceil(in_w / 4), below 2^24.
@compute @workgroup_size(WG)
fn col2im_texture4(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let pos = split3(idx, p.in_d, p.in_h, (p.in_w + 3u) / 4u);
    let t = divmod24(pos.x, p.c_in);
    let k0 = t.y * p.k_d * p.k_h * p.k_w;
    let iw0 = pos.w * 4u;
    let dh = reaching_dh(pos.y, pos.z);
    var acc = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        acc[e] = col2im_reaching(t.x, k0, dh, reaching(iw0 + e, p.pad_w, p.stride_w));
    }
    if p.has_bias != 0u {
        acc += vec4<f32>(b[t.y]);
    }
    let n = t.x + p.n_offset;
    let row = (((n * p.c_in + t.y) * p.in_d + pos.y) * p.in_h + pos.z) * p.in_w;
    dw_store(row, iw0, p.in_w, acc);
}

// Along one dimension of col2im with dilation 1, the first window o = (i + pad) / stride and
// the first tap k = (i + pad) % stride that reach input i, as (o, k).
fn reaching(i: u32, pad: u32, stride: u32) -> vec2<u32> {
    return divmod24(i + pad, stride);
}

// `reaching` along d (.xy) and h (.zw), which the four inputs of col2im_texture4 share.
fn reaching_dh(id: u32, ih: u32) -> vec4<u32> {
    return vec4<u32>(reaching(id, p.pad_d, p.stride_d), reaching(ih, p.pad_h, p.stride_h));
}

// col2im_texture's sum with dilation 1: along each dimension the taps that reach input i are
// k = (i + pad) % stride, then every stride-th, of windows o = (i + pad) / stride, then one
// less each; only those are read (the generic loop reads every tap and divides per tap, and a
// stride-2 3x3 layer's input is reached by 2.25 of its 9 on average). The same sum, in the
// same order, without the zeros. `k0`: row ci * taps of grad_col; `dh` and `w`: `reaching`
// along d, h and w.
fn col2im_reaching(nc: u32, k0: u32, dh: vec4<u32>, w: vec2<u32>) -> f32 {
    let d = dh.xy;
    let h = dh.zw;
    var acc = 0.0;
    var od = i32(d.x);
    for (var kd = d.y; kd < p.k_d; kd += p.stride_d) {
        var oh = i32(h.x);
        for (var kh = h.y; kh < p.k_h; kh += p.stride_h) {
            var ow = i32(w.x);
            for (var kw = w.y; kw < p.k_w; kw += p.stride_w) {
                acc += col_value(nc, od, oh, ow, k0 + (kd * p.k_h + kh) * p.k_w + kw);
                ow -= 1;
            }
            oh -= 1;
        }
        od -= 1;
    }
    return acc;
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
fn col2im_3x3(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
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
