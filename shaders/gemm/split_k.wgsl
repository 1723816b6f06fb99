// gemm/split_k.wgsl: the texture GEMMs' split-K reduction (after shared/gemm_epilogue.wgsl).


// Sums the splits of C[z, r, j] and applies the epilogue: one invocation per element.
@compute @workgroup_size(8, 8, 1)
fn gemm_tex_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let r = gid.y;
    let z = gid.z;
    if r >= p.m || j >= p.n { return; }
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        sum += partial[((z * p.splits + s) * p.m + r) * p.n + j];
    }
    store(z, r, j, sum);
}
