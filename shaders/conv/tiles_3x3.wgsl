// conv/tiles_3x3.wgsl: 3x3 convolutions as 4x4 output tiles, forward (with a fused ReLU and
// 2x2 max-pool) and backward.
//
// convolutions and for few input channels, where a GEMM's K (C_in / groups * 9) is too short to
// pay for im2col. For each source channel of its group, a tile reads each of its six source
// rows once (three texel fetches for six columns) and feeds up to three output rows with the
// nine weights loaded once, where the direct kernels fetch every input per tap.
// The backward-input pass is the same correlation of grad_y, summed over the group's output
// channels, with the kernel flipped in h and w and padding 2 - pad (needs pad <= 2); along d it
// gathers with tap_window. Both read their source (x forward, grad_y backward) through
// grad_y's bindings, so that one pipeline layout serves both; the backward pass binds a
// placeholder for b.

struct Row6 {
    lo: vec4<f32>,
    hi: vec2<f32>,
}

// Texel q of the source's texture copy.
fn dw_texel(q: i32) -> vec4<f32> {
    return grad_y_texel(u32(max(q, 0)));
}

// A 3x3 kernel's weights w[wb .. wb + 9] as three rows of three: three texel fetches of w's
// copy where the host made one.
fn tile_weights(wb: u32) -> array<vec3<f32>, 3> {
    if TEXTURE_INPUTS {
        let q = wb / 4u;
        let off = wb % 4u;
        let a = w_texel(q);
        let b = w_texel(q + 1u);
        let c = w_texel(q + 2u);
        let first = from_offset(a, b, off);
        let second = from_offset(b, c, off);
        let last = select(select(select(c.x, c.y, off == 1u), c.z, off == 2u), c.w, off == 3u);
        return array<vec3<f32>, 3>(
            first.xyz,
            vec3<f32>(first.w, second.xy),
            vec3<f32>(second.zw, last),
        );
    }
    var k: array<vec3<f32>, 3>;
    for (var kh = 0u; kh < 3u; kh++) {
        let at = wb + kh * 3u;
        k[kh] = vec3<f32>(load_w(at), load_w(at + 1u), load_w(at + 2u));
    }
    return k;
}

// grad_y[at + col0 .. at + col0 + 4] read through x's bindings (the weight gradient's), zero
// from column `width` on and when !ok: two texel fetches where the host made a copy.
fn tile_row4_x(at: u32, col0: u32, width: u32, ok: bool) -> vec4<f32> {
    var v: vec4<f32>;
    if TEXTURE_INPUTS {
        let s = at + col0;
        v = from_offset(x_texel(s / 4u), x_texel(s / 4u + 1u), s % 4u);
    } else {
        for (var e = 0u; e < 4u; e++) {
            v[e] = x[at + min(col0 + e, width - 1u)];
        }
    }
    let cols = vec4<u32>(col0) + vec4<u32>(0u, 1u, 2u, 3u);
    return select(vec4<f32>(0.0), v, vec4<bool>(ok) & (cols < vec4<u32>(width)));
}

// Columns c0 .. c0 + 5 of the source row whose column 0 is at flat index `base`: zero outside
// [0, width) and when !ok.
fn dw_row6(base: u32, c0: i32, width: u32, ok: bool) -> Row6 {
    var r: Row6;
    if TEXTURE_INPUTS {
        // Three texels hold the six values; `off` says where they start in the first.
        let s = i32(base) + c0;
        let q = s >> 2u;
        let off = s & 3;
        let b = dw_texel(q + 1);
        r.lo = from_offset(dw_texel(q), b, u32(off));
        r.hi = from_offset(b, dw_texel(q + 2), u32(off)).xy;
    } else {
        let last = i32(width) - 1;
        for (var j = 0; j < 6; j++) {
            let v = grad_y[base + u32(clamp(c0 + j, 0, last))];
            if j < 4 {
                r.lo[j] = v;
            } else {
                r.hi[j - 4] = v;
            }
        }
    }
    let cols = vec4<i32>(c0) + vec4<i32>(0, 1, 2, 3);
    let w = i32(width);
    let lo_ok = vec4<bool>(ok) & (cols >= vec4<i32>(0)) & (cols < vec4<i32>(w));
    let hi_cols = cols.xy + vec2<i32>(4);
    let hi_ok = vec2<bool>(ok) & (hi_cols >= vec2<i32>(0)) & (hi_cols < vec2<i32>(w));
    r.lo = select(vec4<f32>(0.0), r.lo, lo_ok);
    r.hi = select(vec2<f32>(0.0), r.hi, hi_ok);
    return r;
}

// Four outputs of one row: the row's three taps with weights k.
fn dw_taps(r: Row6, k: vec3<f32>) -> vec4<f32> {
    return r.lo * k.x + vec4<f32>(r.lo.yzw, r.hi.x) * k.y + vec4<f32>(r.lo.zw, r.hi) * k.z;
}

// One computed 4x4 tile: rows of four values from (row0, col0) of the plane (n, c, depth)
// `plane` of the tensor written.
struct Tile {
    acc: array<vec4<f32>, 4>,
    plane: u32,
    row0: u32,
    col0: u32,
}

// Source row sr of a plane starting at row `plane` (six values from column c0, zero outside
// the plane), for tiles_3x3.
fn tile_source_row(plane: u32, sr: i32, height: u32, width: u32, c0: i32) -> Row6 {
    let ok = sr >= 0 && sr < i32(height);
    return dw_row6((plane + u32(max(sr, 0))) * width, c0, width, ok);
}

// One 4x4 tile: forward (x -> y) or backward-input (grad_y -> grad_x, bound to y).
// `total` = N * C * depth * ceil(height / 4) * ceil(width / 4) of the tensor written.
fn tiles_3x3(idx: u32, bwd: bool) -> Tile {
    // Source (read) and destination (written) plane sizes and channels per group.
    let src_d = select(p.in_d, p.out_d, bwd);
    let src_h = select(p.in_h, p.out_h, bwd);
    let src_w = select(p.in_w, p.out_w, bwd);
    let dst_d = select(p.out_d, p.in_d, bwd);
    let dst_h = select(p.out_h, p.in_h, bwd);
    let dst_w = select(p.out_w, p.in_w, bwd);
    let src_c = select(p.c_in, p.c_out, bwd);
    let dst_c = select(p.c_out, p.c_in, bwd);
    let cin_g = p.c_in / p.groups;
    let src_g = select(cin_g, p.c_out / p.groups, bwd);
    let dst_g = dst_c / p.groups;
    let pad_h = select(i32(p.pad_h), 2 - i32(p.pad_h), bwd);
    let pad_w = select(i32(p.pad_w), 2 - i32(p.pad_w), bwd);
    let at = split3(idx, dst_d, (dst_h + 3u) / 4u, (dst_w + 3u) / 4u);
    let col0 = at.w * 4u;
    let row0 = at.z * 4u;
    let dep = at.y;
    let t = divmod24(at.x, dst_c);
    let n = t.x;
    let dc = t.y;
    // The destination channel's group, and its first source channel.
    let src0 = divmod24(dc, dst_g).x * src_g;
    let c0 = i32(col0) - pad_w;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var j = 0u; j < src_g; j++) {
        let sc = src0 + j;
        // Weight (output channel, input channel within its group).
        var wc: u32;
        if bwd {
            wc = sc * cin_g + divmod24(dc, cin_g).y;
        } else {
            wc = dc * cin_g + j;
        }
        for (var kd = 0u; kd < p.k_d; kd++) {
            // The source depth this tap reads, or -1.
            var sd: i32;
            if bwd {
                sd = tap_window(dep, kd, p.stride_d, p.pad_d, p.dil_d, p.out_d);
            } else {
                let v = i32(dep * p.stride_d + kd * p.dil_d) - i32(p.pad_d);
                sd = select(-1, v, v < i32(p.in_d));
            }
            if sd < 0 {
                continue;
            }
            let wb = (wc * p.k_d + kd) * 9u;
            let k = tile_weights(wb);
            // The three kernel rows (flipped for the backward pass), and the six source rows
            // under the tile, written out: a loop over them would index `k` and pick the
            // accumulators per iteration, which CPU back ends do through memory.
            let k0 = select(k[0], k[2].zyx, bwd);
            let k1 = select(k[1], k[1].zyx, bwd);
            let k2 = select(k[2], k[0].zyx, bwd);
            let plane = ((n * src_c + sc) * src_d + u32(sd)) * src_h;
            let r0 = tile_source_row(plane, i32(row0) - pad_h, src_h, src_w, c0);
            let r1 = tile_source_row(plane, i32(row0) + 1 - pad_h, src_h, src_w, c0);
            let r2 = tile_source_row(plane, i32(row0) + 2 - pad_h, src_h, src_w, c0);
            let r3 = tile_source_row(plane, i32(row0) + 3 - pad_h, src_h, src_w, c0);
            let r4 = tile_source_row(plane, i32(row0) + 4 - pad_h, src_h, src_w, c0);
            let r5 = tile_source_row(plane, i32(row0) + 5 - pad_h, src_h, src_w, c0);
            acc0 += dw_taps(r0, k0) + dw_taps(r1, k1) + dw_taps(r2, k2);
            acc1 += dw_taps(r1, k0) + dw_taps(r2, k1) + dw_taps(r3, k2);
            acc2 += dw_taps(r2, k0) + dw_taps(r3, k1) + dw_taps(r4, k2);
            acc3 += dw_taps(r3, k0) + dw_taps(r4, k1) + dw_taps(r5, k2);
        }
    }
    if !bwd {
        let st = conv_affine(dc);
        acc0 = conv_apply4(acc0, st);
        acc1 = conv_apply4(acc1, st);
        acc2 = conv_apply4(acc2, st);
        acc3 = conv_apply4(acc3, st);
    }
    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    return Tile(rows, (n * dst_c + dc) * dst_d + dep, row0, col0);
}

// Stores a tile into planes of height x width.
fn tile_store(t: Tile, height: u32, width: u32) {
    for (var i = 0u; i < 4u; i++) {
        if t.row0 + i < height {
            dw_store((t.plane * height + t.row0 + i) * width, t.col0, width, t.acc[i]);
        }
    }
}

@compute @workgroup_size(WG)
fn tiles_3x3_forward(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx < p.total {
        tile_store(tiles_3x3(idx, false), p.out_h, p.out_w);
    }
}

// Depthwise 3x3 convolutions of stride 1 (2-D, groups = C_in = C_out): an invocation computes
// STRIP rows of eight outputs down the plane, keeping the three source rows under the current
// output row and reading one more per row (four texel fetches: `strip_row`), where a 4x4 tile
// reads six rows of three for sixteen outputs; its weights and its channel's scale and shift
// are read once for the strip (a storage load costs lane by lane on lavapipe). About 2x a
// tile's speed on MobileNet's layers. It runs STRIP_BLOCKS blocks of STRIP rows in turn:
// `total` = N * C * ceil(out_h / (STRIP * STRIP_BLOCKS)) * ceil(out_w / 8).
const STRIP: u32 = 8u;

// Columns c0 .. c0 + 9 of a source row as two Row6s (c0 .. c0 + 5 and c0 + 4 .. c0 + 9): four
// texel fetches for eight outputs' taps.
struct Row10 {
    a: Row6,
    b: Row6,
}

// Where a row's first value lies in its first texel where the host knows it: with IN_QUADS
// (rows whole texels, col0 a multiple of 8) it is -pad_w & 3 for every row and lane, and
// from_offset's selects fold away (the bench's depthwise layer's strips 1.63 -> 1.55 ms, least
// of 8 rounds); 4: worked out per lane.
override STRIP_SHIFT: u32 = 4u;

fn strip_row(plane: u32, sr: i32, c0: i32) -> Row10 {
    let ok = sr >= 0 && sr < i32(p.in_h);
    let base = (plane + u32(max(sr, 0))) * p.in_w;
    if !TEXTURE_INPUTS {
        return Row10(dw_row6(base, c0, p.in_w, ok), dw_row6(base, c0 + 4, p.in_w, ok));
    }
    let s = i32(base) + c0;
    let q = s >> 2u;
    let off = select(STRIP_SHIFT, u32(s & 3), STRIP_SHIFT > 3u);
    let t1 = dw_texel(q + 1);
    let t2 = dw_texel(q + 2);
    let lo = from_offset(dw_texel(q), t1, off);
    let mid = from_offset(t1, t2, off);
    let hi = from_offset(t2, dw_texel(q + 3), off).xy;
    let w = i32(p.in_w);
    let cols = vec4<i32>(c0) + vec4<i32>(0, 1, 2, 3);
    let in_lo = vec4<bool>(ok) & (cols >= vec4<i32>(0)) & (cols < vec4<i32>(w));
    let mid_cols = cols + vec4<i32>(4);
    let in_mid = vec4<bool>(ok) & (mid_cols >= vec4<i32>(0)) & (mid_cols < vec4<i32>(w));
    let hi_cols = cols.xy + vec2<i32>(8);
    let in_hi = vec2<bool>(ok) & (hi_cols >= vec2<i32>(0)) & (hi_cols < vec2<i32>(w));
    let l = select(vec4<f32>(0.0), lo, in_lo);
    let m = select(vec4<f32>(0.0), mid, in_mid);
    let h = select(vec2<f32>(0.0), hi, in_hi);
    return Row10(Row6(l, m.xy), Row6(m, h));
}

// With FLIPPED the taps reversed in both directions: a depthwise convolution's data gradient
// is this convolution of grad_y (padding 2 - pad) with the flipped kernel.
override FLIPPED: bool = false;

// Blocks of STRIP rows an invocation runs down its column strip (direct.rs's `strip_blocks`:
// a whole plane on CPU adapters where rows are whole texels, each block then fetching 8 new
// rows instead of 10 and the weights, scale and shift read once per plane; else 1).
override STRIP_BLOCKS: u32 = 1u;

@compute @workgroup_size(WG)
fn tiles_3x3_depthwise_strips(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let at = strip_at(idx, STRIP * STRIP_BLOCKS, 8u);
    var k = tile_weights(at.c * 9u);
    if FLIPPED {
        k = array<vec3<f32>, 3>(k[2].zyx, k[1].zyx, k[0].zyx);
    }
    let st = conv_affine(at.c);
    let c0 = i32(at.col0) - i32(p.pad_w);
    let plane = at.nc * p.in_h;
    let top = i32(at.row0) - i32(p.pad_h);
    var carried = StripRows(strip_row(plane, top, c0), strip_row(plane, top + 1, c0));
    // One block without a loop: in one, lavapipe ran MobileNetV2's 7x7 layer 1.3 -> 2.2 ms.
    if STRIP_BLOCKS == 1u {
        strip_block(strip_out_at(at, k, st, at.row0), carried, plane, top, c0);
        return;
    }
    // Down the plane, the two source rows a block shares with the next carried: a loop's
    // carried values cost a masked copy each per iteration on lavapipe, so only these 20.
    let blocks = min(STRIP_BLOCKS, (p.out_h - at.row0 + STRIP - 1u) / STRIP);
    for (var blk = 0u; blk < blocks; blk++) {
        let o = strip_out_at(at, k, st, at.row0 + blk * STRIP);
        carried = strip_block(o, carried, plane, top + i32(blk * STRIP), c0);
    }
}

// The StripOut of the block of `at`'s column whose first output row is row0.
fn strip_out_at(at: Strip, k: array<vec3<f32>, 3>, st: vec2<f32>, row0: u32) -> StripOut {
    let at_row = (at.out * p.out_h + row0) * p.out_w;
    return StripOut(k, st, at_row, at.col0, min(STRIP, p.out_h - row0));
}

// Two consecutive source rows.
struct StripRows {
    a: Row10,
    b: Row10,
}

// A block's eight output rows from source rows top .. top + 9, of which the first two are
// given; returns the last two. Written out row by row (STRIP = 8): a loop's carried rows
// would cost a masked copy of each value every row on lavapipe (about 1.1x).
fn strip_block(o: StripOut, first: StripRows, plane: u32, top: i32, c0: i32) -> StripRows {
    let r0 = first.a;
    let r1 = first.b;
    let r2 = strip_row(plane, top + 2, c0);
    strip_out(o, r0, r1, r2, 0u);
    let r3 = strip_row(plane, top + 3, c0);
    strip_out(o, r1, r2, r3, 1u);
    let r4 = strip_row(plane, top + 4, c0);
    strip_out(o, r2, r3, r4, 2u);
    let r5 = strip_row(plane, top + 5, c0);
    strip_out(o, r3, r4, r5, 3u);
    let r6 = strip_row(plane, top + 6, c0);
    strip_out(o, r4, r5, r6, 4u);
    let r7 = strip_row(plane, top + 7, c0);
    strip_out(o, r5, r6, r7, 5u);
    let r8 = strip_row(plane, top + 8, c0);
    strip_out(o, r6, r7, r8, 6u);
    let r9 = strip_row(plane, top + 9, c0);
    strip_out(o, r7, r8, r9, 7u);
    return StripRows(r8, r9);
}

// What a strip's rows share: the weights, the channel's scale and shift, where its first row
// goes in the output, its first column, and how many of its rows lie inside the plane.
struct StripOut {
    k: array<vec3<f32>, 3>,
    st: vec2<f32>,
    at_row: u32,
    col0: u32,
    rows: u32,
}

// Output row i of a strip from its three source rows, stored if it lies inside the plane.
fn strip_out(o: StripOut, r0: Row10, r1: Row10, r2: Row10, i: u32) {
    let acc_a = dw_taps(r0.a, o.k[0]) + dw_taps(r1.a, o.k[1]) + dw_taps(r2.a, o.k[2]);
    let acc_b = dw_taps(r0.b, o.k[0]) + dw_taps(r1.b, o.k[1]) + dw_taps(r2.b, o.k[2]);
    if i < o.rows {
        let at = o.at_row + i * p.out_w;
        strip_store8(at, o.col0, conv_apply4(acc_a, o.st), conv_apply4(acc_b, o.st));
    }
}

@group(0) @binding(7) var<storage, read_write> pool_indices: array<i32>;

// tiles_3x3_forward, then ReLU and a 2x2 max-pool of stride 2 over each tile's four windows,
// into (pool_h, pool_w) planes: the conv output is never stored. With pool_indices != 0 each
// window's first maximum's flat index in the conv output plane goes to pool_indices (-1 where
// the ReLU was off), as max-pool backward takes them. 2-D convolutions (out_d = 1).
@compute @workgroup_size(WG)
fn tiles_3x3_forward_relu_pool(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let t = tiles_3x3(idx, false);
    for (var a = 0u; a < 2u; a++) {
        let pr = t.row0 / 2u + a;
        let top = max(t.acc[2u * a], vec4<f32>(0.0));
        let bottom = max(t.acc[2u * a + 1u], vec4<f32>(0.0));
        for (var e = 0u; e < 2u; e++) {
            let pc = t.col0 / 2u + e;
            if pr >= p.pool_h || pc >= p.pool_w {
                continue;
            }
            let v = vec4<f32>(top[2u * e], top[2u * e + 1u], bottom[2u * e], bottom[2u * e + 1u]);
            let m = first_max4(v);
            let at = (t.plane * p.pool_h + pr) * p.pool_w + pc;
            y[at] = m.value;
            if p.pool_indices != 0u {
                let flat = (2u * pr + m.lane / 2u) * p.out_w + 2u * pc + m.lane % 2u;
                pool_indices[at] = select(-1, i32(flat), m.value > 0.0);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn tiles_3x3_backward_input(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx < p.total {
        tile_store(tiles_3x3(idx, true), p.in_h, p.in_w);
    }
}

var<workgroup> dw_sums: array<vec3<f32>, 192>;

// grad_w of the 3x3 tiles' convolutions: one workgroup of 64 per weight slot (output channel,
// input channel within its group, depth tap); each invocation takes 4x4 tiles of grad_y in
// turn, reads the tile's six x rows once and adds all nine taps' products, then the workgroup
// adds its 64 partial sums up. x comes through grad_y's bindings (the source dw_row6 reads)
// and grad_y through x's. `total` = tiles per slot: N * out_d * ceil(out_h / 4) *
// ceil(out_w / 4). It shares its body with the pooled variant below, so it binds
// `pool_indices` too (a placeholder).
@compute @workgroup_size(64)
fn tiles_3x3_backward_weight(invocation: Invocation) {
    tiles_weight_slot(workgroup_index(invocation), invocation.lid, false);
}

// The same with one invocation per weight slot, looping over all of its tiles: for slots of
// few tiles (the host's LANE_SUMS), where a workgroup's lanes would mostly idle, and on
// CPU adapters, whose workgroups run their lanes one after another anyway.
@compute @workgroup_size(WG)
fn tiles_3x3_backward_weight_lanes(invocation: Invocation) {
    let slot = linear_index(invocation);
    if slot >= p.c_out * (p.c_in / p.groups) * p.k_d { return; }
    let s = tiles_weight_sums(slot, 0u, 1u, false);
    let at = slot * 9u;
    grad_w[at] = s.g0.x;
    grad_w[at + 1u] = s.g0.y;
    grad_w[at + 2u] = s.g0.z;
    grad_w[at + 3u] = s.g1.x;
    grad_w[at + 4u] = s.g1.y;
    grad_w[at + 5u] = s.g1.z;
    grad_w[at + 6u] = s.g2.x;
    grad_w[at + 7u] = s.g2.y;
    grad_w[at + 8u] = s.g2.z;
}

// The same for tiles_3x3_forward_relu_pool's convolution (2-D), from the pooled gradient
// (through x's bindings) and the saved argmax (`pool_indices`, -1 where the ReLU was off):
// each 4x4 tile holds four whole windows, so grad_y is never written out un-pooled.
@compute @workgroup_size(64)
fn tiles_3x3_backward_weight_pooled(invocation: Invocation) {
    tiles_weight_slot(workgroup_index(invocation), invocation.lid, true);
}

// Row oh, columns col0 .. col0 + 3 (col0 a multiple of 4) of the gradient at the output of a
// fused conv -> ReLU -> 2x2 max-pool: two windows' pooled gradients at their argmax, zero
// elsewhere and outside every window.
fn pooled_row4(n: u32, co: u32, oh: u32, col0: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    let ph = oh / 2u;
    if oh >= p.out_h || ph >= p.pool_h {
        return v;
    }
    let plane = (n * p.c_out + co) * p.pool_h * p.pool_w + ph * p.pool_w;
    for (var e = 0u; e < 2u; e++) {
        let pw = col0 / 2u + e;
        if pw < p.pool_w {
            let g = load_x(plane + pw);
            let chosen = pool_indices[plane + pw];
            let first = i32(oh * p.out_w + col0 + 2u * e);
            v[2u * e] = select(0.0, g, chosen == first);
            v[2u * e + 1u] = select(0.0, g, chosen == first + 1);
        }
    }
    return v;
}

// The three kernel rows' sums of a weight slot over tiles first, first + step, ... of grad_y.
struct TapRows {
    g0: vec3<f32>,
    g1: vec3<f32>,
    g2: vec3<f32>,
}

fn tiles_weight_sums(slot: u32, first: u32, step: u32, pooled: bool) -> TapRows {
    let cin_g = p.c_in / p.groups;
    let slots = p.c_out * cin_g * p.k_d;
    var t0 = divmod24(min(slot, slots - 1u), p.k_d);
    let kd = t0.y;
    t0 = divmod24(t0.x, cin_g);
    let co = t0.x;
    // x's channel: the output channel's group's first input channel, plus t0.y.
    let ci = divmod24(co, p.c_out / p.groups).x * cin_g + t0.y;
    let col_tiles = (p.out_w + 3u) / 4u;
    let row_tiles = (p.out_h + 3u) / 4u;
    var g0 = vec3<f32>(0.0);
    var g1 = vec3<f32>(0.0);
    var g2 = vec3<f32>(0.0);
    for (var tile = first; tile < p.total; tile += step) {
        let at = split3(tile, p.out_d, row_tiles, col_tiles);
        let col0 = at.w * 4u;
        let row0 = at.z * 4u;
        let od = at.y;
        let n = at.x;
        let id = i32(od * p.stride_d + kd * p.dil_d) - i32(p.pad_d);
        if id < 0 || id >= i32(p.in_d) {
            continue;
        }
        // The six x rows under the tile and its four grad_y rows, written out (as in
        // tiles_3x3: no arrays indexed in loops).
        let plane = ((n * p.c_in + ci) * p.in_d + u32(id)) * p.in_h;
        let c0 = i32(col0) - i32(p.pad_w);
        let r = i32(row0) - i32(p.pad_h);
        let x0 = tile_source_row(plane, r, p.in_h, p.in_w, c0);
        let x1 = tile_source_row(plane, r + 1, p.in_h, p.in_w, c0);
        let x2 = tile_source_row(plane, r + 2, p.in_h, p.in_w, c0);
        let x3 = tile_source_row(plane, r + 3, p.in_h, p.in_w, c0);
        let x4 = tile_source_row(plane, r + 4, p.in_h, p.in_w, c0);
        let x5 = tile_source_row(plane, r + 5, p.in_h, p.in_w, c0);
        let gy_plane = ((n * p.c_out + co) * p.out_d + od) * p.out_h;
        let y0 = tile_grad_row(pooled, n, co, gy_plane, row0, col0);
        let y1 = tile_grad_row(pooled, n, co, gy_plane, row0 + 1u, col0);
        let y2 = tile_grad_row(pooled, n, co, gy_plane, row0 + 2u, col0);
        let y3 = tile_grad_row(pooled, n, co, gy_plane, row0 + 3u, col0);
        g0 += dw_products(x0, y0) + dw_products(x1, y1) + dw_products(x2, y2)
            + dw_products(x3, y3);
        g1 += dw_products(x1, y0) + dw_products(x2, y1) + dw_products(x3, y2)
            + dw_products(x4, y3);
        g2 += dw_products(x2, y0) + dw_products(x3, y1) + dw_products(x4, y2)
            + dw_products(x5, y3);
    }
    return TapRows(g0, g1, g2);
}

fn tiles_weight_slot(slot: u32, lid: u32, pooled: bool) {
    let slots = p.c_out * (p.c_in / p.groups) * p.k_d;
    let s = tiles_weight_sums(slot, lid, 64u, pooled);
    dw_sums[lid * 3u] = s.g0;
    dw_sums[lid * 3u + 1u] = s.g1;
    dw_sums[lid * 3u + 2u] = s.g2;
    // One barrier, then invocation j < 3 adds up kernel row j's 64 partial sums (on CPU
    // adapters each barrier switches between all of the workgroup's subgroups).
    workgroupBarrier();
    if lid < 3u && slot < slots {
        var v = vec3<f32>(0.0);
        for (var i = 0u; i < 64u; i++) {
            v += dw_sums[i * 3u + lid];
        }
        grad_w[slot * 9u + lid * 3u] = v.x;
        grad_w[slot * 9u + lid * 3u + 1u] = v.y;
        grad_w[slot * 9u + lid * 3u + 2u] = v.z;
    }
}

// Row oh of grad_y's tile at col0 for tiles_weight_slot: from the pooled gradient and its
// argmax when `pooled`, else from plane row gy_plane + oh (zero past the plane).
fn tile_grad_row(pooled: bool, n: u32, co: u32, gy_plane: u32, oh: u32, col0: u32) -> vec4<f32> {
    if pooled {
        return pooled_row4(n, co, oh, col0);
    }
    let at = (gy_plane + min(oh, p.out_h - 1u)) * p.out_w;
    return tile_row4_x(at, col0, p.out_w, oh < p.out_h);
}

// The three taps' sums of products of one x row (six columns) with four grad_y values.
fn dw_products(r: Row6, gy: vec4<f32>) -> vec3<f32> {
    let s1 = vec4<f32>(r.lo.yzw, r.hi.x);
    let s2 = vec4<f32>(r.lo.zw, r.hi);
    return vec3<f32>(dot(r.lo, gy), dot(s1, gy), dot(s2, gy));
}
