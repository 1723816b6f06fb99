// shared/texel_rows.wgsl: the taps of a source kept in rows of texels (texel t of a row holds
// its values 4t .. 4t + 3), for subgroup/conv_3x3_sg.wgsl and subgroup/wgrad_3x3_sg.wgsl.

// A texel's three taps as four-position vectors (k0, k1, k2: the values at w - 1, w and w + 1
// of the texel's four positions w) from it (m) and its neighbours in the row (l, r; zeros
// where the row has none).
struct RowTaps {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
}

fn row_taps(l: vec4<f32>, m: vec4<f32>, r: vec4<f32>) -> RowTaps {
    return RowTaps(vec4<f32>(l.w, m.xyz), m, vec4<f32>(m.yzw, r.x));
}
