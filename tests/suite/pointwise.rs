//! Pointwise (1x1) convolutions whose GEMMs read a tensor in place: on lavapipe's 8-lane
//! subgroups, with a multiple of 4 positions, gemm_sg_r8 / r16 read the forward pass's B from
//! x's copy (more than 64 columns a chunk and a multiple of 4 input channels: `B_PLANES` 1 in
//! shaders/shared/gemm_in_place.wgsl) and the weight gradient's B^T from grad_y's or x's (more
//! than 64 channels on one side: `B_PLANES` 2), and the data gradient's B from grad_y's (a
//! multiple of 4 output channels: `B_PLANES` 1). Forward and backward against gconv-ref, in
//! 1-D, 2-D and 3-D, on both kernels and both weight-gradient orientations, and over a batch
//! the GEMMs take in chunks (each chunk's samples offset in the copies).

use gconv::ops::Padding;
use gconv_ref::PaddingSpec;
use rand::Rng;

use super::common::{ctx, for_each_config, rng};
use super::conformance::{ConvCase, run_conv_case};

fn case(n: usize, c_in: usize, c_out: usize, size: Vec<usize>) -> ConvCase {
    let ones = vec![1; size.len()];
    ConvCase {
        n,
        c_in,
        c_out,
        groups: 1,
        k: ones.clone(),
        stride: ones.clone(),
        dil: ones,
        padding: Padding::Explicit(vec![0; size.len()].into()),
        spec: PaddingSpec::Explicit(vec![0; size.len()]),
        size,
    }
}

#[test]
fn pointwise_convolutions_reading_x_in_place_match_reference() {
    for_each_config("pointwise in place", 24, |r| {
        // K of 4 to 96 channels: gemm_sg_r8 up to 64 output channels or 16 texels of K,
        // gemm_sg_r16 above both.
        let (n, c_in) = (r.random_range(1..=4), 4 * r.random_range(1..=24));
        let c_out: usize =
            if r.random_bool(0.5) { r.random_range(8..=64) } else { r.random_range(65..=90) };
        // Half with whole texels of output channels: the data gradient reads grad_y in place.
        let c_out = if r.random_bool(0.5) { c_out.next_multiple_of(4) } else { c_out };
        // Positions a multiple of 4, most more than 64, some not a multiple of 64 (a partial
        // last column block of a sample).
        let size = match r.random_range(0..=3) {
            // 8 to 64 positions: in place where the batch makes more than 64 columns.
            0 => vec![4 * r.random_range(2..=16)],
            1 => vec![4 * r.random_range(17..=60)],
            2 => vec![r.random_range(5..=12), 4 * r.random_range(4..=7)],
            _ => vec![r.random_range(2..=3), r.random_range(3..=6), 4 * r.random_range(3..=4)],
        };
        run_conv_case(ctx(), r, case(n, c_in, c_out, size), 0.5, 1e-4)
    });
    // 64x64 positions: a chunk of the batch fills a texture's 16,384 columns with 4 samples, so
    // 5 samples take two GEMMs a pass, the second reading x (and grad_y, in the weight gradient
    // over K split in parts) from sample 4 on.
    let mut r = rng(64);
    run_conv_case(ctx(), &mut r, case(5, 8, 72, vec![64, 64]), 1.0, 1e-4)
        .unwrap_or_else(|e| panic!("chunks: {e}"));
}
