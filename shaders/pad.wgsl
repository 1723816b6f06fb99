// pad.wgsl: constant padding of up to the last three dimensions, where negative pads crop
// (torch.nn.functional.pad in mode "constant"), and its gradient, as one gather.
//
// Both tensors are viewed as (outer, d, h, w). Element (n, i, j, k) of the destination reads
// element (n, i - shift.y, j - shift.z, k - shift.w) of the source, or `fill` where that lies
// outside it. Forward: source x, destination y, shift the pads before each dimension, fill the
// padding value. Backward: source grad_y, destination grad_x, shift minus those pads, fill 0,
// so every element of grad_x is written once and the crop's gradient is zero.

struct PadParams {
    // (outer, d, h, w) of the source and the destination.
    src: vec4<u32>,
    dst: vec4<u32>,
    // (unused, d, h, w): destination index minus source index.
    shift: vec4<i32>,
    total: u32,
    fill: f32,
}

@group(0) @binding(0) var<uniform> p: PadParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn shift(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.total { return; }
    let k = idx % p.dst.w;
    let j = (idx / p.dst.w) % p.dst.z;
    let i = (idx / (p.dst.w * p.dst.z)) % p.dst.y;
    let n = idx / (p.dst.w * p.dst.z * p.dst.y);
    let at = vec3<i32>(i32(i), i32(j), i32(k)) - p.shift.yzw;
    if any(at < vec3<i32>(0)) || any(at >= vec3<i32>(p.src.yzw)) {
        dst[idx] = p.fill;
        return;
    }
    let u = vec3<u32>(at);
    dst[idx] = src[((n * p.src.y + u.x) * p.src.z + u.y) * p.src.w + u.z];
}
