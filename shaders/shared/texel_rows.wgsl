// shared/texel_rows.wgsl: the taps of a source kept in rows of texels (texel t of a row holds
// its values 4t .. 4t + 3), for subgroup/conv_3x3_sg.wgsl and subgroup/wgrad_3x3_sg.wgsl.

// Samples per row of texels (S = 2 or 4, images of width 4 / S: ResNet's last stages at 64x64
// and 32x32 input): texel (n, k, r) holds row r of samples S n .. S n + S - 1 side by side
// (rows_pack.wgsl's pack_sample_rows), so no lane computes a texel's padding. A tap at w - 1 or
// w + 1 must not cross into the next sample: it is the texel's own values with zeros between
// the samples.
override ROW_SAMPLES: u32 = 1u;

// Source columns per output column: 1, or 2 for a 3x3 convolution of stride 2 (padding 1)
// from x's plain rows, whose output texel t reads source texels 2t - 1, 2t and 2t + 1.
override COL_STRIDE: u32 = 1u;

// A texel's three taps as four-position vectors (k0, k1, k2: the values at w - 1, w and w + 1
// of the texel's four positions w, or with COL_STRIDE 2 at 2w - 1, 2w and 2w + 1) from it (m)
// and its neighbours in the row (l, r; zeros where the row has none).
struct RowTaps {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
}

fn row_taps(l: vec4<f32>, m: vec4<f32>, r: vec4<f32>) -> RowTaps {
    if ROW_SAMPLES == 2u {
        return RowTaps(vec4<f32>(0.0, m.x, 0.0, m.z), m, vec4<f32>(m.y, 0.0, m.w, 0.0));
    }
    if ROW_SAMPLES == 4u {
        return RowTaps(vec4<f32>(0.0), m, vec4<f32>(0.0));
    }
    if COL_STRIDE == 2u {
        return RowTaps(vec4<f32>(l.w, m.yw, r.y), vec4<f32>(m.xz, r.xz), vec4<f32>(m.yw, r.yw));
    }
    return RowTaps(vec4<f32>(l.w, m.xyz), m, vec4<f32>(m.yzw, r.x));
}
