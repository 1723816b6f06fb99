//! Random-shape conformance: for each operator family, 200 seeded configurations run forward
//! and backward on the GPU and on gconv-ref, every element of every output and gradient compared
//! (outputs are poisoned with NaN first, so an element a kernel misses fails). Shapes include
//! odd sizes, 1x1 kernels, stride larger than the kernel, padding up to the kernel extent,
//! groups and depthwise, and batch 1. Pooling's are in conformance_pool.rs.

use gconv::Tensor;
use gconv::ops::{self, Padding};
use gconv_ref::{Array, PaddingSpec};
use rand::Rng;
use rand::rngs::SmallRng;

use super::common::{
    check, check_within, ctx, direct_ctx, every_context, for_each_config, im2col_ctx, portable_ctx,
    random, random_on, rng, workgroup_ctx,
};
use gconv_tests::compare::{first_mismatch, widen};

pub(crate) const CONFIGS: usize = 200;

/// 1-D, 2-D or 3-D.
pub(crate) fn spatial_rank(r: &mut SmallRng) -> usize {
    r.random_range(1..=3)
}

/// Channel counts (in, out) and groups: plain, grouped, depthwise, depthwise with a multiplier.
fn channels(r: &mut SmallRng) -> (usize, usize, usize) {
    match r.random_range(0..4) {
        0 => (r.random_range(1..=5), r.random_range(1..=7), 1),
        1 => {
            let g = r.random_range(2..=3);
            (g * r.random_range(1..=3), g * r.random_range(1..=3), g)
        }
        2 => {
            let c = r.random_range(1..=6);
            (c, c, c)
        }
        _ => {
            let c = r.random_range(1..=4);
            (c, c * r.random_range(2..=3), c)
        }
    }
}

/// Turns an operator error into the failure line of a configuration.
pub(crate) fn fail(what: &str) -> impl Fn(gconv::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Compares the three gradients of a convolution-like layer.
fn check_grads(
    what: &str,
    g: &ops::ConvGrads,
    gx: Array,
    gw: Array,
    gb: Vec<f64>,
    atol: f64,
) -> Result<(), String> {
    check_within(&format!("{what} grad_x"), &g.grad_input, &gx, atol)?;
    check_within(&format!("{what} grad_weight"), &g.grad_weight, &gw, atol)?;
    match &g.grad_bias {
        Some(b) => {
            check_within(&format!("{what} grad_bias"), b, &Array::new(&[gb.len()], gb), atol)
        }
        None => Ok(()),
    }
}

#[test]
fn random_conv_forward_and_backward_match_reference() {
    conv_conformance(ctx(), "conv (tiled where groups = 1)");
}

#[test]
fn random_conv_forward_and_backward_match_reference_with_im2col_kernels() {
    conv_conformance(im2col_ctx(), "conv (im2col + storage-buffer GEMM)");
}

#[test]
fn random_conv_forward_and_backward_match_reference_with_workgroup_gemm() {
    conv_conformance(workgroup_ctx(), "conv (tiled, workgroup-memory GEMM)");
}

#[test]
fn random_conv_forward_and_backward_match_reference_with_direct_kernels() {
    conv_conformance(direct_ctx(), "conv (direct kernels)");
}

fn conv_conformance(c: &gconv::Context, family: &str) {
    for_each_config(family, CONFIGS, |r| {
        let sd = spatial_rank(r);
        let n = r.random_range(1..=2);
        let (c_in, c_out, groups) = channels(r);
        let max_in = [0, 12, 9, 5][sd];
        let k: Vec<usize> =
            (0..sd).map(|_| r.random_range(1..=if sd == 3 { 3 } else { 4 })).collect();
        let dil: Vec<usize> = (0..sd).map(|_| r.random_range(1..=2)).collect();
        let stride: Vec<usize> = (0..sd).map(|_| r.random_range(1..=4)).collect();
        let extent: Vec<usize> = (0..sd).map(|i| dil[i] * (k[i] - 1)).collect();
        let mode = r.random_range(0..10);
        let (padding, spec, pads) = if mode == 0 && stride.iter().all(|&s| s == 1) {
            (Padding::Same, PaddingSpec::Same, vec![0; sd])
        } else if mode == 1 {
            (Padding::Valid, PaddingSpec::Valid, vec![0; sd])
        } else {
            let p: Vec<usize> = (0..sd).map(|i| r.random_range(0..=extent[i])).collect();
            (Padding::Explicit(p.clone().into()), PaddingSpec::Explicit(p.clone()), p)
        };
        // Every input at least as large as the padded kernel extent, so the output is non-empty.
        let size: Vec<usize> = (0..sd)
            .map(|i| {
                let need = (extent[i] + 1).saturating_sub(2 * pads[i]).max(1);
                r.random_range(need..=max_in.max(extent[i] + 1))
            })
            .collect();
        let case = ConvCase { n, c_in, c_out, groups, size, k, stride, dil, padding, spec };
        run_conv_case(c, r, case, 0.7, 1e-4)
    });
}

/// One convolution configuration of the conformance tests.
pub struct ConvCase {
    pub n: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub groups: usize,
    pub size: Vec<usize>,
    pub k: Vec<usize>,
    pub stride: Vec<usize>,
    pub dil: Vec<usize>,
    pub padding: Padding,
    pub spec: PaddingSpec,
}

/// Runs a case forward and backward on `c`, with random x, w, grad_y and (with probability
/// `bias_p`) bias, and compares the output and every gradient with gconv-ref's, within `atol`
/// (and a relative 1e-4).
pub fn run_conv_case(
    c: &gconv::Context,
    r: &mut SmallRng,
    case: ConvCase,
    bias_p: f64,
    atol: f64,
) -> Result<(), String> {
    let ConvCase { n, c_in, c_out, groups, size, k, stride, dil, padding, spec } = case;
    let sd = size.len();
    let mut xs = vec![n, c_in];
    xs.extend(&size);
    let mut ws = vec![c_out, c_in / groups];
    ws.extend(&k);
    let (x, xa) = random_on(c, r, &xs);
    let (w, wa) = random_on(c, r, &ws);
    let bias = r.random_bool(bias_p).then(|| random_on(c, r, &[c_out]));
    let o = ops::ConvOptions {
        stride: stride.clone().into(),
        padding,
        dilation: dil.clone().into(),
        groups,
    };
    let what = format!("conv{sd}d x {xs:?} w {ws:?} {o:?}");
    let f = [ops::conv1d, ops::conv2d, ops::conv3d][sd - 1];
    let y = f(&x, &w, bias.as_ref().map(|b| &b.0), &o).map_err(fail(&what))?;
    let attrs = gconv_ref::ConvAttrs {
        stride,
        padding: gconv_ref::resolve_padding(&spec, &k, &dil),
        dilation: dil,
        groups,
    };
    let reference = gconv_ref::conv_forward(&xa, &wa, bias.as_ref().map(|b| &b.1), &attrs);
    check_within(&what, &y, &reference, atol)?;
    let (gy, gya) = random_on(c, r, y.shape());
    let f = [ops::conv1d_backward, ops::conv2d_backward, ops::conv3d_backward][sd - 1];
    let g = f(&gy, &x, &w, bias.is_some(), &o).map_err(fail(&what))?;
    let (gx, gw, gb) = gconv_ref::conv_backward(&xa, &wa, &gya, &attrs);
    check_grads(&what, &g, gx, gw, gb, atol)
}

/// The 3x3 tile kernels (stride 1 and dilation 1 along h and w), which random shapes above
/// rarely hit: depthwise (with and without a multiplier), grouped, and few input channels;
/// 2-D and 3-D (any taps, stride and dilation along d), padding 0 to 3 (3 takes other kernels),
/// sizes around the 4x4 tiles, with and without bias; then two larger depthwise layers for the
/// weight gradient's two kernels.
#[test]
fn random_3x3_tiles_forward_and_backward_match_reference() {
    let c = ctx();
    for_each_config("3x3 tiles", 80, |r| {
        // A quarter on the portable context: its depthwise strips store f32s, where the
        // default context's store 64-bit integers on lavapipe (`Context::uses_wide_stores`).
        let c = if r.random_bool(0.25) { portable_ctx() } else { c };
        let sd = r.random_range(2..=3);
        let n = r.random_range(1..=2);
        let (c_in, c_out, groups) = match r.random_range(0..4) {
            0 => {
                let c = r.random_range(2..=6);
                (c, c, c)
            }
            1 => (r.random_range(1..=4), r.random_range(1..=6), 1),
            _ => channels(r),
        };
        let mut k: Vec<usize> = vec![3, 3];
        let mut stride = vec![1, 1];
        let mut dil = vec![1, 1];
        let mut pads = vec![r.random_range(0..=3), r.random_range(0..=3)];
        let mut size = vec![r.random_range(1..=13), r.random_range(1..=13)];
        if sd == 3 {
            k.insert(0, r.random_range(1..=3));
            stride.insert(0, r.random_range(1..=2));
            dil.insert(0, r.random_range(1..=2));
            pads.insert(0, r.random_range(0..=1));
            size.insert(0, r.random_range(1..=5));
        }
        // Every input at least as large as the padded kernel extent.
        for i in 0..sd {
            let extent = dil[i] * (k[i] - 1) + 1;
            size[i] = size[i].max(extent.saturating_sub(2 * pads[i]).max(1));
        }
        let same = r.random_bool(0.2) && stride[0] == 1;
        let (padding, spec) = if same {
            (Padding::Same, PaddingSpec::Same)
        } else {
            (Padding::Explicit(pads.clone().into()), PaddingSpec::Explicit(pads.clone()))
        };
        let case = ConvCase { n, c_in, c_out, groups, size, k, stride, dil, padding, spec };
        run_conv_case(c, r, case, 0.5, 1e-4)
    });
    // Larger planes, more than 64 tiles a weight slot: its weight gradient on a workgroup per
    // slot (4 channels) and, on a CPU adapter, on one invocation per slot (72 channels).
    for (channels, size) in [(4, 40), (72, 36)] {
        let case = depthwise_3x3(channels, 2, vec![size, size], 1);
        run_conv_case(c, &mut rng(channels as u64), case, 0.5, 1e-4)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The depthwise kernels' variants for 3x3 filters of stride 2 and padding 1 (MobileNet's
/// downsampling layers): odd and even sizes around their four-column runs, with and without
/// bias. The weight gradient sums a channel per invocation where it has few quads of grad_y
/// (most random cases) or, on a CPU adapter, more than 64 channels; else a workgroup per
/// channel: the last configurations reach those two with larger planes.
#[test]
fn random_depthwise_3x3_stride_2_forward_and_backward_match_reference() {
    let c = ctx();
    let mut i = 0;
    for_each_config("depthwise 3x3 stride 2", 44, |r| {
        i += 1;
        let (channels, n, size) = match i {
            41 => (3, 2, vec![33, 31]),
            42 => (5, 1, vec![66, 9]),
            43 => (65, 1, vec![40, 37]),
            44 => (66, 2, vec![17, 32]),
            _ => (
                r.random_range(1..=6),
                r.random_range(1..=3),
                vec![r.random_range(1..=17), r.random_range(1..=17)],
            ),
        };
        run_conv_case(c, r, depthwise_3x3(channels, n, size, 2), 0.5, 1e-4)
    });
}

/// A depthwise 3x3 convolution of padding 1 and the given stride.
pub(crate) fn depthwise_3x3(
    channels: usize,
    n: usize,
    size: Vec<usize>,
    stride: usize,
) -> ConvCase {
    ConvCase {
        n,
        c_in: channels,
        c_out: channels,
        groups: channels,
        size,
        k: vec![3, 3],
        stride: vec![stride, stride],
        dil: vec![1, 1],
        padding: Padding::Explicit(vec![1, 1].into()),
        spec: PaddingSpec::Explicit(vec![1, 1]),
    }
}

#[test]
fn random_conv_transpose_forward_and_backward_match_reference() {
    conv_transpose_conformance(ctx(), "conv_transpose");
}

/// On the workgroup layout a transposed convolution's forward pass is the implicit data
/// gradient of its adjoint (stride 1) and its data gradient the adjoint's implicit forward.
#[test]
fn random_conv_transpose_forward_and_backward_match_reference_with_workgroup_gemm() {
    conv_transpose_conformance(workgroup_ctx(), "conv_transpose (workgroup-memory GEMM)");
}

fn conv_transpose_conformance(c: &gconv::Context, family: &str) {
    let random = |r: &mut SmallRng, shape: &[usize]| random_on(c, r, shape);
    for_each_config(family, CONFIGS, |r| {
        let sd = spatial_rank(r);
        let n = r.random_range(1..=2);
        let (c_in, c_out, groups) = channels(r);
        let max_in = [0, 9, 6, 4][sd];
        let k: Vec<usize> =
            (0..sd).map(|_| r.random_range(1..=if sd == 3 { 3 } else { 4 })).collect();
        let dil: Vec<usize> = (0..sd).map(|_| r.random_range(1..=2)).collect();
        let stride: Vec<usize> = (0..sd).map(|_| r.random_range(1..=3)).collect();
        let size: Vec<usize> = (0..sd).map(|_| r.random_range(1..=max_in)).collect();
        // Padding may remove at most what the full output has, less one element.
        let padding: Vec<usize> = (0..sd)
            .map(|i| {
                let full = (size[i] - 1) * stride[i] + dil[i] * (k[i] - 1) + 1;
                r.random_range(0..=((full - 1) / 2).min(dil[i] * (k[i] - 1)))
            })
            .collect();
        let output_padding: Vec<usize> =
            (0..sd).map(|i| r.random_range(0..stride[i].max(dil[i]))).collect();
        let mut xs = vec![n, c_in];
        xs.extend(&size);
        let mut ws = vec![c_in, c_out / groups];
        ws.extend(&k);
        let (x, xa) = random(r, &xs);
        let (w, wa) = random(r, &ws);
        let bias = r.random_bool(0.7).then(|| random(r, &[c_out]));
        let o = ops::ConvTransposeOptions {
            stride: stride.clone().into(),
            padding: padding.clone().into(),
            output_padding: output_padding.clone().into(),
            dilation: dil.clone().into(),
            groups,
        };
        let what = format!("conv_transpose{sd}d x {xs:?} w {ws:?} {o:?}");
        let f = [ops::conv_transpose1d, ops::conv_transpose2d, ops::conv_transpose3d][sd - 1];
        let y = f(&x, &w, bias.as_ref().map(|b| &b.0), &o).map_err(fail(&what))?;
        let attrs = gconv_ref::ConvTransposeAttrs {
            stride,
            padding,
            output_padding,
            dilation: dil,
            groups,
        };
        check(
            &what,
            &y,
            &gconv_ref::conv_transpose_forward(&xa, &wa, bias.as_ref().map(|b| &b.1), &attrs),
        )?;
        let (gy, gya) = random(r, y.shape());
        let f = [
            ops::conv_transpose1d_backward,
            ops::conv_transpose2d_backward,
            ops::conv_transpose3d_backward,
        ][sd - 1];
        let g = f(&gy, &x, &w, bias.is_some(), &o).map_err(fail(&what))?;
        let (gx, gw, gb) = gconv_ref::conv_transpose_backward(&xa, &wa, &gya, &attrs);
        check_grads(&what, &g, gx, gw, gb, 1e-4)
    });
}

/// `arr` repeated `batch` times along a new leading dimension (a broadcast matmul operand as the
/// reference, which multiplies equal batches, needs it).
fn expand(arr: &Array, batch: usize) -> Array {
    let mut shape = vec![batch];
    shape.extend(&arr.shape);
    Array::new(&shape, arr.data.repeat(batch))
}

/// The sum over the leading dimension: the gradient of an operand that was broadcast.
fn fold(g: &Array, shape: &[usize]) -> Array {
    let len: usize = shape.iter().product();
    let mut sum = vec![0.0; len];
    for (i, v) in g.data.iter().enumerate() {
        sum[i % len] += v;
    }
    Array::new(shape, sum)
}

#[test]
fn random_linear_and_matmul_forward_and_backward_match_reference() {
    gemm_conformance(ctx(), "gemm (tiled)");
}

#[test]
fn random_linear_and_matmul_forward_and_backward_match_reference_with_workgroup_gemm() {
    gemm_conformance(workgroup_ctx(), "gemm (workgroup-memory tiles)");
}

/// Auto picks the register-blocked layout on CPU adapters (lavapipe) and the workgroup one on
/// GPUs, from the device's own adapter info; a context's choice overrides it.
#[test]
fn the_gemm_layout_follows_the_adapter() {
    if std::env::var_os("GCONV_GEMM_LAYOUT").is_some() {
        return;
    }
    let c = gconv::Context::new().expect("context");
    let auto = if c.is_cpu_adapter() {
        gconv::GemmLayout::Registers
    } else {
        gconv::GemmLayout::Workgroup
    };
    assert_eq!(c.gemm_layout(), auto, "on {}", c.adapter_name());
    let cpu = c.adapter_info().map(|i| i.device_type == gconv::wgpu::DeviceType::Cpu);
    assert_eq!(cpu, Some(c.is_cpu_adapter()));
    for layout in [gconv::GemmLayout::Workgroup, gconv::GemmLayout::Registers] {
        c.set_gemm_layout(layout);
        assert_eq!(c.gemm_layout(), layout);
    }
    // The subgroup kernels run exactly where the device has 8-lane subgroups (lavapipe on
    // 256-bit SIMD), unless forbidden.
    if std::env::var_os("GCONV_SUBGROUPS").is_none() {
        let info = c.device().adapter_info();
        let eight = c.device().features().contains(gconv::wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == 8
            && info.subgroup_max_size == 8;
        assert_eq!(c.uses_subgroups(), eight, "on {}", c.adapter_name());
        if c.adapter_name().contains("llvmpipe (LLVM") && c.adapter_name().contains("256 bits") {
            assert!(c.uses_subgroups(), "lavapipe offers 8-lane subgroups");
            assert!(c.uses_wide_stores(), "lavapipe offers 64-bit integers");
        }
        // The wide stores come with the subgroup kernels, on CPU adapters with 64-bit integers.
        let int64 = c.device().features().contains(gconv::wgpu::Features::SHADER_INT64);
        assert_eq!(c.uses_wide_stores(), eight && int64 && c.is_cpu_adapter());
    }
    c.set_subgroups(false);
    assert!(!c.uses_subgroups());
    assert!(!c.uses_wide_stores());
}

/// The random shapes above are too small for the 128x128 workgroup tiles, which a GEMM gets
/// when it has enough of them for a large GPU: a batched product with partial tiles on every
/// edge and a K that ends inside a stage.
#[test]
fn batched_matmul_on_128_tiles_matches_reference() {
    let c = workgroup_ctx();
    let mut r = rng(128);
    for (batch, m, k, n) in [(260, 130, 21, 131), (30, 257, 70, 300)] {
        let (a, aa) = random_on(c, &mut r, &[batch, m, k]);
        let (b, ba) = random_on(c, &mut r, &[batch, k, n]);
        let y = ops::matmul(&a, &b).expect("matmul");
        let what = format!("matmul [{batch}, {m}, {k}] @ [{batch}, {k}, {n}]");
        check(&what, &y, &gconv_ref::matmul(&aa, &ba)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The register layout's portable kernels, where the default context takes the subgroup ones.
#[test]
fn random_linear_and_matmul_forward_and_backward_match_reference_without_subgroups() {
    gemm_conformance(portable_ctx(), "gemm (tiled, no subgroups)");
}

#[test]
fn random_linear_and_matmul_forward_and_backward_match_reference_with_simple_gemm() {
    gemm_conformance(im2col_ctx(), "gemm (storage-buffer kernel)");
}

/// On lavapipe's 8-lane subgroups gemm_sg_r16 / r8 read row-major operands in place from
/// copies of their rows (shaders/shared/gemm_in_place.wgsl) where K and the row lengths are
/// whole texels, M >= 8 and N > 64: linear's x and W^T (forward), grad_output and W
/// (grad_input), x (grad_weight, whose grad_output^T is packed), and an unbatched matmul's A
/// and B (and its gradients likewise). Sizes that take those paths, and some that take them
/// for one GEMM of a pass and not the other.
#[test]
fn linear_and_matmul_reading_operands_in_place_match_reference() {
    gemm_conformance_sized(ctx(), "gemm (in place)", 40, |r| {
        let m = 4 * r.random_range(2..=24);
        let k = if r.random_bool(0.7) {
            4 * r.random_range(17..=48)
        } else {
            4 * r.random_range(1..=16)
        };
        let n = if r.random_bool(0.7) {
            4 * r.random_range(17..=48)
        } else {
            4 * r.random_range(1..=16)
        };
        (m, k, n)
    });
}

/// gemm_sg_r16 / r8 fit their workgroups to M (1 to 8 row blocks a workgroup, tiled.rs's
/// `subgroup_row_blocks`): tall products of K > 64 (gemm_sg_r16) and K <= 64 (r8), of M with
/// every count of row blocks from 7 to 25, over several rows of workgroups.
#[test]
fn register_gemms_with_workgroups_fitted_to_m_match_reference() {
    gemm_conformance_sized(ctx(), "gemm (row blocks fitted to M)", 6, |r| {
        let m = 16 * r.random_range(6..=24) + r.random_range(1..=16);
        let k = if m % 2 == 0 { r.random_range(65..=160) } else { r.random_range(8..=64) };
        (m, k, r.random_range(65..=140))
    });
}

fn gemm_conformance(c: &gconv::Context, family: &str) {
    // Mostly small odd sizes; some large enough for the largest tiles, some with a long K and
    // few output tiles, which the tiled kernel splits.
    gemm_conformance_sized(c, family, CONFIGS, |r| match r.random_range(0..10) {
        0 | 1 => (r.random_range(120..=300), r.random_range(1..=70), r.random_range(120..=300)),
        2 => (r.random_range(1..=40), r.random_range(520..=900), r.random_range(1..=40)),
        _ => (r.random_range(1..=70), r.random_range(1..=70), r.random_range(1..=70)),
    });
}

/// `configs` linear layers or matrix products (half each) of sizes (M, K, N) from `sizes`,
/// forward and backward against gconv-ref.
fn gemm_conformance_sized(
    c: &gconv::Context,
    family: &str,
    configs: usize,
    sizes: impl Fn(&mut SmallRng) -> (usize, usize, usize),
) {
    let random = |r: &mut SmallRng, shape: &[usize]| random_on(c, r, shape);
    for_each_config(family, configs, |r| {
        let (m, k, n) = sizes(r);
        if r.random_bool(0.5) {
            let mut xs: Vec<usize> = match r.random_range(0..3) {
                0 => vec![],
                1 => vec![m],
                _ => vec![r.random_range(1..=3), m.div_ceil(3)],
            };
            xs.push(k);
            let (x, xa) = random(r, &xs);
            let (w, wa) = random(r, &[n, k]);
            let bias = r.random_bool(0.7).then(|| random(r, &[n]));
            let what = format!("linear x {xs:?} w [{n}, {k}] bias {}", bias.is_some());
            let y = ops::linear(&x, &w, bias.as_ref().map(|b| &b.0)).map_err(fail(&what))?;
            check(&what, &y, &gconv_ref::linear(&xa, &wa, bias.as_ref().map(|b| &b.1)))?;
            let (gy, gya) = random(r, y.shape());
            let g = ops::linear_backward(&gy, &x, &w, bias.is_some()).map_err(fail(&what))?;
            let (gx, gw, gb) = gconv_ref::linear_backward(&xa, &wa, &gya);
            let g = ops::ConvGrads {
                grad_input: g.grad_input,
                grad_weight: g.grad_weight,
                grad_bias: g.grad_bias,
            };
            check_grads(&what, &g, gx, gw, gb, 1e-4)
        } else {
            let batch = r.random_range(1..=4);
            // Equal batches, or one side a plain matrix broadcast over the other's batch.
            let (a_batched, b_batched) =
                [(true, false), (false, true), (false, false), (true, true)][r.random_range(0..4)];
            let shape = |batched: bool, rows: usize, cols: usize| {
                if batched { vec![batch, rows, cols] } else { vec![rows, cols] }
            };
            let (a_s, b_s) = (shape(a_batched, m, k), shape(b_batched, k, n));
            let (a, aa) = random(r, &a_s);
            let (b, ba) = random(r, &b_s);
            let what = format!("matmul {a_s:?} @ {b_s:?}");
            let y = ops::matmul(&a, &b).map_err(fail(&what))?;
            let out_batch = if a_batched || b_batched { batch } else { 1 };
            let (ea, eb) = (
                if a_batched { aa.clone() } else { expand(&aa, out_batch) },
                if b_batched { ba.clone() } else { expand(&ba, out_batch) },
            );
            let mut expected = gconv_ref::matmul(&ea, &eb);
            if !a_batched && !b_batched {
                expected.shape.remove(0);
            }
            check(&what, &y, &expected)?;
            let (gy, mut gya) = random(r, y.shape());
            if gya.shape.len() == 2 {
                gya.shape.insert(0, 1);
            }
            let (ga, gb) = ops::matmul_backward(&gy, &a, &b).map_err(fail(&what))?;
            let (ega, egb) = gconv_ref::matmul_backward(&ea, &eb, &gya);
            let ega = if a_batched { ega } else { fold(&ega, &a_s) };
            let egb = if b_batched { egb } else { fold(&egb, &b_s) };
            check(&format!("{what} grad_a"), &ga, &ega)?;
            check(&format!("{what} grad_b"), &gb, &egb)
        }
    });
}

#[test]
fn random_relu_softmax_log_softmax_forward_and_backward_match_reference() {
    for_each_config("activation", CONFIGS, |r| {
        let rank = r.random_range(1..=4);
        let shape: Vec<usize> = (0..rank).map(|_| r.random_range(1..=9)).collect();
        let (x, xa) = random(r, &shape);
        let (gy, gya) = random(r, &shape);
        let dim = r.random_range(0..rank);
        let signed_dim =
            if r.random_bool(0.5) { dim as isize - rank as isize } else { dim as isize };
        let what = format!("x {shape:?} dim {signed_dim}");
        match r.random_range(0..3) {
            0 => {
                check(
                    &format!("relu {what}"),
                    &ops::relu(&x).map_err(fail(&what))?,
                    &gconv_ref::relu(&xa),
                )?;
                let gx = ops::relu_backward(&gy, &x).map_err(fail(&what))?;
                check(&format!("relu_backward {what}"), &gx, &gconv_ref::relu_backward(&xa, &gya))
            }
            1 => {
                let y = ops::softmax(&x, signed_dim).map_err(fail(&what))?;
                let ya = gconv_ref::softmax(&xa, dim);
                check(&format!("softmax {what}"), &y, &ya)?;
                let gx = ops::softmax_backward(&gy, &y, signed_dim).map_err(fail(&what))?;
                check(
                    &format!("softmax_backward {what}"),
                    &gx,
                    &gconv_ref::softmax_backward(&ya, &gya, dim),
                )
            }
            _ => {
                let y = ops::log_softmax(&x, signed_dim).map_err(fail(&what))?;
                let ya = gconv_ref::log_softmax(&xa, dim);
                check(&format!("log_softmax {what}"), &y, &ya)?;
                let gx = ops::log_softmax_backward(&gy, &y, signed_dim).map_err(fail(&what))?;
                check(
                    &format!("log_softmax_backward {what}"),
                    &gx,
                    &gconv_ref::log_softmax_backward(&ya, &gya, dim),
                )
            }
        }
    });
}

#[test]
fn random_cross_entropy_forward_and_backward_match_reference() {
    for_each_config("cross_entropy", CONFIGS, |r| {
        // Rows of 128 classes or more run on the wide kernels (a workgroup per row).
        let c =
            if r.random_bool(0.3) { r.random_range(128..=1100) } else { r.random_range(1..=20) };
        let n = r.random_range(1..=300);
        let (x, xa) = random(r, &[n, c]);
        let ignore = -100;
        let mut target: Vec<i32> = (0..n).map(|_| r.random_range(0..c as i32)).collect();
        if r.random_bool(0.3) {
            // Ignore some samples, never all of them.
            for t in target.iter_mut().skip(1) {
                if r.random_bool(0.3) {
                    *t = ignore;
                }
            }
        }
        let t = Tensor::from_slice_i32(ctx(), &target, &[n]).map_err(|e| e.to_string())?;
        let t64: Vec<i64> = target.iter().map(|&v| i64::from(v)).collect();
        let smoothing = if r.random_bool(0.5) { r.random_range(0.0..1.0f32) } else { 0.0 };
        let e = f64::from(smoothing);
        let (losses, mean) = gconv_ref::cross_entropy_smoothed(&xa, &t64, i64::from(ignore), e);
        let (reduction, name) = [
            (ops::Reduction::Mean, "mean"),
            (ops::Reduction::Sum, "sum"),
            (ops::Reduction::None, "none"),
        ][r.random_range(0..3)];
        let o = ops::CrossEntropyOptions {
            reduction,
            ignore_index: ignore,
            label_smoothing: smoothing,
        };
        let what = format!("cross_entropy [{n}, {c}] {o:?}");
        let y = ops::cross_entropy(&x, &t, &o).map_err(fail(&what))?;
        let expected = match reduction {
            ops::Reduction::Mean => Array::new(&[], vec![mean]),
            ops::Reduction::Sum => Array::new(&[], vec![losses.iter().sum()]),
            ops::Reduction::None => Array::new(&[n], losses),
        };
        check(&what, &y, &expected)?;
        let (gy, gya) = random(r, y.shape());
        let gx = ops::cross_entropy_backward(&gy, &x, &t, &o).map_err(fail(&what))?;
        let expected = gconv_ref::cross_entropy_smoothed_backward(
            &xa,
            &t64,
            i64::from(ignore),
            &gya.data,
            name,
            e,
        );
        check(&format!("{what} grad_x"), &gx, &expected)
    });
}

#[test]
fn random_batch_norm_forward_and_backward_match_reference() {
    for_each_config("batch_norm", CONFIGS, |r| {
        let rank = r.random_range(2..=5);
        let mut shape = vec![r.random_range(1..=4), r.random_range(1..=6)];
        shape.extend((2..rank).map(|_| r.random_range(1..=6)));
        // Planes of at least a reduction workgroup (256), which the kernels walk plane by plane.
        if r.random_bool(0.3) {
            shape = vec![r.random_range(1..=3), r.random_range(1..=4), r.random_range(16..=20), 17];
        }
        // Channels of whole quads beyond the one-invocation reductions' 256 (norm.rs's
        // LANE_QUADS), in planes of fewer quads than a workgroup or of more.
        if r.random_bool(0.2) {
            shape = match r.random_bool(0.5) {
                true => vec![r.random_range(11..=14), r.random_range(1..=3), 8, 12],
                false => vec![4, r.random_range(1..=3), 16, 20],
            };
        }
        let training = r.random_bool(0.6);
        if training && shape[0] * shape[2..].iter().product::<usize>() < 2 {
            shape[0] = 2;
        }
        let c = shape[1];
        let (x, xa) = random(r, &shape);
        let with_running = !training || r.random_bool(0.7);
        let running = with_running.then(|| {
            let mean: Vec<f32> = (0..c).map(|_| r.random_range(-0.5..0.5)).collect();
            let var: Vec<f32> = (0..c).map(|_| r.random_range(0.5..2.0)).collect();
            (mean, var)
        });
        let (w, b) = (
            r.random_bool(0.7).then(|| random(r, &[c])),
            r.random_bool(0.7).then(|| random(r, &[c])),
        );
        let o = ops::BatchNormOptions { training, momentum: r.random_range(0.05..0.5), eps: 1e-5 };
        let what = format!("batch_norm x {shape:?} {o:?} running {with_running}");
        let upload = |v: &[f32]| Tensor::from_slice(ctx(), v, &[c]).expect("upload");
        let (rm, rv) = match &running {
            Some((m, v)) => (Some(upload(m)), Some(upload(v))),
            None => (None, None),
        };
        let (wt, bt) = (w.as_ref().map(|t| &t.0), b.as_ref().map(|t| &t.0));
        let (y, stats) = ops::batch_norm_with_stats(&x, rm.as_ref(), rv.as_ref(), wt, bt, &o)
            .map_err(fail(&what))?;
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let (rm64, rv64) =
            (running.as_ref().map(|r| widen(&r.0)), running.as_ref().map(|r| widen(&r.1)));
        let wa = w.as_ref().map(|t| t.1.data.as_slice());
        let ba = b.as_ref().map(|t| t.1.data.as_slice());
        let e = gconv_ref::batch_norm_forward(
            &xa,
            rm64.as_deref(),
            rv64.as_deref(),
            wa,
            ba,
            training,
            o.momentum,
            o.eps,
        );
        check(&what, &y, &e.y)?;
        if training
            && let (Some(rm), Some(rv), Some(em), Some(ev)) =
                (rm, rv, e.running_mean, e.running_var)
        {
            check(&format!("{what} running_mean"), &rm, &Array::new(&[c], em))?;
            check(&format!("{what} running_var"), &rv, &Array::new(&[c], ev))?;
        }
        let (gy, gya) = random(r, &shape);
        let g =
            ops::batch_norm_backward(&gy, &x, &stats, wt, b.is_some(), &o).map_err(fail(&what))?;
        let (gx, gw, gb) = gconv_ref::batch_norm_backward(
            &xa,
            &gya,
            rm64.as_deref(),
            rv64.as_deref(),
            wa,
            training,
            o.eps,
        );
        check(&format!("{what} grad_x"), &g.grad_input, &gx)?;
        if let Some(t) = &g.grad_weight {
            check(&format!("{what} grad_weight"), t, &Array::new(&[c], gw))?;
        }
        if let Some(t) = &g.grad_bias {
            check(&format!("{what} grad_bias"), t, &Array::new(&[c], gb))?;
        }
        Ok(())
    });
}

/// lavapipe ends a kernel's loops once their iterations add up to 65535 (Mesa's
/// `LP_MAX_TGSI_LOOP_ITERATIONS`), silently, so sums longer than that are split into pieces.
/// Weight gradients over 16 x 64 x 64 = 65536 positions or more on every convolution path (3x3
/// tiles, tiled GEMM on both layouts with and without subgroups, im2col with the storage-buffer
/// GEMM, direct, depthwise, depthwise 3x3 of stride 2), and a GEMM with K = 70000 on every GEMM
/// kernel; each used to drop the tail of its sum.
#[test]
fn sums_longer_than_lavapipes_loop_limit_match_reference() {
    for (name, c) in every_context() {
        let mut r = rng(65536);
        // 3 input channels: the 3x3 tiles; 6: the tiled GEMM; 2x2 in two groups: direct;
        // 2x2 depthwise over 64 x 256 x 256: the depthwise kernel, whose 64 lanes share the rows.
        let cases = [(3, 5, 1, 3, 64), (6, 5, 1, 3, 64), (4, 4, 2, 2, 64), (2, 2, 2, 2, 256)];
        for (c_in, c_out, groups, k, out) in cases {
            let size = vec![out + k - 1, out + k - 1];
            let case = ConvCase {
                n: if out == 256 { 64 } else { 16 },
                c_in,
                c_out,
                groups,
                size,
                k: vec![k, k],
                stride: vec![1, 1],
                dil: vec![1, 1],
                padding: Padding::Explicit(vec![0, 0].into()),
                spec: PaddingSpec::Explicit(vec![0, 0]),
            };
            run_conv_case(c, &mut r, case, 1.0, 1e-2).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // A 3x3 stride-2 depthwise layer of 65 channels, 33,000 rows of one output: on a CPU
        // adapter one invocation sums each channel, in pieces of 32,767 rows.
        let case = depthwise_3x3(65, 1, vec![66_000, 2], 2);
        run_conv_case(c, &mut r, case, 1.0, 1e-2).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (batch, m, k, n) = (16, 8, 70_000, 8);
        let (a, aa) = random_on(c, &mut r, &[batch, m, k]);
        let (b, ba) = random_on(c, &mut r, &[batch, k, n]);
        let y = ops::matmul(&a, &b).expect("matmul");
        // Entries are sums of 70000 products in [-1, 1), about 150 in size: f32 rounding
        // alone exceeds check's 1e-4, and a dropped tail would be off by about 20.
        let got = widen(&y.to_vec().expect("read"));
        let want = gconv_ref::matmul(&aa, &ba).data;
        if let Some((i, g, w)) = first_mismatch(&got, &want, 1e-2, 1e-4) {
            panic!(
                "{name}: matmul [{batch}, {m}, {k}] @ [{batch}, {k}, {n}]: element {i}: gpu {g}, reference {w}"
            );
        }
    }
}

/// 3x3 convolutions of stride 1 and padding 1, which on lavapipe's 8-lane subgroups run the
/// kernels of subgroup/conv_3x3_sg.wgsl (conv_3x3_sg_r16 forward and data gradient, wgrad_3x3_sg):
/// widths 1 to 13 around the texel and texel-pair boundaries, heights 1 to 9, channels around
/// the 8- and 16-lane blocks (few input channels keep the 3x3 tiles' weight gradient), with
/// and without bias; then a batch of 66 32x32 samples, which the kernels take in chunks.
#[test]
fn implicit_3x3_convolutions_match_reference() {
    let case = |n, c_in, c_out, size| ConvCase {
        n,
        c_in,
        c_out,
        groups: 1,
        size,
        k: vec![3, 3],
        stride: vec![1, 1],
        dil: vec![1, 1],
        padding: Padding::Explicit(vec![1, 1].into()),
        spec: PaddingSpec::Explicit(vec![1, 1]),
    };
    for_each_config("implicit 3x3", 24, |r| {
        let (n, c_in, c_out) =
            (r.random_range(1..=3), r.random_range(1..=20), r.random_range(1..=20));
        let size = vec![r.random_range(1..=9), r.random_range(1..=13)];
        run_conv_case(ctx(), r, case(n, c_in, c_out, size), 0.5, 1e-4)
    });
    let mut r = rng(66);
    run_conv_case(ctx(), &mut r, case(66, 6, 5, vec![32, 32]), 1.0, 1e-4)
        .unwrap_or_else(|e| panic!("chunks: {e}"));
}

/// 3x3 convolutions of stride 1 with enough input channels for the tiled GEMM (more than 4),
/// which random shapes above seldom give: their data gradients (and transposed convolutions'
/// forward passes, with the bias) go through col2im_3x3.
#[test]
fn plain_3x3_convolutions_on_the_tiled_gemm_match_reference() {
    for_each_config("3x3 tiled", 40, |r| {
        // Half on the portable GEMM kernels (see portable_ctx).
        let c = if r.random_bool(0.5) { ctx() } else { portable_ctx() };
        let (n, c_in, c_out) =
            (r.random_range(1..=3), r.random_range(5..=9), r.random_range(1..=9));
        let pads = vec![r.random_range(0..=2), r.random_range(0..=2)];
        let size = vec![r.random_range(3..=12), r.random_range(3..=12)];
        if r.random_bool(0.5) {
            let case = ConvCase {
                n,
                c_in,
                c_out,
                groups: 1,
                size,
                k: vec![3, 3],
                stride: vec![1, 1],
                dil: vec![1, 1],
                padding: Padding::Explicit(pads.clone().into()),
                spec: PaddingSpec::Explicit(pads),
            };
            return run_conv_case(c, r, case, 0.5, 1e-4);
        }
        let (x, xa) = random_on(c, r, &[n, c_in, size[0], size[1]]);
        let (w, wa) = random_on(c, r, &[c_in, c_out, 3, 3]);
        let bias = r.random_bool(0.5).then(|| random_on(c, r, &[c_out]));
        let o = ops::ConvTransposeOptions { padding: pads.clone().into(), ..Default::default() };
        let what = format!("conv_transpose2d x {:?} w {:?} {o:?}", x.shape(), w.shape());
        let y =
            ops::conv_transpose2d(&x, &w, bias.as_ref().map(|b| &b.0), &o).map_err(fail(&what))?;
        let attrs = gconv_ref::ConvTransposeAttrs {
            stride: vec![1, 1],
            padding: pads,
            output_padding: vec![0, 0],
            dilation: vec![1, 1],
            groups: 1,
        };
        let bias_ref = bias.as_ref().map(|b| &b.1);
        check(&what, &y, &gconv_ref::conv_transpose_forward(&xa, &wa, bias_ref, &attrs))?;
        let (gy, gya) = random_on(c, r, y.shape());
        let g =
            ops::conv_transpose2d_backward(&gy, &x, &w, bias.is_some(), &o).map_err(fail(&what))?;
        let (gx, gw, gb) = gconv_ref::conv_transpose_backward(&xa, &wa, &gya, &attrs);
        check_grads(&what, &g, gx, gw, gb, 1e-4)
    });
}
