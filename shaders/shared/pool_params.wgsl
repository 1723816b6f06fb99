// shared/pool_params.wgsl: pooling's parameters and the bindings of its gradients (after the
// prelude), for pool/.

struct PoolParams {
    planes: u32,
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
    pad_d: u32,
    pad_h: u32,
    pad_w: u32,
    dil_d: u32,
    dil_h: u32,
    dil_w: u32,
    count_include_pad: u32,
    // 0: none; otherwise PyTorch's `divisor_override`.
    divisor_override: u32,
    total: u32,
    // max_pool_2x2_backward_packed: channels per sample and the chunk's first sample.
    channels: u32,
    sample_offset: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(4) var<storage, read> grad_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_x: array<f32>;
@group(0) @binding(6) var<storage, read> saved_indices: array<i32>;
