//! Comparing results: the goldens' relative-L2 rule and an element-by-element check.

/// ||out - reference||_2 / ||reference||_2 in f64 (the absolute norm of the difference when
/// the reference is all zeros); infinity when `out` holds NaN or infinity or the lengths differ.
pub fn relative_error(out: &[f64], reference: &[f64]) -> f64 {
    if out.len() != reference.len() || out.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = out.iter().zip(reference).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = reference.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm == 0.0 { diff } else { diff / norm }
}

/// The first element where |out - ref| > atol + rtol * |ref| (or out is NaN or an infinity the
/// reference does not have), as (index, out, ref); None when every element is within tolerance.
pub fn first_mismatch(
    out: &[f64],
    reference: &[f64],
    atol: f64,
    rtol: f64,
) -> Option<(usize, f64, f64)> {
    if out.len() != reference.len() {
        return Some((out.len().min(reference.len()), f64::NAN, f64::NAN));
    }
    out.iter()
        .zip(reference)
        .enumerate()
        .find(|(_, (o, r))| o != r && (!o.is_finite() || (*o - *r).abs() > atol + rtol * r.abs()))
        .map(|(i, (o, r))| (i, *o, *r))
}

/// Widens f32 values for comparison.
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}
