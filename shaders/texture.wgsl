// texture.wgsl: a host application's image texture turned into a model input on the GPU: an
// NCHW f32 tensor of one sample, grey or RGB, resized bilinearly (align_corners = false, as
// PyTorch's interpolate and gconv's data loader) and normalised as (v - mean) / std.

struct TextureParams {
    // Texture size.
    in_w: u32,
    in_h: u32,
    // Output channels, height, width.
    out_c: u32,
    out_h: u32,
    out_w: u32,
    // 1: the texture has colour (rgba); 0: one channel (r8), read from red.
    colour: u32,
    mean: f32,
    std_dev: f32,
}

@group(0) @binding(0) var<uniform> p: TextureParams;
@group(0) @binding(1) var src: texture_2d<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// One channel of the texel at (x, y), clamped to the edge: red, green or blue for a colour
// output; grey (BT.709 luma, as the `image` crate converts) or red for a grey one.
fn texel(x: i32, y: i32, c: u32) -> f32 {
    let at = vec2<i32>(clamp(x, 0, i32(p.in_w) - 1), clamp(y, 0, i32(p.in_h) - 1));
    let t = textureLoad(src, at, 0);
    if p.colour == 0u {
        return t.r;
    }
    if p.out_c == 3u {
        return t[c];
    }
    return 0.2126 * t.r + 0.7152 * t.g + 0.0722 * t.b;
}

@compute @workgroup_size(WG)
fn texture_to_tensor(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.out_c * p.out_h * p.out_w { return; }
    let ox = idx % p.out_w;
    let oy = (idx / p.out_w) % p.out_h;
    let c = idx / (p.out_w * p.out_h);
    var v: f32;
    if p.in_w == p.out_w && p.in_h == p.out_h {
        v = texel(i32(ox), i32(oy), c);
    } else {
        let fy = max((f32(oy) + 0.5) * f32(p.in_h) / f32(p.out_h) - 0.5, 0.0);
        let fx = max((f32(ox) + 0.5) * f32(p.in_w) / f32(p.out_w) - 0.5, 0.0);
        let y0 = i32(floor(fy));
        let x0 = i32(floor(fx));
        let ty = fy - floor(fy);
        let tx = fx - floor(fx);
        let top = texel(x0, y0, c) * (1.0 - tx) + texel(x0 + 1, y0, c) * tx;
        let bottom = texel(x0, y0 + 1, c) * (1.0 - tx) + texel(x0 + 1, y0 + 1, c) * tx;
        v = top * (1.0 - ty) + bottom * ty;
    }
    out[idx] = (v - p.mean) / p.std_dev;
}
