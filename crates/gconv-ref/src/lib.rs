//! gconv-ref: the CPU reference for every gconv operator. Plain loops, f64 accumulation, no GPU
//! and no wgpu: written from PyTorch's definitions, so that the GPU kernels are checked against
//! an independent implementation (and both against PyTorch's golden files).
//!
//! Functions mirror the shaders by name (`conv_forward` for conv/direct.wgsl's `conv_forward`).
//! They assume valid arguments (the GPU operators validate them) and panic on shapes that do
//! not fit; every spatial operator takes 1 to 3 spatial dimensions.
#![allow(
    clippy::needless_range_loop,
    reason = "a reference spells out its index arithmetic; iterator chains would hide it"
)]

/// A dense row-major array of f64 with a shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f64>,
}

impl Array {
    /// An array from f64 data; panics if the length does not fill the shape.
    pub fn new(shape: &[usize], data: Vec<f64>) -> Array {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "data does not fill {shape:?}");
        Array { shape: shape.to_vec(), data }
    }

    /// An array from f32 data.
    pub fn from_f32(shape: &[usize], data: &[f32]) -> Array {
        Array::new(shape, data.iter().map(|&v| f64::from(v)).collect())
    }

    /// Zeros of the given shape.
    pub fn zeros(shape: &[usize]) -> Array {
        Array::new(shape, vec![0.0; shape.iter().product()])
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Convolution padding: per-dimension (before, after) amounts, after resolving PyTorch's
/// `same` / `valid` / integer forms with [`resolve_padding`].
pub type Pads = Vec<(usize, usize)>;

/// PyTorch's padding argument for convolutions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaddingSpec {
    /// The same amount on both sides of each dimension.
    Explicit(Vec<usize>),
    /// Output size equals input size (stride 1): total d*(k-1), the larger half after.
    Same,
    /// No padding.
    Valid,
}

/// Resolves `padding` for kernel sizes `k` and dilations `d` into (before, after) pairs.
pub fn resolve_padding(padding: &PaddingSpec, k: &[usize], d: &[usize]) -> Pads {
    match padding {
        PaddingSpec::Explicit(p) => p.iter().map(|&v| (v, v)).collect(),
        PaddingSpec::Valid => vec![(0, 0); k.len()],
        PaddingSpec::Same => k
            .iter()
            .zip(d)
            .map(|(&k, &d)| {
                let total = d * (k - 1);
                (total / 2, total - total / 2)
            })
            .collect(),
    }
}

/// Attributes of a convolution (`padding` already resolved).
#[derive(Clone, Debug)]
pub struct ConvAttrs {
    /// Per spatial dimension.
    pub stride: Vec<usize>,
    /// Per spatial dimension, (before, after).
    pub padding: Pads,
    /// Per spatial dimension.
    pub dilation: Vec<usize>,
    /// Channel groups.
    pub groups: usize,
}

/// Attributes of a transposed convolution.
#[derive(Clone, Debug)]
pub struct ConvTransposeAttrs {
    /// Per spatial dimension.
    pub stride: Vec<usize>,
    /// Per spatial dimension.
    pub padding: Vec<usize>,
    /// Per spatial dimension.
    pub output_padding: Vec<usize>,
    /// Per spatial dimension.
    pub dilation: Vec<usize>,
    /// Channel groups.
    pub groups: usize,
}

/// Spatial shapes padded to three dimensions (leading 1s), so one loop nest serves 1-D to 3-D.
pub(crate) fn three(v: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - v.len()..].copy_from_slice(v);
    out
}

fn three_pairs(v: &[(usize, usize)]) -> [(usize, usize); 3] {
    let mut out = [(0, 0); 3];
    out[3 - v.len()..].copy_from_slice(v);
    out
}

pub(crate) fn flat3(size: [usize; 3], d: usize, h: usize, w: usize) -> usize {
    (d * size[1] + h) * size[2] + w
}

/// Iterates over every index of a 3-D box.
pub(crate) fn each3(size: [usize; 3]) -> impl Iterator<Item = [usize; 3]> {
    (0..size[0])
        .flat_map(move |d| (0..size[1]).flat_map(move |h| (0..size[2]).map(move |w| [d, h, w])))
}

/// conv1d/2d/3d forward. x (N, C_in, *s), w (C_out, C_in/groups, *k), b (C_out).
/// out = floor((in + pad_before + pad_after - d*(k-1) - 1) / s) + 1.
pub fn conv_forward(x: &Array, w: &Array, b: Option<&Array>, a: &ConvAttrs) -> Array {
    let sd = x.shape.len() - 2;
    let (n, c_in) = (x.shape[0], x.shape[1]);
    let c_out = w.shape[0];
    let cin_g = c_in / a.groups;
    let cout_g = c_out / a.groups;
    let ins = three(&x.shape[2..], 1);
    let ks = three(&w.shape[2..], 1);
    let st = three(&a.stride, 1);
    let dl = three(&a.dilation, 1);
    let pd = three_pairs(&a.padding);
    let outs: [usize; 3] =
        std::array::from_fn(|i| (ins[i] + pd[i].0 + pd[i].1 - dl[i] * (ks[i] - 1) - 1) / st[i] + 1);
    let mut shape = vec![n, c_out];
    shape.extend_from_slice(&outs[3 - sd..]);
    let mut y = Array::zeros(&shape);
    let out_plane: usize = outs.iter().product();
    let in_plane: usize = ins.iter().product();
    let k_plane: usize = ks.iter().product();
    for ni in 0..n {
        for co in 0..c_out {
            let g = co / cout_g;
            for o in each3(outs) {
                let mut acc = b.map_or(0.0, |b| b.data[co]);
                for ci in 0..cin_g {
                    let c = g * cin_g + ci;
                    for k in each3(ks) {
                        let pos: [i64; 3] = std::array::from_fn(|i| {
                            (o[i] * st[i] + k[i] * dl[i]) as i64 - pd[i].0 as i64
                        });
                        if (0..3).any(|i| pos[i] < 0 || pos[i] >= ins[i] as i64) {
                            continue;
                        }
                        let xi = (ni * c_in + c) * in_plane
                            + flat3(ins, pos[0] as usize, pos[1] as usize, pos[2] as usize);
                        let wi = (co * cin_g + ci) * k_plane + flat3(ks, k[0], k[1], k[2]);
                        acc += x.data[xi] * w.data[wi];
                    }
                }
                y.data[(ni * c_out + co) * out_plane + flat3(outs, o[0], o[1], o[2])] = acc;
            }
        }
    }
    y
}

/// conv_transpose1d/2d/3d forward, in scatter form (each input element adds its kernel-weighted
/// copy to the output): the opposite formulation to the GPU kernel's gather.
/// x (N, C_in, *s), w (C_in, C_out/groups, *k), b (C_out).
/// out = (in - 1)*s - 2p + d*(k-1) + output_padding + 1.
pub fn conv_transpose_forward(
    x: &Array,
    w: &Array,
    b: Option<&Array>,
    a: &ConvTransposeAttrs,
) -> Array {
    let sd = x.shape.len() - 2;
    let (n, c_in) = (x.shape[0], x.shape[1]);
    let cout_g = w.shape[1];
    let c_out = cout_g * a.groups;
    let cin_g = c_in / a.groups;
    let ins = three(&x.shape[2..], 1);
    let ks = three(&w.shape[2..], 1);
    let st = three(&a.stride, 1);
    let dl = three(&a.dilation, 1);
    let pd = three(&a.padding, 0);
    let op = three(&a.output_padding, 0);
    let outs: [usize; 3] =
        std::array::from_fn(|i| (ins[i] - 1) * st[i] + dl[i] * (ks[i] - 1) + op[i] + 1 - 2 * pd[i]);
    let mut shape = vec![n, c_out];
    shape.extend_from_slice(&outs[3 - sd..]);
    let mut y = Array::zeros(&shape);
    let out_plane: usize = outs.iter().product();
    let in_plane: usize = ins.iter().product();
    let k_plane: usize = ks.iter().product();
    for ni in 0..n {
        for c in 0..c_in {
            let g = c / cin_g;
            for i in each3(ins) {
                let xv = x.data[(ni * c_in + c) * in_plane + flat3(ins, i[0], i[1], i[2])];
                for cog in 0..cout_g {
                    let co = g * cout_g + cog;
                    for k in each3(ks) {
                        let pos: [i64; 3] = std::array::from_fn(|j| {
                            (i[j] * st[j] + k[j] * dl[j]) as i64 - pd[j] as i64
                        });
                        if (0..3).any(|j| pos[j] < 0 || pos[j] >= outs[j] as i64) {
                            continue;
                        }
                        let wi = (c * cout_g + cog) * k_plane + flat3(ks, k[0], k[1], k[2]);
                        let yi = (ni * c_out + co) * out_plane
                            + flat3(outs, pos[0] as usize, pos[1] as usize, pos[2] as usize);
                        y.data[yi] += xv * w.data[wi];
                    }
                }
            }
        }
    }
    if let Some(b) = b {
        for (i, v) in y.data.iter_mut().enumerate() {
            *v += b.data[(i / out_plane) % c_out];
        }
    }
    y
}

/// Batched matrix product (B, M, K) @ (B, K, N) -> (B, M, N).
pub fn matmul(a: &Array, b: &Array) -> Array {
    let r = a.shape.len();
    let (m, k) = (a.shape[r - 2], a.shape[r - 1]);
    let n = b.shape[b.shape.len() - 1];
    let batch: usize = a.shape[..r - 2].iter().product();
    let mut shape = a.shape[..r - 2].to_vec();
    shape.extend([m, n]);
    let mut y = Array::zeros(&shape);
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for kk in 0..k {
                    acc += a.data[(bi * m + i) * k + kk] * b.data[(bi * k + kk) * n + j];
                }
                y.data[(bi * m + i) * n + j] = acc;
            }
        }
    }
    y
}

/// linear: x (*, in) W^T (out, in) + b (out).
pub fn linear(x: &Array, w: &Array, b: Option<&Array>) -> Array {
    let (out_f, in_f) = (w.shape[0], w.shape[1]);
    let rows = x.len() / in_f;
    let mut shape = x.shape[..x.shape.len() - 1].to_vec();
    shape.push(out_f);
    let mut y = Array::zeros(&shape);
    for r in 0..rows {
        for o in 0..out_f {
            let mut acc = b.map_or(0.0, |b| b.data[o]);
            for i in 0..in_f {
                acc += x.data[r * in_f + i] * w.data[o * in_f + i];
            }
            y.data[r * out_f + o] = acc;
        }
    }
    y
}

/// relu: max(x, 0).
pub fn relu(x: &Array) -> Array {
    Array::new(&x.shape, x.data.iter().map(|&v| if v < 0.0 { 0.0 } else { v }).collect())
}

fn along_dim(x: &Array, dim: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Array {
    let outer: usize = x.shape[..dim].iter().product();
    let len = x.shape[dim];
    let inner: usize = x.shape[dim + 1..].iter().product();
    let mut y = Array::zeros(&x.shape);
    for o in 0..outer {
        for i in 0..inner {
            let row: Vec<f64> = (0..len).map(|j| x.data[(o * len + j) * inner + i]).collect();
            for (j, v) in f(&row).into_iter().enumerate() {
                y.data[(o * len + j) * inner + i] = v;
            }
        }
    }
    y
}

pub(crate) fn logsumexp(row: &[f64]) -> f64 {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// softmax along `dim` (non-negative).
pub fn softmax(x: &Array, dim: usize) -> Array {
    along_dim(x, dim, |row| {
        let lse = logsumexp(row);
        row.iter().map(|v| (v - lse).exp()).collect()
    })
}

/// log_softmax along `dim` (non-negative).
pub fn log_softmax(x: &Array, dim: usize) -> Array {
    along_dim(x, dim, |row| {
        let lse = logsumexp(row);
        row.iter().map(|v| v - lse).collect()
    })
}

/// Result of [`batch_norm_forward`].
#[derive(Clone, Debug)]
pub struct BatchNormOut {
    /// The normalised output.
    pub y: Array,
    /// Updated running mean (training with running statistics).
    pub running_mean: Option<Vec<f64>>,
    /// Updated running variance (training with running statistics).
    pub running_var: Option<Vec<f64>>,
}

/// batch_norm over (N, C, *): batch statistics (biased variance) in training, running ones in
/// evaluation; the running update uses the unbiased variance, as PyTorch.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward(
    x: &Array,
    running_mean: Option<&[f64]>,
    running_var: Option<&[f64]>,
    weight: Option<&[f64]>,
    bias: Option<&[f64]>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> BatchNormOut {
    let (n, c) = (x.shape[0], x.shape[1]);
    let spatial: usize = x.shape[2..].iter().product();
    let count = (n * spatial) as f64;
    let mut y = Array::zeros(&x.shape);
    let mut new_mean = running_mean.map(<[f64]>::to_vec);
    let mut new_var = running_var.map(<[f64]>::to_vec);
    for ch in 0..c {
        let values =
            || (0..n).flat_map(move |ni| (0..spatial).map(move |s| (ni * c + ch) * spatial + s));
        let (mean, var) = if training {
            let mean = values().map(|i| x.data[i]).sum::<f64>() / count;
            let var = values().map(|i| (x.data[i] - mean).powi(2)).sum::<f64>() / count;
            if let (Some(m), Some(v)) = (new_mean.as_mut(), new_var.as_mut()) {
                m[ch] = (1.0 - momentum) * m[ch] + momentum * mean;
                v[ch] = (1.0 - momentum) * v[ch] + momentum * var * count / (count - 1.0);
            }
            (mean, var)
        } else {
            (running_mean.map_or(0.0, |m| m[ch]), running_var.map_or(1.0, |v| v[ch]))
        };
        let inv = 1.0 / (var + eps).sqrt();
        for i in values() {
            let v = (x.data[i] - mean) * inv;
            y.data[i] = v * weight.map_or(1.0, |w| w[ch]) + bias.map_or(0.0, |b| b[ch]);
        }
    }
    BatchNormOut { y, running_mean: new_mean, running_var: new_var }
}

// ---------------------------------------------------------------------------------------------
// Backward. Scatter formulations (each forward term pushes its derivative to the inputs it
// read), the opposite of the GPU's gathers, so the two cannot share an indexing mistake.
// ---------------------------------------------------------------------------------------------

/// Gradients of [`conv_forward`]: (grad_x, grad_w, grad_b) for upstream gradient `gy`.
pub fn conv_backward(x: &Array, w: &Array, gy: &Array, a: &ConvAttrs) -> (Array, Array, Vec<f64>) {
    let (n, c_in) = (x.shape[0], x.shape[1]);
    let c_out = w.shape[0];
    let cin_g = c_in / a.groups;
    let cout_g = c_out / a.groups;
    let ins = three(&x.shape[2..], 1);
    let ks = three(&w.shape[2..], 1);
    let outs = three(&gy.shape[2..], 1);
    let st = three(&a.stride, 1);
    let dl = three(&a.dilation, 1);
    let pd = three_pairs(&a.padding);
    let (in_plane, k_plane, out_plane): (usize, usize, usize) =
        (ins.iter().product(), ks.iter().product(), outs.iter().product());
    let mut gx = Array::zeros(&x.shape);
    let mut gw = Array::zeros(&w.shape);
    let mut gb = vec![0.0; c_out];
    for ni in 0..n {
        for co in 0..c_out {
            let g = co / cout_g;
            for o in each3(outs) {
                let gv = gy.data[(ni * c_out + co) * out_plane + flat3(outs, o[0], o[1], o[2])];
                gb[co] += gv;
                for ci in 0..cin_g {
                    let c = g * cin_g + ci;
                    for k in each3(ks) {
                        let pos: [i64; 3] = std::array::from_fn(|i| {
                            (o[i] * st[i] + k[i] * dl[i]) as i64 - pd[i].0 as i64
                        });
                        if (0..3).any(|i| pos[i] < 0 || pos[i] >= ins[i] as i64) {
                            continue;
                        }
                        let xi = (ni * c_in + c) * in_plane
                            + flat3(ins, pos[0] as usize, pos[1] as usize, pos[2] as usize);
                        let wi = (co * cin_g + ci) * k_plane + flat3(ks, k[0], k[1], k[2]);
                        gx.data[xi] += gv * w.data[wi];
                        gw.data[wi] += gv * x.data[xi];
                    }
                }
            }
        }
    }
    (gx, gw, gb)
}

/// Gradients of [`conv_transpose_forward`]: (grad_x, grad_w, grad_b).
pub fn conv_transpose_backward(
    x: &Array,
    w: &Array,
    gy: &Array,
    a: &ConvTransposeAttrs,
) -> (Array, Array, Vec<f64>) {
    let (n, c_in) = (x.shape[0], x.shape[1]);
    let cout_g = w.shape[1];
    let c_out = cout_g * a.groups;
    let cin_g = c_in / a.groups;
    let ins = three(&x.shape[2..], 1);
    let ks = three(&w.shape[2..], 1);
    let outs = three(&gy.shape[2..], 1);
    let st = three(&a.stride, 1);
    let dl = three(&a.dilation, 1);
    let pd = three(&a.padding, 0);
    let (in_plane, k_plane, out_plane): (usize, usize, usize) =
        (ins.iter().product(), ks.iter().product(), outs.iter().product());
    let mut gx = Array::zeros(&x.shape);
    let mut gw = Array::zeros(&w.shape);
    let mut gb = vec![0.0; c_out];
    for (i, v) in gy.data.iter().enumerate() {
        gb[(i / out_plane) % c_out] += v;
    }
    for ni in 0..n {
        for c in 0..c_in {
            let g = c / cin_g;
            for i in each3(ins) {
                let xi = (ni * c_in + c) * in_plane + flat3(ins, i[0], i[1], i[2]);
                for cog in 0..cout_g {
                    let co = g * cout_g + cog;
                    for k in each3(ks) {
                        let pos: [i64; 3] = std::array::from_fn(|j| {
                            (i[j] * st[j] + k[j] * dl[j]) as i64 - pd[j] as i64
                        });
                        if (0..3).any(|j| pos[j] < 0 || pos[j] >= outs[j] as i64) {
                            continue;
                        }
                        let wi = (c * cout_g + cog) * k_plane + flat3(ks, k[0], k[1], k[2]);
                        let yi = (ni * c_out + co) * out_plane
                            + flat3(outs, pos[0] as usize, pos[1] as usize, pos[2] as usize);
                        gx.data[xi] += gy.data[yi] * w.data[wi];
                        gw.data[wi] += gy.data[yi] * x.data[xi];
                    }
                }
            }
        }
    }
    (gx, gw, gb)
}

/// Gradients of [`linear`]: (grad_x, grad_w, grad_b).
pub fn linear_backward(x: &Array, w: &Array, gy: &Array) -> (Array, Array, Vec<f64>) {
    let (out_f, in_f) = (w.shape[0], w.shape[1]);
    let rows = x.len() / in_f;
    let mut gx = Array::zeros(&x.shape);
    let mut gw = Array::zeros(&w.shape);
    let mut gb = vec![0.0; out_f];
    for r in 0..rows {
        for o in 0..out_f {
            let g = gy.data[r * out_f + o];
            gb[o] += g;
            for i in 0..in_f {
                gx.data[r * in_f + i] += g * w.data[o * in_f + i];
                gw.data[o * in_f + i] += g * x.data[r * in_f + i];
            }
        }
    }
    (gx, gw, gb)
}

/// Gradients of [`matmul`] (equal batches): (grad_a, grad_b).
pub fn matmul_backward(a: &Array, b: &Array, gy: &Array) -> (Array, Array) {
    let r = a.shape.len();
    let (m, k) = (a.shape[r - 2], a.shape[r - 1]);
    let n = b.shape[b.shape.len() - 1];
    let batch: usize = a.shape[..r - 2].iter().product();
    let mut ga = Array::zeros(&a.shape);
    let mut gb = Array::zeros(&b.shape);
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let g = gy.data[(bi * m + i) * n + j];
                for kk in 0..k {
                    ga.data[(bi * m + i) * k + kk] += g * b.data[(bi * k + kk) * n + j];
                    gb.data[(bi * k + kk) * n + j] += g * a.data[(bi * m + i) * k + kk];
                }
            }
        }
    }
    (ga, gb)
}

/// Gradient of [`relu`]: gy where x > 0.
pub fn relu_backward(x: &Array, gy: &Array) -> Array {
    Array::new(
        &x.shape,
        x.data.iter().zip(&gy.data).map(|(&v, &g)| if v > 0.0 { g } else { 0.0 }).collect(),
    )
}

fn along_dim2(y: &Array, gy: &Array, dim: usize, f: impl Fn(&[f64], &[f64]) -> Vec<f64>) -> Array {
    let outer: usize = y.shape[..dim].iter().product();
    let len = y.shape[dim];
    let inner: usize = y.shape[dim + 1..].iter().product();
    let mut gx = Array::zeros(&y.shape);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let yr: Vec<f64> = (0..len).map(|j| y.data[at(j)]).collect();
            let gr: Vec<f64> = (0..len).map(|j| gy.data[at(j)]).collect();
            for (j, v) in f(&yr, &gr).into_iter().enumerate() {
                gx.data[at(j)] = v;
            }
        }
    }
    gx
}

/// Gradient of [`softmax`] from its output y: y * (gy - sum(gy * y)), by the Jacobian
/// dy_i/dx_j = y_i (delta_ij - y_j).
pub fn softmax_backward(y: &Array, gy: &Array, dim: usize) -> Array {
    along_dim2(y, gy, dim, |y, g| {
        (0..y.len())
            .map(|j| (0..y.len()).map(|i| g[i] * y[i] * (f64::from(i == j) - y[j])).sum())
            .collect()
    })
}

/// Gradient of [`log_softmax`] from its output y, by the Jacobian
/// dy_i/dx_j = delta_ij - softmax_j.
pub fn log_softmax_backward(y: &Array, gy: &Array, dim: usize) -> Array {
    along_dim2(y, gy, dim, |y, g| {
        (0..y.len())
            .map(|j| (0..y.len()).map(|i| g[i] * (f64::from(i == j) - y[j].exp())).sum())
            .collect()
    })
}

/// Gradients of [`batch_norm_forward`]: (grad_x, grad_weight, grad_bias). In training the batch
/// statistics depend on x; in evaluation the running statistics are constants.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &Array,
    gy: &Array,
    running_mean: Option<&[f64]>,
    running_var: Option<&[f64]>,
    weight: Option<&[f64]>,
    training: bool,
    eps: f64,
) -> (Array, Vec<f64>, Vec<f64>) {
    let (n, c) = (x.shape[0], x.shape[1]);
    let spatial: usize = x.shape[2..].iter().product();
    let m = (n * spatial) as f64;
    let mut gx = Array::zeros(&x.shape);
    let (mut gw, mut gb) = (vec![0.0; c], vec![0.0; c]);
    for ch in 0..c {
        let idx: Vec<usize> =
            (0..n).flat_map(|ni| (0..spatial).map(move |s| (ni * c + ch) * spatial + s)).collect();
        let (mean, var) = if training {
            let mean = idx.iter().map(|&i| x.data[i]).sum::<f64>() / m;
            (mean, idx.iter().map(|&i| (x.data[i] - mean).powi(2)).sum::<f64>() / m)
        } else {
            (running_mean.map_or(0.0, |v| v[ch]), running_var.map_or(1.0, |v| v[ch]))
        };
        let inv = 1.0 / (var + eps).sqrt();
        let w = weight.map_or(1.0, |w| w[ch]);
        let sum_g: f64 = idx.iter().map(|&i| gy.data[i]).sum();
        let sum_gx: f64 = idx.iter().map(|&i| gy.data[i] * (x.data[i] - mean) * inv).sum();
        gb[ch] = sum_g;
        gw[ch] = sum_gx;
        for &i in &idx {
            let xhat = (x.data[i] - mean) * inv;
            gx.data[i] = if training {
                w * inv / m * (m * gy.data[i] - sum_g - xhat * sum_gx)
            } else {
                gy.data[i] * w * inv
            };
        }
    }
    (gx, gw, gb)
}

mod activation;
mod augment;
mod combine;
mod fused;
#[cfg(test)]
mod gradient_checks;
mod loss;
mod pad;
mod pool;

pub use activation::{
    hardtanh, hardtanh_backward, leaky_relu, leaky_relu_backward, mul_scalar, sigmoid,
    sigmoid_backward,
};
pub use augment::{augment, augment_choices};
pub use combine::{add, cat, narrow, relu6, relu6_backward};
pub use fused::{conv_relu_max_pool_backward, conv_relu_max_pool_forward};
pub use loss::{
    cross_entropy, cross_entropy_backward, cross_entropy_smoothed, cross_entropy_smoothed_backward,
};
pub use pad::{pad, pad_backward, pad_shape};
pub use pool::{
    PoolAttrs, adaptive_avg_pool_backward, adaptive_avg_pool_forward, adaptive_max_pool_backward,
    adaptive_max_pool_forward, avg_pool_backward, avg_pool_forward, max_pool_backward,
    max_pool_forward, pool_output_size,
};
