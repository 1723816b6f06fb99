//! Shared fixtures: one context for the whole binary, random data, comparisons.

use std::sync::OnceLock;

use gconv::{Context, Tensor};
use gconv_ref::Array;
use gconv_tests::compare::{first_mismatch, widen};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The context every test shares, with output poisoning on: an element a kernel does not
/// write stays NaN and fails the comparison.
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = Context::new().unwrap_or_else(|e| panic!("no GPU context: {e}"));
        eprintln!("adapter: {}", ctx.adapter_name());
        ctx.set_poison_outputs(true);
        ctx
    })
}

/// A second context whose convolutions always take the direct kernels (the reference the
/// im2col path is checked against), also poisoned.
pub fn direct_ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = Context::new().unwrap_or_else(|e| panic!("no GPU context: {e}"));
        ctx.set_poison_outputs(true);
        ctx.set_conv_strategy(gconv::ConvStrategy::Direct);
        ctx
    })
}

/// A third context on the storage-buffer paths: im2col convolutions and the simple GEMM kernel
/// (the tiled kernels' fallback where their textures do not fit), also poisoned.
pub fn im2col_ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = Context::new().unwrap_or_else(|e| panic!("no GPU context: {e}"));
        ctx.set_poison_outputs(true);
        ctx.set_conv_strategy(gconv::ConvStrategy::Im2col);
        ctx.set_gemm_strategy(gconv::GemmStrategy::Simple);
        ctx
    })
}

/// A fourth context whose tiled GEMMs use the GPU layout (workgroup-memory tiles,
/// [`gconv::GemmLayout::Workgroup`]) whatever the adapter, so that lavapipe tests it too; also
/// poisoned.
pub fn workgroup_ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = Context::new().unwrap_or_else(|e| panic!("no GPU context: {e}"));
        ctx.set_poison_outputs(true);
        ctx.set_gemm_layout(gconv::GemmLayout::Workgroup);
        ctx
    })
}

/// A fifth context that never runs subgroup kernels (`Context::set_subgroups(false)`), so
/// that the portable register-layout GEMM and the depthwise strips' f32 stores stay tested
/// where the default context takes shaders/subgroup/ kernels and wide stores (lavapipe); also
/// poisoned.
pub fn portable_ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = Context::new().unwrap_or_else(|e| panic!("no GPU context: {e}"));
        ctx.set_poison_outputs(true);
        ctx.set_subgroups(false);
        ctx
    })
}

/// Every context, by name: the default kernels and each slower twin they are tested beside.
pub fn every_context() -> [(&'static str, &'static Context); 5] {
    [
        ("default", ctx()),
        ("portable", portable_ctx()),
        ("workgroup", workgroup_ctx()),
        ("im2col", im2col_ctx()),
        ("direct", direct_ctx()),
    ]
}

/// A deterministic generator for one family's configurations.
pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// Uniform values in [-1, 1) of the given shape, on the GPU and on the CPU.
pub fn random(rng: &mut SmallRng, shape: &[usize]) -> (Tensor, Array) {
    random_on(ctx(), rng, shape)
}

/// [`random`] on a given context.
pub fn random_on(ctx: &Context, rng: &mut SmallRng, shape: &[usize]) -> (Tensor, Array) {
    let data: Vec<f32> =
        (0..shape.iter().product::<usize>()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t = Tensor::from_slice(ctx, &data, shape).expect("upload");
    (t, Array::from_f32(shape, &data))
}

/// Compares a GPU result with the reference, every element: shapes equal and
/// |gpu - ref| <= 1e-4 + 1e-4 |ref|.
pub fn check(what: &str, gpu: &Tensor, reference: &Array) -> Result<(), String> {
    check_within(what, gpu, reference, 1e-4)
}

/// [`check`] with an absolute tolerance of `atol` (sums of many terms round further).
pub fn check_within(what: &str, gpu: &Tensor, reference: &Array, atol: f64) -> Result<(), String> {
    if gpu.shape() != reference.shape.as_slice() {
        return Err(format!("{what}: shape {:?}, reference {:?}", gpu.shape(), reference.shape));
    }
    let got = widen(&gpu.to_vec().map_err(|e| format!("{what}: {e}"))?);
    match first_mismatch(&got, &reference.data, atol, 1e-4) {
        None => Ok(()),
        Some((i, g, r)) => Err(format!("{what}: element {i}: gpu {g}, reference {r}")),
    }
}

/// Runs `count` seeded configurations of a family and fails with the first few that disagree.
pub fn for_each_config(
    family: &str,
    count: usize,
    mut f: impl FnMut(&mut SmallRng) -> Result<(), String>,
) {
    let mut failures = Vec::new();
    for i in 0..count {
        let mut r = rng(0x9e37_79b9 ^ (i as u64) << 8 ^ family.len() as u64);
        if let Err(e) = f(&mut r) {
            failures.push(format!("config {i}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{family}: {} of {count} configurations failed on {}:\n{}",
        failures.len(),
        ctx().adapter_name(),
        failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// gconv-ref's attributes of `max_pool2d(2)`: 2x2 windows of stride 2.
pub fn max_pool_2x2() -> gconv_ref::PoolAttrs {
    gconv_ref::PoolAttrs {
        kernel_size: vec![2, 2],
        stride: vec![2, 2],
        padding: vec![0, 0],
        dilation: vec![1, 1],
        ceil_mode: false,
        count_include_pad: true,
        divisor_override: None,
    }
}

/// Slow checks run only with GCONV_SLOW=1 (minutes on lavapipe): the test says so instead of
/// passing silently.
pub fn slow_enabled(test: &str) -> bool {
    let on = std::env::var_os("GCONV_SLOW").is_some();
    if !on {
        eprintln!("{test}: not run; set GCONV_SLOW=1 to run it (minutes on a CPU adapter)");
    }
    on
}

/// A parameter as the finite-difference checks use it: name, shape, values.
pub type Parameter = (String, Vec<usize>, Vec<f64>);

/// The model's trainable tensors (its state dict without batch norm's running statistics).
pub fn trainable_parameters(model: &gconv::nn::Model) -> Vec<Parameter> {
    model
        .state_dict()
        .expect("download")
        .into_iter()
        .filter(|(n, _, _)| !n.contains("running") && !n.contains("num_batches"))
        .map(|(n, s, v)| (n, s, v.into_iter().map(f64::from).collect()))
        .collect()
}

/// Asserts that each GPU gradient matches central differences (step 1e-6) of `loss`, the
/// reference's loss at the given parameters, within a relative error of 1e-3.
pub fn assert_gradients_match_finite_differences(
    grads: &[(String, Vec<usize>, Vec<f32>)],
    params: &[Parameter],
    loss: impl Fn(&[Parameter]) -> f64,
) {
    let h = 1e-6;
    for (name, _, gpu) in grads {
        let index = params.iter().position(|(n, _, _)| n == name).expect("parameter");
        let numeric: Vec<f64> = (0..gpu.len())
            .map(|i| {
                let mut plus = params.to_vec();
                plus[index].2[i] += h;
                let mut minus = params.to_vec();
                minus[index].2[i] -= h;
                (loss(&plus) - loss(&minus)) / (2.0 * h)
            })
            .collect();
        let gpu64: Vec<f64> = gpu.iter().map(|&v| f64::from(v)).collect();
        let err = gconv_tests::compare::relative_error(&gpu64, &numeric);
        assert!(err < 1e-3, "{name}: GPU gradient differs from finite differences by {err:.3e}");
    }
}
