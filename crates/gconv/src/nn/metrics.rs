//! What a model's running metrics report when read: loss, accuracy, and the first value that
//! was not finite (the words of `shaders/shared/health.wgsl`).

/// Loss and accuracy accumulated on the device since the last [`Model::take_metrics`], and
/// the first loss or gradient in that time that was not finite.
///
/// [`Model::take_metrics`]: super::Model::take_metrics
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Mean cross-entropy over the samples.
    pub loss: f64,
    /// Fraction of samples whose largest logit is their class.
    pub accuracy: f64,
    /// Samples counted.
    pub samples: u64,
    /// Batches counted (training steps and evaluated batches).
    pub batches: u64,
    /// The first loss or parameter gradient that held an infinity or a NaN, if any did.
    pub nonfinite: Option<NonFinite>,
}

/// A value a training step found not finite: the sign that training diverged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonFinite {
    /// The batch, counted from 1 since the metrics were last read (saturates at 1,048,575).
    pub batch: u64,
    /// `None` for the loss, else the parameter whose gradient it was.
    pub parameter: Option<String>,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.parameter {
            None => write!(f, "the loss is not finite"),
            Some(name) => write!(f, "the gradient of {name} is not finite"),
        }
    }
}

/// The words the device accumulates (see `Shared::metrics`).
pub(crate) const WORDS: usize = 8;

/// Reads the device's words: f32 bits for the sums, the health word as written by
/// `health_mark`; `names` are the parameters in the model's order.
pub(crate) fn decode(words: &[u32], names: &[&str]) -> Metrics {
    let value = |i: usize| f64::from(f32::from_bits(words[i]));
    let samples = value(2);
    let nonfinite = (words[4] != 0).then(|| {
        let key = u32::MAX - words[4];
        let what = (key & 0xfff) as usize;
        NonFinite {
            batch: u64::from(key >> 12),
            parameter: match what {
                0 => None,
                w => Some(
                    names.get(w - 1).map_or_else(|| format!("parameter {w}"), |n| n.to_string()),
                ),
            },
        }
    });
    Metrics {
        loss: if samples > 0.0 { value(0) / samples } else { f64::NAN },
        accuracy: if samples > 0.0 { value(1) / samples } else { f64::NAN },
        samples: samples as u64,
        batches: value(3) as u64,
        nonfinite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(loss: f32, correct: f32, samples: f32, batches: f32, health: u32) -> Vec<u32> {
        let mut w = vec![loss.to_bits(), correct.to_bits(), samples.to_bits(), batches.to_bits()];
        w.extend([health, 0, 0, 0]);
        w
    }

    #[test]
    fn health_words_name_the_batch_and_the_quantity() {
        let names = ["conv1.weight", "conv1.bias"];
        let m = decode(&words(6.0, 2.0, 4.0, 2.0, 0), &names);
        assert_eq!((m.loss, m.accuracy, m.samples, m.batches), (1.5, 0.5, 4, 2));
        assert_eq!(m.nonfinite, None);
        let mark = |batch: u32, what: u32| u32::MAX - ((batch << 12) | what);
        let m = decode(&words(f32::NAN, 0.0, 4.0, 3.0, mark(3, 0)), &names);
        assert_eq!(m.nonfinite, Some(NonFinite { batch: 3, parameter: None }));
        let m = decode(&words(1.0, 0.0, 4.0, 3.0, mark(2, 2)), &names);
        let nf = m.nonfinite.expect("marked");
        assert_eq!(
            (nf.batch, nf.to_string()),
            (2, "the gradient of conv1.bias is not finite".into())
        );
        let m = decode(&words(1.0, 0.0, 4.0, 3.0, mark(1, 9)), &names);
        assert_eq!(m.nonfinite.and_then(|n| n.parameter), Some("parameter 9".into()));
    }
}
