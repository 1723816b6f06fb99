// shared/strip_stores.wgsl: how the depthwise strip kernels store their runs of outputs (after
// shared/conv_io.wgsl), as f32 texels. shared/strip_stores_wide.wgsl defines the same functions
// with 64-bit stores, for CPU adapters.

// y again, as texels: with ROW_QUADS (set by the host where out_w is a multiple of 4, so every
// row and run of four outputs from col0 is one aligned texel) `strip_store` stores a run as one
// vec4 instead of four values behind a bounds check each.
@group(0) @binding(14) var<storage, read_write> y_quads: array<vec4<f32>>;
override ROW_QUADS: bool = false;

// dw_store of output row `at` (a flat index) for the strip kernels.
fn strip_store(at: u32, col0: u32, v: vec4<f32>) {
    if ROW_QUADS {
        if col0 < p.out_w {
            y_quads[(at + col0) / 4u] = v;
        }
        return;
    }
    dw_store(at, col0, p.out_w, v);
}

// Eight values of output row `at` from col0 (a multiple of 8): two runs of four.
fn strip_store8(at: u32, col0: u32, a: vec4<f32>, b: vec4<f32>) {
    strip_store(at, col0, a);
    strip_store(at, col0 + 4u, b);
}
