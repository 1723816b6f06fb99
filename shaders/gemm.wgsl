// gemm.wgsl: batched matrix multiply C = op(A) op(B) (+ bias per column), the GEMM behind
// `linear` (x W^T + b) and `matmul`.
//
// op(A) is (M, K): A is stored (M, K) or, with trans_a, (K, M); op(B) is (K, N): B is stored
// (K, N) or, with trans_b, (N, K). A batch stride of 0 broadcasts one matrix over the batch.
// Each invocation computes a 4x4 block of C held in vec4 registers; a workgroup of
// WG_X x WG_Y invocations covers a (4*WG_Y) x (4*WG_X) tile. No workgroup memory, no barriers.

struct GemmParams {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
    c_batch_stride: u32,
    trans_a: u32,
    trans_b: u32,
    has_bias: u32,
}

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> bm: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if row >= p.m {
        return 0.0;
    }
    if p.trans_a != 0u {
        return a[base + kk * p.m + row];
    }
    return a[base + row * p.k + kk];
}

fn load_b4(base: u32, kk: u32, col: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if cj < p.n {
            if p.trans_b != 0u {
                v[j] = bm[base + cj * p.k + kk];
            } else {
                v[j] = bm[base + kk * p.n + cj];
            }
        }
    }
    return v;
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn gemm_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
) {
    let col0 = gid.x * 4u;
    let row0 = gid.y * 4u;
    let batch = gid.z;
    if col0 >= p.n || row0 >= p.m || batch >= p.batch {
        return;
    }
    let a_base = batch * p.a_batch_stride;
    let b_base = batch * p.b_batch_stride;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = load_b4(b_base, kk, col0);
        acc0 += load_a(a_base, row0, kk) * bv;
        acc1 += load_a(a_base, row0 + 1u, kk) * bv;
        acc2 += load_a(a_base, row0 + 2u, kk) * bv;
        acc3 += load_a(a_base, row0 + 3u, kk) * bv;
    }
    var bias4 = vec4<f32>(0.0);
    if p.has_bias != 0u {
        for (var j = 0u; j < 4u; j++) {
            if col0 + j < p.n {
                bias4[j] = bias[col0 + j];
            }
        }
    }
    var rows = array<vec4<f32>, 4>(acc0 + bias4, acc1 + bias4, acc2 + bias4, acc3 + bias4);
    let c_base = batch * p.c_batch_stride;
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + i;
        if r >= p.m {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let cj = col0 + j;
            if cj < p.n {
                c[c_base + r * p.n + cj] = rows[i][j];
            }
        }
    }
}
