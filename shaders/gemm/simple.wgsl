// gemm/simple.wgsl: batched matrix multiply C = op(A) op(B) (+ bias) (then relu) (+ C), the GEMM
// behind linear, matmul and the convolutions' implicit-im2col path.
//
// op(A) is (M, K): A[m, k] at a + m*lda + k, or with TRANS_A at a + k*lda + m. op(B) is (K, N):
// B[k, n] at b + k*ldb + n, or with TRANS_B at b + n*ldb + k. C[m, n] at c + m*ldc + n.
// Batches (grid z) step A, B, C by their batch strides (0 broadcasts). The K sum may also run
// over `k_batches` blocks whose A and B step by their own strides: the weight gradient of a
// convolution sums over the batch that way.
//
// Two tile shapes, both without workgroup memory or barriers (costly on CPU adapters such as
// lavapipe, where invocations map to SIMD lanes and every lane-varying load is a gather):
// gemm_forward computes an 8x8 block of C per invocation (64x64 per workgroup of 8x8), and
// gemm_forward_large a 16x16 block (128x128 per workgroup) for large matrices, where the higher
// ratio of multiply-adds to loads doubles lavapipe's throughput. Loads clamp their indices to
// the matrix instead of branching; only in-bounds elements are written. The bodies are written
// out in full (no local arrays, which CPU back ends keep in memory).

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
    c_batch_stride: u32,
    k_batches: u32,
    a_kb_stride: u32,
    b_kb_stride: u32,
    // 0: none, 1: bias[n] per column (linear), 2: bias[m] per row (convolution channels).
    bias_mode: u32,
    relu: u32,
    accumulate: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;


// Loads A[row, kk] for a row of this invocation's block.
fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if TRANS_A {
        return a[base + kk * p.lda + row];
    }
    return a[base + row * p.lda + kk];
}

// Loads B[kk, col] for four columns.
fn load_b4(base: u32, kk: u32, c0: u32, c1: u32, c2: u32, c3: u32) -> vec4<f32> {
    if TRANS_B {
        return vec4<f32>(bm[base + c0 * p.ldb + kk], bm[base + c1 * p.ldb + kk],
                         bm[base + c2 * p.ldb + kk], bm[base + c3 * p.ldb + kk]);
    }
    let row = base + kk * p.ldb;
    return vec4<f32>(bm[row + c0], bm[row + c1], bm[row + c2], bm[row + c3]);
}

// Bias, relu and accumulation for C[r, cj] = v; only in-bounds elements are written.
fn store(c_base: u32, r: u32, cj: u32, value: f32) {
    if r >= p.m || cj >= p.n { return; }
    var v = value;
    if p.bias_mode == 1u {
        v += bias[cj];
    } else if p.bias_mode == 2u {
        v += bias[r];
    }
    if p.relu != 0u {
        v = max(v, 0.0);
    }
    let at = c_base + r * p.ldc + cj;
    if p.accumulate != 0u {
        v += c[at];
    }
    c[at] = v;
}


@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> bm: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn store_vec(c_base: u32, r: u32, col0: u32, v: vec4<f32>) {
    store(c_base, r, col0, v.x);
    store(c_base, r, col0 + 1u, v.y);
    store(c_base, r, col0 + 2u, v.z);
    store(c_base, r, col0 + 3u, v.w);
}

// C = op(A) op(B) with a 8x8 block per invocation.
@compute @workgroup_size(8, 8, 1)
fn gemm_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col0 = gid.x * 8u;
    let row0 = gid.y * 8u;
    let batch = gid.z;
    if col0 >= p.n || row0 >= p.m { return; }
    let r0 = min(row0 + 0u, p.m - 1u);
    let r1 = min(row0 + 1u, p.m - 1u);
    let r2 = min(row0 + 2u, p.m - 1u);
    let r3 = min(row0 + 3u, p.m - 1u);
    let r4 = min(row0 + 4u, p.m - 1u);
    let r5 = min(row0 + 5u, p.m - 1u);
    let r6 = min(row0 + 6u, p.m - 1u);
    let r7 = min(row0 + 7u, p.m - 1u);
    let c0 = min(col0 + 0u, p.n - 1u);
    let c1 = min(col0 + 1u, p.n - 1u);
    let c2 = min(col0 + 2u, p.n - 1u);
    let c3 = min(col0 + 3u, p.n - 1u);
    let c4 = min(col0 + 4u, p.n - 1u);
    let c5 = min(col0 + 5u, p.n - 1u);
    let c6 = min(col0 + 6u, p.n - 1u);
    let c7 = min(col0 + 7u, p.n - 1u);
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    for (var kb = 0u; kb < p.k_batches; kb++) {
        let a_base = p.a_offset + batch * p.a_batch_stride + kb * p.a_kb_stride;
        let b_base = p.b_offset + batch * p.b_batch_stride + kb * p.b_kb_stride;
        for (var kk = 0u; kk < p.k; kk++) {
            let bv0 = load_b4(b_base, kk, c0, c1, c2, c3);
            let bv1 = load_b4(b_base, kk, c4, c5, c6, c7);
            let a0 = load_a(a_base, r0, kk);
            acc0_0 += a0 * bv0;
            acc0_1 += a0 * bv1;
            let a1 = load_a(a_base, r1, kk);
            acc1_0 += a1 * bv0;
            acc1_1 += a1 * bv1;
            let a2 = load_a(a_base, r2, kk);
            acc2_0 += a2 * bv0;
            acc2_1 += a2 * bv1;
            let a3 = load_a(a_base, r3, kk);
            acc3_0 += a3 * bv0;
            acc3_1 += a3 * bv1;
            let a4 = load_a(a_base, r4, kk);
            acc4_0 += a4 * bv0;
            acc4_1 += a4 * bv1;
            let a5 = load_a(a_base, r5, kk);
            acc5_0 += a5 * bv0;
            acc5_1 += a5 * bv1;
            let a6 = load_a(a_base, r6, kk);
            acc6_0 += a6 * bv0;
            acc6_1 += a6 * bv1;
            let a7 = load_a(a_base, r7, kk);
            acc7_0 += a7 * bv0;
            acc7_1 += a7 * bv1;
        }
    }
    let c_base = p.c_offset + batch * p.c_batch_stride;
    store_vec(c_base, row0 + 0u, col0 + 0u, acc0_0);
    store_vec(c_base, row0 + 0u, col0 + 4u, acc0_1);
    store_vec(c_base, row0 + 1u, col0 + 0u, acc1_0);
    store_vec(c_base, row0 + 1u, col0 + 4u, acc1_1);
    store_vec(c_base, row0 + 2u, col0 + 0u, acc2_0);
    store_vec(c_base, row0 + 2u, col0 + 4u, acc2_1);
    store_vec(c_base, row0 + 3u, col0 + 0u, acc3_0);
    store_vec(c_base, row0 + 3u, col0 + 4u, acc3_1);
    store_vec(c_base, row0 + 4u, col0 + 0u, acc4_0);
    store_vec(c_base, row0 + 4u, col0 + 4u, acc4_1);
    store_vec(c_base, row0 + 5u, col0 + 0u, acc5_0);
    store_vec(c_base, row0 + 5u, col0 + 4u, acc5_1);
    store_vec(c_base, row0 + 6u, col0 + 0u, acc6_0);
    store_vec(c_base, row0 + 6u, col0 + 4u, acc6_1);
    store_vec(c_base, row0 + 7u, col0 + 0u, acc7_0);
    store_vec(c_base, row0 + 7u, col0 + 4u, acc7_1);
}

// C = op(A) op(B) with a 16x16 block per invocation.
@compute @workgroup_size(8, 8, 1)
fn gemm_forward_large(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col0 = gid.x * 16u;
    let row0 = gid.y * 16u;
    let batch = gid.z;
    if col0 >= p.n || row0 >= p.m { return; }
    let r0 = min(row0 + 0u, p.m - 1u);
    let r1 = min(row0 + 1u, p.m - 1u);
    let r2 = min(row0 + 2u, p.m - 1u);
    let r3 = min(row0 + 3u, p.m - 1u);
    let r4 = min(row0 + 4u, p.m - 1u);
    let r5 = min(row0 + 5u, p.m - 1u);
    let r6 = min(row0 + 6u, p.m - 1u);
    let r7 = min(row0 + 7u, p.m - 1u);
    let r8 = min(row0 + 8u, p.m - 1u);
    let r9 = min(row0 + 9u, p.m - 1u);
    let r10 = min(row0 + 10u, p.m - 1u);
    let r11 = min(row0 + 11u, p.m - 1u);
    let r12 = min(row0 + 12u, p.m - 1u);
    let r13 = min(row0 + 13u, p.m - 1u);
    let r14 = min(row0 + 14u, p.m - 1u);
    let r15 = min(row0 + 15u, p.m - 1u);
    let c0 = min(col0 + 0u, p.n - 1u);
    let c1 = min(col0 + 1u, p.n - 1u);
    let c2 = min(col0 + 2u, p.n - 1u);
    let c3 = min(col0 + 3u, p.n - 1u);
    let c4 = min(col0 + 4u, p.n - 1u);
    let c5 = min(col0 + 5u, p.n - 1u);
    let c6 = min(col0 + 6u, p.n - 1u);
    let c7 = min(col0 + 7u, p.n - 1u);
    let c8 = min(col0 + 8u, p.n - 1u);
    let c9 = min(col0 + 9u, p.n - 1u);
    let c10 = min(col0 + 10u, p.n - 1u);
    let c11 = min(col0 + 11u, p.n - 1u);
    let c12 = min(col0 + 12u, p.n - 1u);
    let c13 = min(col0 + 13u, p.n - 1u);
    let c14 = min(col0 + 14u, p.n - 1u);
    let c15 = min(col0 + 15u, p.n - 1u);
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc0_2 = vec4<f32>(0.0);
    var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc1_2 = vec4<f32>(0.0);
    var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc2_2 = vec4<f32>(0.0);
    var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc3_2 = vec4<f32>(0.0);
    var acc3_3 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc4_2 = vec4<f32>(0.0);
    var acc4_3 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc5_2 = vec4<f32>(0.0);
    var acc5_3 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc6_2 = vec4<f32>(0.0);
    var acc6_3 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    var acc7_2 = vec4<f32>(0.0);
    var acc7_3 = vec4<f32>(0.0);
    var acc8_0 = vec4<f32>(0.0);
    var acc8_1 = vec4<f32>(0.0);
    var acc8_2 = vec4<f32>(0.0);
    var acc8_3 = vec4<f32>(0.0);
    var acc9_0 = vec4<f32>(0.0);
    var acc9_1 = vec4<f32>(0.0);
    var acc9_2 = vec4<f32>(0.0);
    var acc9_3 = vec4<f32>(0.0);
    var acc10_0 = vec4<f32>(0.0);
    var acc10_1 = vec4<f32>(0.0);
    var acc10_2 = vec4<f32>(0.0);
    var acc10_3 = vec4<f32>(0.0);
    var acc11_0 = vec4<f32>(0.0);
    var acc11_1 = vec4<f32>(0.0);
    var acc11_2 = vec4<f32>(0.0);
    var acc11_3 = vec4<f32>(0.0);
    var acc12_0 = vec4<f32>(0.0);
    var acc12_1 = vec4<f32>(0.0);
    var acc12_2 = vec4<f32>(0.0);
    var acc12_3 = vec4<f32>(0.0);
    var acc13_0 = vec4<f32>(0.0);
    var acc13_1 = vec4<f32>(0.0);
    var acc13_2 = vec4<f32>(0.0);
    var acc13_3 = vec4<f32>(0.0);
    var acc14_0 = vec4<f32>(0.0);
    var acc14_1 = vec4<f32>(0.0);
    var acc14_2 = vec4<f32>(0.0);
    var acc14_3 = vec4<f32>(0.0);
    var acc15_0 = vec4<f32>(0.0);
    var acc15_1 = vec4<f32>(0.0);
    var acc15_2 = vec4<f32>(0.0);
    var acc15_3 = vec4<f32>(0.0);
    for (var kb = 0u; kb < p.k_batches; kb++) {
        let a_base = p.a_offset + batch * p.a_batch_stride + kb * p.a_kb_stride;
        let b_base = p.b_offset + batch * p.b_batch_stride + kb * p.b_kb_stride;
        for (var kk = 0u; kk < p.k; kk++) {
            let bv0 = load_b4(b_base, kk, c0, c1, c2, c3);
            let bv1 = load_b4(b_base, kk, c4, c5, c6, c7);
            let bv2 = load_b4(b_base, kk, c8, c9, c10, c11);
            let bv3 = load_b4(b_base, kk, c12, c13, c14, c15);
            let a0 = load_a(a_base, r0, kk);
            acc0_0 += a0 * bv0;
            acc0_1 += a0 * bv1;
            acc0_2 += a0 * bv2;
            acc0_3 += a0 * bv3;
            let a1 = load_a(a_base, r1, kk);
            acc1_0 += a1 * bv0;
            acc1_1 += a1 * bv1;
            acc1_2 += a1 * bv2;
            acc1_3 += a1 * bv3;
            let a2 = load_a(a_base, r2, kk);
            acc2_0 += a2 * bv0;
            acc2_1 += a2 * bv1;
            acc2_2 += a2 * bv2;
            acc2_3 += a2 * bv3;
            let a3 = load_a(a_base, r3, kk);
            acc3_0 += a3 * bv0;
            acc3_1 += a3 * bv1;
            acc3_2 += a3 * bv2;
            acc3_3 += a3 * bv3;
            let a4 = load_a(a_base, r4, kk);
            acc4_0 += a4 * bv0;
            acc4_1 += a4 * bv1;
            acc4_2 += a4 * bv2;
            acc4_3 += a4 * bv3;
            let a5 = load_a(a_base, r5, kk);
            acc5_0 += a5 * bv0;
            acc5_1 += a5 * bv1;
            acc5_2 += a5 * bv2;
            acc5_3 += a5 * bv3;
            let a6 = load_a(a_base, r6, kk);
            acc6_0 += a6 * bv0;
            acc6_1 += a6 * bv1;
            acc6_2 += a6 * bv2;
            acc6_3 += a6 * bv3;
            let a7 = load_a(a_base, r7, kk);
            acc7_0 += a7 * bv0;
            acc7_1 += a7 * bv1;
            acc7_2 += a7 * bv2;
            acc7_3 += a7 * bv3;
            let a8 = load_a(a_base, r8, kk);
            acc8_0 += a8 * bv0;
            acc8_1 += a8 * bv1;
            acc8_2 += a8 * bv2;
            acc8_3 += a8 * bv3;
            let a9 = load_a(a_base, r9, kk);
            acc9_0 += a9 * bv0;
            acc9_1 += a9 * bv1;
            acc9_2 += a9 * bv2;
            acc9_3 += a9 * bv3;
            let a10 = load_a(a_base, r10, kk);
            acc10_0 += a10 * bv0;
            acc10_1 += a10 * bv1;
            acc10_2 += a10 * bv2;
            acc10_3 += a10 * bv3;
            let a11 = load_a(a_base, r11, kk);
            acc11_0 += a11 * bv0;
            acc11_1 += a11 * bv1;
            acc11_2 += a11 * bv2;
            acc11_3 += a11 * bv3;
            let a12 = load_a(a_base, r12, kk);
            acc12_0 += a12 * bv0;
            acc12_1 += a12 * bv1;
            acc12_2 += a12 * bv2;
            acc12_3 += a12 * bv3;
            let a13 = load_a(a_base, r13, kk);
            acc13_0 += a13 * bv0;
            acc13_1 += a13 * bv1;
            acc13_2 += a13 * bv2;
            acc13_3 += a13 * bv3;
            let a14 = load_a(a_base, r14, kk);
            acc14_0 += a14 * bv0;
            acc14_1 += a14 * bv1;
            acc14_2 += a14 * bv2;
            acc14_3 += a14 * bv3;
            let a15 = load_a(a_base, r15, kk);
            acc15_0 += a15 * bv0;
            acc15_1 += a15 * bv1;
            acc15_2 += a15 * bv2;
            acc15_3 += a15 * bv3;
        }
    }
    let c_base = p.c_offset + batch * p.c_batch_stride;
    store_vec(c_base, row0 + 0u, col0 + 0u, acc0_0);
    store_vec(c_base, row0 + 0u, col0 + 4u, acc0_1);
    store_vec(c_base, row0 + 0u, col0 + 8u, acc0_2);
    store_vec(c_base, row0 + 0u, col0 + 12u, acc0_3);
    store_vec(c_base, row0 + 1u, col0 + 0u, acc1_0);
    store_vec(c_base, row0 + 1u, col0 + 4u, acc1_1);
    store_vec(c_base, row0 + 1u, col0 + 8u, acc1_2);
    store_vec(c_base, row0 + 1u, col0 + 12u, acc1_3);
    store_vec(c_base, row0 + 2u, col0 + 0u, acc2_0);
    store_vec(c_base, row0 + 2u, col0 + 4u, acc2_1);
    store_vec(c_base, row0 + 2u, col0 + 8u, acc2_2);
    store_vec(c_base, row0 + 2u, col0 + 12u, acc2_3);
    store_vec(c_base, row0 + 3u, col0 + 0u, acc3_0);
    store_vec(c_base, row0 + 3u, col0 + 4u, acc3_1);
    store_vec(c_base, row0 + 3u, col0 + 8u, acc3_2);
    store_vec(c_base, row0 + 3u, col0 + 12u, acc3_3);
    store_vec(c_base, row0 + 4u, col0 + 0u, acc4_0);
    store_vec(c_base, row0 + 4u, col0 + 4u, acc4_1);
    store_vec(c_base, row0 + 4u, col0 + 8u, acc4_2);
    store_vec(c_base, row0 + 4u, col0 + 12u, acc4_3);
    store_vec(c_base, row0 + 5u, col0 + 0u, acc5_0);
    store_vec(c_base, row0 + 5u, col0 + 4u, acc5_1);
    store_vec(c_base, row0 + 5u, col0 + 8u, acc5_2);
    store_vec(c_base, row0 + 5u, col0 + 12u, acc5_3);
    store_vec(c_base, row0 + 6u, col0 + 0u, acc6_0);
    store_vec(c_base, row0 + 6u, col0 + 4u, acc6_1);
    store_vec(c_base, row0 + 6u, col0 + 8u, acc6_2);
    store_vec(c_base, row0 + 6u, col0 + 12u, acc6_3);
    store_vec(c_base, row0 + 7u, col0 + 0u, acc7_0);
    store_vec(c_base, row0 + 7u, col0 + 4u, acc7_1);
    store_vec(c_base, row0 + 7u, col0 + 8u, acc7_2);
    store_vec(c_base, row0 + 7u, col0 + 12u, acc7_3);
    store_vec(c_base, row0 + 8u, col0 + 0u, acc8_0);
    store_vec(c_base, row0 + 8u, col0 + 4u, acc8_1);
    store_vec(c_base, row0 + 8u, col0 + 8u, acc8_2);
    store_vec(c_base, row0 + 8u, col0 + 12u, acc8_3);
    store_vec(c_base, row0 + 9u, col0 + 0u, acc9_0);
    store_vec(c_base, row0 + 9u, col0 + 4u, acc9_1);
    store_vec(c_base, row0 + 9u, col0 + 8u, acc9_2);
    store_vec(c_base, row0 + 9u, col0 + 12u, acc9_3);
    store_vec(c_base, row0 + 10u, col0 + 0u, acc10_0);
    store_vec(c_base, row0 + 10u, col0 + 4u, acc10_1);
    store_vec(c_base, row0 + 10u, col0 + 8u, acc10_2);
    store_vec(c_base, row0 + 10u, col0 + 12u, acc10_3);
    store_vec(c_base, row0 + 11u, col0 + 0u, acc11_0);
    store_vec(c_base, row0 + 11u, col0 + 4u, acc11_1);
    store_vec(c_base, row0 + 11u, col0 + 8u, acc11_2);
    store_vec(c_base, row0 + 11u, col0 + 12u, acc11_3);
    store_vec(c_base, row0 + 12u, col0 + 0u, acc12_0);
    store_vec(c_base, row0 + 12u, col0 + 4u, acc12_1);
    store_vec(c_base, row0 + 12u, col0 + 8u, acc12_2);
    store_vec(c_base, row0 + 12u, col0 + 12u, acc12_3);
    store_vec(c_base, row0 + 13u, col0 + 0u, acc13_0);
    store_vec(c_base, row0 + 13u, col0 + 4u, acc13_1);
    store_vec(c_base, row0 + 13u, col0 + 8u, acc13_2);
    store_vec(c_base, row0 + 13u, col0 + 12u, acc13_3);
    store_vec(c_base, row0 + 14u, col0 + 0u, acc14_0);
    store_vec(c_base, row0 + 14u, col0 + 4u, acc14_1);
    store_vec(c_base, row0 + 14u, col0 + 8u, acc14_2);
    store_vec(c_base, row0 + 14u, col0 + 12u, acc14_3);
    store_vec(c_base, row0 + 15u, col0 + 0u, acc15_0);
    store_vec(c_base, row0 + 15u, col0 + 4u, acc15_1);
    store_vec(c_base, row0 + 15u, col0 + 8u, acc15_2);
    store_vec(c_base, row0 + 15u, col0 + 12u, acc15_3);
}
