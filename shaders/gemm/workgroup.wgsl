// gemm/workgroup.wgsl: the texture GEMM's workgroup-memory layout for GPUs (after
// shared/gemm_epilogue.wgsl and shared/im2col.wgsl), with implicit im2col and dgrad operands.

@group(0) @binding(1) var ta: texture_2d<f32>;
@group(0) @binding(2) var tb: texture_2d<f32>;

// ---- Workgroup-memory layout, for GPUs ----
//
// The register-blocked kernels above suit CPU adapters, where lanes are SIMD lanes and a barrier
// is a costly fiber switch. A GPU wants the opposite: a 16 x 16 workgroup stages each K step of
// both operands in workgroup memory once, with every invocation fetching one or two texels, and
// then multiplies from there. K advances 16 values (4 texels) per stage; the next stage's texels
// are fetched into registers while the current one is multiplied.
//
// wa[k * QUADS + i] holds the stage's A[4i .. 4i + 4, k] (the tile's rows in fours, so that one
// vec4 read gives an invocation four of its rows); wb[k * QUADS + i] holds B[k, 4i .. 4i + 4].
// QUADS is 32 for the 128 x 128 tile and 16 for the 64 x 64 one.
var<workgroup> wa: array<vec4<f32>, 512>;
var<workgroup> wb: array<vec4<f32>, 512>;

// Implicit GEMM: 0, both operands are packed textures; 1, B is the im2col matrix of the
// convolution `p.conv` and `tb` is x's flat texture copy (a convolution's forward pass);
// 2, the same for A and `ta` (its weight gradient, col @ grad_y^T); 3, B is the data
// gradient's gather of grad_y (`dgrad_texel`) and `tb` grad_y's flat copy. The gathers that
// conv/im2col.wgsl's im2col_texture and col2im_texture would do through a texture happen here, as
// each stage is loaded, so that matrix (9 values per input value for a 3x3 kernel) is never
// written or read back.
override IMPLICIT: u32 = 0u;

// Texel q of A's row `row` (clamped to the last row), zero from the split's end `k_hi` on.
fn wg_a_texel(z: u32, q: i32, row: u32, k_hi: i32) -> vec4<f32> {
    let r = min(row, p.m - 1u);
    let qc = min(q, k_hi - 1);
    var t: vec4<f32>;
    if IMPLICIT == 2u {
        t = im2col_texel(p.conv, ta, u32(qc), r);
    } else {
        t = textureLoad(ta, vec2<i32>(qc, i32(z * p.m + r)), 0);
    }
    return select(vec4<f32>(0.0), t, q < k_hi);
}

// Columns 4q .. 4q + 4 (q clamped to the last texel) of B's row k, zero from value 4 k_hi on.
fn wg_b_texel(z: u32, k: i32, q: u32, k_hi: i32) -> vec4<f32> {
    let qc = min(q, (p.n - 1u) / 4u);
    let kc = min(k, 4 * k_hi - 1);
    var t: vec4<f32>;
    if IMPLICIT == 1u {
        t = im2col_texel(p.conv, tb, qc, u32(kc));
    } else if IMPLICIT == 3u {
        t = dgrad_texel(p.conv, tb, qc, u32(kc));
    } else {
        t = textureLoad(tb, vec2<i32>(i32(qc), i32(z * p.b_rows) + kc), 0);
    }
    return select(vec4<f32>(0.0), t, k < 4 * k_hi);
}

// A workgroup's share of the work: its batch and split (grid z), the split's texels of K and
// the stages (4 texels each) they take.
struct WgWork {
    z: u32,
    split: u32,
    k_lo: i32,
    k_hi: i32,
    stages: i32,
}

fn wg_work(gz: u32) -> WgWork {
    let zs = divmod24(gz, p.splits);
    let k_lo = i32(zs.y * p.k_split);
    let k_hi = min(k_lo + i32(p.k_split), i32(p.k4));
    return WgWork(zs.x, zs.y, k_lo, k_hi, (k_hi - k_lo + 3) / 4);
}

// Stores an A texel (row quad `mq`, lane `ml` of it; texel `c` of the stage) transposed.
fn wg_put_a(quads: u32, c: u32, mq: u32, ml: u32, v: vec4<f32>) {
    wa[(4u * c + 0u) * quads + mq][ml] = v.x;
    wa[(4u * c + 1u) * quads + mq][ml] = v.y;
    wa[(4u * c + 2u) * quads + mq][ml] = v.z;
    wa[(4u * c + 3u) * quads + mq][ml] = v.w;
}

// The accumulators, per invocation. A stage's 16 K steps are written out as calls rather than a
// loop: naga bounds every loop with a counter and a break, which keeps a GPU's compiler from
// unrolling it and scheduling the next steps' workgroup-memory reads early.
var<private> acc128: array<vec4<f32>, 16>;
var<private> acc64: array<vec4<f32>, 4>;

// One K step of gemm_wg128: rows 4ty .., 64 + 4ty .. times columns 4tx .., 64 + 4tx ...
fn wg128_step(k: u32, tx: u32, ty: u32) {
    let a0 = wa[k * 32u + ty];
    let a1 = wa[k * 32u + 16u + ty];
    let b0 = wb[k * 32u + tx];
    let b1 = wb[k * 32u + 16u + tx];
    acc128[0] += a0.x * b0;
    acc128[1] += a0.x * b1;
    acc128[2] += a0.y * b0;
    acc128[3] += a0.y * b1;
    acc128[4] += a0.z * b0;
    acc128[5] += a0.z * b1;
    acc128[6] += a0.w * b0;
    acc128[7] += a0.w * b1;
    acc128[8] += a1.x * b0;
    acc128[9] += a1.x * b1;
    acc128[10] += a1.y * b0;
    acc128[11] += a1.y * b1;
    acc128[12] += a1.z * b0;
    acc128[13] += a1.z * b1;
    acc128[14] += a1.w * b0;
    acc128[15] += a1.w * b1;
}

// One K step of gemm_wg64: rows 4ty .. times columns 4tx ...
fn wg64_step(k: u32, tx: u32, ty: u32) {
    let a = wa[k * 16u + ty];
    let b = wb[k * 16u + tx];
    acc64[0] += a.x * b;
    acc64[1] += a.y * b;
    acc64[2] += a.z * b;
    acc64[3] += a.w * b;
}

// 128 x 128 of C per workgroup, 8 x 8 per invocation: rows 4ty .. 4ty + 4 and 64 + 4ty ..,
// columns 4tx .. 4tx + 4 and 64 + 4tx .. (so that the workgroup's reads of a stage touch
// consecutive vec4s).
@compute @workgroup_size(16, 16, 1)
fn gemm_wg128(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let w = wg_work(wid.z);
    let z = w.z; let split = w.split; let k_lo = w.k_lo; let k_hi = w.k_hi;
    let row0 = wid.y * 128u;
    let col0 = wid.x * 128u;
    // This invocation's share of each stage: A texel (t / 64) of rows t % 64 and 64 + t % 64,
    // B rows t / 32 and 8 + t / 32 at texel t % 32.
    let am = t % 64u;
    let ac = t / 64u;
    let bq = t % 32u;
    let bk = i32(t / 32u);
    var na0 = wg_a_texel(z, k_lo + i32(ac), row0 + am, k_hi);
    var na1 = wg_a_texel(z, k_lo + i32(ac), row0 + 64u + am, k_hi);
    var nb0 = wg_b_texel(z, 4 * k_lo + bk, col0 / 4u + bq, k_hi);
    var nb1 = wg_b_texel(z, 4 * k_lo + 8 + bk, col0 / 4u + bq, k_hi);
    acc128 = array<vec4<f32>, 16>();
    for (var s = 0; s < w.stages; s++) {
        workgroupBarrier();
        wg_put_a(32u, ac, am / 4u, am % 4u, na0);
        wg_put_a(32u, ac, 16u + am / 4u, am % 4u, na1);
        wb[u32(bk) * 32u + bq] = nb0;
        wb[u32(8 + bk) * 32u + bq] = nb1;
        workgroupBarrier();
        if s + 1 < w.stages {
            let kq = k_lo + 4 * (s + 1);
            na0 = wg_a_texel(z, kq + i32(ac), row0 + am, k_hi);
            na1 = wg_a_texel(z, kq + i32(ac), row0 + 64u + am, k_hi);
            nb0 = wg_b_texel(z, 4 * kq + bk, col0 / 4u + bq, k_hi);
            nb1 = wg_b_texel(z, 4 * kq + 8 + bk, col0 / 4u + bq, k_hi);
        }
        wg128_step(0u, tx, ty); wg128_step(1u, tx, ty); wg128_step(2u, tx, ty); wg128_step(3u, tx, ty);
        wg128_step(4u, tx, ty); wg128_step(5u, tx, ty); wg128_step(6u, tx, ty); wg128_step(7u, tx, ty);
        wg128_step(8u, tx, ty); wg128_step(9u, tx, ty); wg128_step(10u, tx, ty); wg128_step(11u, tx, ty);
        wg128_step(12u, tx, ty); wg128_step(13u, tx, ty); wg128_step(14u, tx, ty); wg128_step(15u, tx, ty);
    }
    // One call site for the epilogue; its loop indexes a copy, so that the accumulators are
    // only ever indexed by constants (and can stay in registers).
    var out = acc128;
    for (var i = 0u; i < 16u; i++) {
        let r = row0 + (i / 8u) * 64u + 4u * ty + (i / 2u) % 4u;
        let j = col0 + (i % 2u) * 64u + 4u * tx;
        store4(z, split, r, j, out[i]);
    }
}

// 64 x 64 of C per workgroup, 4 x 4 per invocation (rows 4ty .., columns 4tx ..): more
// workgroups for matrices too small to fill a GPU with 128 x 128 tiles.
@compute @workgroup_size(16, 16, 1)
fn gemm_wg64(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let w = wg_work(wid.z);
    let z = w.z; let split = w.split; let k_lo = w.k_lo; let k_hi = w.k_hi;
    let row0 = wid.y * 64u;
    let col0 = wid.x * 64u;
    // A texel t / 64 of row t % 64; B row t / 16 at texel t % 16.
    let am = t % 64u;
    let ac = t / 64u;
    let bq = t % 16u;
    let bk = i32(t / 16u);
    var na = wg_a_texel(z, k_lo + i32(ac), row0 + am, k_hi);
    var nb = wg_b_texel(z, 4 * k_lo + bk, col0 / 4u + bq, k_hi);
    acc64 = array<vec4<f32>, 4>();
    for (var s = 0; s < w.stages; s++) {
        workgroupBarrier();
        wg_put_a(16u, ac, am / 4u, am % 4u, na);
        wb[u32(bk) * 16u + bq] = nb;
        workgroupBarrier();
        if s + 1 < w.stages {
            let kq = k_lo + 4 * (s + 1);
            na = wg_a_texel(z, kq + i32(ac), row0 + am, k_hi);
            nb = wg_b_texel(z, 4 * kq + bk, col0 / 4u + bq, k_hi);
        }
        wg64_step(0u, tx, ty); wg64_step(1u, tx, ty); wg64_step(2u, tx, ty); wg64_step(3u, tx, ty);
        wg64_step(4u, tx, ty); wg64_step(5u, tx, ty); wg64_step(6u, tx, ty); wg64_step(7u, tx, ty);
        wg64_step(8u, tx, ty); wg64_step(9u, tx, ty); wg64_step(10u, tx, ty); wg64_step(11u, tx, ty);
        wg64_step(12u, tx, ty); wg64_step(13u, tx, ty); wg64_step(14u, tx, ty); wg64_step(15u, tx, ty);
    }
    var out = acc64;
    for (var i = 0u; i < 4u; i++) {
        store4(z, split, row0 + 4u * ty + i, col0 + 4u * tx, out[i]);
    }
}
