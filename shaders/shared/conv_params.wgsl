// shared/conv_params.wgsl: a convolution's geometry (the uniform `ConvParams`), put after the
// prelude in every shader that reads a convolution: conv/, the GEMMs (whose parameters carry
// one for their implicit operands) and subgroup/.

struct ConvParams {
    n: u32,
    c_in: u32,
    c_out: u32,
    groups: u32,
    in_d: u32,
    in_h: u32,
    in_w: u32,
    out_d: u32,
    out_h: u32,
    out_w: u32,
    k_d: u32,
    k_h: u32,
    k_w: u32,
    stride_d: u32,
    stride_h: u32,
    stride_w: u32,
    // Padding before each dimension (`same` padding puts any odd remainder after).
    pad_d: u32,
    pad_h: u32,
    pad_w: u32,
    dil_d: u32,
    dil_h: u32,
    dil_w: u32,
    // 1: add b[c]; 3 (the GEMMs' bias_mode for it too): batch norm (evaluation) folded in,
    // y = acc * b[c] + b[c_out + c] (the forward kernels that take it: conv_out4).
    has_bias: u32,
    total: u32,
    // im2col / col2im: the first sample of this chunk.
    n_offset: u32,
    // im2col_texture: when pool_w > 0, columns come in pooled order (see there) for a
    // (pool_h, pool_w) 2x2 max-pool that the GEMM fuses.
    pool_h: u32,
    pool_w: u32,
    // tiles_3x3_forward_relu_pool: write the pooling indices too.
    pool_indices: u32,
    // conv_backward_weight: this piece's rows (sample, d, h) of the strided tensor,
    // [row_begin, row_end); row_end 0 for all of them.
    row_begin: u32,
    row_end: u32,
    // The forward kernels' clamp behind the bias (see conv_io.wgsl's conv_out4): kind 0 none,
    // 1 ReLU, 2 [act_lo, act_hi].
    act: u32,
    act_lo: f32,
    act_hi: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}
