//! Cross-entropy from logits (N, C) and class indices, with PyTorch's `ignore_index` and
//! `label_smoothing`, and its gradient with respect to the logits.

use super::{Array, logsumexp};

/// cross_entropy: per-sample losses, and their mean over the samples whose target is not
/// `ignore_index`.
pub fn cross_entropy(logits: &Array, target: &[i64], ignore_index: i64) -> (Vec<f64>, f64) {
    cross_entropy_smoothed(logits, target, ignore_index, 0.0)
}

/// cross_entropy with label smoothing `e`: the target distribution is 1 - e + e / C on the
/// target class and e / C on the others, so a sample's loss is
/// `logsumexp(x) - (1 - e) x[t] - e mean(x)`.
pub fn cross_entropy_smoothed(
    logits: &Array,
    target: &[i64],
    ignore_index: i64,
    e: f64,
) -> (Vec<f64>, f64) {
    let c = logits.shape[1];
    let mut losses = Vec::with_capacity(target.len());
    let (mut sum, mut count) = (0.0, 0usize);
    for (i, &t) in target.iter().enumerate() {
        if t == ignore_index {
            losses.push(0.0);
            continue;
        }
        let row = &logits.data[i * c..(i + 1) * c];
        // -sum_j q_j log p_j with q the smoothed target.
        let lse = logsumexp(row);
        let l: f64 = (0..c)
            .map(|j| {
                let q = e / c as f64 + if j as i64 == t { 1.0 - e } else { 0.0 };
                q * (lse - row[j])
            })
            .sum();
        losses.push(l);
        sum += l;
        count += 1;
    }
    (losses, sum / count as f64)
}

/// Gradient of [`cross_entropy`] with respect to the logits. `gy` holds one value for the
/// mean or sum, or one per sample (`reduction` "mean", "sum" or "none").
pub fn cross_entropy_backward(
    logits: &Array,
    target: &[i64],
    ignore_index: i64,
    gy: &[f64],
    reduction: &str,
) -> Array {
    cross_entropy_smoothed_backward(logits, target, ignore_index, gy, reduction, 0.0)
}

/// Gradient of [`cross_entropy_smoothed`]: g * (softmax(x) - q), q the smoothed target.
pub fn cross_entropy_smoothed_backward(
    logits: &Array,
    target: &[i64],
    ignore_index: i64,
    gy: &[f64],
    reduction: &str,
    e: f64,
) -> Array {
    let c = logits.shape[1];
    let count = target.iter().filter(|&&t| t != ignore_index).count() as f64;
    let mut gx = Array::zeros(&logits.shape);
    for (i, &t) in target.iter().enumerate() {
        if t == ignore_index {
            continue;
        }
        let g = match reduction {
            "none" => gy[i],
            "sum" => gy[0],
            _ => gy[0] / count,
        };
        let row = &logits.data[i * c..(i + 1) * c];
        let lse = logsumexp(row);
        for j in 0..c {
            let q = e / c as f64 + if j as i64 == t { 1.0 - e } else { 0.0 };
            gx.data[i * c + j] = g * ((row[j] - lse).exp() - q);
        }
    }
    gx
}
