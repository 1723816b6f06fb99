// shared/strip_stores_wide.wgsl: shared/strip_stores.wgsl's functions with 64-bit integer
// stores (wgpu's SHADER_INT64), for CPU adapters only (`Context::uses_wide_stores`).
//
// lavapipe stores a vector as a loop over the SIMD row's lanes with one bounds-checked scalar
// store per component: a vec4<f32> is four per lane, a vec2<u64> (the same four values) two,
// and a vec4<u64> eight values in four. The bench's depthwise layer (64 channels of 56x56,
// batch 8), least of 8 rounds: its strips 1.85 -> 1.70 ms; MobileNetV2's strips (stride 1
// and 2) at batch 16: 64.9 -> 62.6 ms.

// y again: runs of four (ROW_QUADS, out_w a multiple of 4) and of eight (ROW_OCTS, out_w a
// multiple of 8), each value's bits in one half of a u64.
@group(0) @binding(14) var<storage, read_write> y_quads: array<vec2<u64>>;
@group(0) @binding(15) var<storage, read_write> y_octs: array<vec4<u64>>;
override ROW_QUADS: bool = false;
override ROW_OCTS: bool = false;

// Two f32s as one u64, the first in the low half (where a little-endian f32 pair lies).
fn f32_pair_bits(v: vec2<f32>) -> u64 {
    let bits = bitcast<vec2<u32>>(v);
    return u64(bits.x) | (u64(bits.y) << 32u);
}

// dw_store of output row `at` (a flat index) for the strip kernels.
fn strip_store(at: u32, col0: u32, v: vec4<f32>) {
    if ROW_QUADS {
        if col0 < p.out_w {
            y_quads[(at + col0) / 4u] = vec2<u64>(f32_pair_bits(v.xy), f32_pair_bits(v.zw));
        }
        return;
    }
    dw_store(at, col0, p.out_w, v);
}

// Eight values of output row `at` from col0 (a multiple of 8): one store with ROW_OCTS.
fn strip_store8(at: u32, col0: u32, a: vec4<f32>, b: vec4<f32>) {
    if ROW_OCTS {
        if col0 < p.out_w {
            y_octs[(at + col0) / 8u] = vec4<u64>(
                f32_pair_bits(a.xy),
                f32_pair_bits(a.zw),
                f32_pair_bits(b.xy),
                f32_pair_bits(b.zw),
            );
        }
        return;
    }
    strip_store(at, col0, a);
    strip_store(at, col0 + 4u, b);
}
