//! Constant padding, `torch.nn.functional.pad(x, pad, mode="constant", value)`, where
//! negative pads crop, and its gradient: written as a scatter of the input into the output.

use super::Array;

/// The output shape: `pad` holds (before, after) pairs from the last dimension backwards.
pub fn pad_shape(shape: &[usize], pad: &[i64]) -> Vec<usize> {
    let mut out = shape.to_vec();
    for (j, pair) in pad.chunks(2).enumerate() {
        let d = shape.len() - 1 - j;
        out[d] = (shape[d] as i64 + pair[0] + pair[1]) as usize;
    }
    out
}

/// The offset each dimension's index moves by (the pad before it).
fn offsets(rank: usize, pad: &[i64]) -> Vec<i64> {
    let mut off = vec![0i64; rank];
    for (j, pair) in pad.chunks(2).enumerate() {
        off[rank - 1 - j] = pair[0];
    }
    off
}

/// Calls `f(input index, output index)` for every input element that lands in the output.
fn for_each_kept(shape: &[usize], out: &[usize], pad: &[i64], mut f: impl FnMut(usize, usize)) {
    let off = offsets(shape.len(), pad);
    let total: usize = shape.iter().product();
    for i in 0..total {
        let (mut rest, mut at, mut stride, mut inside) = (i, 0usize, 1usize, true);
        for d in (0..shape.len()).rev() {
            let o = (rest % shape[d]) as i64 + off[d];
            rest /= shape[d];
            if o < 0 || o >= out[d] as i64 {
                inside = false;
            }
            at += o.max(0) as usize * stride;
            stride *= out[d];
        }
        if inside {
            f(i, at);
        }
    }
}

/// x padded with `value` (cropped where pads are negative).
pub fn pad(x: &Array, pad: &[i64], value: f64) -> Array {
    let out = pad_shape(&x.shape, pad);
    let mut y = Array::new(&out, vec![value; out.iter().product()]);
    for_each_kept(&x.shape, &out, pad, |i, o| y.data[o] = x.data[i]);
    y
}

/// Gradient of [`pad`] for an input of `shape`: gy at each kept element, 0 for cropped ones.
pub fn pad_backward(gy: &Array, shape: &[usize], pad: &[i64]) -> Array {
    let mut gx = Array::new(shape, vec![0.0; shape.iter().product()]);
    for_each_kept(shape, &gy.shape, pad, |i, o| gx.data[i] = gy.data[o]);
    gx
}
