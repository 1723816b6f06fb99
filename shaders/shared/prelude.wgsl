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
