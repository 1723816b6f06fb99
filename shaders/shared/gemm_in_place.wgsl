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
// - A_PLANES: A's rows are planes along K the same way (a_planes).
@group(0) @binding(11) var b_planes: texture_storage_2d<rgba32float, read>;
@group(0) @binding(12) var a_planes: texture_storage_2d<rgba32float, read>;
override B_PLANES: u32 = 0u;
override A_PLANES: bool = false;

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
    if A_PLANES {
        let plane = a_plane_texels();
        return textureLoad(a_planes, flat_xy(along_k(kq, p.m, plane) + u32(m) * plane));
    }
    return textureLoad(ta_r, vec2<i32>(kq, m));
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
