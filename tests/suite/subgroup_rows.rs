//! The subgroup 3x3 kernels (`conv_3x3_sg_r16`, `wgrad_3x3_sg`) beyond their stride-1 3x3
//! layers of one sample per row, on devices with 8-lane subgroups (lavapipe): the forward pass
//! and weight gradient of 3x3 convolutions of stride 2 and padding 1 from x's plain rows,
//! first layers' forward passes over x's rows split by phase (a 2-D convolution of one group
//! and no dilation over at most 4 input channels: ResNet's 7x7 stride-2 stem, any other
//! kernel, stride and padding), and images one or two wide, several samples to a row of
//! texels. Forward and backward against gconv-ref, and which kernels a plan runs.

use gconv::nn::{Model, parse_layers};
use gconv::ops::Padding;
use gconv_ref::PaddingSpec;
use rand::Rng;

use super::common::{ctx, for_each_config, rng};
use super::conformance::{ConvCase, run_conv_case};

fn case(n: usize, (c_in, c_out): (usize, usize), size: Vec<usize>, k: Vec<usize>) -> ConvCase {
    ConvCase {
        n,
        c_in,
        c_out,
        groups: 1,
        size,
        k,
        stride: vec![1, 1],
        dil: vec![1, 1],
        padding: Padding::Explicit(vec![0, 0].into()),
        spec: PaddingSpec::Explicit(vec![0, 0]),
    }
}

fn with(mut c: ConvCase, stride: Vec<usize>, pads: Vec<usize>) -> ConvCase {
    c.stride = stride;
    c.padding = Padding::Explicit(pads.clone().into());
    c.spec = PaddingSpec::Explicit(pads);
    c
}

/// Random kernels (1 to 7 taps each way), strides (1 to 3), paddings (up to k - 1) and sizes,
/// 1 to 4 input channels and 1 to 40 outputs (several row blocks of 16, partial ones), and
/// the two stems at sizes that leave partial texels.
#[test]
fn first_layers_on_phase_rows_match_reference() {
    for_each_config("phase rows", 60, |r| {
        let k = vec![r.random_range(1..=7), r.random_range(1..=7)];
        let stride = vec![r.random_range(1..=3), r.random_range(1..=3)];
        let pads: Vec<usize> = k.iter().map(|&k| r.random_range(0..k)).collect();
        let size = (0..2).map(|d| r.random_range(k[d].max(1)..=k[d] + 13)).collect();
        let channels = (r.random_range(1..=4), r.random_range(1..=40));
        let c = with(case(r.random_range(1..=3), channels, size, k), stride, pads);
        run_conv_case(ctx(), r, c, 0.5, 1e-4)
    });
    let mut r = rng(7);
    let stem = with(case(2, (3, 64), vec![37, 42], vec![7, 7]), vec![2, 2], vec![3, 3]);
    run_conv_case(ctx(), &mut r, stem, 1.0, 1e-4).unwrap_or_else(|e| panic!("7x7 stem: {e}"));
    let stem = with(case(3, (3, 32), vec![29, 30], vec![3, 3]), vec![2, 2], vec![1, 1]);
    run_conv_case(ctx(), &mut r, stem, 0.0, 1e-4).unwrap_or_else(|e| panic!("3x3 stem: {e}"));
}

/// 3x3 convolutions of stride 2 and padding 1, whose forward passes and weight gradients run
/// from x's plain rows: random channels (1 to 20 in, 1 to 40 out) and sizes (odd and even, down
/// to 1), and ResNet's downsampling shape, in chunks.
#[test]
fn stride_2_3x3_forward_passes_on_plain_rows_match_reference() {
    for_each_config("stride-2 3x3", 40, |r| {
        let size = vec![r.random_range(1..=17), r.random_range(1..=17)];
        let channels = (r.random_range(1..=20), r.random_range(1..=40));
        let c =
            with(case(r.random_range(1..=3), channels, size, vec![3, 3]), vec![2, 2], vec![1, 1]);
        run_conv_case(ctx(), r, c, 0.5, 1e-4)
    });
    let mut r = rng(8);
    let down = with(case(5, (24, 48), vec![28, 28], vec![3, 3]), vec![2, 2], vec![1, 1]);
    run_conv_case(ctx(), &mut r, down, 1.0, 1e-4).unwrap_or_else(|e| panic!("28x28: {e}"));
}

/// 3x3 convolutions of stride 1 on images one or two wide (ResNet's last stages at 32x32 and
/// 64x64), whose rows of texels hold four or two samples side by side: random batches (an odd
/// one leaves its last row's second sample empty), heights and channels (enough input channels
/// for the subgroup weight gradient), forward and backward against gconv-ref; then a batch of
/// 11 that a context of small bindings takes in chunks of an odd number of samples, in a
/// training plan whose passes must pack the rows that way.
#[test]
fn narrow_images_share_rows_of_texels() {
    let narrow =
        |n, channels, size| with(case(n, channels, size, vec![3, 3]), vec![1, 1], vec![1, 1]);
    for_each_config("samples per row", 30, |r| {
        let size = vec![r.random_range(1..=5), r.random_range(1..=2)];
        let channels = (r.random_range(5..=20), r.random_range(1..=40));
        let c = narrow(r.random_range(1..=9), channels, size);
        run_conv_case(ctx(), r, c, 0.5, 1e-4)
    });
    let small = gconv::Context::new().expect("context");
    // 3 of the 11 samples' (24, 40, 2) inputs (7.5 KiB each) fit a binding of 28 KiB, which
    // the weight's packed texels (10 KiB) and its gradient's three pieces (20 KiB) also fit.
    small.limit_binding_size(28 << 10);
    let mut r = rng(11);
    run_conv_case(&small, &mut r, narrow(11, (24, 8), vec![40, 2]), 1.0, 1e-4)
        .unwrap_or_else(|e| panic!("chunks: {e}"));
    let graph = parse_layers("conv(24,32,k=3,p=1) flatten linear(2)", &[24, 3, 2]).expect("spec");
    let mut model = Model::from_graph(ctx(), "narrow", graph, 1).expect("model");
    let x = vec![0.5; 5 * 24 * 3 * 2];
    let parts = model.profile(&x, &[0; 5], true, 1).expect("profile");
    let conv: Vec<_> = parts.iter().filter(|p| p.node == "0").collect();
    assert_eq!(conv.len(), 2, "the convolution's forward and backward passes: {parts:?}");
    for part in conv {
        let packs = part.kernels.contains(&"pack_sample_rows");
        assert_eq!(packs, ctx().uses_subgroups(), "{:?}: {:?}", part.phase, part.kernels);
    }
}

/// The kernels a plan's first node runs where the device has subgroups: the phase rows for the
/// 7x7 stem and a 5x5 of stride 1, the plain rows of stride 2 for 3x3 convolutions of stride 2
/// and padding 1 (any channels), and neither for a 3x3 of stride 1 (its own rows), 8 input
/// channels of a 5x5, or a dilated kernel.
#[test]
fn row_kernels_are_chosen_where_they_apply() {
    let (phase, plain, other) = ("phase rows", "plain rows", "other");
    let cases = [
        ("conv(3,64,k=7,s=2,p=3)", [3, 32, 32], phase),
        ("conv(1,6,k=5,p=2)", [1, 28, 28], phase),
        ("conv(3,32,k=3,s=2,p=1)", [3, 32, 32], plain),
        ("conv(64,128,k=3,s=2,p=1)", [64, 16, 16], plain),
        ("conv(3,16,k=3,p=1)", [3, 32, 32], other),
        ("conv(8,16,k=5,s=2,p=2)", [8, 32, 32], other),
        ("conv(3,16,k=3,s=2,p=2,d=2)", [3, 32, 32], other),
    ];
    for (spec, input, want) in cases {
        let graph = parse_layers(spec, &input).expect("spec");
        let mut model = Model::from_graph(ctx(), "rows", graph, 1).expect("model");
        let x = vec![0.5; 2 * input.iter().product::<usize>()];
        let parts = model.profile(&x, &[0, 0], false, 1).expect("profile");
        let kernels = &parts[0].kernels;
        let got = match (kernels.contains(&"conv_3x3_sg_r16"), kernels.contains(&"pack_phase_rows"))
        {
            (true, true) => phase,
            (true, false) if !spec.contains("s=2") => other,
            (true, false) => plain,
            _ => other,
        };
        let want = if ctx().uses_subgroups() { want } else { other };
        assert_eq!(got, want, "{spec}: {kernels:?}");
    }
}

/// An infinite pixel under ResNet's stem on the phase rows: outputs whose window holds it are
/// infinite and every other output is finite, as in PyTorch (the empty slots of a group of
/// fewer than three taps read the pixel too, and 0 * inf would be NaN there).
#[test]
fn phase_rows_keep_an_infinite_pixel_to_its_windows() {
    let (h, w) = (21, 18);
    let mut data = vec![0.5f32; h * w];
    data[5 * w + 7] = f32::INFINITY;
    let x = gconv::Tensor::from_slice(ctx(), &data, &[1, 1, h, w]).expect("x");
    let weight = gconv::Tensor::from_slice(ctx(), &[0.25f32; 2 * 49], &[2, 1, 7, 7]).expect("w");
    let o = gconv::ops::ConvOptions {
        stride: vec![2, 2].into(),
        padding: Padding::Explicit(vec![3, 3].into()),
        ..Default::default()
    };
    let y = gconv::ops::conv2d(&x, &weight, None, &o).expect("conv");
    let (oh, ow) = (y.shape()[2], y.shape()[3]);
    let values = y.to_vec().expect("read");
    for (i, v) in values.iter().enumerate() {
        let (r, c) = ((i / ow) % oh, i % ow);
        // Output (r, c) reads rows 2r - 3 .. 2r + 3 and columns 2c - 3 .. 2c + 3.
        let covers = (2 * r).abs_diff(5) <= 3 && (2 * c).abs_diff(7) <= 3;
        assert_eq!(v.is_infinite(), covers, "output {i} ({r}, {c}): {v}");
        assert!(!v.is_nan(), "output {i}: {v}");
    }
}
