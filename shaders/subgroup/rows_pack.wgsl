// subgroup/rows_pack.wgsl: the operands of subgroup/conv_3x3_sg.wgsl's kernels (after the
// prelude, shared/conv_params.wgsl and shared/gemm_epilogue.wgsl, whose bindings they use).
// Nothing here needs subgroups; the files sit together because only those kernels read them.
// - pack_texel_rows: a tensor in rows of texels (conv_3x3_sg_r16's and wgrad_3x3_sg's source);
// - pack_conv_3x3, pack_dgrad_3x3: a 3x3 weight as conv_3x3_sg_r16's A;
// - pack_phase_rows, pack_conv_rows: any other 2-D convolution's input, split by phase into
//   channels of three taps, and its weight to match (conv_3x3_sg_r16 with p.margin).

@group(0) @binding(12) var<storage, read> partial4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read_write> packed4: array<vec4<f32>>;

// pack_texel_rows: a buffer (bound as `bias`) of rows of W values, from value p.c_offset on,
// into rows of W4 = ceil(W / 4) texels, zeros past W (flat, at flat_xy): the layout
// conv_3x3_sg_r16 and wgrad_3x3_sg read. p.conv.in_w = W, p.conv.total texels.
@compute @workgroup_size(WG)
fn pack_texel_rows(invocation: Invocation) {
    let q = linear_index(invocation);
    if q >= p.conv.total { return; }
    let w4 = (p.conv.in_w + 3u) / 4u;
    let t = q % w4;
    let at = p.c_offset + (q / w4) * p.conv.in_w + 4u * t;
    let count = p.conv.in_w - 4u * t;
    var v = vec4<f32>(bias[at], 0.0, 0.0, 0.0);
    if count > 1u {
        v.y = bias[at + 1u];
    }
    if count > 2u {
        v.z = bias[at + 2u];
    }
    if count > 3u {
        v.w = bias[at + 3u];
    }
    textureStore(c_tex, flat_xy(q), v);
}

// pack_sample_rows: the same rows with S = 4 / W samples side by side (W = p.conv.in_w, 1 or
// 2: shared/texel_rows.wgsl's ROW_SAMPLES), zeros past the chunk's p.conv.n samples: texel
// (n, c, h) holds row h of channel c of samples S n .. S n + S - 1, from the buffer (bound as
// `bias`) of samples of p.conv.c_in channels of p.conv.in_h rows from value p.c_offset on.
// p.conv.total texels.
@compute @workgroup_size(WG)
fn pack_sample_rows(invocation: Invocation) {
    let q = linear_index(invocation);
    if q >= p.conv.total { return; }
    let w = p.conv.in_w;
    let rows = p.conv.c_in * p.conv.in_h;
    let nr = divmod24(q, rows);
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let n = nr.x * (4u / w) + i / w;
        if n < p.conv.n {
            v[i] = bias[p.c_offset + (n * rows + nr.y) * w + i % w];
        }
    }
    textureStore(c_tex, flat_xy(q), v);
}

// pack_conv_3x3 and pack_dgrad_3x3: conv_3x3_sg_r16's A from a 3x3 weight (bound as
// `partial4`, (C_out, C_in, 3, 3)) in that kernel's view (p.conv.c_in rows, p.conv.c_out =
// K_C), whose tap row j reads source row h + j - 1. For a forward pass (rows o, K_C = C_in)
// texel (3 c + j, o) = (W[o, c, j, 2], W[o, c, j, 1], W[o, c, j, 0], 0) (a.x multiplies the
// source at w + 1); for a data gradient (rows c, K_C = C_out) the kernel flipped: texel
// (3 o + j, c) = (W[o, c, 2 - j, 0..3], 0). The texels go to `packed4`, p.c_row_stride
// texels per row, which the host then copies into the texture: on lavapipe a texel stored
// to a storage texture costs about three times one stored to a buffer, and the copy runs at
// memory speed. One invocation per kernel (row, kc), p.conv.total = rows * K_C of them (below
// 2^24), its nine weights read as three quads: a load costs a loop over the lanes whatever
// its width (a texel per invocation, with three scalar loads and integer divisions that run
// lane by lane, took twice as long; four kernels per invocation, nine aligned quads, no
// faster).
@compute @workgroup_size(WG)
fn pack_conv_3x3(invocation: Invocation) {
    pack_3x3_pair(linear_index(invocation), true);
}

@compute @workgroup_size(WG)
fn pack_dgrad_3x3(invocation: Invocation) {
    pack_3x3_pair(linear_index(invocation), false);
}

fn pack_3x3_pair(idx: u32, forward: bool) {
    if idx >= p.conv.total { return; }
    let rk = divmod24(idx, p.conv.c_out);
    let row = rk.x;
    let kc = rk.y;
    // The kernel's nine weights: W[row, kc] forward, W[kc, row] for a data gradient.
    var at = (kc * p.conv.c_in + row) * 9u;
    if forward {
        at = (row * p.conv.c_out + kc) * 9u;
    }
    let o = at % 4u;
    let q0 = partial4[at / 4u];
    let q1 = partial4[at / 4u + 1u];
    let q2 = partial4[at / 4u + 2u];
    // Weights 0 .. 3, 4 .. 7 and 8 (row-major over (kh, kw)).
    let a = from_offset(q0, q1, o);
    let b = from_offset(q1, q2, o);
    let w8 = q2[o];
    let t = row * p.c_row_stride + 3u * kc;
    if forward {
        // Each kernel row reversed.
        packed4[t] = vec4<f32>(a.z, a.y, a.x, 0.0);
        packed4[t + 1u] = vec4<f32>(b.y, b.x, a.w, 0.0);
        packed4[t + 2u] = vec4<f32>(w8, b.w, b.z, 0.0);
    } else {
        // The rows in reverse order.
        packed4[t] = vec4<f32>(b.zw, w8, 0.0);
        packed4[t + 1u] = vec4<f32>(a.w, b.xy, 0.0);
        packed4[t + 2u] = vec4<f32>(a.xyz, 0.0);
    }
}

// Phase rows (p.conv the layer's own geometry: stride s = stride_w, kernel k_w, padding
// pad_w). Output column j's tap kw reads input column s * j + kw - pad = s * (j + d) + f, with
// phase f = (kw - pad) mod s and d = floor((kw - pad) / s): one phase's taps read one
// subsampled row x_f[i] = x[s * i + f] at offsets d. Each phase's offsets, three consecutive
// ones at a time from its lowest (d0, d0 + 1, d0 + 2), make a group: a source channel of
// conv_3x3_sg_r16 holding R[j] = x_f[j + d0 + 1], whose three taps (at j + 1, j, j - 1) are
// those offsets. Input channel c's groups are source channels c * G .. c * G + G
// (gconv::ops::conv::subgroup_3x3::phase_groups counts G the same way).
struct PhaseGroup {
    phase: i32,
    first: i32,
}

// floor(a / b) for b > 0.
fn floor_div(a: i32, b: i32) -> i32 {
    let q = a / b;
    return select(q, q - 1, a % b != 0 && a < 0);
}

fn phase_group(g: u32) -> PhaseGroup {
    let s = i32(p.conv.stride_w);
    let pad = i32(p.conv.pad_w);
    var left = i32(g);
    for (var f = 0; f < s; f++) {
        // The phase's offsets run from ceil((-pad - f) / s) to floor((k_w - 1 - pad - f) / s).
        let lo = floor_div(s - 1 - pad - f, s);
        let hi = floor_div(i32(p.conv.k_w) - 1 - pad - f, s);
        let groups = max(hi - lo + 3, 0) / 3;
        if left < groups {
            return PhaseGroup(f, lo + 3 * left);
        }
        left -= groups;
    }
    return PhaseGroup(0, 0);
}

// pack_phase_rows: x (bound as `bias`, from value p.c_offset on: sample n_offset's first) in
// conv_3x3_sg_r16's margined source rows: texel ((n * C_in * G + k) * H + r) * WS + t holds
// R_k[4 (t - 1) .. 4 t] of input row r (WS = ceil(out_w / 4) + 2: a texel of margin at each
// end), zeros outside the input. One invocation per row (its index arithmetic, integer
// divisions that lavapipe runs lane by lane, once for WS texels); p.conv.total rows, p.k4 = G.
@compute @workgroup_size(WG)
fn pack_phase_rows(invocation: Invocation) {
    let row = linear_index(invocation);
    if row >= p.conv.total { return; }
    let ws = (p.conv.out_w + 3u) / 4u + 2u;
    let r = row % p.conv.in_h;
    // Source channel n * C_in * G + k: input channel n * C_in + k / G.
    let k = row / p.conv.in_h;
    let pg = phase_group(k % p.k4);
    let s = i32(p.conv.stride_w);
    let w = i32(p.conv.in_w);
    let base = vec4<i32>(i32(p.c_offset + ((k / p.k4) * p.conv.in_h + r) * p.conv.in_w));
    // Texel t's four columns, loaded clamped into the row.
    var cols = vec4<i32>(0, s, 2 * s, 3 * s) + vec4<i32>(s * (pg.first - 3) + pg.phase);
    for (var t = 0u; t < ws; t++) {
        let inside = cols >= vec4<i32>(0) & cols < vec4<i32>(w);
        let at = base + clamp(cols, vec4<i32>(0), vec4<i32>(w - 1));
        let v = vec4<f32>(bias[at.x], bias[at.y], bias[at.z], bias[at.w]);
        textureStore(c_tex, flat_xy(row * ws + t), select(vec4<f32>(0.0), v, inside));
        cols += vec4<i32>(4 * s);
    }
}

// pack_conv_rows: conv_3x3_sg_r16's A for the phase rows above from a weight (bound as `bias`,
// (C_out, C_in, k_h, k_w)): texel (k * k_h + kh, o) for source channel k = c * G + g holds the
// weights W[o, c, kh, kw] of the group's offsets d0 + 2, d0 + 1, d0 (taps at j + 1, j, j - 1),
// zero where no tap kw = s * d + f + pad exists, and in w which slots hold one. One
// invocation per texel, p.conv.total = C_out * C_in * G * k_h of them; p.k4 = G.
@compute @workgroup_size(WG)
fn pack_conv_rows(invocation: Invocation) {
    let q = linear_index(invocation);
    if q >= p.conv.total { return; }
    let cols = p.conv.c_in * p.k4 * p.conv.k_h;
    let o = q / cols;
    let u = q % cols;
    let kh = u % p.conv.k_h;
    let k = u / p.conv.k_h;
    let pg = phase_group(k % p.k4);
    let s = i32(p.conv.stride_w);
    let base = ((o * p.conv.c_in + k / p.k4) * p.conv.k_h + kh) * p.conv.k_w;
    // w: which of the three slots hold a tap, as bits (conv_3x3_sg_r16's TAP_MASK).
    var v = vec4<f32>(0.0);
    var slots = 0u;
    for (var e = 0; e < 3; e++) {
        let kw = s * (pg.first + 2 - e) + pg.phase + i32(p.conv.pad_w);
        if kw >= 0 && kw < i32(p.conv.k_w) {
            v[e] = bias[base + u32(kw)];
            slots |= 1u << u32(e);
        }
    }
    v.w = f32(slots);
    textureStore(c_tex, vec2<u32>(u, o), v);
}
