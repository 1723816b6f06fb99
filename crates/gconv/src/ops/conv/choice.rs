//! What a convolution's kernel choice can be: the values `select.rs` returns for each pass
//! ([`Forward`], [`DataGrad`], [`WeightGrad`]) and what they carry, each variant naming, in
//! brackets, the strategy module that records it. `plan.rs` and the strategies match on them.

/// Where a texture GEMM's im2col operand comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Im2col {
    /// im2col writes it into a texture first (the register layout: on CPU adapters a gather
    /// per lane inside the GEMM costs more than the pass over memory).
    Texture,
    /// The GEMM gathers it as it loads its tiles (the workgroup layout), never written.
    Implicit,
    /// A pointwise convolution's forward pass on the register layout's subgroup GEMMs: the
    /// matrix is x itself, which the GEMM reads from x's texture copy (`B_PLANES`), never
    /// written.
    Planes,
}

/// The direct family [direct]: no GEMM, the same kernel kind for every pass of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direct {
    /// Four outputs of a row (the forward kernel) or one gradient element or weight per
    /// invocation: every grouping, stride and transposition. With `textures`, inputs are read
    /// through texture copies.
    PerOutput { textures: bool },
    /// groups = C_in = C_out: four outputs per invocation, a workgroup reduction per weight.
    Depthwise,
    /// 3x3 kernels as 4x4 output tiles; fused with ReLU and a 2x2 max-pool, the pooled variants
    /// (the forward pass, and a first layer's weight gradient from the pooled gradient). A
    /// depthwise one of stride 1 runs its forward pass down strips of rows instead.
    Tiles3x3,
}

/// How a forward pass runs; the strategy module that records it in brackets. `chunk`: samples
/// per GEMM or launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forward {
    Direct(Direct),
    /// im2col into a storage buffer, then the storage-buffer GEMM [im2col].
    Im2col {
        chunk: usize,
    },
    /// The texture GEMM over im2col; fused, its epilogue pools [tiled].
    Gemm {
        chunk: usize,
        col: Im2col,
    },
    /// `conv_3x3_sg_r16` [subgroup_3x3].
    Subgroup3x3 {
        chunk: usize,
    },
    /// `conv_3x3_sg_r16` over x's rows split by phase: a first layer's other kernels
    /// [subgroup_3x3's `forward_rows`].
    SubgroupRows {
        chunk: usize,
    },
    /// A transposed convolution as its adjoint's data gradient [tiled].
    Adjoint(DataGrad),
    /// `pooled_forward`: a first layer's convolution, ReLU and 2x2 max-pool from the patches
    /// under the windows, fused only [direct].
    Pooled,
}

/// How a data gradient (grad_x) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataGrad {
    /// Gathers over grad_y: a convolution's is the transposed convolution's forward kernel.
    Direct(Direct),
    /// grad_col = W^T grad_y on the storage-buffer GEMM, then col2im [im2col].
    Im2col { chunk: usize },
    /// grad_col on the texture GEMM into a texture, then col2im [tiled].
    Col2im { chunk: usize },
    /// The texture GEMM over grad_y's gather (workgroup layout, stride 1): no grad_col [tiled].
    Implicit { chunk: usize },
    /// A pointwise convolution's on the subgroup GEMMs: grad_x = W^T grad_y, B read in place
    /// from grad_y's texture copy (its channel planes, as [`Im2col::Planes`] reads x's), where
    /// `Col2im` packs grad_y first [tiled].
    Pointwise { chunk: usize },
    /// `conv_3x3_sg_r16` over grad_y's rows of texels, beside the weight gradient
    /// [subgroup_3x3].
    Subgroup3x3 { chunk: usize },
    /// A transposed convolution's: its adjoint's forward pass [tiled].
    Adjoint { chunk: usize, col: Im2col },
    /// From a fused max-pool's gradient through the texture GEMM's packed unpooled operand
    /// (as `Col2im` reads it), a row at a time, with no grad_col: stride 1, kernels up to 5
    /// wide but not 3x3, few output channels (see `select::pooled_data_rows`) [direct].
    PooledRows { chunk: usize },
    /// From a fused max-pool's gradient that no kernel reads pooled: unpooled first.
    Unpooled,
}

/// How a weight gradient (grad_W) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WeightGrad {
    Direct(Direct),
    /// grad_y col^T on the storage-buffer GEMM [im2col].
    Im2col {
        chunk: usize,
    },
    /// col grad_y^T on the texture GEMM [tiled; relu_pool from a pooled gradient].
    Gemm {
        chunk: usize,
        col: Im2col,
    },
    /// `wgrad_3x3_sg` over x's and grad_y's rows of texels [subgroup_3x3].
    Subgroup3x3 {
        chunk: usize,
    },
    /// `wgrad_3x3_sg` for a 3x3 convolution of stride 2 and padding 1, over x's plain rows of
    /// texels (stride-2 columns) and grad_y's; the data gradient takes its own choice
    /// [subgroup_3x3, tiled].
    SubgroupRows {
        chunk: usize,
    },
    /// A pointwise convolution's on the subgroup GEMMs, reading both tensors' channel planes in
    /// place from their texture copies, `b`'s as B's columns and the other's as A's rows (no
    /// im2col, no transposed pack); the data gradient takes its own choice [pointwise, tiled].
    Pointwise {
        chunk: usize,
        b: Columns,
    },
    /// A transposed convolution's: its adjoint's weight gradient, x and grad_y swapped [tiled].
    Adjoint {
        chunk: usize,
        col: Im2col,
    },
    /// From a fused max-pool's pooled gradient and argmax, each window's chosen output's
    /// gradient times the rows of x under it, on `pooled_backward_weight`: a first layer of
    /// stride 1 whose kernel is not 3x3 [direct].
    Pooled,
    /// From a fused max-pool's gradient that no kernel reads pooled: max-pool's backward pass
    /// writes the convolution's output gradient, then the plain choices run.
    Unpooled,
}

/// The tensor whose channel planes [`WeightGrad::Pointwise`] reads as B's columns (K over the
/// samples' positions): grad_y, for C = grad_W^T (C_in x C_out, A = x), or x, for C = grad_W
/// (C_out x C_in, A = grad_y). Whichever puts more than 64 channels along N, where the
/// subgroup GEMMs that read their operands in place run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Columns {
    GradY,
    X,
}

/// What the backward passes read as the output's gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The convolution's own output gradient.
    Plain,
    /// A fused ReLU + 2x2 max-pool's pooled gradient and argmax; `kept_rows` when the forward
    /// pass kept x in rows of texels for it (see `select::relu_pool_scratch`).
    Pooled {
        /// The forward pass kept x's rows of texels.
        kept_rows: bool,
    },
}

/// What a pass's choice depends on beyond the shapes and the context.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reads {
    /// x can be copied into a texture (`Flat::can_hold`; a host's buffer may not allow it).
    pub x_fits: bool,
    /// The same for grad_y (the backward passes).
    pub grad_y_fits: bool,
    /// The data gradient is wanted too: a strategy that computes both gradients needs room
    /// for both.
    pub data: bool,
}

/// What a fused conv -> ReLU -> max-pool's forward pass keeps for its backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// x in rows of texels, for the subgroup kernels.
    Rows,
    /// The im2col texture in pooled order, for the texture GEMM's weight gradient.
    Col,
}

impl Source {
    /// How the log names the source.
    pub(super) fn name(self) -> &'static str {
        match self {
            Source::Plain => "",
            Source::Pooled { .. } => " from the pooled gradient",
        }
    }
}
