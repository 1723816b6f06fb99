// shared/gemm_epilogue.wgsl: the texture GEMMs' parameters, bindings and epilogue (after the
// prelude and shared/conv_params.wgsl), for gemm/ and subgroup/. The texture GEMMs compute
// C = A B (+ bias, or batch norm's scale and shift) (then a clamp) (+ C), with A and B packed
// into rgba32f textures first and C written to a storage buffer through a strided epilogue (or
// to a texture: grad_col).
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
// gemm/pack.wgsl fills either from any strided view of a buffer; im2col fills B directly
// (conv/im2col.wgsl's `im2col_texture`).

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
    // 0: none, 1: bias[j] per column, 2: bias[r] per row, 3: batch norm (evaluation) folded in
    // per row, bias[r] * v + bias[m + r].
    bias_mode: u32,
    // The clamp behind it (prelude's activate4): 0 none, 1 ReLU, 2 [lo, hi].
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
    // conv/im2col.wgsl's im2col_texture wrote B in pooled order, after bias and ReLU. C[z, r, j / 4]
    // gets the window's maximum; `indices` gets the flat position (h * in_w + w) of its first
    // maximum, or -1 when that maximum is 0, so that max-pool backward passes no gradient
    // through a ReLU that was off (PyTorch's relu -> max_pool2d, fused). Never split.
    pool: u32,
    // Pooled width (to recover the window's position) and the un-pooled width.
    pool_w: u32,
    pool_in_w: u32,
    lo: f32,
    hi: f32,
    // subgroup/conv_3x3_sg.wgsl's conv_3x3_sg_r16: 1 where the source rows carry a texel of
    // margin at each end (see there).
    margin: u32,
    pad_b: u32,
    // The convolution whose im2col matrix is an implicit operand (see IMPLICIT).
    conv: ConvParams,
}

// Invocations per workgroup along C's columns (64 in all): 8 covers 128 columns, 4 and 2 keep
// every lane busy when N is 64 or 32 at most (a weight gradient's output channels), where
// lanes past N would idle beside working ones.
override GEMM_WG_X: u32 = 8u;

// The epilogue a launch takes, fixed with its pipeline where the host knows it (record_gemm):
// lavapipe runs every branch of an `if` for the whole SIMD row, whether any lane takes it or
// not, so an epilogue that a launch cannot take costs it as much as one it takes (a 1x1
// convolution's gemm_sg_r8 ran 1.7x faster without its pooled, texture and per-value paths).
// 0: chosen by p at run time; 1: C in a buffer (p.pool = 0, p.c_texture = 0); 2: pooled
// (p.pool != 0); 3: a texture (p.c_texture != 0).
override EPILOGUE: u32 = 0u;
// Whether some lanes' blocks of C are partial, or split or biased per column, and need the
// per-value path after the whole-block ones.
override EDGES: bool = true;

// The clamp, bias mode and accumulation a launch takes, where the host fixes them with the
// pipeline (record_gemm): lavapipe would otherwise compute both clamps for every value and run
// the loads of every bias mode and of the accumulation. GEMM_ACT 0 to 2 (3: p.relu at run
// time), GEMM_BIAS 0 to 3 (4: p.bias_mode), GEMM_ACCUMULATE 0 or 1 (2: p.accumulate).
override GEMM_ACT: u32 = 3u;
override GEMM_BIAS: u32 = 4u;
override GEMM_ACCUMULATE: u32 = 2u;

fn gemm_act() -> u32 {
    return select(p.relu, GEMM_ACT, GEMM_ACT < 3u);
}

fn gemm_bias_mode() -> u32 {
    return select(p.bias_mode, GEMM_BIAS, GEMM_BIAS < 4u);
}

fn gemm_accumulates() -> bool {
    return select(p.accumulate != 0u, GEMM_ACCUMULATE == 1u, GEMM_ACCUMULATE < 2u);
}

@group(0) @binding(0) var<uniform> p: TexGemmParams;
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
// C again, as texels: with QUAD_STORES (set by record_gemm where C's columns are contiguous and
// every offset and stride a multiple of 4), a whole block's four columns are one vec4 store
// (a 1x1 convolution's gemm_sg_r8 on lavapipe: about 1.2x). Bound only by the kernels that
// store whole blocks (gemm_sg_r16 / r8, gemm_sgc_r8, gemm_tex_r16 / r8).
@group(0) @binding(10) var<storage, read_write> c_quads: array<vec4<f32>>;
override QUAD_STORES: bool = false;

fn store(z: u32, r: u32, j: u32, value: f32) {
    if r >= p.m || j >= p.n { return; }
    var v = value;
    if gemm_bias_mode() == 1u {
        v += bias[j];
    } else {
        let st = row_affine(r);
        v = fma(v, st.x, st.y);
    }
    v = activate4(vec4<f32>(v), gemm_act(), p.lo, p.hi).x;
    let js = divmod24(j, p.c_split);
    let at = row_base(z, r) + column_offset(js);
    if gemm_accumulates() {
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
    if r >= p.m || j >= p.n { return; }
    let w = pooled_window(j / 4u);
    store_window(row_base(z, r) + w.x, w.y, v, row_bias(r));
}

// Where row r of batch z starts in C (before its column's offset).
fn row_base(z: u32, r: u32) -> u32 {
    return p.c_offset + z * p.c_batch_stride + r * p.c_row_stride;
}

// The bias a row's pooled windows add (per row: a convolution's channel), or 0.
fn row_bias(r: u32) -> f32 {
    if gemm_bias_mode() == 2u {
        return bias[r];
    }
    return 0.0;
}

// Row r's (scale, shift) where the bias is per row or batch norm is folded in; else (1, 0).
fn row_affine(r: u32) -> vec2<f32> {
    if gemm_bias_mode() == 3u {
        return vec2<f32>(bias[r], bias[p.m + r]);
    }
    return vec2<f32>(1.0, row_bias(r));
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

fn pooled_epilogue() -> bool {
    return EPILOGUE == 2u || (EPILOGUE == 0u && p.pool != 0u);
}

fn texture_epilogue() -> bool {
    return EPILOGUE == 3u || (EPILOGUE == 0u && p.c_texture != 0u);
}

// Whether an invocation's rows row0 .. row0 + rows and columns 4 qb .. 4 qb + 16 take it.
fn plain_block(row0: u32, rows: u32, qb: u32) -> bool {
    return !pooled_epilogue() && !texture_epilogue() && p.splits == 1u && gemm_bias_mode() != 1u
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

// Row r of the block: its bias or batch norm (per row, or none), clamp and accumulation, as
// `store` does.
fn store_plain_row(z: u32, r: u32, o: ColumnOffsets, v0: vec4<f32>, v1: vec4<f32>,
                   v2: vec4<f32>, v3: vec4<f32>) {
    let base = row_base(z, r);
    let st = row_affine(r);
    store_plain4(base + o.o0, v0, st);
    store_plain4(base + o.o1, v1, st);
    store_plain4(base + o.o2, v2, st);
    store_plain4(base + o.o3, v3, st);
}

// The row's affine map and clamp on four values (conv_3x3_sg's store too).
fn affine_activate4(v: vec4<f32>, st: vec2<f32>) -> vec4<f32> {
    return activate4(fma(v, vec4<f32>(st.x), vec4<f32>(st.y)), gemm_act(), p.lo, p.hi);
}

fn store_plain4(at: vec4<u32>, v: vec4<f32>, st: vec2<f32>) {
    var x = affine_activate4(v, st);
    if QUAD_STORES {
        if gemm_accumulates() {
            x += c_quads[at.x / 4u];
        }
        c_quads[at.x / 4u] = x;
        return;
    }
    if gemm_accumulates() {
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
    if texture_epilogue() {
        if r < p.m && j < p.n {
            textureStore(c_tex, vec2<u32>(j / 4u, z * p.m + r), v);
        }
        return;
    }
    if pooled_epilogue() {
        store_pooled(z, r, j, v);
        return;
    }
    store_split(z, split, r, j, v.x);
    store_split(z, split, r, j + 1u, v.y);
    store_split(z, split, r, j + 2u, v.z);
    store_split(z, split, r, j + 3u, v.w);
}
