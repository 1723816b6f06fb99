//! batch_norm (`batch_norm.wgsl`).

use super::{check_u32, context_of};
use crate::kernel::{Dispatch, Recorder, Shader, WG, WG_CONSTANT};
use crate::ops::activation::{Act, Clamp};
use crate::{DType, Error, Result, Tensor};

/// Options of [`batch_norm`], with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormOptions {
    /// Normalise with the batch's statistics and update the running ones (true), or with the
    /// running statistics (false, evaluation).
    pub training: bool,
    /// Weight of the new batch statistic in the running average (PyTorch: 0.1).
    pub momentum: f64,
    /// Added to the variance for stability (PyTorch: 1e-5).
    pub eps: f64,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions { training: false, momentum: 0.1, eps: 1e-5 }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BnParams {
    n: u32,
    c: u32,
    spatial: u32,
    has_weight: u32,
    has_bias: u32,
    has_running: u32,
    eps: f32,
    momentum: f32,
    total: u32,
    training: u32,
    clamp: u32,
    lo: f32,
    hi: f32,
    conv_bias: u32,
}

/// Batch normalisation over an (N, C, *) input, as `torch.nn.functional.batch_norm`. In
/// training mode it normalises with the batch mean and biased variance and, when given, updates
/// `running_mean` and `running_var` in place (with the unbiased variance, as PyTorch); in
/// evaluation mode it uses the running statistics, which are then required.
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes, missing running statistics in evaluation
/// mode, or a single value per channel in training mode.
pub fn batch_norm(
    x: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    o: &BatchNormOptions,
) -> Result<Tensor> {
    Ok(batch_norm_with_stats(x, running_mean, running_var, weight, bias, o)?.0)
}

/// Records batch normalisation of `x` into `y` (through `clamp` where one is fused behind it),
/// and the (mean, invstd) it used into `stats`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_batch_norm(
    rec: &mut Recorder<'_>,
    x: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    o: &BatchNormOptions,
    (y, clamp): (&Tensor, Option<Clamp>),
    stats: &Tensor,
) -> Result<()> {
    const OP: &str = "batch_norm";
    let mut tensors = vec![x];
    tensors.extend(running_mean.iter().chain(&running_var).chain(&weight).chain(&bias));
    let ctx = context_of(OP, &tensors)?;
    if x.rank() < 2 || x.numel() == 0 {
        return Err(Error::invalid(
            OP,
            format!("expected an (N, C, *) input, got {:?}", x.shape()),
        ));
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let spatial: usize = x.shape()[2..].iter().product();
    for (name, t) in [
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ] {
        if let Some(t) = t
            && t.shape() != [c]
        {
            return Err(Error::invalid(
                OP,
                format!(
                    "{name} must have shape [{c}] for input {:?}, got {:?}",
                    x.shape(),
                    t.shape()
                ),
            ));
        }
    }
    if running_mean.is_some() != running_var.is_some() {
        return Err(Error::invalid(OP, "running_mean and running_var must be given together"));
    }
    if !o.training && running_mean.is_none() {
        return Err(Error::invalid(OP, "evaluation mode needs running_mean and running_var"));
    }
    if o.training && n * spatial <= 1 {
        return Err(Error::invalid(
            OP,
            format!(
                "expected more than 1 value per channel when training, got input {:?}",
                x.shape()
            ),
        ));
    }
    let total = check_u32(OP, "elements", x.numel())?;
    let Act { kind, lo, hi } = Act::of(OP, clamp)?;
    if y.shape() != x.shape() || stats.shape() != [2, c] {
        return Err(Error::invalid(OP, "internal error: output or statistics of the wrong shape"));
    }
    let params = BnParams {
        n: n as u32,
        c: c as u32,
        spatial: spatial as u32,
        has_weight: weight.is_some() as u32,
        has_bias: bias.is_some() as u32,
        has_running: running_mean.is_some() as u32,
        eps: o.eps as f32,
        momentum: o.momentum as f32,
        total,
        training: o.training as u32,
        clamp: kind,
        lo,
        hi,
        conv_bias: 0,
    };
    // Training without running statistics still binds two (distinct) writable buffers.
    let scratch = || Tensor::zeros(&ctx, &[1]);
    let (rm, rv) = match (running_mean, running_var) {
        (Some(m), Some(v)) => (m.clone(), v.clone()),
        _ => (scratch()?, scratch()?),
    };
    let dummy = &ctx.inner.dummy;
    let bytes = bytemuck::bytes_of(&params);
    let quads = spatial.is_multiple_of(4);
    let enc = rec;
    {
        if o.training {
            let (entry, grid) = reduce_launch(&ctx, OP, true, (n, c, spatial))?;
            let x_at = if quads { 11 } else { 1 };
            ctx.record(
                enc,
                &Dispatch::new(
                    Shader::BatchNorm,
                    entry,
                    bytes,
                    &[(x_at, x.buffer()), (2, stats.buffer()), (3, rm.buffer()), (4, rv.buffer())],
                    grid,
                )
                .constants(WG_CONSTANT),
            )?;
        } else {
            ctx.record(
                enc,
                &Dispatch::new(
                    Shader::BatchNorm,
                    "batch_norm_eval_stats",
                    bytes,
                    &[(2, stats.buffer()), (3, rm.buffer()), (4, rv.buffer())],
                    ctx.grid_1d(OP, c as u64, WG)?,
                )
                .constants(WG_CONSTANT),
            )?;
        }
        let (constants, grid) = apply_launch(&ctx, OP, n, c, spatial)?;
        let (entry, x_at, y_at) =
            if quads { ("batch_norm_apply4", 11, 12) } else { ("batch_norm_apply", 1, 7) };
        ctx.record(
            enc,
            &Dispatch::new(
                Shader::BatchNorm,
                entry,
                bytes,
                &[
                    (x_at, x.buffer()),
                    (2, stats.buffer()),
                    (5, weight.map_or(dummy, Tensor::buffer)),
                    (6, bias.map_or(dummy, Tensor::buffer)),
                    (y_at, y.buffer()),
                ],
                grid,
            )
            .constants(&constants),
        )
    }
}

/// Records batch norm in evaluation folded into the convolution before it (`batch_norm_fold`):
/// into `affine` (2, C), each channel's scale and shift that the convolution's epilogue applies
/// (y = conv * scale + shift), with the convolution's own bias, where it has one, folded in.
pub(crate) fn record_batch_norm_fold(
    rec: &mut Recorder<'_>,
    (running_mean, running_var): (&Tensor, &Tensor),
    (weight, bias): (Option<&Tensor>, Option<&Tensor>),
    conv_bias: Option<&Tensor>,
    eps: f64,
    affine: &Tensor,
) -> Result<()> {
    const OP: &str = "batch_norm";
    let c = running_mean.numel();
    let mut tensors = vec![running_mean, running_var];
    tensors.extend(weight.iter().chain(&bias).chain(&conv_bias));
    let ctx = context_of(OP, &tensors)?;
    if affine.shape() != [2, c] || tensors.iter().any(|t| t.shape() != [c]) {
        return Err(Error::invalid(OP, "internal error: folded batch norm of the wrong shape"));
    }
    let params = BnParams {
        c: check_u32(OP, "channels", c)?,
        has_weight: weight.is_some() as u32,
        has_bias: bias.is_some() as u32,
        has_running: 1,
        eps: eps as f32,
        conv_bias: conv_bias.is_some() as u32,
        ..bytemuck::Zeroable::zeroed()
    };
    let dummy = &ctx.inner.dummy;
    ctx.record(
        rec,
        &Dispatch::new(
            Shader::BatchNorm,
            "batch_norm_fold",
            bytemuck::bytes_of(&params),
            &[
                (1, conv_bias.map_or(dummy, Tensor::buffer)),
                (2, affine.buffer()),
                (3, running_mean.buffer()),
                (4, running_var.buffer()),
                (5, weight.map_or(dummy, Tensor::buffer)),
                (6, bias.map_or(dummy, Tensor::buffer)),
            ],
            ctx.grid_1d(OP, c as u64, WG)?,
        )
        .constants(WG_CONSTANT),
    )
}

/// The apply kernels' override constants (WG, PER, SPREAD) and grid.
type ApplyLaunch = ([(&'static str, f64); 3], [u32; 3]);

/// Quads per channel up to which a reduction over the channel (`batch_norm_stats4`,
/// `batch_norm_backward_reduce4`) runs in one invocation (their `_lanes` variants) instead of a
/// workgroup per channel (see batch_norm.wgsl).
const LANE_QUADS: usize = 256;

/// The entry point of a reduction over each channel (`stats`: the statistics, else the
/// gradient sums) for (N, C, spatial) and its grid: one invocation per channel for channels
/// of at most [`LANE_QUADS`] quads, else a workgroup per channel; the vec4 variants where
/// planes hold whole quads.
fn reduce_launch(
    ctx: &crate::Context,
    op: &'static str,
    stats: bool,
    (n, c, spatial): (usize, usize, usize),
) -> Result<(&'static str, [u32; 3])> {
    let [lanes, quads, plain] = match stats {
        true => ["batch_norm_stats4_lanes", "batch_norm_stats4", "batch_norm_stats"],
        false => [
            "batch_norm_backward_reduce4_lanes",
            "batch_norm_backward_reduce4",
            "batch_norm_backward_reduce",
        ],
    };
    if !spatial.is_multiple_of(4) {
        Ok((plain, workgroup_per_channel(op, ctx, c)?))
    } else if n * spatial / 4 <= LANE_QUADS {
        Ok((lanes, ctx.grid_1d(op, c as u64, WG)?))
    } else {
        Ok((quads, workgroup_per_channel(op, ctx, c)?))
    }
}

fn workgroup_per_channel(op: &'static str, ctx: &crate::Context, c: usize) -> Result<[u32; 3]> {
    if c > ctx.limits().max_compute_workgroups_per_dimension as usize {
        return Err(Error::invalid(op, format!("{c} channels exceed the dispatch limit")));
    }
    Ok([c as u32, 1, 1])
}

/// The apply kernels' launch (see `element_count` and `quad_count` in batch_norm.wgsl; the
/// vec4 variants' elements are quads where planes hold whole quads): elements per
/// invocation (`PER`: 1, 2, 4 or 8, about a row's elements per workgroup width, so that few
/// invocations idle) and the grid, (blocks, C, N) where a plane is at least a workgroup wide,
/// else (blocks, C, 1); where a channel has fewer than 8 elements a lane (`SPREAD`), a 1-D
/// grid of invocations taking up to 8 of one channel's each, so that a channel's coefficients
/// are loaded a lane at a time by few lanes (MobileNetV2's 4x4 and 2x2 stages at batch 16,
/// where a workgroup per channel took batch_norm_backward_apply4 about 0.9 ms a layer: 0.35-0.6).
fn apply_launch(
    ctx: &crate::Context,
    op: &'static str,
    n: usize,
    c: usize,
    spatial: usize,
) -> Result<ApplyLaunch> {
    let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let wg = WG as usize;
    // The vec4 variants' elements are quads.
    let per_row = if spatial.is_multiple_of(4) { spatial / 4 } else { spatial };
    let (elements, samples) = if per_row >= wg { (per_row, n) } else { (n * per_row, 1) };
    if samples == 1 && elements < wg * 8 {
        let per = elements.clamp(1, 8).next_power_of_two();
        let lanes = elements.div_ceil(per);
        let grid = ctx.grid_1d(op, (c * lanes) as u64, WG)?;
        let constants = [("WG", f64::from(WG)), ("PER", per as f64), ("SPREAD", 1.0)];
        return Ok((constants, grid));
    }
    let per = (elements / wg).clamp(1, 8).ilog2();
    let per = 1usize << per;
    let blocks = elements.div_ceil(wg * per);
    if c > max || samples > max || blocks > max {
        return Err(Error::invalid(
            op,
            format!(
                "{c} channels, {samples} samples or planes of {spatial} elements exceed the \
                 dispatch limit {max}"
            ),
        ));
    }
    let constants = [("WG", f64::from(WG)), ("PER", per as f64), ("SPREAD", 0.0)];
    Ok((constants, [blocks as u32, c as u32, samples as u32]))
}

/// [`batch_norm`], also returning the (mean, 1/sqrt(var + eps)) per channel it normalised with,
/// shape (2, C): what [`batch_norm_backward`] needs (PyTorch's `save_mean`, `save_invstd`).
///
/// # Errors
/// As [`batch_norm`].
pub fn batch_norm_with_stats(
    x: &Tensor,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    o: &BatchNormOptions,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "batch_norm";
    let ctx = context_of(OP, &[x])?;
    let c = x.shape().get(1).copied().unwrap_or(0);
    let y = Tensor::output(&ctx, x.shape(), DType::F32, OP)?;
    let stats = Tensor::output(&ctx, &[2, c], DType::F32, OP)?;
    ctx.run(OP, |rec| {
        record_batch_norm(rec, x, running_mean, running_var, weight, bias, o, (&y, None), &stats)
    })?;
    Ok((y, stats))
}

/// Gradients of [`batch_norm`].
#[derive(Debug)]
pub struct BatchNormGrads {
    /// Same shape as the input.
    pub grad_input: Tensor,
    /// (C,), when the layer has a weight.
    pub grad_weight: Option<Tensor>,
    /// (C,), when the layer has a bias.
    pub grad_bias: Option<Tensor>,
}

/// Records the gradients of batch normalisation: `sums` receives (sum(grad_y),
/// sum(grad_y * xhat)) per channel (the bias's and the weight's gradient), `grad_input` (when
/// wanted) the input's. With `clamp` (a fused clamp and the layer's bias), `grad_output` is the
/// clamp's output gradient, masked where the recomputed normalised value was clamped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_batch_norm_backward(
    rec: &mut Recorder<'_>,
    grad_output: &Tensor,
    x: &Tensor,
    stats: &Tensor,
    weight: Option<&Tensor>,
    clamp: Option<(Clamp, Option<&Tensor>)>,
    o: &BatchNormOptions,
    grad_input: Option<&Tensor>,
    sums: &Tensor,
) -> Result<()> {
    const OP: &str = "batch_norm_backward";
    let mut tensors = vec![grad_output, x, stats];
    tensors.extend(weight);
    let ctx = context_of(OP, &tensors)?;
    if x.rank() < 2 || x.numel() == 0 || grad_output.shape() != x.shape() {
        return Err(Error::invalid(
            OP,
            format!(
                "expected grad_output and input of one (N, C, *) shape, got {:?} and {:?}",
                grad_output.shape(),
                x.shape()
            ),
        ));
    }
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let spatial: usize = x.shape()[2..].iter().product();
    if stats.shape() != [2, c] {
        return Err(Error::invalid(
            OP,
            format!("stats must have shape [2, {c}], got {:?}", stats.shape()),
        ));
    }
    if let Some(w) = weight
        && w.shape() != [c]
    {
        return Err(Error::invalid(
            OP,
            format!("weight must have shape [{c}], got {:?}", w.shape()),
        ));
    }
    if c > ctx.limits().max_compute_workgroups_per_dimension as usize {
        return Err(Error::invalid(OP, format!("{c} channels exceed the dispatch limit")));
    }
    let total = check_u32(OP, "elements", x.numel())?;
    let Act { kind, lo, hi } = Act::of(OP, clamp.map(|c| c.0))?;
    let bias = clamp.and_then(|c| c.1);
    if sums.shape() != [2, c] {
        return Err(Error::invalid(OP, "internal error: sums of the wrong shape"));
    }
    let params = BnParams {
        n: n as u32,
        c: c as u32,
        spatial: spatial as u32,
        has_weight: weight.is_some() as u32,
        // The kernels read the bias only to recompute a fused clamp's input.
        has_bias: bias.is_some() as u32,
        has_running: 0,
        eps: o.eps as f32,
        momentum: o.momentum as f32,
        total,
        training: o.training as u32,
        clamp: kind,
        lo,
        hi,
        conv_bias: 0,
    };
    let bytes = bytemuck::bytes_of(&params);
    let dummy = &ctx.inner.dummy;
    let (w_buf, b_buf) = (weight.map_or(dummy, Tensor::buffer), bias.map_or(dummy, Tensor::buffer));
    // The vec4 variants where planes hold whole quads (see batch_norm.wgsl).
    let quads = spatial.is_multiple_of(4);
    let (x_at, gy_at, gx_at) = if quads { (11, 13, 14) } else { (1, 8, 9) };
    let enc = rec;
    {
        let (entry, grid) = reduce_launch(&ctx, OP, false, (n, c, spatial))?;
        ctx.record(
            enc,
            &Dispatch::new(
                Shader::BatchNorm,
                entry,
                bytes,
                &[
                    (x_at, x.buffer()),
                    (2, stats.buffer()),
                    (5, w_buf),
                    (6, b_buf),
                    (gy_at, grad_output.buffer()),
                    (10, sums.buffer()),
                ],
                grid,
            )
            .constants(WG_CONSTANT),
        )?;
        if let Some(grad_input) = grad_input {
            let (constants, grid) = apply_launch(&ctx, OP, n, c, spatial)?;
            ctx.record(
                enc,
                &Dispatch::new(
                    Shader::BatchNorm,
                    if quads { "batch_norm_backward_apply4" } else { "batch_norm_backward_apply" },
                    bytes,
                    &[
                        (x_at, x.buffer()),
                        (2, stats.buffer()),
                        (5, w_buf),
                        (6, b_buf),
                        (gy_at, grad_output.buffer()),
                        (gx_at, grad_input.buffer()),
                        (10, sums.buffer()),
                    ],
                    grid,
                )
                .constants(&constants),
            )?;
        }
        Ok(())
    }
}

/// Gradients of [`batch_norm`] from the statistics [`batch_norm_with_stats`] returned. In
/// training mode the batch statistics depend on x, and grad_input accounts for it; in evaluation
/// mode they are constants.
///
/// # Errors
/// [`Error::InvalidArgument`] for mismatched shapes.
pub fn batch_norm_backward(
    grad_output: &Tensor,
    x: &Tensor,
    stats: &Tensor,
    weight: Option<&Tensor>,
    has_bias: bool,
    o: &BatchNormOptions,
) -> Result<BatchNormGrads> {
    const OP: &str = "batch_norm_backward";
    let ctx = context_of(OP, &[x])?;
    let c = x.shape().get(1).copied().unwrap_or(0);
    let grad_input = Tensor::output(&ctx, x.shape(), DType::F32, OP)?;
    let sums = Tensor::output(&ctx, &[2, c], DType::F32, OP)?;
    ctx.run(OP, |rec| {
        record_batch_norm_backward(
            rec,
            grad_output,
            x,
            stats,
            weight,
            None,
            o,
            Some(&grad_input),
            &sums,
        )
    })?;
    // sums = (sum(grad_y), sum(grad_y * xhat)) = (grad_bias, grad_weight).
    let grad_bias = if has_bias { Some(slice_row(&ctx, &sums, 0, c)?) } else { None };
    let grad_weight = if weight.is_some() { Some(slice_row(&ctx, &sums, 1, c)?) } else { None };
    Ok(BatchNormGrads { grad_input, grad_weight, grad_bias })
}

/// Row `row` of a (rows, c) tensor, copied into its own tensor.
fn slice_row(ctx: &crate::Context, t: &Tensor, row: usize, c: usize) -> Result<Tensor> {
    let out = Tensor::output(ctx, &[c], DType::F32, "batch_norm_backward")?;
    ctx.run("batch_norm_backward", |enc| {
        enc.copy(t.buffer(), (row * c * 4) as u64, out.buffer(), 0, (c * 4) as u64);
        Ok(())
    })?;
    Ok(out)
}
