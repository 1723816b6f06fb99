// gemm_tex.wgsl: the tiled GEMM. C = A B (+ bias) (then relu) (+ C), with A and B packed into
// rgba32f textures first and C written to a storage buffer through a strided epilogue.
//
// Why textures: on CPU adapters (lavapipe) every storage-buffer load inside a loop runs as a
// per-lane loop with a bounds check per element, about 20 cycles each, while a texel fetch is a
// vector gather of four floats. Packing costs one pass over each operand; the multiply then
// reads each packed texel once per 16 rows or columns of C. Discrete GPUs read textures through
// their texture caches just as well.
//
// Layouts (`batch` GEMMs stacked along the texture's height):
// - A (M x K): texel (q, z*M + m) holds A[m, 4q .. 4q+4]; columns past K are zero.
// - B (K x N): texel (q, z*KP + k) holds B[k, 4q .. 4q+4], KP = K rounded up to 4; rows past K
//   and columns past N are zero.
// pack.wgsl fills either from any strided view of a buffer; im2col fills B directly
// (conv.wgsl's `im2col_texture`).
//
// Each invocation computes ROWS x 16 elements of C (ROWS = 16, 8 or 4: one entry point each,
// written out in full because CPU back ends keep local arrays in memory), a workgroup
// GEMM_WG_X x (64 / GEMM_WG_X) invocations: 16 * GEMM_WG_X columns by ROWS * 64 / GEMM_WG_X
// rows.

struct TexGemmParams {
    m: u32,
    n: u32,
    // Texels along K (K rounded up to 4, over 4) and B's texture rows per batch.
    k4: u32,
    b_rows: u32,
    batch: u32,
    // C[z, r, j] is at c_offset + z*c_batch_stride + r*c_row_stride + (j / c_split)*c_split_stride
    // + (j % c_split)*c_col_stride: a convolution's (C_out, N*P) product lands in NCHW.
    c_offset: u32,
    c_batch_stride: u32,
    c_row_stride: u32,
    c_col_stride: u32,
    c_split: u32,
    c_split_stride: u32,
    // 0: none, 1: bias[j] per column, 2: bias[r] per row.
    bias_mode: u32,
    relu: u32,
    accumulate: u32,
    // Split-K: grid z runs over batch * splits; split s sums texels [s*k_split, (s+1)*k_split)
    // into `partial`, and gemm_tex_reduce adds the splits up through the epilogue. Weight
    // gradients (small M x N, K = batch * positions) need it to keep every core busy.
    splits: u32,
    k_split: u32,
    // 1: C goes to `c_tex` in the packed layout (texel (j / 4, z*M + r)), with no epilogue: a
    // convolution's grad_col, which col2im then gathers from with texel fetches.
    c_texture: u32,
    // 1 (2: and write `indices`): max-pool each run of 4 columns, a 2x2 window when
    // conv.wgsl's im2col_texture wrote B in pooled order, after bias and ReLU. C[z, r, j / 4]
    // gets the window's maximum; `indices` gets the flat position (h * in_w + w) of its first
    // maximum, or -1 when that maximum is 0, so that max-pool backward passes no gradient
    // through a ReLU that was off (PyTorch's relu -> max_pool2d, fused). Never split.
    pool: u32,
    // Pooled width (to recover the window's position) and the un-pooled width.
    pool_w: u32,
    pool_in_w: u32,
    // The convolution whose im2col matrix is an implicit operand (see IMPLICIT).
    conv: ConvParams,
}

// Invocations per workgroup along C's columns (64 in all): 8 covers 128 columns, 4 and 2 keep
// every lane busy when N is 64 or 32 at most (a weight gradient's output channels), where
// lanes past N would idle beside working ones.
override GEMM_WG_X: u32 = 8u;

@group(0) @binding(0) var<uniform> p: TexGemmParams;
@group(0) @binding(1) var ta: texture_2d<f32>;
@group(0) @binding(2) var tb: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;
// The register layout's kernels (gemm_tex_r16/r8/r4) read A and B as read-only storage
// textures: on lavapipe a storage-image load skips the sampler path's per-lane mip-level
// arithmetic (about 1.2x on the whole GEMM). The workgroup layout samples them (GPU texture
// caches).
@group(0) @binding(8) var ta_r: texture_storage_2d<rgba32float, read>;
@group(0) @binding(9) var tb_r: texture_storage_2d<rgba32float, read>;
@group(0) @binding(6) var c_tex: texture_storage_2d<rgba32float, write>;
@group(0) @binding(7) var<storage, read_write> indices: array<i32>;

fn store(z: u32, r: u32, j: u32, value: f32) {
    if r >= p.m || j >= p.n {
        return;
    }
    var v = value;
    if p.bias_mode == 1u {
        v += bias[j];
    } else if p.bias_mode == 2u {
        v += bias[r];
    }
    if p.relu != 0u {
        v = max(v, 0.0);
    }
    let js = divmod24(j, p.c_split);
    let at = row_base(z, r) + column_offset(js);
    if p.accumulate != 0u {
        v += c[at];
    }
    c[at] = v;
}

// One split's sum: through the epilogue, or into `partial` when K is split.
fn store_split(z: u32, split: u32, r: u32, j: u32, v: f32) {
    if p.splits == 1u {
        store(z, r, j, v);
    } else if r < p.m && j < p.n {
        partial[((z * p.splits + split) * p.m + r) * p.n + j] = v;
    }
}

// Bias, ReLU and a 2x2 max-pool of one window's four columns (see `pool`).
fn store_pooled(z: u32, r: u32, j: u32, v: vec4<f32>) {
    if r >= p.m || j >= p.n {
        return;
    }
    let w = pooled_window(j / 4u);
    store_window(row_base(z, r) + w.x, w.y, v, row_bias(r));
}

// Where row r of batch z starts in C (before its column's offset).
fn row_base(z: u32, r: u32) -> u32 {
    return p.c_offset + z * p.c_batch_stride + r * p.c_row_stride;
}

// The bias a row's pooled windows add (per row: a convolution's channel), or 0.
fn row_bias(r: u32) -> f32 {
    if p.bias_mode == 2u {
        return bias[r];
    }
    return 0.0;
}

// Where pooled window q goes: its offset in C past its row's start, and the flat position of
// its first value in the un-pooled plane (from which `indices` count).
fn pooled_window(q: u32) -> vec2<u32> {
    let qs = divmod24(q, p.c_split);
    let hw = divmod24(qs.y, p.pool_w);
    return vec2<u32>(column_offset(qs), 2u * hw.x * p.pool_in_w + 2u * hw.y);
}

// One window's four values v plus the bias b, through ReLU, max-pooled into C[at]; with
// pool == 2, indices[at] gets the first maximum's flat position (from `first`), or -1 when
// that maximum is 0.
fn store_window(at: u32, first: u32, v: vec4<f32>, b: f32) {
    let m = first_max4(max(v + vec4<f32>(b), vec4<f32>(0.0)));
    c[at] = m.value;
    if p.pool == 2u {
        let flat = first + (m.lane / 2u) * p.pool_in_w + m.lane % 2u;
        indices[at] = select(-1, i32(flat), m.value > 0.0);
    }
}

// pooled_window for four consecutive windows w0 .. w0 + 3 (their offsets and first flat
// positions), computed once for every row of a register block.
struct PooledWindows {
    at: vec4<u32>,
    flat: vec4<u32>,
}

fn pooled_windows(w0: u32) -> PooledWindows {
    var o: PooledWindows;
    for (var i = 0u; i < 4u; i++) {
        let w = pooled_window(w0 + i);
        o.at[i] = w.x;
        o.flat[i] = w.y;
    }
    return o;
}

// store_pooled for row r of four whole windows at once: the bias and the row's start once.
fn store_pooled_row(z: u32, r: u32, w: PooledWindows, v0: vec4<f32>, v1: vec4<f32>,
                    v2: vec4<f32>, v3: vec4<f32>) {
    let b = row_bias(r);
    let base = row_base(z, r);
    store_window(base + w.at.x, w.flat.x, v0, b);
    store_window(base + w.at.y, w.flat.y, v1, b);
    store_window(base + w.at.z, w.flat.z, v2, b);
    store_window(base + w.at.w, w.flat.w, v3, b);
}

// The plain epilogue (no split, pool or texture output, no bias per column) of whole row
// blocks of 16 whole columns: each column's offset in C once per invocation, not once per
// element as `store` does, and no local array of the accumulators (which CPU back ends keep in
// memory).
struct ColumnOffsets {
    o0: vec4<u32>,
    o1: vec4<u32>,
    o2: vec4<u32>,
    o3: vec4<u32>,
}

// Whether an invocation's rows row0 .. row0 + rows and columns 4 qb .. 4 qb + 16 take it.
fn plain_block(row0: u32, rows: u32, qb: u32) -> bool {
    return p.pool == 0u && p.c_texture == 0u && p.splits == 1u && p.bias_mode != 1u
        && row0 + rows <= p.m && (qb + 4u) * 4u <= p.n;
}

fn column_offsets(qb: u32) -> ColumnOffsets {
    return ColumnOffsets(column_offsets4(qb * 4u), column_offsets4(qb * 4u + 4u),
                         column_offsets4(qb * 4u + 8u), column_offsets4(qb * 4u + 12u));
}

// Offsets of columns j .. j + 3 (which may cross a split: a sample's last positions).
fn column_offsets4(j: u32) -> vec4<u32> {
    let a = divmod24(j, p.c_split);
    let b = next_column(a);
    let c = next_column(b);
    let d = next_column(c);
    return vec4<u32>(column_offset(a), column_offset(b), column_offset(c), column_offset(d));
}

fn next_column(js: vec2<u32>) -> vec2<u32> {
    let y = js.y + 1u;
    return select(vec2<u32>(js.x, y), vec2<u32>(js.x + 1u, 0u), y == p.c_split);
}

// C's offset past a row's start of the column at (split, position in split) `js`.
fn column_offset(js: vec2<u32>) -> u32 {
    return js.x * p.c_split_stride + js.y * p.c_col_stride;
}

// Row r of the block: its bias (per row, or none), ReLU and accumulation, as `store` does.
fn store_plain_row(z: u32, r: u32, o: ColumnOffsets, v0: vec4<f32>, v1: vec4<f32>,
                   v2: vec4<f32>, v3: vec4<f32>) {
    let base = row_base(z, r);
    let b = row_bias(r);
    store_plain4(base + o.o0, v0, b);
    store_plain4(base + o.o1, v1, b);
    store_plain4(base + o.o2, v2, b);
    store_plain4(base + o.o3, v3, b);
}

fn store_plain4(at: vec4<u32>, v: vec4<f32>, b: f32) {
    var x = v + vec4<f32>(b);
    if p.relu != 0u {
        x = max(x, vec4<f32>(0.0));
    }
    if p.accumulate != 0u {
        x += vec4<f32>(c[at.x], c[at.y], c[at.z], c[at.w]);
    }
    c[at.x] = x.x;
    c[at.y] = x.y;
    c[at.z] = x.z;
    c[at.w] = x.w;
}

// Row y of a texture output (grad_col): the four texels q.x .. q.w of a register block's row.
fn store_texture_row(y: i32, q: vec4<i32>, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>,
                     v3: vec4<f32>) {
    textureStore(c_tex, vec2<i32>(q.x, y), v0);
    textureStore(c_tex, vec2<i32>(q.y, y), v1);
    textureStore(c_tex, vec2<i32>(q.z, y), v2);
    textureStore(c_tex, vec2<i32>(q.w, y), v3);
}

fn store4(z: u32, split: u32, r: u32, j: u32, v: vec4<f32>) {
    if p.c_texture != 0u {
        if r < p.m && j < p.n {
            textureStore(c_tex, vec2<u32>(j / 4u, z * p.m + r), v);
        }
        return;
    }
    if p.pool != 0u {
        store_pooled(z, r, j, v);
        return;
    }
    store_split(z, split, r, j, v.x);
    store_split(z, split, r, j + 1u, v.y);
    store_split(z, split, r, j + 2u, v.z);
    store_split(z, split, r, j + 3u, v.w);
}

// Sums the splits of C[z, r, j] and applies the epilogue: one invocation per element.
@compute @workgroup_size(8, 8, 1)
fn gemm_tex_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let r = gid.y;
    let z = gid.z;
    if r >= p.m || j >= p.n {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        sum += partial[((z * p.splits + s) * p.m + r) * p.n + j];
    }
    store(z, r, j, sum);
}

// 16 rows x 16 columns of C per invocation.
@compute @workgroup_size(GEMM_WG_X, 64u / GEMM_WG_X, 1)
fn gemm_tex_r16(@builtin(global_invocation_id) gid: vec3<u32>) {
    let qb = gid.x * 4u;
    let row0 = gid.y * 16u;
    let zs = divmod24(gid.z, p.splits);
    let z = zs.x;
    let split = zs.y;
    if qb * 4u >= p.n || row0 >= p.m {
        return;
    }
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
    let m8 = i32(z * p.m + min(row0 + 8u, p.m - 1u));
    let m9 = i32(z * p.m + min(row0 + 9u, p.m - 1u));
    let m10 = i32(z * p.m + min(row0 + 10u, p.m - 1u));
    let m11 = i32(z * p.m + min(row0 + 11u, p.m - 1u));
    let m12 = i32(z * p.m + min(row0 + 12u, p.m - 1u));
    let m13 = i32(z * p.m + min(row0 + 13u, p.m - 1u));
    let m14 = i32(z * p.m + min(row0 + 14u, p.m - 1u));
    let m15 = i32(z * p.m + min(row0 + 15u, p.m - 1u));
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
        let b0_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 0));
        let b0_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 0));
        let b0_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 0));
        let b0_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 0));
        let b1_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 1));
        let b1_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 1));
        let b1_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 1));
        let b1_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 1));
        let b2_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 2));
        let b2_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 2));
        let b2_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 2));
        let b2_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 2));
        let b3_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 3));
        let b3_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 3));
        let b3_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 3));
        let b3_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 3));
        let a0 = textureLoad(ta_r, vec2<i32>(kq, m0));
        acc0_0 = fma(vec4(a0.w), b3_0, fma(vec4(a0.z), b2_0, fma(vec4(a0.y), b1_0, fma(vec4(a0.x), b0_0, acc0_0))));
        acc0_1 = fma(vec4(a0.w), b3_1, fma(vec4(a0.z), b2_1, fma(vec4(a0.y), b1_1, fma(vec4(a0.x), b0_1, acc0_1))));
        acc0_2 = fma(vec4(a0.w), b3_2, fma(vec4(a0.z), b2_2, fma(vec4(a0.y), b1_2, fma(vec4(a0.x), b0_2, acc0_2))));
        acc0_3 = fma(vec4(a0.w), b3_3, fma(vec4(a0.z), b2_3, fma(vec4(a0.y), b1_3, fma(vec4(a0.x), b0_3, acc0_3))));
        let a1 = textureLoad(ta_r, vec2<i32>(kq, m1));
        acc1_0 = fma(vec4(a1.w), b3_0, fma(vec4(a1.z), b2_0, fma(vec4(a1.y), b1_0, fma(vec4(a1.x), b0_0, acc1_0))));
        acc1_1 = fma(vec4(a1.w), b3_1, fma(vec4(a1.z), b2_1, fma(vec4(a1.y), b1_1, fma(vec4(a1.x), b0_1, acc1_1))));
        acc1_2 = fma(vec4(a1.w), b3_2, fma(vec4(a1.z), b2_2, fma(vec4(a1.y), b1_2, fma(vec4(a1.x), b0_2, acc1_2))));
        acc1_3 = fma(vec4(a1.w), b3_3, fma(vec4(a1.z), b2_3, fma(vec4(a1.y), b1_3, fma(vec4(a1.x), b0_3, acc1_3))));
        let a2 = textureLoad(ta_r, vec2<i32>(kq, m2));
        acc2_0 = fma(vec4(a2.w), b3_0, fma(vec4(a2.z), b2_0, fma(vec4(a2.y), b1_0, fma(vec4(a2.x), b0_0, acc2_0))));
        acc2_1 = fma(vec4(a2.w), b3_1, fma(vec4(a2.z), b2_1, fma(vec4(a2.y), b1_1, fma(vec4(a2.x), b0_1, acc2_1))));
        acc2_2 = fma(vec4(a2.w), b3_2, fma(vec4(a2.z), b2_2, fma(vec4(a2.y), b1_2, fma(vec4(a2.x), b0_2, acc2_2))));
        acc2_3 = fma(vec4(a2.w), b3_3, fma(vec4(a2.z), b2_3, fma(vec4(a2.y), b1_3, fma(vec4(a2.x), b0_3, acc2_3))));
        let a3 = textureLoad(ta_r, vec2<i32>(kq, m3));
        acc3_0 = fma(vec4(a3.w), b3_0, fma(vec4(a3.z), b2_0, fma(vec4(a3.y), b1_0, fma(vec4(a3.x), b0_0, acc3_0))));
        acc3_1 = fma(vec4(a3.w), b3_1, fma(vec4(a3.z), b2_1, fma(vec4(a3.y), b1_1, fma(vec4(a3.x), b0_1, acc3_1))));
        acc3_2 = fma(vec4(a3.w), b3_2, fma(vec4(a3.z), b2_2, fma(vec4(a3.y), b1_2, fma(vec4(a3.x), b0_2, acc3_2))));
        acc3_3 = fma(vec4(a3.w), b3_3, fma(vec4(a3.z), b2_3, fma(vec4(a3.y), b1_3, fma(vec4(a3.x), b0_3, acc3_3))));
        let a4 = textureLoad(ta_r, vec2<i32>(kq, m4));
        acc4_0 = fma(vec4(a4.w), b3_0, fma(vec4(a4.z), b2_0, fma(vec4(a4.y), b1_0, fma(vec4(a4.x), b0_0, acc4_0))));
        acc4_1 = fma(vec4(a4.w), b3_1, fma(vec4(a4.z), b2_1, fma(vec4(a4.y), b1_1, fma(vec4(a4.x), b0_1, acc4_1))));
        acc4_2 = fma(vec4(a4.w), b3_2, fma(vec4(a4.z), b2_2, fma(vec4(a4.y), b1_2, fma(vec4(a4.x), b0_2, acc4_2))));
        acc4_3 = fma(vec4(a4.w), b3_3, fma(vec4(a4.z), b2_3, fma(vec4(a4.y), b1_3, fma(vec4(a4.x), b0_3, acc4_3))));
        let a5 = textureLoad(ta_r, vec2<i32>(kq, m5));
        acc5_0 = fma(vec4(a5.w), b3_0, fma(vec4(a5.z), b2_0, fma(vec4(a5.y), b1_0, fma(vec4(a5.x), b0_0, acc5_0))));
        acc5_1 = fma(vec4(a5.w), b3_1, fma(vec4(a5.z), b2_1, fma(vec4(a5.y), b1_1, fma(vec4(a5.x), b0_1, acc5_1))));
        acc5_2 = fma(vec4(a5.w), b3_2, fma(vec4(a5.z), b2_2, fma(vec4(a5.y), b1_2, fma(vec4(a5.x), b0_2, acc5_2))));
        acc5_3 = fma(vec4(a5.w), b3_3, fma(vec4(a5.z), b2_3, fma(vec4(a5.y), b1_3, fma(vec4(a5.x), b0_3, acc5_3))));
        let a6 = textureLoad(ta_r, vec2<i32>(kq, m6));
        acc6_0 = fma(vec4(a6.w), b3_0, fma(vec4(a6.z), b2_0, fma(vec4(a6.y), b1_0, fma(vec4(a6.x), b0_0, acc6_0))));
        acc6_1 = fma(vec4(a6.w), b3_1, fma(vec4(a6.z), b2_1, fma(vec4(a6.y), b1_1, fma(vec4(a6.x), b0_1, acc6_1))));
        acc6_2 = fma(vec4(a6.w), b3_2, fma(vec4(a6.z), b2_2, fma(vec4(a6.y), b1_2, fma(vec4(a6.x), b0_2, acc6_2))));
        acc6_3 = fma(vec4(a6.w), b3_3, fma(vec4(a6.z), b2_3, fma(vec4(a6.y), b1_3, fma(vec4(a6.x), b0_3, acc6_3))));
        let a7 = textureLoad(ta_r, vec2<i32>(kq, m7));
        acc7_0 = fma(vec4(a7.w), b3_0, fma(vec4(a7.z), b2_0, fma(vec4(a7.y), b1_0, fma(vec4(a7.x), b0_0, acc7_0))));
        acc7_1 = fma(vec4(a7.w), b3_1, fma(vec4(a7.z), b2_1, fma(vec4(a7.y), b1_1, fma(vec4(a7.x), b0_1, acc7_1))));
        acc7_2 = fma(vec4(a7.w), b3_2, fma(vec4(a7.z), b2_2, fma(vec4(a7.y), b1_2, fma(vec4(a7.x), b0_2, acc7_2))));
        acc7_3 = fma(vec4(a7.w), b3_3, fma(vec4(a7.z), b2_3, fma(vec4(a7.y), b1_3, fma(vec4(a7.x), b0_3, acc7_3))));
        let a8 = textureLoad(ta_r, vec2<i32>(kq, m8));
        acc8_0 = fma(vec4(a8.w), b3_0, fma(vec4(a8.z), b2_0, fma(vec4(a8.y), b1_0, fma(vec4(a8.x), b0_0, acc8_0))));
        acc8_1 = fma(vec4(a8.w), b3_1, fma(vec4(a8.z), b2_1, fma(vec4(a8.y), b1_1, fma(vec4(a8.x), b0_1, acc8_1))));
        acc8_2 = fma(vec4(a8.w), b3_2, fma(vec4(a8.z), b2_2, fma(vec4(a8.y), b1_2, fma(vec4(a8.x), b0_2, acc8_2))));
        acc8_3 = fma(vec4(a8.w), b3_3, fma(vec4(a8.z), b2_3, fma(vec4(a8.y), b1_3, fma(vec4(a8.x), b0_3, acc8_3))));
        let a9 = textureLoad(ta_r, vec2<i32>(kq, m9));
        acc9_0 = fma(vec4(a9.w), b3_0, fma(vec4(a9.z), b2_0, fma(vec4(a9.y), b1_0, fma(vec4(a9.x), b0_0, acc9_0))));
        acc9_1 = fma(vec4(a9.w), b3_1, fma(vec4(a9.z), b2_1, fma(vec4(a9.y), b1_1, fma(vec4(a9.x), b0_1, acc9_1))));
        acc9_2 = fma(vec4(a9.w), b3_2, fma(vec4(a9.z), b2_2, fma(vec4(a9.y), b1_2, fma(vec4(a9.x), b0_2, acc9_2))));
        acc9_3 = fma(vec4(a9.w), b3_3, fma(vec4(a9.z), b2_3, fma(vec4(a9.y), b1_3, fma(vec4(a9.x), b0_3, acc9_3))));
        let a10 = textureLoad(ta_r, vec2<i32>(kq, m10));
        acc10_0 = fma(vec4(a10.w), b3_0, fma(vec4(a10.z), b2_0, fma(vec4(a10.y), b1_0, fma(vec4(a10.x), b0_0, acc10_0))));
        acc10_1 = fma(vec4(a10.w), b3_1, fma(vec4(a10.z), b2_1, fma(vec4(a10.y), b1_1, fma(vec4(a10.x), b0_1, acc10_1))));
        acc10_2 = fma(vec4(a10.w), b3_2, fma(vec4(a10.z), b2_2, fma(vec4(a10.y), b1_2, fma(vec4(a10.x), b0_2, acc10_2))));
        acc10_3 = fma(vec4(a10.w), b3_3, fma(vec4(a10.z), b2_3, fma(vec4(a10.y), b1_3, fma(vec4(a10.x), b0_3, acc10_3))));
        let a11 = textureLoad(ta_r, vec2<i32>(kq, m11));
        acc11_0 = fma(vec4(a11.w), b3_0, fma(vec4(a11.z), b2_0, fma(vec4(a11.y), b1_0, fma(vec4(a11.x), b0_0, acc11_0))));
        acc11_1 = fma(vec4(a11.w), b3_1, fma(vec4(a11.z), b2_1, fma(vec4(a11.y), b1_1, fma(vec4(a11.x), b0_1, acc11_1))));
        acc11_2 = fma(vec4(a11.w), b3_2, fma(vec4(a11.z), b2_2, fma(vec4(a11.y), b1_2, fma(vec4(a11.x), b0_2, acc11_2))));
        acc11_3 = fma(vec4(a11.w), b3_3, fma(vec4(a11.z), b2_3, fma(vec4(a11.y), b1_3, fma(vec4(a11.x), b0_3, acc11_3))));
        let a12 = textureLoad(ta_r, vec2<i32>(kq, m12));
        acc12_0 = fma(vec4(a12.w), b3_0, fma(vec4(a12.z), b2_0, fma(vec4(a12.y), b1_0, fma(vec4(a12.x), b0_0, acc12_0))));
        acc12_1 = fma(vec4(a12.w), b3_1, fma(vec4(a12.z), b2_1, fma(vec4(a12.y), b1_1, fma(vec4(a12.x), b0_1, acc12_1))));
        acc12_2 = fma(vec4(a12.w), b3_2, fma(vec4(a12.z), b2_2, fma(vec4(a12.y), b1_2, fma(vec4(a12.x), b0_2, acc12_2))));
        acc12_3 = fma(vec4(a12.w), b3_3, fma(vec4(a12.z), b2_3, fma(vec4(a12.y), b1_3, fma(vec4(a12.x), b0_3, acc12_3))));
        let a13 = textureLoad(ta_r, vec2<i32>(kq, m13));
        acc13_0 = fma(vec4(a13.w), b3_0, fma(vec4(a13.z), b2_0, fma(vec4(a13.y), b1_0, fma(vec4(a13.x), b0_0, acc13_0))));
        acc13_1 = fma(vec4(a13.w), b3_1, fma(vec4(a13.z), b2_1, fma(vec4(a13.y), b1_1, fma(vec4(a13.x), b0_1, acc13_1))));
        acc13_2 = fma(vec4(a13.w), b3_2, fma(vec4(a13.z), b2_2, fma(vec4(a13.y), b1_2, fma(vec4(a13.x), b0_2, acc13_2))));
        acc13_3 = fma(vec4(a13.w), b3_3, fma(vec4(a13.z), b2_3, fma(vec4(a13.y), b1_3, fma(vec4(a13.x), b0_3, acc13_3))));
        let a14 = textureLoad(ta_r, vec2<i32>(kq, m14));
        acc14_0 = fma(vec4(a14.w), b3_0, fma(vec4(a14.z), b2_0, fma(vec4(a14.y), b1_0, fma(vec4(a14.x), b0_0, acc14_0))));
        acc14_1 = fma(vec4(a14.w), b3_1, fma(vec4(a14.z), b2_1, fma(vec4(a14.y), b1_1, fma(vec4(a14.x), b0_1, acc14_1))));
        acc14_2 = fma(vec4(a14.w), b3_2, fma(vec4(a14.z), b2_2, fma(vec4(a14.y), b1_2, fma(vec4(a14.x), b0_2, acc14_2))));
        acc14_3 = fma(vec4(a14.w), b3_3, fma(vec4(a14.z), b2_3, fma(vec4(a14.y), b1_3, fma(vec4(a14.x), b0_3, acc14_3))));
        let a15 = textureLoad(ta_r, vec2<i32>(kq, m15));
        acc15_0 = fma(vec4(a15.w), b3_0, fma(vec4(a15.z), b2_0, fma(vec4(a15.y), b1_0, fma(vec4(a15.x), b0_0, acc15_0))));
        acc15_1 = fma(vec4(a15.w), b3_1, fma(vec4(a15.z), b2_1, fma(vec4(a15.y), b1_1, fma(vec4(a15.x), b0_1, acc15_1))));
        acc15_2 = fma(vec4(a15.w), b3_2, fma(vec4(a15.z), b2_2, fma(vec4(a15.y), b1_2, fma(vec4(a15.x), b0_2, acc15_2))));
        acc15_3 = fma(vec4(a15.w), b3_3, fma(vec4(a15.z), b2_3, fma(vec4(a15.y), b1_3, fma(vec4(a15.x), b0_3, acc15_3))));
    }
    // The fused max-pool's epilogue for whole rows of four whole windows (see gemm_tex_r8).
    if p.pool != 0u && row0 + 16u <= p.m && (qb + 4u) * 4u <= p.n {
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
    if p.c_texture != 0u && row0 + 16u <= p.m {
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

// 8 rows x 16 columns of C per invocation.
@compute @workgroup_size(GEMM_WG_X, 64u / GEMM_WG_X, 1)
fn gemm_tex_r8(@builtin(global_invocation_id) gid: vec3<u32>) {
    let qb = gid.x * 4u;
    let row0 = gid.y * 8u;
    let zs = divmod24(gid.z, p.splits);
    let z = zs.x;
    let split = zs.y;
    if qb * 4u >= p.n || row0 >= p.m {
        return;
    }
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
        let b0_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 0));
        let b0_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 0));
        let b0_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 0));
        let b0_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 0));
        let b1_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 1));
        let b1_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 1));
        let b1_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 1));
        let b1_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 1));
        let b2_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 2));
        let b2_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 2));
        let b2_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 2));
        let b2_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 2));
        let b3_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 3));
        let b3_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 3));
        let b3_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 3));
        let b3_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 3));
        let a0 = textureLoad(ta_r, vec2<i32>(kq, m0));
        acc0_0 = fma(vec4(a0.w), b3_0, fma(vec4(a0.z), b2_0, fma(vec4(a0.y), b1_0, fma(vec4(a0.x), b0_0, acc0_0))));
        acc0_1 = fma(vec4(a0.w), b3_1, fma(vec4(a0.z), b2_1, fma(vec4(a0.y), b1_1, fma(vec4(a0.x), b0_1, acc0_1))));
        acc0_2 = fma(vec4(a0.w), b3_2, fma(vec4(a0.z), b2_2, fma(vec4(a0.y), b1_2, fma(vec4(a0.x), b0_2, acc0_2))));
        acc0_3 = fma(vec4(a0.w), b3_3, fma(vec4(a0.z), b2_3, fma(vec4(a0.y), b1_3, fma(vec4(a0.x), b0_3, acc0_3))));
        let a1 = textureLoad(ta_r, vec2<i32>(kq, m1));
        acc1_0 = fma(vec4(a1.w), b3_0, fma(vec4(a1.z), b2_0, fma(vec4(a1.y), b1_0, fma(vec4(a1.x), b0_0, acc1_0))));
        acc1_1 = fma(vec4(a1.w), b3_1, fma(vec4(a1.z), b2_1, fma(vec4(a1.y), b1_1, fma(vec4(a1.x), b0_1, acc1_1))));
        acc1_2 = fma(vec4(a1.w), b3_2, fma(vec4(a1.z), b2_2, fma(vec4(a1.y), b1_2, fma(vec4(a1.x), b0_2, acc1_2))));
        acc1_3 = fma(vec4(a1.w), b3_3, fma(vec4(a1.z), b2_3, fma(vec4(a1.y), b1_3, fma(vec4(a1.x), b0_3, acc1_3))));
        let a2 = textureLoad(ta_r, vec2<i32>(kq, m2));
        acc2_0 = fma(vec4(a2.w), b3_0, fma(vec4(a2.z), b2_0, fma(vec4(a2.y), b1_0, fma(vec4(a2.x), b0_0, acc2_0))));
        acc2_1 = fma(vec4(a2.w), b3_1, fma(vec4(a2.z), b2_1, fma(vec4(a2.y), b1_1, fma(vec4(a2.x), b0_1, acc2_1))));
        acc2_2 = fma(vec4(a2.w), b3_2, fma(vec4(a2.z), b2_2, fma(vec4(a2.y), b1_2, fma(vec4(a2.x), b0_2, acc2_2))));
        acc2_3 = fma(vec4(a2.w), b3_3, fma(vec4(a2.z), b2_3, fma(vec4(a2.y), b1_3, fma(vec4(a2.x), b0_3, acc2_3))));
        let a3 = textureLoad(ta_r, vec2<i32>(kq, m3));
        acc3_0 = fma(vec4(a3.w), b3_0, fma(vec4(a3.z), b2_0, fma(vec4(a3.y), b1_0, fma(vec4(a3.x), b0_0, acc3_0))));
        acc3_1 = fma(vec4(a3.w), b3_1, fma(vec4(a3.z), b2_1, fma(vec4(a3.y), b1_1, fma(vec4(a3.x), b0_1, acc3_1))));
        acc3_2 = fma(vec4(a3.w), b3_2, fma(vec4(a3.z), b2_2, fma(vec4(a3.y), b1_2, fma(vec4(a3.x), b0_2, acc3_2))));
        acc3_3 = fma(vec4(a3.w), b3_3, fma(vec4(a3.z), b2_3, fma(vec4(a3.y), b1_3, fma(vec4(a3.x), b0_3, acc3_3))));
        let a4 = textureLoad(ta_r, vec2<i32>(kq, m4));
        acc4_0 = fma(vec4(a4.w), b3_0, fma(vec4(a4.z), b2_0, fma(vec4(a4.y), b1_0, fma(vec4(a4.x), b0_0, acc4_0))));
        acc4_1 = fma(vec4(a4.w), b3_1, fma(vec4(a4.z), b2_1, fma(vec4(a4.y), b1_1, fma(vec4(a4.x), b0_1, acc4_1))));
        acc4_2 = fma(vec4(a4.w), b3_2, fma(vec4(a4.z), b2_2, fma(vec4(a4.y), b1_2, fma(vec4(a4.x), b0_2, acc4_2))));
        acc4_3 = fma(vec4(a4.w), b3_3, fma(vec4(a4.z), b2_3, fma(vec4(a4.y), b1_3, fma(vec4(a4.x), b0_3, acc4_3))));
        let a5 = textureLoad(ta_r, vec2<i32>(kq, m5));
        acc5_0 = fma(vec4(a5.w), b3_0, fma(vec4(a5.z), b2_0, fma(vec4(a5.y), b1_0, fma(vec4(a5.x), b0_0, acc5_0))));
        acc5_1 = fma(vec4(a5.w), b3_1, fma(vec4(a5.z), b2_1, fma(vec4(a5.y), b1_1, fma(vec4(a5.x), b0_1, acc5_1))));
        acc5_2 = fma(vec4(a5.w), b3_2, fma(vec4(a5.z), b2_2, fma(vec4(a5.y), b1_2, fma(vec4(a5.x), b0_2, acc5_2))));
        acc5_3 = fma(vec4(a5.w), b3_3, fma(vec4(a5.z), b2_3, fma(vec4(a5.y), b1_3, fma(vec4(a5.x), b0_3, acc5_3))));
        let a6 = textureLoad(ta_r, vec2<i32>(kq, m6));
        acc6_0 = fma(vec4(a6.w), b3_0, fma(vec4(a6.z), b2_0, fma(vec4(a6.y), b1_0, fma(vec4(a6.x), b0_0, acc6_0))));
        acc6_1 = fma(vec4(a6.w), b3_1, fma(vec4(a6.z), b2_1, fma(vec4(a6.y), b1_1, fma(vec4(a6.x), b0_1, acc6_1))));
        acc6_2 = fma(vec4(a6.w), b3_2, fma(vec4(a6.z), b2_2, fma(vec4(a6.y), b1_2, fma(vec4(a6.x), b0_2, acc6_2))));
        acc6_3 = fma(vec4(a6.w), b3_3, fma(vec4(a6.z), b2_3, fma(vec4(a6.y), b1_3, fma(vec4(a6.x), b0_3, acc6_3))));
        let a7 = textureLoad(ta_r, vec2<i32>(kq, m7));
        acc7_0 = fma(vec4(a7.w), b3_0, fma(vec4(a7.z), b2_0, fma(vec4(a7.y), b1_0, fma(vec4(a7.x), b0_0, acc7_0))));
        acc7_1 = fma(vec4(a7.w), b3_1, fma(vec4(a7.z), b2_1, fma(vec4(a7.y), b1_1, fma(vec4(a7.x), b0_1, acc7_1))));
        acc7_2 = fma(vec4(a7.w), b3_2, fma(vec4(a7.z), b2_2, fma(vec4(a7.y), b1_2, fma(vec4(a7.x), b0_2, acc7_2))));
        acc7_3 = fma(vec4(a7.w), b3_3, fma(vec4(a7.z), b2_3, fma(vec4(a7.y), b1_3, fma(vec4(a7.x), b0_3, acc7_3))));
    }
    // The fused max-pool's epilogue for eight whole rows of four whole windows: each row's
    // bias and offset once, each window's position once.
    if p.pool != 0u && row0 + 8u <= p.m && (qb + 4u) * 4u <= p.n {
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

// 4 rows x 16 columns of C per invocation.
@compute @workgroup_size(GEMM_WG_X, 64u / GEMM_WG_X, 1)
fn gemm_tex_r4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let qb = gid.x * 4u;
    let row0 = gid.y * 4u;
    let zs = divmod24(gid.z, p.splits);
    let z = zs.x;
    let split = zs.y;
    if qb * 4u >= p.n || row0 >= p.m {
        return;
    }
    let last_q = (p.n - 1u) / 4u;
    let q0 = i32(min(qb + 0u, last_q));
    let q1 = i32(min(qb + 1u, last_q));
    let q2 = i32(min(qb + 2u, last_q));
    let q3 = i32(min(qb + 3u, last_q));
    let m0 = i32(z * p.m + min(row0 + 0u, p.m - 1u));
    let m1 = i32(z * p.m + min(row0 + 1u, p.m - 1u));
    let m2 = i32(z * p.m + min(row0 + 2u, p.m - 1u));
    let m3 = i32(z * p.m + min(row0 + 3u, p.m - 1u));
    var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0); var acc0_2 = vec4<f32>(0.0); var acc0_3 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0); var acc1_2 = vec4<f32>(0.0); var acc1_3 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0); var acc2_2 = vec4<f32>(0.0); var acc2_3 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0); var acc3_2 = vec4<f32>(0.0); var acc3_3 = vec4<f32>(0.0);
    let b_base = i32(z * p.b_rows);
    let k_lo = i32(split * p.k_split);
    let k_hi = min(k_lo + i32(p.k_split), i32(p.k4));
    for (var kq = k_lo; kq < k_hi; kq++) {
        let k0 = b_base + kq * 4;
        let b0_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 0));
        let b0_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 0));
        let b0_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 0));
        let b0_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 0));
        let b1_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 1));
        let b1_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 1));
        let b1_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 1));
        let b1_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 1));
        let b2_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 2));
        let b2_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 2));
        let b2_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 2));
        let b2_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 2));
        let b3_0 = textureLoad(tb_r, vec2<i32>(q0, k0 + 3));
        let b3_1 = textureLoad(tb_r, vec2<i32>(q1, k0 + 3));
        let b3_2 = textureLoad(tb_r, vec2<i32>(q2, k0 + 3));
        let b3_3 = textureLoad(tb_r, vec2<i32>(q3, k0 + 3));
        let a0 = textureLoad(ta_r, vec2<i32>(kq, m0));
        acc0_0 = fma(vec4(a0.w), b3_0, fma(vec4(a0.z), b2_0, fma(vec4(a0.y), b1_0, fma(vec4(a0.x), b0_0, acc0_0))));
        acc0_1 = fma(vec4(a0.w), b3_1, fma(vec4(a0.z), b2_1, fma(vec4(a0.y), b1_1, fma(vec4(a0.x), b0_1, acc0_1))));
        acc0_2 = fma(vec4(a0.w), b3_2, fma(vec4(a0.z), b2_2, fma(vec4(a0.y), b1_2, fma(vec4(a0.x), b0_2, acc0_2))));
        acc0_3 = fma(vec4(a0.w), b3_3, fma(vec4(a0.z), b2_3, fma(vec4(a0.y), b1_3, fma(vec4(a0.x), b0_3, acc0_3))));
        let a1 = textureLoad(ta_r, vec2<i32>(kq, m1));
        acc1_0 = fma(vec4(a1.w), b3_0, fma(vec4(a1.z), b2_0, fma(vec4(a1.y), b1_0, fma(vec4(a1.x), b0_0, acc1_0))));
        acc1_1 = fma(vec4(a1.w), b3_1, fma(vec4(a1.z), b2_1, fma(vec4(a1.y), b1_1, fma(vec4(a1.x), b0_1, acc1_1))));
        acc1_2 = fma(vec4(a1.w), b3_2, fma(vec4(a1.z), b2_2, fma(vec4(a1.y), b1_2, fma(vec4(a1.x), b0_2, acc1_2))));
        acc1_3 = fma(vec4(a1.w), b3_3, fma(vec4(a1.z), b2_3, fma(vec4(a1.y), b1_3, fma(vec4(a1.x), b0_3, acc1_3))));
        let a2 = textureLoad(ta_r, vec2<i32>(kq, m2));
        acc2_0 = fma(vec4(a2.w), b3_0, fma(vec4(a2.z), b2_0, fma(vec4(a2.y), b1_0, fma(vec4(a2.x), b0_0, acc2_0))));
        acc2_1 = fma(vec4(a2.w), b3_1, fma(vec4(a2.z), b2_1, fma(vec4(a2.y), b1_1, fma(vec4(a2.x), b0_1, acc2_1))));
        acc2_2 = fma(vec4(a2.w), b3_2, fma(vec4(a2.z), b2_2, fma(vec4(a2.y), b1_2, fma(vec4(a2.x), b0_2, acc2_2))));
        acc2_3 = fma(vec4(a2.w), b3_3, fma(vec4(a2.z), b2_3, fma(vec4(a2.y), b1_3, fma(vec4(a2.x), b0_3, acc2_3))));
        let a3 = textureLoad(ta_r, vec2<i32>(kq, m3));
        acc3_0 = fma(vec4(a3.w), b3_0, fma(vec4(a3.z), b2_0, fma(vec4(a3.y), b1_0, fma(vec4(a3.x), b0_0, acc3_0))));
        acc3_1 = fma(vec4(a3.w), b3_1, fma(vec4(a3.z), b2_1, fma(vec4(a3.y), b1_1, fma(vec4(a3.x), b0_1, acc3_1))));
        acc3_2 = fma(vec4(a3.w), b3_2, fma(vec4(a3.z), b2_2, fma(vec4(a3.y), b1_2, fma(vec4(a3.x), b0_2, acc3_2))));
        acc3_3 = fma(vec4(a3.w), b3_3, fma(vec4(a3.z), b2_3, fma(vec4(a3.y), b1_3, fma(vec4(a3.x), b0_3, acc3_3))));
    }
    // The fused max-pool's epilogue for whole rows of four whole windows (see gemm_tex_r8).
    if p.pool != 0u && row0 + 4u <= p.m && (qb + 4u) * 4u <= p.n {
        let w = pooled_windows(qb);
        store_pooled_row(z, row0 + 0u, w, acc0_0, acc0_1, acc0_2, acc0_3);
        store_pooled_row(z, row0 + 1u, w, acc1_0, acc1_1, acc1_2, acc1_3);
        store_pooled_row(z, row0 + 2u, w, acc2_0, acc2_1, acc2_2, acc2_3);
        store_pooled_row(z, row0 + 3u, w, acc3_0, acc3_1, acc3_2, acc3_3);
        return;
    }
    // One call site for the epilogue: 16 inlined copies would bloat the kernel.
    var out: array<vec4<f32>, 16>;
    out[0] = acc0_0; out[1] = acc0_1; out[2] = acc0_2; out[3] = acc0_3;
    out[4] = acc1_0; out[5] = acc1_1; out[6] = acc1_2; out[7] = acc1_3;
    out[8] = acc2_0; out[9] = acc2_1; out[10] = acc2_2; out[11] = acc2_3;
    out[12] = acc3_0; out[13] = acc3_1; out[14] = acc3_2; out[15] = acc3_3;
    for (var i = 0u; i < 16u; i++) {
        store4(z, split, row0 + i / 4u, (qb + i % 4u) * 4u, out[i]);
    }
}

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
// conv.wgsl's im2col_texture and col2im_texture would do through a texture happen here, as
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
    // Named accumulators: a local array indexed in the loop could live in memory.
    var c0 = vec4<f32>(0.0); var c1 = vec4<f32>(0.0); var c2 = vec4<f32>(0.0); var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0); var c5 = vec4<f32>(0.0); var c6 = vec4<f32>(0.0); var c7 = vec4<f32>(0.0);
    var c8 = vec4<f32>(0.0); var c9 = vec4<f32>(0.0); var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c12 = vec4<f32>(0.0); var c13 = vec4<f32>(0.0); var c14 = vec4<f32>(0.0); var c15 = vec4<f32>(0.0);
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
        for (var k = 0u; k < 16u; k++) {
            let a0 = wa[k * 32u + ty];
            let a1 = wa[k * 32u + 16u + ty];
            let b0 = wb[k * 32u + tx];
            let b1 = wb[k * 32u + 16u + tx];
            c0 += a0.x * b0;
            c1 += a0.x * b1;
            c2 += a0.y * b0;
            c3 += a0.y * b1;
            c4 += a0.z * b0;
            c5 += a0.z * b1;
            c6 += a0.w * b0;
            c7 += a0.w * b1;
            c8 += a1.x * b0;
            c9 += a1.x * b1;
            c10 += a1.y * b0;
            c11 += a1.y * b1;
            c12 += a1.z * b0;
            c13 += a1.z * b1;
            c14 += a1.w * b0;
            c15 += a1.w * b1;
        }
    }
    // One call site for the epilogue.
    var out = array<vec4<f32>, 16>(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15);
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
    var c0 = vec4<f32>(0.0); var c1 = vec4<f32>(0.0); var c2 = vec4<f32>(0.0); var c3 = vec4<f32>(0.0);
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
        for (var k = 0u; k < 16u; k++) {
            let a = wa[k * 16u + ty];
            let b = wb[k * 16u + tx];
            c0 += a.x * b;
            c1 += a.y * b;
            c2 += a.z * b;
            c3 += a.w * b;
        }
    }
    var out = array<vec4<f32>, 4>(c0, c1, c2, c3);
    for (var i = 0u; i < 4u; i++) {
        store4(z, split, row0 + 4u * ty + i, col0 + 4u * tx, out[i]);
    }
}
