// pool/unpool_2x2.wgsl: a fused conv -> ReLU -> 2x2 max-pool's backward pass into the
// convolution's gradient operands (textures), never writing the un-pooled gradient.

@group(0) @binding(9) var gy_packed: texture_storage_2d<rgba32float, write>;
@group(0) @binding(10) var gyt_packed: texture_storage_2d<rgba32float, write>;

// The backward pass of a fused conv -> ReLU -> 2x2 max-pool (stride 2) on the tiled GEMM, up to
// the convolution's output: the pooled gradient goes through the saved argmax (-1 where the
// ReLU was off: no gradient) straight into the two packed operands of the convolution's
// gradient GEMMs, in im2col_texture's pooled order (column 4w + e is lane e = 2 dh + dw of
// window w = (sample in chunk, ph, pw)), so the un-pooled gradient is never written:
// - gy_packed (C x 4W, the texture GEMMs' B layout): texel (w, c) is window w of channel c, the
//   gradient at its argmax lane and zeros elsewhere (the data gradient's B);
// - gyt_packed (4W x C): its transpose, texel (c / 4, 4w + e) (the weight gradient's B).
// `planes` = samples in the chunk * channels; one invocation per (window, four channels):
// `total` = windows in the chunk * ceil(channels / 4), below 2^24.
@compute @workgroup_size(WG)
fn max_pool_2x2_backward_packed(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let per_sample = p.out_h * p.out_w;
    let windows = (p.planes / p.channels) * per_sample;
    let t = divmod24(idx, windows);
    let c0 = 4u * t.x;
    let w = t.y;
    let s = divmod24(w, per_sample);
    let hw = divmod24(s.y, p.out_w);
    let base = ((p.sample_offset + s.x) * p.channels + c0) * per_sample + s.y;
    // Each channel's window, written out (CPU adapters keep local arrays in memory).
    let v0 = unpooled_window(base, c0, hw.x, hw.y, true);
    let v1 = unpooled_window(base + per_sample, c0 + 1u, hw.x, hw.y, true);
    let v2 = unpooled_window(base + 2u * per_sample, c0 + 2u, hw.x, hw.y, true);
    let v3 = unpooled_window(base + 3u * per_sample, c0 + 3u, hw.x, hw.y, true);
    textureStore(gy_packed, vec2<u32>(w, c0), v0);
    textureStore(gy_packed, vec2<u32>(w, c0 + 1u), v1);
    textureStore(gy_packed, vec2<u32>(w, c0 + 2u), v2);
    textureStore(gy_packed, vec2<u32>(w, c0 + 3u), v3);
    textureStore(gyt_packed, vec2<u32>(t.x, 4u * w), vec4<f32>(v0.x, v1.x, v2.x, v3.x));
    textureStore(gyt_packed, vec2<u32>(t.x, 4u * w + 1u), vec4<f32>(v0.y, v1.y, v2.y, v3.y));
    textureStore(gyt_packed, vec2<u32>(t.x, 4u * w + 2u), vec4<f32>(v0.z, v1.z, v2.z, v3.z));
    textureStore(gyt_packed, vec2<u32>(t.x, 4u * w + 3u), vec4<f32>(v0.w, v1.w, v2.w, v3.w));
}

// The same backward pass for subgroup/conv_3x3_sg.wgsl's conv_3x3_sg_r16 and wgrad_3x3_sg (a 3x3
// convolution's gradients straight from grad_y): the convolution's output gradient into
// gy_packed in rows of W4 = ceil(in_w / 4) texels, flat (at flat_xy): texel
// ((n * C + c) * in_h + h) * W4 + t holds grad[n, c, h, 4t .. 4t + 4], zeros past in_w and
// wherever no window's argmax lies (rows and columns past the pooled windows).
// One invocation per (sample in chunk, four channels, row pair, texel): `total` = samples *
// ceil(channels / 4) * ceil(in_h / 2) * W4, below 2^24. Its two windows (2t, 2t + 1) cover
// the texel in both rows of the pair.
@compute @workgroup_size(WG)
fn max_pool_2x2_backward_spatial(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let w4 = (p.in_w + 3u) / 4u;
    let pairs = (p.in_h + 1u) / 2u;
    let c4 = (p.channels + 3u) / 4u;
    let t = idx % w4;
    let hp = (idx / w4) % pairs;
    let rest = idx / (w4 * pairs);
    let c0 = 4u * (rest % c4);
    let s = rest / c4;
    // The two windows (row hp, columns 2t and 2t + 1), four channels each, written out: no
    // local arrays (CPU adapters keep them in memory).
    let pw = 2u * t;
    let ok0 = hp < p.out_h && pw < p.out_w;
    let ok1 = hp < p.out_h && pw + 1u < p.out_w;
    let plane = p.out_h * p.out_w;
    let base = ((p.sample_offset + s) * p.channels + c0) * plane + hp * p.out_w + pw;
    let a0 = unpooled_window(base, c0, hp, pw, ok0);
    let b0 = unpooled_window(base + 1u, c0, hp, pw + 1u, ok1);
    let a1 = unpooled_window(base + plane, c0 + 1u, hp, pw, ok0);
    let b1 = unpooled_window(base + plane + 1u, c0 + 1u, hp, pw + 1u, ok1);
    let a2 = unpooled_window(base + 2u * plane, c0 + 2u, hp, pw, ok0);
    let b2 = unpooled_window(base + 2u * plane + 1u, c0 + 2u, hp, pw + 1u, ok1);
    let a3 = unpooled_window(base + 3u * plane, c0 + 3u, hp, pw, ok0);
    let b3 = unpooled_window(base + 3u * plane + 1u, c0 + 3u, hp, pw + 1u, ok1);
    let row = ((s * p.channels + c0) * p.in_h + 2u * hp) * w4 + t;
    let channel = p.in_h * w4;
    store_unpooled_rows(row, c0, w4, hp, a0, b0);
    store_unpooled_rows(row + channel, c0 + 1u, w4, hp, a1, b1);
    store_unpooled_rows(row + 2u * channel, c0 + 2u, w4, hp, a2, b2);
    store_unpooled_rows(row + 3u * channel, c0 + 3u, w4, hp, a3, b3);
}

// One window's gradient in its four lanes ((dh, dw) = (0, 0), (0, 1), (1, 0), (1, 1)): the
// pooled gradient at the saved argmax, zeros elsewhere, all zero for a missing window or
// channel or a ReLU that was off (-1).
fn unpooled_window(at: u32, c: u32, ph: u32, pw: u32, ok: bool) -> vec4<f32> {
    if !ok || c >= p.channels {
        return vec4<f32>(0.0);
    }
    let chosen = saved_indices[at];
    if chosen < 0 {
        return vec4<f32>(0.0);
    }
    let pos = divmod24(u32(chosen), p.in_w);
    let lane = (pos.x - 2u * ph) * 2u + pos.y - 2u * pw;
    return select(vec4<f32>(0.0), vec4<f32>(grad_y[at]), vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(lane));
}

// Channel c's two rows (2 hp and 2 hp + 1, when inside) of texel `row` from two windows' lanes.
fn store_unpooled_rows(row: u32, c: u32, w4: u32, hp: u32, a: vec4<f32>, b: vec4<f32>) {
    if c >= p.channels { return; }
    textureStore(gy_packed, flat_xy(row), vec4<f32>(a.xy, b.xy));
    if 2u * hp + 1u < p.in_h {
        textureStore(gy_packed, flat_xy(row + w4), vec4<f32>(a.zw, b.zw));
    }
}
