// shared/prelude.wgsl: prepended to every shader in shaders/ before it is compiled.
//
// Workgroup size of the one-dimensional kernels, set per pipeline through
// PipelineCompilationOptions::constants.
override WG: u32 = 64u;

// The linear index of this invocation over a 2-D grid of workgroups. Grids are two-dimensional
// because one dimension holds at most 65535 workgroups; the host computes x and y from the
// number of invocations it needs (see `Grid` in crates/gconv/src/kernel.rs).
fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * WG + lid;
}

// The window that puts kernel tap `k` on position `i`: the w with w*stride - pad + k*dil == i
// and 0 <= w < size, or -1 when there is none. Transposed convolutions, col2im and pooling's
// backward gather with it.
fn tap_source(i: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dil);
    if t < 0 || (u32(t) % stride) != 0u {
        return -1;
    }
    let w = u32(t) / stride;
    if w >= size {
        return -1;
    }
    return i32(w);
}
