// gemm/pack.wgsl: copies a strided view of a storage buffer into an rgba32f texture, four
// consecutive columns per texel, in the layout the texture GEMMs read (rows of a batch stacked,
// zero beyond the view's rows and columns).

struct PackParams {
    rows: u32,
    cols: u32,
    // Texture rows per batch (>= rows: the extra rows are zero) and texels per row.
    tex_rows: u32,
    tex_cols: u32,
    batch: u32,
    offset: u32,
    batch_stride: u32,
    // Element (r, c) of batch z is at offset + z*batch_stride + (r / row_split)*row_split_stride
    // + (r % row_split)*row_stride + (c / col_split)*col_split_stride + (c % col_split)*col_stride.
    row_stride: u32,
    row_split: u32,
    row_split_stride: u32,
    col_stride: u32,
    col_split: u32,
    col_split_stride: u32,
}

@group(0) @binding(0) var<uniform> pp: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var packed: texture_storage_2d<rgba32float, write>;

fn pack_element(z: u32, r: u32, c: u32) -> f32 {
    if r >= pp.rows || c >= pp.cols {
        return 0.0;
    }
    let rs = divmod24(r, pp.row_split);
    let cs = divmod24(c, pp.col_split);
    let i = pp.offset + z * pp.batch_stride + rs.x * pp.row_split_stride + rs.y * pp.row_stride
        + cs.x * pp.col_split_stride + cs.y * pp.col_stride;
    return src[i];
}

// Texel q of texture row `row` (rows of all batches stacked).
fn pack_texel(q: u32, row: u32) {
    let zr = divmod24(row, pp.tex_rows);
    let z = zr.x;
    let r = zr.y;
    let c = q * 4u;
    let v = vec4<f32>(pack_element(z, r, c), pack_element(z, r, c + 1u),
                      pack_element(z, r, c + 2u), pack_element(z, r, c + 3u));
    textureStore(packed, vec2<u32>(q, row), v);
}

// One texel per invocation: grid (tex_cols, tex_rows * batch), 64 texels of one row per
// workgroup (row-major stores; see conv/im2col.wgsl's im2col_texture).
@compute @workgroup_size(64, 1, 1)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x >= pp.tex_cols || gid.y >= pp.tex_rows * pp.batch { return; }
    pack_texel(gid.x, gid.y);
}

// The same for textures narrower than a workgroup (a transposed operand of a few texels per
// row, e.g. grad_y^T for a weight gradient), where `pack` would leave most invocations idle:
// 64 consecutive texels in row-major order per workgroup, over a 2-D grid of workgroups
// (`linear_index`). Fewer than 2^24 texels (rows below 2^18).
@compute @workgroup_size(64, 1, 1)
fn pack_narrow(invocation: Invocation) {
    let idx = workgroup_index(invocation) * 64u + invocation.lid;
    if idx >= pp.tex_cols * pp.tex_rows * pp.batch { return; }
    let at = divmod24(idx, pp.tex_cols);
    pack_texel(at.y, at.x);
}

@group(0) @binding(3) var<storage, read> src4: array<vec4<f32>>;

// The same for a matrix stored by columns (row_stride 1, no column splits, one batch;
// col_stride, offset, and row_split and row_split_stride where rows split, multiples of 4:
// W^T for a data gradient, K x C_out, or grad_y^T for a weight gradient, positions x C_out
// split by sample): texel (q, r) holds columns
// 4q .. 4q + 3 of row r, four values a whole matrix row apart, which `pack_texel` reads as
// four scalar loads, each a loop over the lanes on CPU adapters. An invocation takes a block
// of four rows instead: four quads (one per column, rows 4b .. 4b + 3) transposed into four
// texels. 64 invocations per workgroup along a texture row (q fastest); tex_cols *
// ceil(tex_rows / 4) of them, fewer than 2^24.
@compute @workgroup_size(64, 1, 1)
fn pack_columns4(invocation: Invocation) {
    let idx = workgroup_index(invocation) * 64u + invocation.lid;
    if idx >= pp.tex_cols * ((pp.tex_rows + 3u) / 4u) { return; }
    let at = divmod24(idx, pp.tex_cols);
    let q = at.y;
    let r0 = 4u * at.x;
    let v0 = column_quad(4u * q, r0);
    let v1 = column_quad(4u * q + 1u, r0);
    let v2 = column_quad(4u * q + 2u, r0);
    let v3 = column_quad(4u * q + 3u, r0);
    store_row(q, r0, vec4<f32>(v0.x, v1.x, v2.x, v3.x));
    store_row(q, r0 + 1u, vec4<f32>(v0.y, v1.y, v2.y, v3.y));
    store_row(q, r0 + 2u, vec4<f32>(v0.z, v1.z, v2.z, v3.z));
    store_row(q, r0 + 3u, vec4<f32>(v0.w, v1.w, v2.w, v3.w));
}

// Rows r0 .. r0 + 3 of column c, within one row split (zero past the columns; rows past
// pp.rows are dropped by store_row).
fn column_quad(c: u32, r0: u32) -> vec4<f32> {
    let row = (r0 / pp.row_split) * pp.row_split_stride + r0 % pp.row_split;
    return select(vec4<f32>(0.0), src4[(pp.offset + c * pp.col_stride + row) / 4u], c < pp.cols);
}

fn store_row(q: u32, r: u32, t: vec4<f32>) {
    if r < pp.tex_rows {
        textureStore(packed, vec2<u32>(q, r), select(vec4<f32>(0.0), t, r < pp.rows));
    }
}
