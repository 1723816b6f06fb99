//! First layers on the subgroup kernel's phase rows: on devices with 8-lane subgroups
//! (lavapipe), a 2-D convolution of one group and no dilation over at most 4 input channels
//! that is not a 3x3 of stride 1 and padding 1 (ResNet's 7x7 stride-2 stem, MobileNet's 3x3
//! stride-2 one, any other kernel, stride and padding) runs its forward pass on
//! `conv_3x3_sg_r16` over x's rows split by phase. Forward and backward against gconv-ref, and
//! which kernels a plan runs.

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

/// The kernels a plan's first layer runs: the phase rows where the device has subgroups, for
/// the stems and a 5x5 of stride 1; not for a 3x3 of stride 1 and padding 1 (the subgroup 3x3
/// kernel's own rows), 8 input channels, or a dilated kernel.
#[test]
fn first_layers_choose_phase_rows() {
    let cases = [
        ("conv(3,64,k=7,s=2,p=3)", [3, 32, 32], true),
        ("conv(3,32,k=3,s=2,p=1)", [3, 32, 32], true),
        ("conv(1,6,k=5,p=2)", [1, 28, 28], true),
        ("conv(3,16,k=3,p=1)", [3, 32, 32], false),
        ("conv(8,16,k=3,s=2,p=1)", [8, 32, 32], false),
        ("conv(3,16,k=3,s=2,p=2,d=2)", [3, 32, 32], false),
    ];
    let subgroups = ctx().uses_subgroups();
    for (spec, input, rows) in cases {
        let graph = parse_layers(spec, &input).expect("spec");
        let mut model = Model::from_graph(ctx(), "first", graph, 1).expect("model");
        let x = vec![0.5; 2 * input.iter().product::<usize>()];
        let parts = model.profile(&x, &[0, 0], false, 1).expect("profile");
        let kernels = &parts[0].kernels;
        let phase = kernels.contains(&"pack_phase_rows") && kernels.contains(&"conv_3x3_sg_r16");
        assert_eq!(phase, rows && subgroups, "{spec}: {kernels:?}");
    }
}
