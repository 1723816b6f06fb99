//! Sources beyond one texture copy (64 MiB, `TEXTURE_BUDGET`): kernels that read their source
//! through a texture copy take it a chunk of samples at a time rather than falling back to
//! storage-buffer loads, and must write every sample's output where it belongs.

use super::common::{ctx, rng};
use super::conformance::{depthwise_3x3, run_conv_case};

/// Depthwise 3x3 layers of stride 1 (forward pass and, on CPU adapters, the data gradient on
/// the forward strips) and stride 2 on three samples of 6 x 1000 x 1000 (72 MB, two samples
/// to a chunk, the last chunk short), forward and backward against gconv-ref.
#[test]
fn depthwise_strips_take_large_sources_in_chunks_of_samples() {
    let c = ctx();
    for stride in [1, 2] {
        let case = depthwise_3x3(6, 3, vec![1000, 1000], stride);
        run_conv_case(c, &mut rng(stride as u64), case, 1.0, 1e-4)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
