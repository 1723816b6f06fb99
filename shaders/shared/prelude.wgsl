// shared/prelude.wgsl: prepended to every shader in shaders/ before it is compiled.
//
// Workgroup size of the one-dimensional kernels, set per pipeline through
// PipelineCompilationOptions::constants.
override WG: u32 = 64u;

// The builtins of a kernel whose workgroups lie on a 2-D grid: one grid dimension holds at most
// 65535 workgroups, so the host computes x and y from the number of invocations it needs
// (`Context::grid_1d` in crates/gconv/src/kernel/mod.rs).
struct Invocation {
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
}

// The workgroup's index on the grid.
fn workgroup_index(i: Invocation) -> u32 {
    return i.wg.y * i.nwg.x + i.wg.x;
}

// The invocation's index over the grid, in a kernel of WG invocations per workgroup.
fn linear_index(i: Invocation) -> u32 {
    return workgroup_index(i) * WG + i.lid;
}

// The window that puts kernel tap `k` on position `i`: the w with w*stride - pad + k*dil == i
// and 0 <= w < size, or -1 when there is none. Transposed convolutions, col2im and pooling's
// backward gather with it.
fn tap_source(i: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dil);
    if t < 0 || (u32(t) % stride) != 0u {
        return -1;
    }
    let w = u32(t) / stride;
    if w >= size {
        return -1;
    }
    return i32(w);
}

// Value i of a buffer copied into an rgba32f texture 1024 texels wide (`tiled::Flat`): gather
// kernels read their inputs this way because a texel fetch is far cheaper than a storage-buffer
// load on CPU adapters.
fn flat_load(t: texture_2d<f32>, i: u32) -> f32 {
    return flat_texel(t, i / 4u)[i % 4u];
}

// Texel q (values 4q .. 4q + 4) of such a copy.
fn flat_texel(t: texture_2d<f32>, q: u32) -> vec4<f32> {
    return textureLoad(t, flat_xy(q), 0);
}

// Where texel q of such a copy lies. Copies bound as read-only storage textures (on lavapipe
// a storage-image load is inlined, while a sampled fetch calls a function that does per-lane
// mip-level arithmetic) are read with it directly: naga's MSL back end takes no storage
// texture as a function argument.
fn flat_xy(q: u32) -> vec2<u32> {
    return vec2<u32>(q % 1024u, q / 1024u);
}

// The four values from `off` (0 to 3) on of the eight in texels a and b.
fn from_offset(a: vec4<f32>, b: vec4<f32>, off: u32) -> vec4<f32> {
    let v1 = vec4<f32>(a.yzw, b.x);
    let v2 = vec4<f32>(a.zw, b.xy);
    let v3 = vec4<f32>(a.w, b.xyz);
    return select(select(select(a, v1, off == 1u), v2, off == 2u), v3, off == 3u);
}

// The largest of a 2x2 window's four values (in window order, row by row) and its position:
// the first maximum, as PyTorch's max_pool2d picks it. Fused conv + ReLU + max-pool kernels
// use it.
struct FirstMax {
    value: f32,
    lane: u32,
}

fn first_max4(v: vec4<f32>) -> FirstMax {
    var m = FirstMax(v.x, 0u);
    for (var l = 1u; l < 4u; l++) {
        if v[l] > m.value {
            m = FirstMax(v[l], l);
        }
    }
    return m;
}

// (x / d, x % d) for x < 2^24 (d >= 1) without an integer division: CPU adapters have no vector
// integer divide, so `/` and `%` by a uniform run lane by lane; a float estimate and one
// correction step are exact in that range. Texture coordinates and packed-operand indices
// (bounded by the texture size limit) stay far below it.
fn divmod24(x: u32, d: u32) -> vec2<u32> {
    var q = u32(f32(x) / f32(d));
    var r = i32(x) - i32(q * d);
    q = select(q, q - 1u, r < 0);
    r = select(r, r + i32(d), r < 0);
    q = select(q, q + 1u, r >= i32(d));
    r = select(r, r - i32(d), r >= i32(d));
    return vec2<u32>(q, u32(r));
}

// (i / (d*h*w), then i's coordinates over (d, h, w)) for i < 2^24: a flat index split into
// (outer, d, h, w), e.g. a kernel row into (channel, kd, kh, kw) or a column into
// (sample, od, oh, ow).
fn split3(i: u32, d: u32, h: u32, w: u32) -> vec4<u32> {
    let tw = divmod24(i, w);
    let th = divmod24(tw.x, h);
    let td = divmod24(th.x, d);
    return vec4<u32>(td.x, td.y, th.y, tw.y);
}

// The position after `pos` = (outer, d, h, w) in that order, over sizes (d, h, w), without
// branches (lanes of a CPU adapter's SIMD group stay together).
fn next_position(pos: vec4<u32>, d: u32, h: u32, w: u32) -> vec4<u32> {
    var q = pos;
    q.w += 1u;
    let wrap_w = q.w == w;
    q.w = select(q.w, 0u, wrap_w);
    q.z = select(q.z, q.z + 1u, wrap_w);
    let wrap_h = q.z == h;
    q.z = select(q.z, 0u, wrap_h);
    q.y = select(q.y, q.y + 1u, wrap_h);
    let wrap_d = q.y == d;
    q.y = select(q.y, 0u, wrap_d);
    q.x = select(q.x, q.x + 1u, wrap_d);
    return q;
}

// A clamp fused into an epilogue, as relu_forward and hardtanh_forward compute it (NaN stays
// NaN): kind 0 none, 1 ReLU, 2 clamp to [lo, hi] (ReLU6 is [0, 6]).
fn activate4(v: vec4<f32>, kind: u32, lo: f32, hi: f32) -> vec4<f32> {
    if kind == 1u {
        return select(v, vec4<f32>(0.0), v < vec4<f32>(0.0));
    }
    if kind == 2u {
        return select(select(v, vec4<f32>(hi), v > vec4<f32>(hi)), vec4<f32>(lo), v < vec4<f32>(lo));
    }
    return v;
}
