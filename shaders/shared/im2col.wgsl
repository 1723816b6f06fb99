// shared/im2col.wgsl: one texel of a convolution's im2col matrix, or of its data gradient's
// gather (after the prelude and shared/conv_params.wgsl). conv/im2col.wgsl's im2col_texture
// writes the im2col texels into the tiled GEMM's operand texture; the GEMM's workgroup layout
// (gemm/workgroup.wgsl, IMPLICIT) computes both as it stages its tiles, so that on GPUs the
// matrix is never written at all.

// Texel (q, k) of im2col(x), x read from its flat texture copy (`flat_load`): row k =
// (ci, kd, kh, kw) of columns j = 4q .. 4q+4, where column j is output position j % P of sample
// n_offset + j / P. Columns past `total` and rows past C_in * taps are zero.
// Pooled order (pool_w > 0, 2-D): texel q is instead one 2x2 window, pooled position
// q % (pool_h * pool_w) of sample n_offset + q / (pool_h * pool_w), and its four columns are
// the window's outputs row by row, so that the GEMM can max-pool each texel's columns as it
// writes them. Outputs that no window covers (an odd last row or column, which floor-mode
// pooling drops) are not computed.
fn im2col_texel(c: ConvParams, x_flat: texture_2d<f32>, q: u32, k: u32) -> vec4<f32> {
    let s = im2col_sources(c, q, k);
    let v = vec4<f32>(flat_load(x_flat, s.at.x), flat_load(x_flat, s.at.y),
                      flat_load(x_flat, s.at.z), flat_load(x_flat, s.at.w));
    return select(vec4<f32>(0.0), v, s.inside);
}

// Where the four values of an im2col texel come from: flat indices into x, and whether each
// lies inside x (else the value is 0; its index is then a valid placeholder).
struct Sources {
    at: vec4<u32>,
    inside: vec4<bool>,
}

// im2col_texel's sources, for kernels that read x from a storage texture (which naga's MSL
// back end does not take as a function argument, so each reads its own binding).
fn im2col_sources(c: ConvParams, q: u32, k: u32) -> Sources {
    var s = Sources(vec4<u32>(0u), vec4<bool>(false));
    if k >= c.c_in * c.k_d * c.k_h * c.k_w {
        return s;
    }
    // The row's channel and tap, and the first column's sample and position; the other three
    // columns step through the positions (divmod24: no integer division).
    let tap = split3(k, c.k_d, c.k_h, c.k_w);
    let ci = tap.x;
    let j0 = q * 4u;
    let pooled = c.pool_w != 0u;
    var pos: vec4<u32>;
    if pooled {
        let t = divmod24(q, c.pool_h * c.pool_w);
        let hw = divmod24(t.y, c.pool_w);
        pos = vec4<u32>(t.x, 0u, 2u * hw.x, 2u * hw.y);
    } else {
        pos = split3(j0, c.out_d, c.out_h, c.out_w);
    }
    let base_d = i32(tap.y * c.dil_d) - i32(c.pad_d);
    let base_h = i32(tap.z * c.dil_h) - i32(c.pad_h);
    let base_w = i32(tap.w * c.dil_w) - i32(c.pad_w);
    for (var e = 0u; e < 4u; e++) {
        let id = i32(pos.y * c.stride_d) + base_d;
        var ih = i32(pos.z * c.stride_h) + base_h;
        var iw = i32(pos.w * c.stride_w) + base_w;
        if pooled {
            ih += i32((e >> 1u) * c.stride_h);
            iw += i32((e & 1u) * c.stride_w);
        }
        s.inside[e] = j0 + e < c.total && id >= 0 && id < i32(c.in_d) && ih >= 0
            && ih < i32(c.in_h) && iw >= 0 && iw < i32(c.in_w);
        let n = pos.x + c.n_offset;
        s.at[e] = (((n * c.c_in + ci) * c.in_d + u32(max(id, 0))) * c.in_h + u32(max(ih, 0)))
            * c.in_w + u32(max(iw, 0));
        if !pooled {
            pos = next_position(pos, c.out_d, c.out_h, c.out_w);
        }
    }
    return s;
}

// Texel (q, k) of the data gradient's implicit operand, for a convolution of stride 1 or more:
// row k = (co, kd, kh, kw) of columns j = 4q .. 4q+4, where column j is input position j % P_in
// of sample n_offset + j / P_in, holds grad_y at the output position whose window puts tap
// (kd, kh, kw) on that input position, or zero where no window does (`tap_source`). Then
// grad_x (C_in, columns) = W viewed as (C_in, C_out * taps) times this matrix: col2im's
// gather, done by the GEMM. grad_y is read from its flat texture copy. Columns past `total`
// and rows past C_out * taps are zero.
fn dgrad_texel(c: ConvParams, gy_flat: texture_2d<f32>, q: u32, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if k >= c.c_out * c.k_d * c.k_h * c.k_w {
        return v;
    }
    let tap = split3(k, c.k_d, c.k_h, c.k_w);
    let co = tap.x;
    let j0 = q * 4u;
    var pos = split3(j0, c.in_d, c.in_h, c.in_w);
    for (var e = 0u; e < 4u; e++) {
        let od = tap_source(pos.y, tap.y, c.stride_d, c.pad_d, c.dil_d, c.out_d);
        let oh = tap_source(pos.z, tap.z, c.stride_h, c.pad_h, c.dil_h, c.out_h);
        let ow = tap_source(pos.w, tap.w, c.stride_w, c.pad_w, c.dil_w, c.out_w);
        let inside = j0 + e < c.total && od >= 0 && oh >= 0 && ow >= 0;
        let n = pos.x + c.n_offset;
        let at = (((n * c.c_out + co) * c.out_d + u32(max(od, 0))) * c.out_h + u32(max(oh, 0)))
            * c.out_w + u32(max(ow, 0));
        v[e] = select(0.0, flat_load(gy_flat, at), inside);
        pos = next_position(pos, c.in_d, c.in_h, c.in_w);
    }
    return v;
}
