// subgroup/gemm_sg.wgsl: gemm/registers.wgsl's kernels for devices with subgroups of 8
// (lavapipe on 256-bit SIMD), after shared/gemm_epilogue.wgsl, whose bindings and epilogue they
// use; compiled only where the device has wgpu's SUBGROUP feature. gemm::tiled::record_gemm
// picks gemm_sg_r16 (M > 64) / _r8 (M of 8 to 64, or K up to 64) on the register layout
// when N > 64, gemm_sgc_r8 when N <= 64 (and M >= 8).
//
// The eight lanes of a subgroup compute neighbouring column blocks of the same rows, so they all
// need the same texels of A: instead of eight identical fetches of each, lane l fetches row l of
// each 8-row group and `subgroupBroadcast` hands every row to every lane (one fetch of A per 8
// rows; B's 16 fetches per step of K are unchanged). On lavapipe about 1.3x on a whole GEMM.
// Workgroups are one-dimensional (naga requires it for subgroup_invocation_id): lane = column
// block within 8, local_invocation_index / 8 = row block. gemm_sg_r16 / r8 take WG / 8 row
// blocks a workgroup (1 to 8), which the host fits to M: lavapipe runs a subgroup whose rows
// all lie past M through its first step of K and its (masked) epilogue, about a third of a
// working one's cost at K = 32, so a projection to 16 channels in workgroups of 8 row blocks
// took twice its work's share. No lane returns before the loop: a broadcast reads lanes that
// must still run (a subgroup's rows are common, so only whole subgroups return).
//
// gemm_sg_r16 / r8 read A through `a_texel` and B through `b_rows` (shared/gemm_in_place.wgsl):
// packed, or in place from a tensor's texture copy.

@compute @workgroup_size(WG, 1, 1)
fn gemm_sg_r16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
         @builtin(subgroup_invocation_id) lane: u32) {
    let gid = vec3<u32>(wid.x * 8u + lane, wid.y * (WG / 8u) + li / 8u, wid.z);
    let qb = gid.x * 4u;
    let row0 = gid.y * 16u;
    let zs = divmod24(gid.z, p.splits);
    let z = zs.x;
    let split = zs.y;
    if row0 >= p.m { return; }
    let last_q = (p.n - 1u) / 4u;
    let q0 = b_column(min(qb + 0u, last_q));
    let q1 = b_column(min(qb + 1u, last_q));
    let q2 = b_column(min(qb + 2u, last_q));
    let q3 = b_column(min(qb + 3u, last_q));
    let mg0 = i32(z * p.m + min(row0 + 0u + lane, p.m - 1u));
    let mg1 = i32(z * p.m + min(row0 + 8u + lane, p.m - 1u));
    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0); var acc0_2 = vec4<f32>(0.0); var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0); var acc1_2 = vec4<f32>(0.0); var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0); var acc2_2 = vec4<f32>(0.0); var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0); var acc3_2 = vec4<f32>(0.0); var acc3_3 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0); var acc4_2 = vec4<f32>(0.0); var acc4_3 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0); var acc5_2 = vec4<f32>(0.0); var acc5_3 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0); var acc6_2 = vec4<f32>(0.0); var acc6_3 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0); var acc7_2 = vec4<f32>(0.0); var acc7_3 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0); var acc8_1 = vec4<f32>(0.0); var acc8_2 = vec4<f32>(0.0); var acc8_3 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0); var acc9_1 = vec4<f32>(0.0); var acc9_2 = vec4<f32>(0.0); var acc9_3 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0); var acc10_1 = vec4<f32>(0.0); var acc10_2 = vec4<f32>(0.0); var acc10_3 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0); var acc11_1 = vec4<f32>(0.0); var acc11_2 = vec4<f32>(0.0); var acc11_3 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0); var acc12_1 = vec4<f32>(0.0); var acc12_2 = vec4<f32>(0.0); var acc12_3 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0); var acc13_1 = vec4<f32>(0.0); var acc13_2 = vec4<f32>(0.0); var acc13_3 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0); var acc14_1 = vec4<f32>(0.0); var acc14_2 = vec4<f32>(0.0); var acc14_3 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0); var acc15_1 = vec4<f32>(0.0); var acc15_2 = vec4<f32>(0.0); var acc15_3 = vec4<f32>(0.0);
    let b_base = i32(z * p.b_rows);
    let k_lo = i32(split * p.k_split);
    let k_hi = min(k_lo + i32(p.k_split), i32(p.k4));
    for (var kq = k_lo; kq < k_hi; kq++) {
        let k0 = b_base + kq * 4;
        let ag0 = a_texel(kq, mg0);
        let ag1 = a_texel(kq, mg1);
        let bb0 = b_rows(q0, kq, k0);
        let bb1 = b_rows(q1, kq, k0);
        let bb2 = b_rows(q2, kq, k0);
        let bb3 = b_rows(q3, kq, k0);
        let b0_0 = bb0.r0; let b1_0 = bb0.r1; let b2_0 = bb0.r2; let b3_0 = bb0.r3;
        let b0_1 = bb1.r0; let b1_1 = bb1.r1; let b2_1 = bb1.r2; let b3_1 = bb1.r3;
        let b0_2 = bb2.r0; let b1_2 = bb2.r1; let b2_2 = bb2.r2; let b3_2 = bb2.r3;
        let b0_3 = bb3.r0; let b1_3 = bb3.r1; let b2_3 = bb3.r2; let b3_3 = bb3.r3;
        let a0 = subgroupBroadcast(ag0, 0u);
        acc0_0 = fma(vec4(a0.w), b3_0, fma(vec4(a0.z), b2_0, fma(vec4(a0.y), b1_0, fma(vec4(a0.x), b0_0, acc0_0))));
        acc0_1 = fma(vec4(a0.w), b3_1, fma(vec4(a0.z), b2_1, fma(vec4(a0.y), b1_1, fma(vec4(a0.x), b0_1, acc0_1))));
        acc0_2 = fma(vec4(a0.w), b3_2, fma(vec4(a0.z), b2_2, fma(vec4(a0.y), b1_2, fma(vec4(a0.x), b0_2, acc0_2))));
        acc0_3 = fma(vec4(a0.w), b3_3, fma(vec4(a0.z), b2_3, fma(vec4(a0.y), b1_3, fma(vec4(a0.x), b0_3, acc0_3))));
        let a1 = subgroupBroadcast(ag0, 1u);
        acc1_0 = fma(vec4(a1.w), b3_0, fma(vec4(a1.z), b2_0, fma(vec4(a1.y), b1_0, fma(vec4(a1.x), b0_0, acc1_0))));
        acc1_1 = fma(vec4(a1.w), b3_1, fma(vec4(a1.z), b2_1, fma(vec4(a1.y), b1_1, fma(vec4(a1.x), b0_1, acc1_1))));
        acc1_2 = fma(vec4(a1.w), b3_2, fma(vec4(a1.z), b2_2, fma(vec4(a1.y), b1_2, fma(vec4(a1.x), b0_2, acc1_2))));
        acc1_3 = fma(vec4(a1.w), b3_3, fma(vec4(a1.z), b2_3, fma(vec4(a1.y), b1_3, fma(vec4(a1.x), b0_3, acc1_3))));
        let a2 = subgroupBroadcast(ag0, 2u);
        acc2_0 = fma(vec4(a2.w), b3_0, fma(vec4(a2.z), b2_0, fma(vec4(a2.y), b1_0, fma(vec4(a2.x), b0_0, acc2_0))));
        acc2_1 = fma(vec4(a2.w), b3_1, fma(vec4(a2.z), b2_1, fma(vec4(a2.y), b1_1, fma(vec4(a2.x), b0_1, acc2_1))));
        acc2_2 = fma(vec4(a2.w), b3_2, fma(vec4(a2.z), b2_2, fma(vec4(a2.y), b1_2, fma(vec4(a2.x), b0_2, acc2_2))));
        acc2_3 = fma(vec4(a2.w), b3_3, fma(vec4(a2.z), b2_3, fma(vec4(a2.y), b1_3, fma(vec4(a2.x), b0_3, acc2_3))));
        let a3 = subgroupBroadcast(ag0, 3u);
        acc3_0 = fma(vec4(a3.w), b3_0, fma(vec4(a3.z), b2_0, fma(vec4(a3.y), b1_0, fma(vec4(a3.x), b0_0, acc3_0))));
        acc3_1 = fma(vec4(a3.w), b3_1, fma(vec4(a3.z), b2_1, fma(vec4(a3.y), b1_1, fma(vec4(a3.x), b0_1, acc3_1))));
        acc3_2 = fma(vec4(a3.w), b3_2, fma(vec4(a3.z), b2_2, fma(vec4(a3.y), b1_2, fma(vec4(a3.x), b0_2, acc3_2))));
        acc3_3 = fma(vec4(a3.w), b3_3, fma(vec4(a3.z), b2_3, fma(vec4(a3.y), b1_3, fma(vec4(a3.x), b0_3, acc3_3))));
        let a4 = subgroupBroadcast(ag0, 4u);
        acc4_0 = fma(vec4(a4.w), b3_0, fma(vec4(a4.z), b2_0, fma(vec4(a4.y), b1_0, fma(vec4(a4.x), b0_0, acc4_0))));
        acc4_1 = fma(vec4(a4.w), b3_1, fma(vec4(a4.z), b2_1, fma(vec4(a4.y), b1_1, fma(vec4(a4.x), b0_1, acc4_1))));
        acc4_2 = fma(vec4(a4.w), b3_2, fma(vec4(a4.z), b2_2, fma(vec4(a4.y), b1_2, fma(vec4(a4.x), b0_2, acc4_2))));
        acc4_3 = fma(vec4(a4.w), b3_3, fma(vec4(a4.z), b2_3, fma(vec4(a4.y), b1_3, fma(vec4(a4.x), b0_3, acc4_3))));
        let a5 = subgroupBroadcast(ag0, 5u);
        acc5_0 = fma(vec4(a5.w), b3_0, fma(vec4(a5.z), b2_0, fma(vec4(a5.y), b1_0, fma(vec4(a5.x), b0_0, acc5_0))));
        acc5_1 = fma(vec4(a5.w), b3_1, fma(vec4(a5.z), b2_1, fma(vec4(a5.y), b1_1, fma(vec4(a5.x), b0_1, acc5_1))));
        acc5_2 = fma(vec4(a5.w), b3_2, fma(vec4(a5.z), b2_2, fma(vec4(a5.y), b1_2, fma(vec4(a5.x), b0_2, acc5_2))));
        acc5_3 = fma(vec4(a5.w), b3_3, fma(vec4(a5.z), b2_3, fma(vec4(a5.y), b1_3, fma(vec4(a5.x), b0_3, acc5_3))));
        let a6 = subgroupBroadcast(ag0, 6u);
        acc6_0 = fma(vec4(a6.w), b3_0, fma(vec4(a6.z), b2_0, fma(vec4(a6.y), b1_0, fma(vec4(a6.x), b0_0, acc6_0))));
        acc6_1 = fma(vec4(a6.w), b3_1, fma(vec4(a6.z), b2_1, fma(vec4(a6.y), b1_1, fma(vec4(a6.x), b0_1, acc6_1))));
        acc6_2 = fma(vec4(a6.w), b3_2, fma(vec4(a6.z), b2_2, fma(vec4(a6.y), b1_2, fma(vec4(a6.x), b0_2, acc6_2))));
        acc6_3 = fma(vec4(a6.w), b3_3, fma(vec4(a6.z), b2_3, fma(vec4(a6.y), b1_3, fma(vec4(a6.x), b0_3, acc6_3))));
        let a7 = subgroupBroadcast(ag0, 7u);
        acc7_0 = fma(vec4(a7.w), b3_0, fma(vec4(a7.z), b2_0, fma(vec4(a7.y), b1_0, fma(vec4(a7.x), b0_0, acc7_0))));
        acc7_1 = fma(vec4(a7.w), b3_1, fma(vec4(a7.z), b2_1, fma(vec4(a7.y), b1_1, fma(vec4(a7.x), b0_1, acc7_1))));
        acc7_2 = fma(vec4(a7.w), b3_2, fma(vec4(a7.z), b2_2, fma(vec4(a7.y), b1_2, fma(vec4(a7.x), b0_2, acc7_2))));
        acc7_3 = fma(vec4(a7.w), b3_3, fma(vec4(a7.z), b2_3, fma(vec4(a7.y), b1_3, fma(vec4(a7.x), b0_3, acc7_3))));
        let a8 = subgroupBroadcast(ag1, 0u);
        acc8_0 = fma(vec4(a8.w), b3_0, fma(vec4(a8.z), b2_0, fma(vec4(a8.y), b1_0, fma(vec4(a8.x), b0_0, acc8_0))));
        acc8_1 = fma(vec4(a8.w), b3_1, fma(vec4(a8.z), b2_1, fma(vec4(a8.y), b1_1, fma(vec4(a8.x), b0_1, acc8_1))));
        acc8_2 = fma(vec4(a8.w), b3_2, fma(vec4(a8.z), b2_2, fma(vec4(a8.y), b1_2, fma(vec4(a8.x), b0_2, acc8_2))));
        acc8_3 = fma(vec4(a8.w), b3_3, fma(vec4(a8.z), b2_3, fma(vec4(a8.y), b1_3, fma(vec4(a8.x), b0_3, acc8_3))));
        let a9 = subgroupBroadcast(ag1, 1u);
        acc9_0 = fma(vec4(a9.w), b3_0, fma(vec4(a9.z), b2_0, fma(vec4(a9.y), b1_0, fma(vec4(a9.x), b0_0, acc9_0))));
        acc9_1 = fma(vec4(a9.w), b3_1, fma(vec4(a9.z), b2_1, fma(vec4(a9.y), b1_1, fma(vec4(a9.x), b0_1, acc9_1))));
        acc9_2 = fma(vec4(a9.w), b3_2, fma(vec4(a9.z), b2_2, fma(vec4(a9.y), b1_2, fma(vec4(a9.x), b0_2, acc9_2))));
        acc9_3 = fma(vec4(a9.w), b3_3, fma(vec4(a9.z), b2_3, fma(vec4(a9.y), b1_3, fma(vec4(a9.x), b0_3, acc9_3))));
        let a10 = subgroupBroadcast(ag1, 2u);
        acc10_0 = fma(vec4(a10.w), b3_0, fma(vec4(a10.z), b2_0, fma(vec4(a10.y), b1_0, fma(vec4(a10.x), b0_0, acc10_0))));
        acc10_1 = fma(vec4(a10.w), b3_1, fma(vec4(a10.z), b2_1, fma(vec4(a10.y), b1_1, fma(vec4(a10.x), b0_1, acc10_1))));
        acc10_2 = fma(vec4(a10.w), b3_2, fma(vec4(a10.z), b2_2, fma(vec4(a10.y), b1_2, fma(vec4(a10.x), b0_2, acc10_2))));
        acc10_3 = fma(vec4(a10.w), b3_3, fma(vec4(a10.z), b2_3, fma(vec4(a10.y), b1_3, fma(vec4(a10.x), b0_3, acc10_3))));
        let a11 = subgroupBroadcast(ag1, 3u);
        acc11_0 = fma(vec4(a11.w), b3_0, fma(vec4(a11.z), b2_0, fma(vec4(a11.y), b1_0, fma(vec4(a11.x), b0_0, acc11_0))));
        acc11_1 = fma(vec4(a11.w), b3_1, fma(vec4(a11.z), b2_1, fma(vec4(a11.y), b1_1, fma(vec4(a11.x), b0_1, acc11_1))));
        acc11_2 = fma(vec4(a11.w), b3_2, fma(vec4(a11.z), b2_2, fma(vec4(a11.y), b1_2, fma(vec4(a11.x), b0_2, acc11_2))));
        acc11_3 = fma(vec4(a11.w), b3_3, fma(vec4(a11.z), b2_3, fma(vec4(a11.y), b1_3, fma(vec4(a11.x), b0_3, acc11_3))));
        let a12 = subgroupBroadcast(ag1, 4u);
        acc12_0 = fma(vec4(a12.w), b3_0, fma(vec4(a12.z), b2_0, fma(vec4(a12.y), b1_0, fma(vec4(a12.x), b0_0, acc12_0))));
        acc12_1 = fma(vec4(a12.w), b3_1, fma(vec4(a12.z), b2_1, fma(vec4(a12.y), b1_1, fma(vec4(a12.x), b0_1, acc12_1))));
        acc12_2 = fma(vec4(a12.w), b3_2, fma(vec4(a12.z), b2_2, fma(vec4(a12.y), b1_2, fma(vec4(a12.x), b0_2, acc12_2))));
        acc12_3 = fma(vec4(a12.w), b3_3, fma(vec4(a12.z), b2_3, fma(vec4(a12.y), b1_3, fma(vec4(a12.x), b0_3, acc12_3))));
        let a13 = subgroupBroadcast(ag1, 5u);
        acc13_0 = fma(vec4(a13.w), b3_0, fma(vec4(a13.z), b2_0, fma(vec4(a13.y), b1_0, fma(vec4(a13.x), b0_0, acc13_0))));
        acc13_1 = fma(vec4(a13.w), b3_1, fma(vec4(a13.z), b2_1, fma(vec4(a13.y), b1_1, fma(vec4(a13.x), b0_1, acc13_1))));
        acc13_2 = fma(vec4(a13.w), b3_2, fma(vec4(a13.z), b2_2, fma(vec4(a13.y), b1_2, fma(vec4(a13.x), b0_2, acc13_2))));
        acc13_3 = fma(vec4(a13.w), b3_3, fma(vec4(a13.z), b2_3, fma(vec4(a13.y), b1_3, fma(vec4(a13.x), b0_3, acc13_3))));
        let a14 = subgroupBroadcast(ag1, 6u);
        acc14_0 = fma(vec4(a14.w), b3_0, fma(vec4(a14.z), b2_0, fma(vec4(a14.y), b1_0, fma(vec4(a14.x), b0_0, acc14_0))));
        acc14_1 = fma(vec4(a14.w), b3_1, fma(vec4(a14.z), b2_1, fma(vec4(a14.y), b1_1, fma(vec4(a14.x), b0_1, acc14_1))));
        acc14_2 = fma(vec4(a14.w), b3_2, fma(vec4(a14.z), b2_2, fma(vec4(a14.y), b1_2, fma(vec4(a14.x), b0_2, acc14_2))));
        acc14_3 = fma(vec4(a14.w), b3_3, fma(vec4(a14.z), b2_3, fma(vec4(a14.y), b1_3, fma(vec4(a14.x), b0_3, acc14_3))));
        let a15 = subgroupBroadcast(ag1, 7u);
        acc15_0 = fma(vec4(a15.w), b3_0, fma(vec4(a15.z), b2_0, fma(vec4(a15.y), b1_0, fma(vec4(a15.x), b0_0, acc15_0))));
        acc15_1 = fma(vec4(a15.w), b3_1, fma(vec4(a15.z), b2_1, fma(vec4(a15.y), b1_1, fma(vec4(a15.x), b0_1, acc15_1))));
        acc15_2 = fma(vec4(a15.w), b3_2, fma(vec4(a15.z), b2_2, fma(vec4(a15.y), b1_2, fma(vec4(a15.x), b0_2, acc15_2))));
        acc15_3 = fma(vec4(a15.w), b3_3, fma(vec4(a15.z), b2_3, fma(vec4(a15.y), b1_3, fma(vec4(a15.x), b0_3, acc15_3))));
    }
    // The fused max-pool's epilogue for whole rows of four whole windows (see gemm_tex_r8).
    if pooled_epilogue() && row0 + 16u <= p.m && (qb + 4u) * 4u <= p.n {
        let w = pooled_windows(qb);
        store_pooled_row(z, row0 + 0u, w, acc0_0, acc0_1, acc0_2, acc0_3);
        store_pooled_row(z, row0 + 1u, w, acc1_0, acc1_1, acc1_2, acc1_3);
        store_pooled_row(z, row0 + 2u, w, acc2_0, acc2_1, acc2_2, acc2_3);
        store_pooled_row(z, row0 + 3u, w, acc3_0, acc3_1, acc3_2, acc3_3);
        store_pooled_row(z, row0 + 4u, w, acc4_0, acc4_1, acc4_2, acc4_3);
        store_pooled_row(z, row0 + 5u, w, acc5_0, acc5_1, acc5_2, acc5_3);
        store_pooled_row(z, row0 + 6u, w, acc6_0, acc6_1, acc6_2, acc6_3);
        store_pooled_row(z, row0 + 7u, w, acc7_0, acc7_1, acc7_2, acc7_3);
        store_pooled_row(z, row0 + 8u, w, acc8_0, acc8_1, acc8_2, acc8_3);
        store_pooled_row(z, row0 + 9u, w, acc9_0, acc9_1, acc9_2, acc9_3);
        store_pooled_row(z, row0 + 10u, w, acc10_0, acc10_1, acc10_2, acc10_3);
        store_pooled_row(z, row0 + 11u, w, acc11_0, acc11_1, acc11_2, acc11_3);
        store_pooled_row(z, row0 + 12u, w, acc12_0, acc12_1, acc12_2, acc12_3);
        store_pooled_row(z, row0 + 13u, w, acc13_0, acc13_1, acc13_2, acc13_3);
        store_pooled_row(z, row0 + 14u, w, acc14_0, acc14_1, acc14_2, acc14_3);
        store_pooled_row(z, row0 + 15u, w, acc15_0, acc15_1, acc15_2, acc15_3);
        return;
    }
    // A texture output (grad_col) of 16 whole rows: straight stores, no epilogue. Columns past
    // N were clamped to the last texel above, whose value they then repeat.
    if texture_epilogue() && row0 + 16u <= p.m && qb * 4u < p.n {
        let y0 = i32(z * p.m + row0);
        let q = vec4<i32>(q0, q1, q2, q3);
        store_texture_row(y0 + 0, q, acc0_0, acc0_1, acc0_2, acc0_3);
        store_texture_row(y0 + 1, q, acc1_0, acc1_1, acc1_2, acc1_3);
        store_texture_row(y0 + 2, q, acc2_0, acc2_1, acc2_2, acc2_3);
        store_texture_row(y0 + 3, q, acc3_0, acc3_1, acc3_2, acc3_3);
        store_texture_row(y0 + 4, q, acc4_0, acc4_1, acc4_2, acc4_3);
        store_texture_row(y0 + 5, q, acc5_0, acc5_1, acc5_2, acc5_3);
        store_texture_row(y0 + 6, q, acc6_0, acc6_1, acc6_2, acc6_3);
        store_texture_row(y0 + 7, q, acc7_0, acc7_1, acc7_2, acc7_3);
        store_texture_row(y0 + 8, q, acc8_0, acc8_1, acc8_2, acc8_3);
        store_texture_row(y0 + 9, q, acc9_0, acc9_1, acc9_2, acc9_3);
        store_texture_row(y0 + 10, q, acc10_0, acc10_1, acc10_2, acc10_3);
        store_texture_row(y0 + 11, q, acc11_0, acc11_1, acc11_2, acc11_3);
        store_texture_row(y0 + 12, q, acc12_0, acc12_1, acc12_2, acc12_3);
        store_texture_row(y0 + 13, q, acc13_0, acc13_1, acc13_2, acc13_3);
        store_texture_row(y0 + 14, q, acc14_0, acc14_1, acc14_2, acc14_3);
        store_texture_row(y0 + 15, q, acc15_0, acc15_1, acc15_2, acc15_3);
        return;
    }
    // The plain epilogue of whole row blocks and column groups.
    if plain_block(row0, 16u, qb) {
        let o = column_offsets(qb);
        store_plain_row(z, row0 + 0u, o, acc0_0, acc0_1, acc0_2, acc0_3);
        store_plain_row(z, row0 + 1u, o, acc1_0, acc1_1, acc1_2, acc1_3);
        store_plain_row(z, row0 + 2u, o, acc2_0, acc2_1, acc2_2, acc2_3);
        store_plain_row(z, row0 + 3u, o, acc3_0, acc3_1, acc3_2, acc3_3);
        store_plain_row(z, row0 + 4u, o, acc4_0, acc4_1, acc4_2, acc4_3);
        store_plain_row(z, row0 + 5u, o, acc5_0, acc5_1, acc5_2, acc5_3);
        store_plain_row(z, row0 + 6u, o, acc6_0, acc6_1, acc6_2, acc6_3);
        store_plain_row(z, row0 + 7u, o, acc7_0, acc7_1, acc7_2, acc7_3);
        store_plain_row(z, row0 + 8u, o, acc8_0, acc8_1, acc8_2, acc8_3);
        store_plain_row(z, row0 + 9u, o, acc9_0, acc9_1, acc9_2, acc9_3);
        store_plain_row(z, row0 + 10u, o, acc10_0, acc10_1, acc10_2, acc10_3);
        store_plain_row(z, row0 + 11u, o, acc11_0, acc11_1, acc11_2, acc11_3);
        store_plain_row(z, row0 + 12u, o, acc12_0, acc12_1, acc12_2, acc12_3);
        store_plain_row(z, row0 + 13u, o, acc13_0, acc13_1, acc13_2, acc13_3);
        store_plain_row(z, row0 + 14u, o, acc14_0, acc14_1, acc14_2, acc14_3);
        store_plain_row(z, row0 + 15u, o, acc15_0, acc15_1, acc15_2, acc15_3);
        return;
    }
    // The rest: partial blocks, one value at a time (compiled in where a launch has some).
    if !EDGES {
        return;
    }
    // One call site for the epilogue: 64 inlined copies would bloat the kernel.
    var out: array<vec4<f32>, 64>;
    out[0] = acc0_0; out[1] = acc0_1; out[2] = acc0_2; out[3] = acc0_3;
    out[4] = acc1_0; out[5] = acc1_1; out[6] = acc1_2; out[7] = acc1_3;
    out[8] = acc2_0; out[9] = acc2_1; out[10] = acc2_2; out[11] = acc2_3;
    out[12] = acc3_0; out[13] = acc3_1; out[14] = acc3_2; out[15] = acc3_3;
    out[16] = acc4_0; out[17] = acc4_1; out[18] = acc4_2; out[19] = acc4_3;
    out[20] = acc5_0; out[21] = acc5_1; out[22] = acc5_2; out[23] = acc5_3;
    out[24] = acc6_0; out[25] = acc6_1; out[26] = acc6_2; out[27] = acc6_3;
    out[28] = acc7_0; out[29] = acc7_1; out[30] = acc7_2; out[31] = acc7_3;
    out[32] = acc8_0; out[33] = acc8_1; out[34] = acc8_2; out[35] = acc8_3;
    out[36] = acc9_0; out[37] = acc9_1; out[38] = acc9_2; out[39] = acc9_3;
    out[40] = acc10_0; out[41] = acc10_1; out[42] = acc10_2; out[43] = acc10_3;
    out[44] = acc11_0; out[45] = acc11_1; out[46] = acc11_2; out[47] = acc11_3;
    out[48] = acc12_0; out[49] = acc12_1; out[50] = acc12_2; out[51] = acc12_3;
    out[52] = acc13_0; out[53] = acc13_1; out[54] = acc13_2; out[55] = acc13_3;
    out[56] = acc14_0; out[57] = acc14_1; out[58] = acc14_2; out[59] = acc14_3;
    out[60] = acc15_0; out[61] = acc15_1; out[62] = acc15_2; out[63] = acc15_3;
    for (var i = 0u; i < 64u; i++) {
        store4(z, split, row0 + i / 4u, (qb + i % 4u) * 4u, out[i]);
    }
}

@compute @workgroup_size(WG, 1, 1)
fn gemm_sg_r8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
         @builtin(subgroup_invocation_id) lane: u32) {
    let gid = vec3<u32>(wid.x * 8u + lane, wid.y * (WG / 8u) + li / 8u, wid.z);
    let qb = gid.x * 4u;
    let row0 = gid.y * 8u;
    let zs = divmod24(gid.z, p.splits);
    let z = zs.x;
    let split = zs.y;
    if row0 >= p.m { return; }
    let last_q = (p.n - 1u) / 4u;
    let q0 = b_column(min(qb + 0u, last_q));
    let q1 = b_column(min(qb + 1u, last_q));
    let q2 = b_column(min(qb + 2u, last_q));
    let q3 = b_column(min(qb + 3u, last_q));
    let mg0 = i32(z * p.m + min(row0 + 0u + lane, p.m - 1u));
    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0); var acc0_2 = vec4<f32>(0.0); var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0); var acc1_2 = vec4<f32>(0.0); var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0); var acc2_2 = vec4<f32>(0.0); var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0); var acc3_2 = vec4<f32>(0.0); var acc3_3 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0); var acc4_2 = vec4<f32>(0.0); var acc4_3 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0); var acc5_2 = vec4<f32>(0.0); var acc5_3 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0); var acc6_2 = vec4<f32>(0.0); var acc6_3 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0); var acc7_2 = vec4<f32>(0.0); var acc7_3 = vec4<f32>(0.0);
    let b_base = i32(z * p.b_rows);
    let k_lo = i32(split * p.k_split);
    let k_hi = min(k_lo + i32(p.k_split), i32(p.k4));
    for (var kq = k_lo; kq < k_hi; kq++) {
        let k0 = b_base + kq * 4;
        let ag0 = a_texel(kq, mg0);
        let bb0 = b_rows(q0, kq, k0);
        let bb1 = b_rows(q1, kq, k0);
        let bb2 = b_rows(q2, kq, k0);
        let bb3 = b_rows(q3, kq, k0);
        let b0_0 = bb0.r0; let b1_0 = bb0.r1; let b2_0 = bb0.r2; let b3_0 = bb0.r3;
        let b0_1 = bb1.r0; let b1_1 = bb1.r1; let b2_1 = bb1.r2; let b3_1 = bb1.r3;
        let b0_2 = bb2.r0; let b1_2 = bb2.r1; let b2_2 = bb2.r2; let b3_2 = bb2.r3;
        let b0_3 = bb3.r0; let b1_3 = bb3.r1; let b2_3 = bb3.r2; let b3_3 = bb3.r3;
        let a0 = subgroupBroadcast(ag0, 0u);
        acc0_0 = fma(vec4(a0.w), b3_0, fma(vec4(a0.z), b2_0, fma(vec4(a0.y), b1_0, fma(vec4(a0.x), b0_0, acc0_0))));
        acc0_1 = fma(vec4(a0.w), b3_1, fma(vec4(a0.z), b2_1, fma(vec4(a0.y), b1_1, fma(vec4(a0.x), b0_1, acc0_1))));
        acc0_2 = fma(vec4(a0.w), b3_2, fma(vec4(a0.z), b2_2, fma(vec4(a0.y), b1_2, fma(vec4(a0.x), b0_2, acc0_2))));
        acc0_3 = fma(vec4(a0.w), b3_3, fma(vec4(a0.z), b2_3, fma(vec4(a0.y), b1_3, fma(vec4(a0.x), b0_3, acc0_3))));
        let a1 = subgroupBroadcast(ag0, 1u);
        acc1_0 = fma(vec4(a1.w), b3_0, fma(vec4(a1.z), b2_0, fma(vec4(a1.y), b1_0, fma(vec4(a1.x), b0_0, acc1_0))));
        acc1_1 = fma(vec4(a1.w), b3_1, fma(vec4(a1.z), b2_1, fma(vec4(a1.y), b1_1, fma(vec4(a1.x), b0_1, acc1_1))));
        acc1_2 = fma(vec4(a1.w), b3_2, fma(vec4(a1.z), b2_2, fma(vec4(a1.y), b1_2, fma(vec4(a1.x), b0_2, acc1_2))));
        acc1_3 = fma(vec4(a1.w), b3_3, fma(vec4(a1.z), b2_3, fma(vec4(a1.y), b1_3, fma(vec4(a1.x), b0_3, acc1_3))));
        let a2 = subgroupBroadcast(ag0, 2u);
        acc2_0 = fma(vec4(a2.w), b3_0, fma(vec4(a2.z), b2_0, fma(vec4(a2.y), b1_0, fma(vec4(a2.x), b0_0, acc2_0))));
        acc2_1 = fma(vec4(a2.w), b3_1, fma(vec4(a2.z), b2_1, fma(vec4(a2.y), b1_1, fma(vec4(a2.x), b0_1, acc2_1))));
        acc2_2 = fma(vec4(a2.w), b3_2, fma(vec4(a2.z), b2_2, fma(vec4(a2.y), b1_2, fma(vec4(a2.x), b0_2, acc2_2))));
        acc2_3 = fma(vec4(a2.w), b3_3, fma(vec4(a2.z), b2_3, fma(vec4(a2.y), b1_3, fma(vec4(a2.x), b0_3, acc2_3))));
        let a3 = subgroupBroadcast(ag0, 3u);
        acc3_0 = fma(vec4(a3.w), b3_0, fma(vec4(a3.z), b2_0, fma(vec4(a3.y), b1_0, fma(vec4(a3.x), b0_0, acc3_0))));
        acc3_1 = fma(vec4(a3.w), b3_1, fma(vec4(a3.z), b2_1, fma(vec4(a3.y), b1_1, fma(vec4(a3.x), b0_1, acc3_1))));
        acc3_2 = fma(vec4(a3.w), b3_2, fma(vec4(a3.z), b2_2, fma(vec4(a3.y), b1_2, fma(vec4(a3.x), b0_2, acc3_2))));
        acc3_3 = fma(vec4(a3.w), b3_3, fma(vec4(a3.z), b2_3, fma(vec4(a3.y), b1_3, fma(vec4(a3.x), b0_3, acc3_3))));
        let a4 = subgroupBroadcast(ag0, 4u);
        acc4_0 = fma(vec4(a4.w), b3_0, fma(vec4(a4.z), b2_0, fma(vec4(a4.y), b1_0, fma(vec4(a4.x), b0_0, acc4_0))));
        acc4_1 = fma(vec4(a4.w), b3_1, fma(vec4(a4.z), b2_1, fma(vec4(a4.y), b1_1, fma(vec4(a4.x), b0_1, acc4_1))));
        acc4_2 = fma(vec4(a4.w), b3_2, fma(vec4(a4.z), b2_2, fma(vec4(a4.y), b1_2, fma(vec4(a4.x), b0_2, acc4_2))));
        acc4_3 = fma(vec4(a4.w), b3_3, fma(vec4(a4.z), b2_3, fma(vec4(a4.y), b1_3, fma(vec4(a4.x), b0_3, acc4_3))));
        let a5 = subgroupBroadcast(ag0, 5u);
        acc5_0 = fma(vec4(a5.w), b3_0, fma(vec4(a5.z), b2_0, fma(vec4(a5.y), b1_0, fma(vec4(a5.x), b0_0, acc5_0))));
        acc5_1 = fma(vec4(a5.w), b3_1, fma(vec4(a5.z), b2_1, fma(vec4(a5.y), b1_1, fma(vec4(a5.x), b0_1, acc5_1))));
        acc5_2 = fma(vec4(a5.w), b3_2, fma(vec4(a5.z), b2_2, fma(vec4(a5.y), b1_2, fma(vec4(a5.x), b0_2, acc5_2))));
        acc5_3 = fma(vec4(a5.w), b3_3, fma(vec4(a5.z), b2_3, fma(vec4(a5.y), b1_3, fma(vec4(a5.x), b0_3, acc5_3))));
        let a6 = subgroupBroadcast(ag0, 6u);
        acc6_0 = fma(vec4(a6.w), b3_0, fma(vec4(a6.z), b2_0, fma(vec4(a6.y), b1_0, fma(vec4(a6.x), b0_0, acc6_0))));
        acc6_1 = fma(vec4(a6.w), b3_1, fma(vec4(a6.z), b2_1, fma(vec4(a6.y), b1_1, fma(vec4(a6.x), b0_1, acc6_1))));
        acc6_2 = fma(vec4(a6.w), b3_2, fma(vec4(a6.z), b2_2, fma(vec4(a6.y), b1_2, fma(vec4(a6.x), b0_2, acc6_2))));
        acc6_3 = fma(vec4(a6.w), b3_3, fma(vec4(a6.z), b2_3, fma(vec4(a6.y), b1_3, fma(vec4(a6.x), b0_3, acc6_3))));
        let a7 = subgroupBroadcast(ag0, 7u);
        acc7_0 = fma(vec4(a7.w), b3_0, fma(vec4(a7.z), b2_0, fma(vec4(a7.y), b1_0, fma(vec4(a7.x), b0_0, acc7_0))));
        acc7_1 = fma(vec4(a7.w), b3_1, fma(vec4(a7.z), b2_1, fma(vec4(a7.y), b1_1, fma(vec4(a7.x), b0_1, acc7_1))));
        acc7_2 = fma(vec4(a7.w), b3_2, fma(vec4(a7.z), b2_2, fma(vec4(a7.y), b1_2, fma(vec4(a7.x), b0_2, acc7_2))));
        acc7_3 = fma(vec4(a7.w), b3_3, fma(vec4(a7.z), b2_3, fma(vec4(a7.y), b1_3, fma(vec4(a7.x), b0_3, acc7_3))));
    }
    // The fused max-pool's epilogue for eight whole rows of four whole windows: each row's
    // bias and offset once, each window's position once.
    if pooled_epilogue() && row0 + 8u <= p.m && (qb + 4u) * 4u <= p.n {
        let w = pooled_windows(qb);
        store_pooled_row(z, row0, w, acc0_0, acc0_1, acc0_2, acc0_3);
        store_pooled_row(z, row0 + 1u, w, acc1_0, acc1_1, acc1_2, acc1_3);
        store_pooled_row(z, row0 + 2u, w, acc2_0, acc2_1, acc2_2, acc2_3);
        store_pooled_row(z, row0 + 3u, w, acc3_0, acc3_1, acc3_2, acc3_3);
        store_pooled_row(z, row0 + 4u, w, acc4_0, acc4_1, acc4_2, acc4_3);
        store_pooled_row(z, row0 + 5u, w, acc5_0, acc5_1, acc5_2, acc5_3);
        store_pooled_row(z, row0 + 6u, w, acc6_0, acc6_1, acc6_2, acc6_3);
        store_pooled_row(z, row0 + 7u, w, acc7_0, acc7_1, acc7_2, acc7_3);
        return;
    }
    // A texture output (grad_col) of 8 whole rows, as gemm_sg_r16's.
    if texture_epilogue() && row0 + 8u <= p.m && qb * 4u < p.n {
        let y0 = i32(z * p.m + row0);
        let q = vec4<i32>(q0, q1, q2, q3);
        store_texture_row(y0 + 0, q, acc0_0, acc0_1, acc0_2, acc0_3);
        store_texture_row(y0 + 1, q, acc1_0, acc1_1, acc1_2, acc1_3);
        store_texture_row(y0 + 2, q, acc2_0, acc2_1, acc2_2, acc2_3);
        store_texture_row(y0 + 3, q, acc3_0, acc3_1, acc3_2, acc3_3);
        store_texture_row(y0 + 4, q, acc4_0, acc4_1, acc4_2, acc4_3);
        store_texture_row(y0 + 5, q, acc5_0, acc5_1, acc5_2, acc5_3);
        store_texture_row(y0 + 6, q, acc6_0, acc6_1, acc6_2, acc6_3);
        store_texture_row(y0 + 7, q, acc7_0, acc7_1, acc7_2, acc7_3);
        return;
    }
    // The plain epilogue of whole row blocks and column groups.
    if plain_block(row0, 8u, qb) {
        let o = column_offsets(qb);
        store_plain_row(z, row0 + 0u, o, acc0_0, acc0_1, acc0_2, acc0_3);
        store_plain_row(z, row0 + 1u, o, acc1_0, acc1_1, acc1_2, acc1_3);
        store_plain_row(z, row0 + 2u, o, acc2_0, acc2_1, acc2_2, acc2_3);
        store_plain_row(z, row0 + 3u, o, acc3_0, acc3_1, acc3_2, acc3_3);
        store_plain_row(z, row0 + 4u, o, acc4_0, acc4_1, acc4_2, acc4_3);
        store_plain_row(z, row0 + 5u, o, acc5_0, acc5_1, acc5_2, acc5_3);
        store_plain_row(z, row0 + 6u, o, acc6_0, acc6_1, acc6_2, acc6_3);
        store_plain_row(z, row0 + 7u, o, acc7_0, acc7_1, acc7_2, acc7_3);
        return;
    }
    // The rest: partial blocks, one value at a time (compiled in where a launch has some).
    if !EDGES {
        return;
    }
    // One call site for the epilogue: 32 inlined copies would bloat the kernel.
    var out: array<vec4<f32>, 32>;
    out[0] = acc0_0; out[1] = acc0_1; out[2] = acc0_2; out[3] = acc0_3;
    out[4] = acc1_0; out[5] = acc1_1; out[6] = acc1_2; out[7] = acc1_3;
    out[8] = acc2_0; out[9] = acc2_1; out[10] = acc2_2; out[11] = acc2_3;
    out[12] = acc3_0; out[13] = acc3_1; out[14] = acc3_2; out[15] = acc3_3;
    out[16] = acc4_0; out[17] = acc4_1; out[18] = acc4_2; out[19] = acc4_3;
    out[20] = acc5_0; out[21] = acc5_1; out[22] = acc5_2; out[23] = acc5_3;
    out[24] = acc6_0; out[25] = acc6_1; out[26] = acc6_2; out[27] = acc6_3;
    out[28] = acc7_0; out[29] = acc7_1; out[30] = acc7_2; out[31] = acc7_3;
    for (var i = 0u; i < 32u; i++) {
        store4(z, split, row0 + i / 4u, (qb + i % 4u) * 4u, out[i]);
    }
}

// gemm_sgc_r8: the same for N <= 64 (GEMM_WG_X = 4 or 2 column blocks per workgroup: weight
// gradients, whose N is C_out), where a subgroup spanning columns would leave lanes idle past
// N. Here the eight lanes of a subgroup compute eight row blocks of the same 16 columns, so
// they share B: lane l fetches texels (2 (l % 2), l / 2) and (2 (l % 2) + 1, l / 2) of the
// step's 4 x 4 block of B and broadcasts them (2 fetches of B per step instead of 16, A's 8
// unchanged). Eight rows per lane, not 16: about as few fetches per multiply-add, and a
// subgroup covers 64 rows instead of 128, fewer of them past M (C_in * 9). Subgroup
// s = local_invocation_index / 8 takes column block s % GEMM_WG_X and row group
// s / GEMM_WG_X: the portable kernels' tiles. Only whole subgroups return early (past N, or
// with all their rows past M); other rows past M are clamped and never stored.

@compute @workgroup_size(64, 1, 1)
fn gemm_sgc_r8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
          @builtin(subgroup_invocation_id) lane: u32) {
    let s = li / 8u;
    let gid = vec3<u32>(wid.x * GEMM_WG_X + s % GEMM_WG_X,
                        (wid.y * (8u / GEMM_WG_X) + s / GEMM_WG_X) * 8u + lane, wid.z);
    let qb = gid.x * 4u;
    let row0 = gid.y * 8u;
    let zs = divmod24(gid.z, p.splits);
    let z = zs.x;
    let split = zs.y;
    if qb * 4u >= p.n || (gid.y - lane) * 8u >= p.m { return; }
    let last_q = (p.n - 1u) / 4u;
    let q0 = i32(min(qb + 0u, last_q));
    let q1 = i32(min(qb + 1u, last_q));
    let q2 = i32(min(qb + 2u, last_q));
    let q3 = i32(min(qb + 3u, last_q));
    let m0 = i32(z * p.m + min(row0 + 0u, p.m - 1u));
    let m1 = i32(z * p.m + min(row0 + 1u, p.m - 1u));
    let m2 = i32(z * p.m + min(row0 + 2u, p.m - 1u));
    let m3 = i32(z * p.m + min(row0 + 3u, p.m - 1u));
    let m4 = i32(z * p.m + min(row0 + 4u, p.m - 1u));
    let m5 = i32(z * p.m + min(row0 + 5u, p.m - 1u));
    let m6 = i32(z * p.m + min(row0 + 6u, p.m - 1u));
    let m7 = i32(z * p.m + min(row0 + 7u, p.m - 1u));
    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0); var acc0_2 = vec4<f32>(0.0); var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0); var acc1_2 = vec4<f32>(0.0); var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0); var acc2_2 = vec4<f32>(0.0); var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0); var acc3_2 = vec4<f32>(0.0); var acc3_3 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0); var acc4_2 = vec4<f32>(0.0); var acc4_3 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0); var acc5_2 = vec4<f32>(0.0); var acc5_3 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0); var acc6_2 = vec4<f32>(0.0); var acc6_3 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0); var acc7_2 = vec4<f32>(0.0); var acc7_3 = vec4<f32>(0.0);
    let b_base = i32(z * p.b_rows);
    let k_lo = i32(split * p.k_split);
    let k_hi = min(k_lo + i32(p.k_split), i32(p.k4));
    for (var kq = k_lo; kq < k_hi; kq++) {
        let k0 = b_base + kq * 4;
        let bk = k0 + i32(lane / 2u);
        let bg0 = textureLoad(tb_r, vec2<i32>(select(q0, q2, (lane & 1u) != 0u), bk));
        let bg1 = textureLoad(tb_r, vec2<i32>(select(q1, q3, (lane & 1u) != 0u), bk));
        let b0_0 = subgroupBroadcast(bg0, 0u);
        let b0_1 = subgroupBroadcast(bg1, 0u);
        let b0_2 = subgroupBroadcast(bg0, 1u);
        let b0_3 = subgroupBroadcast(bg1, 1u);
        let b1_0 = subgroupBroadcast(bg0, 2u);
        let b1_1 = subgroupBroadcast(bg1, 2u);
        let b1_2 = subgroupBroadcast(bg0, 3u);
        let b1_3 = subgroupBroadcast(bg1, 3u);
        let b2_0 = subgroupBroadcast(bg0, 4u);
        let b2_1 = subgroupBroadcast(bg1, 4u);
        let b2_2 = subgroupBroadcast(bg0, 5u);
        let b2_3 = subgroupBroadcast(bg1, 5u);
        let b3_0 = subgroupBroadcast(bg0, 6u);
        let b3_1 = subgroupBroadcast(bg1, 6u);
        let b3_2 = subgroupBroadcast(bg0, 7u);
        let b3_3 = subgroupBroadcast(bg1, 7u);
        let ar = a_rows8(kq, vec4<i32>(m0, m1, m2, m3), vec4<i32>(m4, m5, m6, m7));
        let a0 = ar.r0;
        acc0_0 = fma(vec4(a0.w), b3_0, fma(vec4(a0.z), b2_0, fma(vec4(a0.y), b1_0, fma(vec4(a0.x), b0_0, acc0_0))));
        acc0_1 = fma(vec4(a0.w), b3_1, fma(vec4(a0.z), b2_1, fma(vec4(a0.y), b1_1, fma(vec4(a0.x), b0_1, acc0_1))));
        acc0_2 = fma(vec4(a0.w), b3_2, fma(vec4(a0.z), b2_2, fma(vec4(a0.y), b1_2, fma(vec4(a0.x), b0_2, acc0_2))));
        acc0_3 = fma(vec4(a0.w), b3_3, fma(vec4(a0.z), b2_3, fma(vec4(a0.y), b1_3, fma(vec4(a0.x), b0_3, acc0_3))));
        let a1 = ar.r1;
        acc1_0 = fma(vec4(a1.w), b3_0, fma(vec4(a1.z), b2_0, fma(vec4(a1.y), b1_0, fma(vec4(a1.x), b0_0, acc1_0))));
        acc1_1 = fma(vec4(a1.w), b3_1, fma(vec4(a1.z), b2_1, fma(vec4(a1.y), b1_1, fma(vec4(a1.x), b0_1, acc1_1))));
        acc1_2 = fma(vec4(a1.w), b3_2, fma(vec4(a1.z), b2_2, fma(vec4(a1.y), b1_2, fma(vec4(a1.x), b0_2, acc1_2))));
        acc1_3 = fma(vec4(a1.w), b3_3, fma(vec4(a1.z), b2_3, fma(vec4(a1.y), b1_3, fma(vec4(a1.x), b0_3, acc1_3))));
        let a2 = ar.r2;
        acc2_0 = fma(vec4(a2.w), b3_0, fma(vec4(a2.z), b2_0, fma(vec4(a2.y), b1_0, fma(vec4(a2.x), b0_0, acc2_0))));
        acc2_1 = fma(vec4(a2.w), b3_1, fma(vec4(a2.z), b2_1, fma(vec4(a2.y), b1_1, fma(vec4(a2.x), b0_1, acc2_1))));
        acc2_2 = fma(vec4(a2.w), b3_2, fma(vec4(a2.z), b2_2, fma(vec4(a2.y), b1_2, fma(vec4(a2.x), b0_2, acc2_2))));
        acc2_3 = fma(vec4(a2.w), b3_3, fma(vec4(a2.z), b2_3, fma(vec4(a2.y), b1_3, fma(vec4(a2.x), b0_3, acc2_3))));
        let a3 = ar.r3;
        acc3_0 = fma(vec4(a3.w), b3_0, fma(vec4(a3.z), b2_0, fma(vec4(a3.y), b1_0, fma(vec4(a3.x), b0_0, acc3_0))));
        acc3_1 = fma(vec4(a3.w), b3_1, fma(vec4(a3.z), b2_1, fma(vec4(a3.y), b1_1, fma(vec4(a3.x), b0_1, acc3_1))));
        acc3_2 = fma(vec4(a3.w), b3_2, fma(vec4(a3.z), b2_2, fma(vec4(a3.y), b1_2, fma(vec4(a3.x), b0_2, acc3_2))));
        acc3_3 = fma(vec4(a3.w), b3_3, fma(vec4(a3.z), b2_3, fma(vec4(a3.y), b1_3, fma(vec4(a3.x), b0_3, acc3_3))));
        let a4 = ar.r4;
        acc4_0 = fma(vec4(a4.w), b3_0, fma(vec4(a4.z), b2_0, fma(vec4(a4.y), b1_0, fma(vec4(a4.x), b0_0, acc4_0))));
        acc4_1 = fma(vec4(a4.w), b3_1, fma(vec4(a4.z), b2_1, fma(vec4(a4.y), b1_1, fma(vec4(a4.x), b0_1, acc4_1))));
        acc4_2 = fma(vec4(a4.w), b3_2, fma(vec4(a4.z), b2_2, fma(vec4(a4.y), b1_2, fma(vec4(a4.x), b0_2, acc4_2))));
        acc4_3 = fma(vec4(a4.w), b3_3, fma(vec4(a4.z), b2_3, fma(vec4(a4.y), b1_3, fma(vec4(a4.x), b0_3, acc4_3))));
        let a5 = ar.r5;
        acc5_0 = fma(vec4(a5.w), b3_0, fma(vec4(a5.z), b2_0, fma(vec4(a5.y), b1_0, fma(vec4(a5.x), b0_0, acc5_0))));
        acc5_1 = fma(vec4(a5.w), b3_1, fma(vec4(a5.z), b2_1, fma(vec4(a5.y), b1_1, fma(vec4(a5.x), b0_1, acc5_1))));
        acc5_2 = fma(vec4(a5.w), b3_2, fma(vec4(a5.z), b2_2, fma(vec4(a5.y), b1_2, fma(vec4(a5.x), b0_2, acc5_2))));
        acc5_3 = fma(vec4(a5.w), b3_3, fma(vec4(a5.z), b2_3, fma(vec4(a5.y), b1_3, fma(vec4(a5.x), b0_3, acc5_3))));
        let a6 = ar.r6;
        acc6_0 = fma(vec4(a6.w), b3_0, fma(vec4(a6.z), b2_0, fma(vec4(a6.y), b1_0, fma(vec4(a6.x), b0_0, acc6_0))));
        acc6_1 = fma(vec4(a6.w), b3_1, fma(vec4(a6.z), b2_1, fma(vec4(a6.y), b1_1, fma(vec4(a6.x), b0_1, acc6_1))));
        acc6_2 = fma(vec4(a6.w), b3_2, fma(vec4(a6.z), b2_2, fma(vec4(a6.y), b1_2, fma(vec4(a6.x), b0_2, acc6_2))));
        acc6_3 = fma(vec4(a6.w), b3_3, fma(vec4(a6.z), b2_3, fma(vec4(a6.y), b1_3, fma(vec4(a6.x), b0_3, acc6_3))));
        let a7 = ar.r7;
        acc7_0 = fma(vec4(a7.w), b3_0, fma(vec4(a7.z), b2_0, fma(vec4(a7.y), b1_0, fma(vec4(a7.x), b0_0, acc7_0))));
        acc7_1 = fma(vec4(a7.w), b3_1, fma(vec4(a7.z), b2_1, fma(vec4(a7.y), b1_1, fma(vec4(a7.x), b0_1, acc7_1))));
        acc7_2 = fma(vec4(a7.w), b3_2, fma(vec4(a7.z), b2_2, fma(vec4(a7.y), b1_2, fma(vec4(a7.x), b0_2, acc7_2))));
        acc7_3 = fma(vec4(a7.w), b3_3, fma(vec4(a7.z), b2_3, fma(vec4(a7.y), b1_3, fma(vec4(a7.x), b0_3, acc7_3))));
    }
    // The fused max-pool's epilogue for eight whole rows of four whole windows: each row's
    // bias and offset once, each window's position once.
    if pooled_epilogue() && row0 + 8u <= p.m && (qb + 4u) * 4u <= p.n {
        let w = pooled_windows(qb);
        store_pooled_row(z, row0, w, acc0_0, acc0_1, acc0_2, acc0_3);
        store_pooled_row(z, row0 + 1u, w, acc1_0, acc1_1, acc1_2, acc1_3);
        store_pooled_row(z, row0 + 2u, w, acc2_0, acc2_1, acc2_2, acc2_3);
        store_pooled_row(z, row0 + 3u, w, acc3_0, acc3_1, acc3_2, acc3_3);
        store_pooled_row(z, row0 + 4u, w, acc4_0, acc4_1, acc4_2, acc4_3);
        store_pooled_row(z, row0 + 5u, w, acc5_0, acc5_1, acc5_2, acc5_3);
        store_pooled_row(z, row0 + 6u, w, acc6_0, acc6_1, acc6_2, acc6_3);
        store_pooled_row(z, row0 + 7u, w, acc7_0, acc7_1, acc7_2, acc7_3);
        return;
    }
    // The plain epilogue of whole row blocks and column groups.
    if plain_block(row0, 8u, qb) {
        let o = column_offsets(qb);
        store_plain_row(z, row0 + 0u, o, acc0_0, acc0_1, acc0_2, acc0_3);
        store_plain_row(z, row0 + 1u, o, acc1_0, acc1_1, acc1_2, acc1_3);
        store_plain_row(z, row0 + 2u, o, acc2_0, acc2_1, acc2_2, acc2_3);
        store_plain_row(z, row0 + 3u, o, acc3_0, acc3_1, acc3_2, acc3_3);
        store_plain_row(z, row0 + 4u, o, acc4_0, acc4_1, acc4_2, acc4_3);
        store_plain_row(z, row0 + 5u, o, acc5_0, acc5_1, acc5_2, acc5_3);
        store_plain_row(z, row0 + 6u, o, acc6_0, acc6_1, acc6_2, acc6_3);
        store_plain_row(z, row0 + 7u, o, acc7_0, acc7_1, acc7_2, acc7_3);
        return;
    }
    // The rest, one value at a time: partial blocks (compiled in where a launch has some) and
    // texture outputs.
    if !EDGES && !texture_epilogue() {
        return;
    }
    // One call site for the epilogue: 32 inlined copies would bloat the kernel.
    var out: array<vec4<f32>, 32>;
    out[0] = acc0_0; out[1] = acc0_1; out[2] = acc0_2; out[3] = acc0_3;
    out[4] = acc1_0; out[5] = acc1_1; out[6] = acc1_2; out[7] = acc1_3;
    out[8] = acc2_0; out[9] = acc2_1; out[10] = acc2_2; out[11] = acc2_3;
    out[12] = acc3_0; out[13] = acc3_1; out[14] = acc3_2; out[15] = acc3_3;
    out[16] = acc4_0; out[17] = acc4_1; out[18] = acc4_2; out[19] = acc4_3;
    out[20] = acc5_0; out[21] = acc5_1; out[22] = acc5_2; out[23] = acc5_3;
    out[24] = acc6_0; out[25] = acc6_1; out[26] = acc6_2; out[27] = acc6_3;
    out[28] = acc7_0; out[29] = acc7_1; out[30] = acc7_2; out[31] = acc7_3;
    for (var i = 0u; i < 32u; i++) {
        store4(z, split, row0 + i / 4u, (qb + i % 4u) * 4u, out[i]);
    }
}
