//! What kernels of more than one family read: `ConvParams`, the Rust twin of
//! shaders/shared/conv_params.wgsl (every convolution kernel, and the implicit GEMM's gathers;
//! field order and padding follow the WGSL struct exactly), and the GEMM epilogues' bias mode.

/// A convolution's geometry (`ConvParams` in shaders/shared/conv_params.wgsl): the convolution
/// kernels' uniform, carried by the texture GEMMs' too for their implicit operands.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvParams {
    pub(crate) n: u32,
    pub(crate) c_in: u32,
    pub(crate) c_out: u32,
    pub(crate) groups: u32,
    pub(crate) input: [u32; 3],
    pub(crate) output: [u32; 3],
    pub(crate) kernel: [u32; 3],
    pub(crate) stride: [u32; 3],
    pub(crate) pad: [u32; 3],
    pub(crate) dilation: [u32; 3],
    /// 1: a bias; [`BIAS_AFFINE`]: batch norm folded in, the bias binding holding C_out
    /// scales then C_out shifts.
    pub(crate) has_bias: u32,
    pub(crate) total: u32,
    pub(crate) n_offset: u32,
    /// im2col_texture's pooled column order, or tiles_3x3_forward_relu_pool's output: the
    /// pooled (height, width), or zeros.
    pub(crate) pool: [u32; 2],
    /// tiles_3x3_forward_relu_pool: whether to write the pooling indices.
    pub(crate) pool_indices: u32,
    /// conv_backward_weight: the rows (sample, d, h) of this piece, [first, end); end 0 for
    /// all.
    pub(crate) rows: [u32; 2],
    /// The forward kernels' clamp (`conv_out4`): an [`Act`]'s kind and bounds.
    pub(crate) act: u32,
    pub(crate) act_lo: f32,
    pub(crate) act_hi: f32,
    pub(crate) _pad: [u32; 3],
}

/// `has_bias` / `bias_mode` where batch norm (evaluation) is folded into a convolution's
/// epilogue: each output channel's scale, then its shift, in the bias binding.
pub(crate) const BIAS_AFFINE: u32 = 3;

/// The GEMM epilogues' `bias_mode`: 0 none, 1 per column (linear), 2 per row (channels),
/// [`BIAS_AFFINE`] where the bias binding holds a folded batch norm (per row).
pub(crate) fn bias_mode(bias: bool, per_row: bool, affine: bool) -> u32 {
    match (affine, bias, per_row) {
        (true, ..) => BIAS_AFFINE,
        (false, false, _) => 0,
        (false, true, false) => 1,
        (false, true, true) => 2,
    }
}
