// shared/conv_io.wgsl: the bindings and loads of conv/'s kernels (after the prelude and
// shared/conv_params.wgsl): x, w, b, y, grad_y and grad_w, read from storage buffers or, with
// TEXTURE_INPUTS, from their texture copies; and the stores and window lookups they share.

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// The direct kernels read x, w and grad_y from storage buffers, or with TEXTURE_INPUTS from
// their texture copies, bound as read-only storage textures (`x_texel`: a gather instead of a
// per-lane storage-buffer loop on CPU adapters; on lavapipe a storage-image load is inlined,
// a sampled fetch is a call with per-lane mip arithmetic). The host binds placeholders for the
// side it does not use. im2col reads x's copy here too.
override TEXTURE_INPUTS: bool = false;
@group(0) @binding(11) var x_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(12) var w_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(13) var grad_y_tex: texture_storage_2d<rgba32float, read>;

// Texel q of each copy (see `flat_xy`).
fn x_texel(q: u32) -> vec4<f32> {
    return textureLoad(x_tex, flat_xy(q));
}

fn w_texel(q: u32) -> vec4<f32> {
    return textureLoad(w_tex, flat_xy(q));
}

fn grad_y_texel(q: u32) -> vec4<f32> {
    return textureLoad(grad_y_tex, flat_xy(q));
}

// Value i of x's copy.
fn x_value(i: u32) -> f32 {
    return x_texel(i / 4u)[i % 4u];
}

// Columns c0 .. c0 + 3 of the row at flat index `base` of x's texture copy (two texel
// fetches), zero outside [0, width) and when !ok.
fn x_row4(base: u32, c0: i32, width: u32, ok: bool) -> vec4<f32> {
    let s = i32(base) + c0;
    let q = s >> 2u;
    let v = from_offset(x_texel(u32(max(q, 0))), x_texel(u32(q + 1)), u32(s & 3));
    let cols = vec4<i32>(c0) + vec4<i32>(0, 1, 2, 3);
    let inside = cols >= vec4<i32>(0) & cols < vec4<i32>(i32(width));
    return select(vec4<f32>(0.0), v, vec4<bool>(ok) & inside);
}

// Columns c0 .. c0 + 7 of a row of x under a 2x2 window (im2col_pooled, pooled_forward).
struct PatchRow {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// Row r (zeros outside x) of channel plane `plane` (its first row's index), columns c0 ..
// c0 + 3: x_row4.
fn patch_row4(plane: u32, r: i32, c0: i32) -> vec4<f32> {
    let last = i32(p.in_h) - 1;
    return x_row4((plane + u32(clamp(r, 0, last))) * p.in_w, c0, p.in_w, r >= 0 && r <= last);
}

// The same for columns c0 .. c0 + 7.
fn patch_row(plane: u32, r: i32, c0: i32) -> PatchRow {
    return PatchRow(patch_row4(plane, r, c0), patch_row4(plane, r, c0 + 4));
}

// The row one column on: column c0 + 1 first.
fn patch_shift(r: PatchRow) -> PatchRow {
    return PatchRow(vec4<f32>(r.lo.yzw, r.hi.x), vec4<f32>(r.hi.yzw, 0.0));
}

fn load_x(i: u32) -> f32 {
    if TEXTURE_INPUTS {
        return x_value(i);
    }
    return x[i];
}

fn load_w(i: u32) -> f32 {
    if TEXTURE_INPUTS {
        return w_texel(i / 4u)[i % 4u];
    }
    return w[i];
}

@group(0) @binding(5) var<storage, read> grad_y: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_w: array<f32>;

fn load_grad_y(i: u32) -> f32 {
    if TEXTURE_INPUTS {
        return grad_y_texel(i / 4u)[i % 4u];
    }
    return grad_y[i];
}

// The window position that puts tap k on input coordinate i (as tap_source, with divmod24).
fn tap_window(i: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dil);
    let qr = divmod24(u32(max(t, 0)), stride);
    return select(-1, i32(qr.x), t >= 0 && qr.y == 0u && qr.x < size);
}

// The forward kernels' epilogue on four sums of output channel c: the bias (has_bias 1), or
// batch norm folded in as the channel's scale and shift (has_bias 3), then the clamp.
fn conv_out4(c: u32, acc: vec4<f32>) -> vec4<f32> {
    return conv_apply4(acc, conv_affine(c));
}

// Output channel c's (scale, shift) for conv_apply4: b[c] is read once for both modes (lavapipe
// runs both branches, each load lane by lane; without a bias, b is a placeholder). BIAS fixes
// the mode with the pipeline where the host knows it (4: p.has_bias at run time).
override BIAS: u32 = 4u;

fn conv_affine(c: u32) -> vec2<f32> {
    let mode = select(p.has_bias, BIAS, BIAS < 4u);
    if mode == 0u {
        return vec2<f32>(1.0, 0.0);
    }
    let first = b[c];
    if mode == 3u {
        return vec2<f32>(first, b[p.c_out + c]);
    }
    return vec2<f32>(1.0, select(0.0, first, mode == 1u));
}

// The clamp a launch applies where the host fixes it with the pipeline (0 none, 1 ReLU, 2
// [act_lo, act_hi]; 3: p.act at run time): lavapipe computes every clamp a run-time kind could
// pick, for every output.
override ACT: u32 = 3u;

fn conv_apply4(acc: vec4<f32>, st: vec2<f32>) -> vec4<f32> {
    let kind = select(p.act, ACT, ACT < 3u);
    return activate4(fma(acc, vec4<f32>(st.x), vec4<f32>(st.y)), kind, p.act_lo, p.act_hi);
}

// Where invocation idx of a depthwise kernel over strips writes: `rows` output rows from row0
// and `cols` columns from col0 of plane nc (channel c) of its source, and plane `out` of the
// tensor it writes, on a grid of N * C * ceil(out_h / rows) * ceil(out_w / cols) (2-D). A
// source too big for one texture copy is copied and dispatched a chunk of samples at a time,
// from sample p.n_offset on (direct.rs's `record_by_samples`): nc counts from the chunk's
// first plane, `out` from the output's.
struct Strip {
    nc: u32,
    c: u32,
    row0: u32,
    col0: u32,
    out: u32,
}

fn strip_at(idx: u32, rows: u32, cols: u32) -> Strip {
    let at = split3(idx, 1u, (p.out_h + rows - 1u) / rows, (p.out_w + cols - 1u) / cols);
    let c = divmod24(at.x, p.c_out).y;
    return Strip(at.x, c, at.z * rows, at.w * cols, at.x + p.n_offset * p.c_out);
}

// Stores four values of a row, y[at + col0 ..], those from column `width` on left out.
fn dw_store(at: u32, col0: u32, width: u32, v: vec4<f32>) {
    for (var e = 0u; e < 4u; e++) {
        if col0 + e < width {
            y[at + col0 + e] = v[e];
        }
    }
}

// x's rows in its texture copy where in_w is a multiple of 4 (set by the host): a run of four
// from a multiple of 4 is one texel (`depthwise_3x3_s2_strips`). The strip kernels' stores are
// in shared/strip_stores.wgsl or shared/strip_stores_wide.wgsl.
override IN_QUADS: bool = false;
