//! Max, average and adaptive pooling (1-D to 3-D) with PyTorch's rules (ceil_mode,
//! count_include_pad, divisor_override, dilation), and their gradients.

use super::{Array, each3, flat3, three};

/// Attributes of max and average pooling (`stride` already defaulted to `kernel_size`).
#[derive(Clone, Debug)]
pub struct PoolAttrs {
    /// Per spatial dimension.
    pub kernel_size: Vec<usize>,
    /// Per spatial dimension.
    pub stride: Vec<usize>,
    /// Per spatial dimension.
    pub padding: Vec<usize>,
    /// Per spatial dimension (1 for average pooling).
    pub dilation: Vec<usize>,
    /// Ceil instead of floor for the output size.
    pub ceil_mode: bool,
    /// Average pooling: count padding in the divisor.
    pub count_include_pad: bool,
    /// Average pooling: divide by this instead.
    pub divisor_override: Option<usize>,
}

/// PyTorch's pooling output size, with the ceil-mode rule that the last window must start
/// inside the input or the left padding.
pub fn pool_output_size(input: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> usize {
    let span = (input + 2 * p) as i64 - (d * (k - 1)) as i64 - 1;
    let s64 = s as i64;
    let mut out =
        if ceil { (span + s64 - 1).div_euclid(s64) + 1 } else { span.div_euclid(s64) + 1 };
    if ceil && (out - 1) * s64 >= (input + p) as i64 {
        out -= 1;
    }
    out.max(0) as usize
}

fn pool_out_shape(x: &Array, a: &PoolAttrs) -> ([usize; 3], Vec<usize>) {
    let sd = x.shape.len() - 2;
    let outs: Vec<usize> = (0..sd)
        .map(|i| {
            pool_output_size(
                x.shape[2 + i],
                a.kernel_size[i],
                a.stride[i],
                a.padding[i],
                a.dilation[i],
                a.ceil_mode,
            )
        })
        .collect();
    let mut shape = x.shape[..2].to_vec();
    shape.extend_from_slice(&outs);
    (three(&outs, 1), shape)
}

/// max_pool1d/2d/3d forward: values and argmax indices (flat within each (n, c) plane).
/// PyTorch's rule: start from -inf with the index of the first tap at or past 0; take a value
/// when greater (the first maximum wins) or NaN (the last NaN wins). A window entirely in the
/// padding yields -inf.
pub fn max_pool_forward(x: &Array, a: &PoolAttrs) -> (Array, Vec<i64>) {
    let ins = three(&x.shape[2..], 1);
    let ks = three(&a.kernel_size, 1);
    let st = three(&a.stride, 1);
    let pd = three(&a.padding, 0);
    let dl = three(&a.dilation, 1);
    let (outs, shape) = pool_out_shape(x, a);
    let planes = x.shape[0] * x.shape[1];
    let in_plane: usize = ins.iter().product();
    let mut y = Array::zeros(&shape);
    let mut idx = vec![0i64; y.len()];
    let mut at = 0;
    for pl in 0..planes {
        for o in each3(outs) {
            let start: [i64; 3] = std::array::from_fn(|i| (o[i] * st[i]) as i64 - pd[i] as i64);
            let mut first = start;
            for i in 0..3 {
                while first[i] < 0 {
                    first[i] += dl[i] as i64;
                }
            }
            let mut best = f64::NEG_INFINITY;
            let mut best_i = (first[0] * ins[1] as i64 + first[1]) * ins[2] as i64 + first[2];
            for k in each3(ks) {
                let pos: [i64; 3] = std::array::from_fn(|i| start[i] + (k[i] * dl[i]) as i64);
                if (0..3).any(|i| pos[i] < 0 || pos[i] >= ins[i] as i64) {
                    continue;
                }
                let flat = flat3(ins, pos[0] as usize, pos[1] as usize, pos[2] as usize);
                let v = x.data[pl * in_plane + flat];
                if v > best || v.is_nan() {
                    best = v;
                    best_i = flat as i64;
                }
            }
            y.data[at] = best;
            idx[at] = best_i;
            at += 1;
        }
    }
    (y, idx)
}

/// avg_pool1d/2d/3d forward, with ceil_mode, count_include_pad and divisor_override.
pub fn avg_pool_forward(x: &Array, a: &PoolAttrs) -> Array {
    let ins = three(&x.shape[2..], 1);
    let ks = three(&a.kernel_size, 1);
    let st = three(&a.stride, 1);
    let pd = three(&a.padding, 0);
    let (outs, shape) = pool_out_shape(x, a);
    let planes = x.shape[0] * x.shape[1];
    let in_plane: usize = ins.iter().product();
    let mut y = Array::zeros(&shape);
    let mut at = 0;
    for pl in 0..planes {
        for o in each3(outs) {
            let (taps, divisor) = avg_window(a, (ins, ks, st, pd), o);
            let sum: f64 = taps.iter().map(|&t| x.data[pl * in_plane + t]).sum();
            y.data[at] = sum / divisor;
            at += 1;
        }
    }
    y
}

/// Average-pooling window `o`'s in-bounds taps (flat positions in a plane of size `ins`) and
/// its divisor: divisor_override, else with count_include_pad the window's extent inside the
/// padded input, else its in-bounds taps.
fn avg_window(
    a: &PoolAttrs,
    (ins, ks, st, pd): ([usize; 3], [usize; 3], [usize; 3], [usize; 3]),
    o: [usize; 3],
) -> (Vec<usize>, f64) {
    let mut padded = 1usize;
    for i in 0..3 {
        let start = (o[i] * st[i]) as i64 - pd[i] as i64;
        let end = (start + ks[i] as i64).min((ins[i] + pd[i]) as i64);
        padded *= (end - start) as usize;
    }
    let mut taps = Vec::new();
    for k in each3(ks) {
        let pos: [i64; 3] = std::array::from_fn(|i| (o[i] * st[i] + k[i]) as i64 - pd[i] as i64);
        if (0..3).any(|i| pos[i] < 0 || pos[i] >= ins[i] as i64) {
            continue;
        }
        taps.push(flat3(ins, pos[0] as usize, pos[1] as usize, pos[2] as usize));
    }
    let divisor = match (a.divisor_override, a.count_include_pad) {
        (Some(d), _) => d,
        (None, true) => padded,
        (None, false) => taps.len(),
    };
    (taps, divisor as f64)
}

fn adaptive_range(o: usize, input: usize, output: usize) -> std::ops::Range<usize> {
    (o * input / output)..((o + 1) * input).div_ceil(output)
}

fn adaptive(x: &Array, out: &[usize], max: bool) -> (Array, Vec<i64>) {
    let ins = three(&x.shape[2..], 1);
    let outs = three(out, 1);
    let mut shape = x.shape[..2].to_vec();
    shape.extend_from_slice(out);
    let planes = x.shape[0] * x.shape[1];
    let in_plane: usize = ins.iter().product();
    let mut y = Array::zeros(&shape);
    let mut idx = vec![0i64; y.len()];
    let mut at = 0;
    for pl in 0..planes {
        for o in each3(outs) {
            let r: [std::ops::Range<usize>; 3] =
                std::array::from_fn(|i| adaptive_range(o[i], ins[i], outs[i]));
            let (mut sum, mut count) = (0.0, 0usize);
            let mut best = f64::NEG_INFINITY;
            let mut best_i = flat3(ins, r[0].start, r[1].start, r[2].start) as i64;
            for d in r[0].clone() {
                for h in r[1].clone() {
                    for w in r[2].clone() {
                        let flat = flat3(ins, d, h, w);
                        let v = x.data[pl * in_plane + flat];
                        sum += v;
                        count += 1;
                        if v > best || v.is_nan() {
                            best = v;
                            best_i = flat as i64;
                        }
                    }
                }
            }
            y.data[at] = if max { best } else { sum / count as f64 };
            idx[at] = best_i;
            at += 1;
        }
    }
    (y, idx)
}

/// adaptive_avg_pool1d/2d/3d forward: windows [floor(o*in/out), ceil((o+1)*in/out)).
pub fn adaptive_avg_pool_forward(x: &Array, output_size: &[usize]) -> Array {
    adaptive(x, output_size, false).0
}

/// adaptive_max_pool1d/2d/3d forward: values and argmax indices.
pub fn adaptive_max_pool_forward(x: &Array, output_size: &[usize]) -> (Array, Vec<i64>) {
    adaptive(x, output_size, true)
}

/// Gradient of [`max_pool_forward`]: each window sends its upstream gradient to the element its
/// index names, when that element is one of the window's taps. A window lying entirely in the
/// padding (output -inf) passes no gradient.
pub fn max_pool_backward(x: &Array, gy: &Array, indices: &[i64], a: &PoolAttrs) -> Array {
    let ins = three(&x.shape[2..], 1);
    let ks = three(&a.kernel_size, 1);
    let st = three(&a.stride, 1);
    let pd = three(&a.padding, 0);
    let dl = three(&a.dilation, 1);
    let outs = three(&gy.shape[2..], 1);
    let planes = x.shape[0] * x.shape[1];
    let in_plane: usize = ins.iter().product();
    let mut gx = Array::zeros(&x.shape);
    let mut at = 0;
    for pl in 0..planes {
        for o in each3(outs) {
            for k in each3(ks) {
                let pos: [i64; 3] =
                    std::array::from_fn(|i| (o[i] * st[i] + k[i] * dl[i]) as i64 - pd[i] as i64);
                if (0..3).any(|i| pos[i] < 0 || pos[i] >= ins[i] as i64) {
                    continue;
                }
                let flat = flat3(ins, pos[0] as usize, pos[1] as usize, pos[2] as usize);
                if flat as i64 == indices[at] {
                    gx.data[pl * in_plane + flat] += gy.data[at];
                    break;
                }
            }
            at += 1;
        }
    }
    gx
}

/// Gradient of [`avg_pool_forward`]: each window spreads grad / divisor over its valid taps.
pub fn avg_pool_backward(x: &Array, gy: &Array, a: &PoolAttrs) -> Array {
    let ins = three(&x.shape[2..], 1);
    let ks = three(&a.kernel_size, 1);
    let st = three(&a.stride, 1);
    let pd = three(&a.padding, 0);
    let outs = three(&gy.shape[2..], 1);
    let planes = x.shape[0] * x.shape[1];
    let in_plane: usize = ins.iter().product();
    let mut gx = Array::zeros(&x.shape);
    let mut at = 0;
    for pl in 0..planes {
        for o in each3(outs) {
            let (taps, divisor) = avg_window(a, (ins, ks, st, pd), o);
            for t in taps {
                gx.data[pl * in_plane + t] += gy.data[at] / divisor;
            }
            at += 1;
        }
    }
    gx
}

fn adaptive_backward(x: &Array, gy: &Array, indices: Option<&[i64]>) -> Array {
    let ins = three(&x.shape[2..], 1);
    let outs = three(&gy.shape[2..], 1);
    let planes = x.shape[0] * x.shape[1];
    let in_plane: usize = ins.iter().product();
    let mut gx = Array::zeros(&x.shape);
    let mut at = 0;
    for pl in 0..planes {
        for o in each3(outs) {
            let r: [std::ops::Range<usize>; 3] =
                std::array::from_fn(|i| adaptive_range(o[i], ins[i], outs[i]));
            let count = r.iter().map(|r| r.len()).product::<usize>() as f64;
            for d in r[0].clone() {
                for h in r[1].clone() {
                    for w in r[2].clone() {
                        let flat = flat3(ins, d, h, w);
                        match indices {
                            Some(idx) if idx[at] == flat as i64 => {
                                gx.data[pl * in_plane + flat] += gy.data[at]
                            }
                            Some(_) => {}
                            None => gx.data[pl * in_plane + flat] += gy.data[at] / count,
                        }
                    }
                }
            }
            at += 1;
        }
    }
    gx
}

/// Gradient of [`adaptive_avg_pool_forward`].
pub fn adaptive_avg_pool_backward(x: &Array, gy: &Array) -> Array {
    adaptive_backward(x, gy, None)
}

/// Gradient of [`adaptive_max_pool_forward`] through its indices.
pub fn adaptive_max_pool_backward(x: &Array, gy: &Array, indices: &[i64]) -> Array {
    adaptive_backward(x, gy, Some(indices))
}
