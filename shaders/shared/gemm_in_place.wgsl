// shared/gemm_in_place.wgsl: how subgroup/gemm_sg.wgsl's gemm_sg_r16 / r8 read their
// operands (after shared/gemm_epilogue.wgsl, whose ta_r and tb_r are the packed ones).
//
// They read A through `a_texel` and B through `b_rows`: packed (ta_r, tb_r), or in place from
// texture copies of a tensor's planes (FLAT_TEXELS texels a row), a multiple of 4 values each:
// a convolution's channel planes (positions), or a matrix's rows as one sample's planes. The
// host sets these (gemm::tiled::record_gemm), with p.conv giving B's planes (out_d * out_h *
// out_w values each) and A's (in_d * in_h * in_w):
// - B_PLANES 1: B's rows are the planes (a pointwise convolution's x, K = C_in, or grad_y in
//   its data gradient, K = C_out = c_in; a row-major matrix's rows): column block q of sample
//   s at position 4t, row k, is texel (s * c_in + k) * P / 4 + t;
// - B_PLANES 2: B's columns are the planes (a pointwise weight gradient's grad_y^T or x^T, K
//   running over the samples' positions; a linear layer's W^T): texel kq = s * P / 4 + t of
//   column n is (s * N + n) * P / 4 + t, four rows, so a column block's four texels are a 4x4
//   block of B transposed (free: a SIMD lane's vector components are separate registers);
// - A_PLANES 1: A's rows are planes along K the same way (a_planes);
// - A_PLANES 2: A's columns are (A^T row-major: a convolution's W for its data gradient's W^T,
//   a linear layer's grad_y for grad_W's grad_y^T): A's texel (kq, m) is column m of rows
//   4 kq .. 4 kq + 3, four fetches where a packed A takes one (A's fetches are one per 8 rows
//   of a subgroup, B's 16 per step of K), where packing A^T costs a transposing pass through
//   texture stores.
@group(0) @binding(11) var b_planes: texture_storage_2d<rgba32float, read>;
@group(0) @binding(12) var a_planes: texture_storage_2d<rgba32float, read>;
override B_PLANES: u32 = 0u;
override A_PLANES: u32 = 0u;

// Texels per plane of B's source (P / 4).
fn plane_texels() -> u32 {
    return p.conv.out_d * p.conv.out_h * p.conv.out_w / 4u;
}

// Texels per plane of A's source.
fn a_plane_texels() -> u32 {
    return p.conv.in_d * p.conv.in_h * p.conv.in_w / 4u;
}

// Column block q's place in B: its texel column, or with B_PLANES 1 its first texel in x's.
fn b_column(q: u32) -> i32 {
    if B_PLANES == 1u {
        let at = divmod24(q, plane_texels());
        return i32((at.x + p.conv.n_offset) * p.conv.c_in * plane_texels() + at.y);
    }
    return i32(q);
}

// B's texel of row k at column block `at` (from b_column).
fn b_texel(at: i32, k: i32) -> vec4<f32> {
    if B_PLANES == 1u {
        return textureLoad(b_planes, flat_xy(u32(at) + u32(k) * plane_texels()));
    }
    return textureLoad(tb_r, vec2<i32>(at, k));
}

// The first texel of K texel kq's positions in a copy of planes of `plane` texels along K
// (B_PLANES 2, A_PLANES), for row or column 0 of `channels`.
fn along_k(kq: i32, channels: u32, plane: u32) -> u32 {
    let st = divmod24(u32(kq), plane);
    return (st.x + p.conv.n_offset) * channels * plane + st.y;
}

// A's texel (K texel kq, row m).
fn a_texel(kq: i32, m: i32) -> vec4<f32> {
    let plane = a_plane_texels();
    if A_PLANES == 1u {
        return textureLoad(a_planes, flat_xy(along_k(kq, p.m, plane) + u32(m) * plane));
    }
    if A_PLANES == 2u {
        let t = u32(kq) * 4u * plane + u32(m) / 4u;
        let c = u32(m) % 4u;
        return vec4<f32>(textureLoad(a_planes, flat_xy(t))[c],
                         textureLoad(a_planes, flat_xy(t + plane))[c],
                         textureLoad(a_planes, flat_xy(t + 2u * plane))[c],
                         textureLoad(a_planes, flat_xy(t + 3u * plane))[c]);
    }
    return textureLoad(ta_r, vec2<i32>(kq, m));
}

// A's texels at K texel kq of eight rows from a multiple of 8 (lo, hi: their rows, clamped to
// M by the caller), for gemm_sgc_r8: packed, or with A_PLANES 2 two 4x4 blocks of A^T's copy
// (rows lo.x .. lo.x + 3 are one texel of each of A^T's rows 4 kq .. 4 kq + 3) transposed in
// registers: eight fetches either way.
struct ARows8 {
    r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>,
    r4: vec4<f32>, r5: vec4<f32>, r6: vec4<f32>, r7: vec4<f32>,
}

fn a_rows8(kq: i32, lo: vec4<i32>, hi: vec4<i32>) -> ARows8 {
    if A_PLANES == 2u {
        let plane = a_plane_texels();
        let t = u32(kq) * 4u * plane + u32(lo.x) / 4u;
        let l0 = textureLoad(a_planes, flat_xy(t));
        let l1 = textureLoad(a_planes, flat_xy(t + plane));
        let l2 = textureLoad(a_planes, flat_xy(t + 2u * plane));
        let l3 = textureLoad(a_planes, flat_xy(t + 3u * plane));
        let h0 = textureLoad(a_planes, flat_xy(t + 1u));
        let h1 = textureLoad(a_planes, flat_xy(t + 1u + plane));
        let h2 = textureLoad(a_planes, flat_xy(t + 1u + 2u * plane));
        let h3 = textureLoad(a_planes, flat_xy(t + 1u + 3u * plane));
        return ARows8(vec4<f32>(l0.x, l1.x, l2.x, l3.x), vec4<f32>(l0.y, l1.y, l2.y, l3.y),
                      vec4<f32>(l0.z, l1.z, l2.z, l3.z), vec4<f32>(l0.w, l1.w, l2.w, l3.w),
                      vec4<f32>(h0.x, h1.x, h2.x, h3.x), vec4<f32>(h0.y, h1.y, h2.y, h3.y),
                      vec4<f32>(h0.z, h1.z, h2.z, h3.z), vec4<f32>(h0.w, h1.w, h2.w, h3.w));
    }
    return ARows8(textureLoad(ta_r, vec2<i32>(kq, lo.x)), textureLoad(ta_r, vec2<i32>(kq, lo.y)),
                  textureLoad(ta_r, vec2<i32>(kq, lo.z)), textureLoad(ta_r, vec2<i32>(kq, lo.w)),
                  textureLoad(ta_r, vec2<i32>(kq, hi.x)), textureLoad(ta_r, vec2<i32>(kq, hi.y)),
                  textureLoad(ta_r, vec2<i32>(kq, hi.z)), textureLoad(ta_r, vec2<i32>(kq, hi.w)));
}

// Rows k .. k + 3 (K texel kq) of column block `at`.
struct BRows { r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32> }

fn b_rows(at: i32, kq: i32, k: i32) -> BRows {
    if B_PLANES == 2u {
        let plane = plane_texels();
        let n = vec4<u32>(u32(at) * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
        let at4 = vec4<u32>(along_k(kq, p.n, plane)) + min(n, vec4<u32>(p.n - 1u)) * plane;
        let c0 = textureLoad(b_planes, flat_xy(at4.x));
        let c1 = textureLoad(b_planes, flat_xy(at4.y));
        let c2 = textureLoad(b_planes, flat_xy(at4.z));
        let c3 = textureLoad(b_planes, flat_xy(at4.w));
        return BRows(vec4<f32>(c0.x, c1.x, c2.x, c3.x), vec4<f32>(c0.y, c1.y, c2.y, c3.y),
                     vec4<f32>(c0.z, c1.z, c2.z, c3.z), vec4<f32>(c0.w, c1.w, c2.w, c3.w));
    }
    return BRows(b_texel(at, k), b_texel(at, k + 1), b_texel(at, k + 2), b_texel(at, k + 3));
}
