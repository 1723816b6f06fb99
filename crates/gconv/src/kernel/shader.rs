//! The registry of `shaders/`: every WGSL file a pipeline is built from, and the shared files
//! of `shaders/shared/` each one is compiled after.

/// One WGSL file of `shaders/` with entry points: a kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `conv/direct.wgsl`: direct and transposed convolution, four outputs or one per invocation.
    ConvDirect,
    /// `conv/im2col.wgsl`: im2col and col2im, into and out of buffers and textures.
    ConvIm2col,
    /// `conv/depthwise.wgsl`: depthwise convolution, four outputs per invocation.
    ConvDepthwise,
    /// `conv/tiles_3x3.wgsl`: 3x3 convolutions as 4x4 output tiles.
    ConvTiles3x3,
    /// `conv/depthwise.wgsl` with 64-bit stores (`shared/strip_stores_wide.wgsl`): its strips on
    /// CPU adapters with wgpu's SHADER_INT64 ([`crate::Context::uses_wide_stores`]).
    ConvDepthwiseWide,
    /// `conv/tiles_3x3.wgsl` with 64-bit stores, the same way.
    ConvTiles3x3Wide,
    /// `conv/pooled.wgsl`: convolutions fused with ReLU and a 2x2 max-pool (LeNet's 5x5) with
    /// no im2col or grad_col: a first layer's forward pass and weight gradient, a data gradient.
    ConvPooled,
    /// `gemm/simple.wgsl`: the storage-buffer GEMM (linear, matmul, the im2col path).
    GemmSimple,
    /// `gemm/pack.wgsl`: a strided view of a buffer into the texture GEMMs' layout.
    GemmPack,
    /// `gemm/registers.wgsl`: the texture GEMM's register layout (CPU adapters).
    GemmRegisters,
    /// `gemm/workgroup.wgsl`: the texture GEMM's workgroup-memory layout (GPUs).
    GemmWorkgroup,
    /// `gemm/split_k.wgsl`: the texture GEMMs' split-K reduction.
    GemmSplitK,
    /// `subgroup/gemm_sg.wgsl`: the register layout sharing an operand across a subgroup of 8
    /// lanes (devices with wgpu's SUBGROUP feature only).
    GemmSubgroup,
    /// `subgroup/conv_3x3_sg.wgsl`: 3x3 convolutions (and first layers' forward passes) on
    /// subgroups of 8 lanes, no im2col.
    Conv3x3Subgroup,
    /// `subgroup/wgrad_3x3_sg.wgsl`: `Conv3x3Subgroup`'s weight gradients.
    Wgrad3x3Subgroup,
    /// `subgroup/rows_pack.wgsl`: `Conv3x3Subgroup`'s operands in rows of texels.
    RowsPack,
    /// `pool/pool.wgsl`: max, average and adaptive pooling.
    Pool,
    /// `pool/unpool_2x2.wgsl`: a fused 2x2 max-pool's gradient into textures.
    Unpool2x2,
    /// `elementwise.wgsl`: relu, relu6, add and other per-element maps.
    Elementwise,
    /// `softmax.wgsl`: softmax, log_softmax.
    Softmax,
    /// `loss.wgsl`: cross-entropy.
    Loss,
    /// `batch_norm.wgsl`: batch normalisation.
    BatchNorm,
    /// `reduce.wgsl`: per-channel and per-batch sums for gradients.
    Reduce,
    /// `slice.wgsl`: concatenation and slicing along a dimension.
    Slice,
    /// `pad.wgsl`: constant padding and cropping, and its gradient.
    Pad,
    /// `dropout.wgsl`: dropout with a seeded GPU mask.
    Dropout,
    /// `augment.wgsl`: seeded random crops and flips of a training batch.
    Augment,
    /// `optim.wgsl`: Adam and SGD updates.
    Optim,
    /// `texture.wgsl`: a host's image texture to a model input.
    Texture,
}

/// A file of `shaders/shared/` that shaders are compiled after (the prelude, first in every
/// shader, is not listed).
#[derive(Clone, Copy)]
enum Part {
    ConvParams,
    ConvIo,
    Im2col,
    GemmEpilogue,
    GemmInPlace,
    PoolParams,
    Health,
    TexelRows,
    StripStores,
    StripStoresWide,
}

impl Part {
    fn text(self) -> &'static str {
        match self {
            Part::ConvParams => include_str!("../../../../shaders/shared/conv_params.wgsl"),
            Part::ConvIo => include_str!("../../../../shaders/shared/conv_io.wgsl"),
            Part::Im2col => include_str!("../../../../shaders/shared/im2col.wgsl"),
            Part::GemmEpilogue => include_str!("../../../../shaders/shared/gemm_epilogue.wgsl"),
            Part::GemmInPlace => include_str!("../../../../shaders/shared/gemm_in_place.wgsl"),
            Part::PoolParams => include_str!("../../../../shaders/shared/pool_params.wgsl"),
            Part::Health => include_str!("../../../../shaders/shared/health.wgsl"),
            Part::TexelRows => include_str!("../../../../shaders/shared/texel_rows.wgsl"),
            Part::StripStores => include_str!("../../../../shaders/shared/strip_stores.wgsl"),
            Part::StripStoresWide => {
                include_str!("../../../../shaders/shared/strip_stores_wide.wgsl")
            }
        }
    }
}

/// Put in front of every shader: the `WG` override, `linear_index` and the index helpers.
const PRELUDE: &str = include_str!("../../../../shaders/shared/prelude.wgsl");

macro_rules! shaders {
    ($($variant:ident => $file:literal, [$($part:ident),*];)*) => {
        impl Shader {
            /// Every shader, for validation and listing.
            pub const ALL: &'static [Shader] = &[$(Shader::$variant),*];

            /// The file's path under `shaders/`.
            pub fn file_name(self) -> &'static str {
                match self {
                    $(Shader::$variant => $file,)*
                }
            }

            fn body(self) -> &'static str {
                match self {
                    $(Shader::$variant => include_str!(concat!("../../../../shaders/", $file)),)*
                }
            }

            fn parts(self) -> &'static [Part] {
                match self {
                    $(Shader::$variant => &[$(Part::$part),*],)*
                }
            }
        }
    };
}

shaders! {
    ConvDirect => "conv/direct.wgsl", [ConvParams, ConvIo];
    ConvIm2col => "conv/im2col.wgsl", [ConvParams, Im2col, ConvIo];
    ConvDepthwise => "conv/depthwise.wgsl", [ConvParams, ConvIo, StripStores];
    ConvTiles3x3 => "conv/tiles_3x3.wgsl", [ConvParams, ConvIo, StripStores];
    ConvDepthwiseWide => "conv/depthwise.wgsl", [ConvParams, ConvIo, StripStoresWide];
    ConvTiles3x3Wide => "conv/tiles_3x3.wgsl", [ConvParams, ConvIo, StripStoresWide];
    ConvPooled => "conv/pooled.wgsl", [ConvParams, ConvIo];
    GemmSimple => "gemm/simple.wgsl", [];
    GemmPack => "gemm/pack.wgsl", [];
    GemmRegisters => "gemm/registers.wgsl", [ConvParams, GemmEpilogue];
    GemmWorkgroup => "gemm/workgroup.wgsl", [ConvParams, Im2col, GemmEpilogue];
    GemmSplitK => "gemm/split_k.wgsl", [ConvParams, GemmEpilogue];
    GemmSubgroup => "subgroup/gemm_sg.wgsl", [ConvParams, GemmEpilogue, GemmInPlace];
    Conv3x3Subgroup => "subgroup/conv_3x3_sg.wgsl", [ConvParams, GemmEpilogue, TexelRows];
    Wgrad3x3Subgroup => "subgroup/wgrad_3x3_sg.wgsl", [ConvParams, GemmEpilogue, TexelRows];
    RowsPack => "subgroup/rows_pack.wgsl", [ConvParams, GemmEpilogue];
    Pool => "pool/pool.wgsl", [PoolParams];
    Unpool2x2 => "pool/unpool_2x2.wgsl", [PoolParams];
    Elementwise => "elementwise.wgsl", [];
    Softmax => "softmax.wgsl", [];
    Loss => "loss.wgsl", [Health];
    BatchNorm => "batch_norm.wgsl", [];
    Reduce => "reduce.wgsl", [];
    Slice => "slice.wgsl", [];
    Pad => "pad.wgsl", [];
    Dropout => "dropout.wgsl", [];
    Augment => "augment.wgsl", [];
    Optim => "optim.wgsl", [Health];
    Texture => "texture.wgsl", [];
}

impl Shader {
    /// Whether the shader uses subgroup operations (and so needs wgpu's SUBGROUP feature).
    pub fn uses_subgroups(self) -> bool {
        self.file_name().starts_with("subgroup/")
    }

    /// Whether the shader uses 64-bit integers (and so needs wgpu's SHADER_INT64 feature).
    pub fn uses_int64(self) -> bool {
        self.parts().iter().any(|part| matches!(part, Part::StripStoresWide))
    }

    /// The same kernels with 64-bit stores where there is such a variant (CPU adapters with
    /// SHADER_INT64, [`crate::Context::uses_wide_stores`]).
    pub fn wide(self) -> Shader {
        match self {
            Shader::ConvDepthwise => Shader::ConvDepthwiseWide,
            Shader::ConvTiles3x3 => Shader::ConvTiles3x3Wide,
            other => other,
        }
    }

    /// The complete WGSL source the device compiles: the prelude, the shared files the shader
    /// uses (`shaders/shared/`), then the shader's own file.
    pub fn source(self) -> String {
        let mut source = String::from(PRELUDE);
        for part in self.parts() {
            source.push('\n');
            source.push_str(part.text());
        }
        source.push('\n');
        source.push_str(self.body());
        source
    }
}
