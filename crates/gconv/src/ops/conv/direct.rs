//! The direct family: kernels that compute a convolution's outputs or gradients element by
//! element, with no GEMM. `shaders/conv/direct.wgsl` (four outputs of a row or one gradient
//! element per invocation: every grouping, stride and transposition, and the reference the
//! fast paths are tested against),
//! `shaders/conv/depthwise.wgsl` (groups = C_in = C_out, four outputs per invocation) and
//! `shaders/conv/tiles_3x3.wgsl` (3x3 kernels as 4x4 output tiles, also fused with ReLU and a
//! 2x2 max-pool), and `shaders/conv/pooled.wgsl` (LeNet-style 5x5 layers fused with ReLU and
//! max-pool: a first layer's forward pass and weight gradient, a later layer's data gradient).
//! They read their inputs from storage buffers, or from texture copies where the choice says
//! so: on CPU adapters a texel fetch is a gather where a storage-buffer load is a per-lane loop.

use super::ConvPlan;
use super::geometry::{Geometry, quads, row_pieces, tiles_4x4};
use super::plan::{ConvIo, Pass, Pooling, dispatch};
use super::select::Direct;
use crate::kernel::{Dispatch, Recorder, Shader, WG, texture_entry};
use crate::ops::check_u32;
use crate::ops::texture::{Flat, MAX_LOOP_ITERATIONS, Packed};
use crate::ops::uniforms::ConvParams;
use crate::{Context, Result, Tensor};

/// Terms (4x4 tiles or quads of grad_y) per channel up to which a 3x3 weight gradient on the
/// tiles or the stride-2 depthwise kernel sums each channel (weight slot) in one invocation
/// (their `_lanes` variants) on any adapter, where a workgroup of 64 would idle most lanes
/// through its barriers (MobileNetV2's last layers at 2x2 outputs, batch 16: 16 tiles or 32
/// quads a channel). On CPU adapters they also take more channels than a workgroup holds.
const LANE_SUMS: usize = 64;

/// Whether a weight gradient sums each of its `slots` channels (weight slots) in one
/// invocation rather than a workgroup of 64, from the `terms` each sums: few terms on any
/// adapter, or on a CPU adapter, whose workgroups run their lanes one after another anyway,
/// once the slots fill two workgroups (MobileNetV2's 96-channel stride-2 layer of 1,024 quads:
/// 2.5 -> 1.6 ms on lavapipe).
fn sums_per_slot(ctx: &Context, terms: usize, slots: usize) -> bool {
    terms <= LANE_SUMS || (ctx.is_cpu_adapter() && slots > WG as usize)
}

/// One launch of a direct-family kernel.
struct Launch<'a> {
    shader: Shader,
    entry: &'static str,
    params: ConvParams,
    grid: [u32; 3],
    /// (buffer binding, texture binding, tensor): with `textures`, and where every input fits
    /// a texture copy, the kernel reads the copies and the buffer bindings get a placeholder;
    /// otherwise the reverse.
    inputs: &'a [(u32, u32, &'a Tensor)],
    /// Bound as they are.
    outputs: &'a [(u32, &'a wgpu::Buffer)],
    textures: bool,
    /// Override constants of the entry point's own, beside the shared ones.
    constants: &'a [(&'static str, f64)],
}

/// The binding of the layer's weight in every convolution kernel (conv_io.wgsl's `w`): its
/// texture copy depends on the parameters alone ([`Recorder::parameter_derived`]).
const WEIGHT_BINDING: u32 = 2;

fn record(ctx: &Context, rec: &mut Recorder<'_>, l: &Launch<'_>) -> Result<()> {
    match sample_chunk(ctx, l) {
        Some(chunk) => record_by_samples(ctx, rec, l, chunk),
        None => record_pieces(ctx, rec, l, &[l.params]),
    }
}

/// [`record`] once for each of `pieces` (the launch's parameters for each piece of a sum
/// split for lavapipe's loop limit), the inputs copied into their textures once for all.
fn record_pieces(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    l: &Launch<'_>,
    pieces: &[ConvParams],
) -> Result<()> {
    // Texture copies where every input has one: the weight's its own, derived from the
    // parameters; the others' from the plan's pool.
    let all_fit = l.inputs.iter().all(|(_, _, t)| Flat::can_hold(ctx, t));
    let flats: Option<Vec<Flat>> = if l.textures && all_fit {
        let copy = |(binding, _, t): &(u32, u32, &Tensor)| match *binding {
            WEIGHT_BINDING => Flat::derived_of(ctx, rec, t),
            _ => Flat::copy_of(ctx, rec, t),
        };
        l.inputs.iter().map(copy).collect()
    } else {
        None
    };
    let pieces: Vec<_> = pieces.iter().map(|&params| (params, l.grid)).collect();
    dispatch_launch(ctx, rec, l, flats.as_deref(), &pieces)
}

/// The samples per chunk of a strip kernel whose source does not fit a texture copy, where
/// one does fit a chunk's: the whole would be read through storage-buffer loads, which
/// lavapipe makes lane by lane (MobileNetV2's 96-channel 112x112 maps at batch 16, 77 MB
/// against the 64 MiB budget: its stride-2 layer 38 ms, against about 5 ns an output where the
/// source is copied). Halved until a chunk fits, so chunks come out even.
fn sample_chunk(ctx: &Context, l: &Launch<'_>) -> Option<usize> {
    let (_, _, src) = l.inputs.iter().find(|(binding, _, _)| *binding != WEIGHT_BINDING)?;
    let n = src.shape().first().copied()?;
    let per = src.numel() / n.max(1);
    let whole = Flat::can_hold(ctx, src);
    if !l.textures || !l.entry.ends_with("_strips") || whole || !per.is_multiple_of(4) {
        return None;
    }
    let mut chunk = n;
    while chunk > 1 && !Flat::fits(ctx, chunk * per) {
        chunk = chunk.div_ceil(2);
    }
    Flat::fits(ctx, chunk * per).then_some(chunk)
}

/// [`record`] chunk by chunk of `chunk` samples: each chunk's source copied into one texture
/// in turn and its strips dispatched with `n_offset` at its first sample (conv_io.wgsl's
/// `strip_at` reads the copy from the chunk's first plane and writes the whole output).
fn record_by_samples(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    l: &Launch<'_>,
    chunk: usize,
) -> Result<()> {
    // The source's texture, which each chunk's copy fills in turn, then the weight's.
    let Some(at) = l.inputs.iter().position(|(binding, _, _)| *binding != WEIGHT_BINDING) else {
        return record_pieces(ctx, rec, l, &[l.params]);
    };
    let src = l.inputs[at].2;
    let per = src.numel() / src.shape()[0];
    let Some(chunk_flat) = Flat::new(ctx, chunk * per).filter(|f| f.can_copy(src.buffer())) else {
        return record_pieces(ctx, rec, l, &[l.params]);
    };
    let mut flats = Vec::new();
    for (i, (_, _, t)) in l.inputs.iter().enumerate() {
        let flat = if i == at { Some(chunk_flat.clone()) } else { Flat::derived_of(ctx, rec, t) };
        let Some(flat) = flat else { return record_pieces(ctx, rec, l, &[l.params]) };
        flats.push(flat);
    }
    let n = src.shape()[0];
    let strips = l.params.total as usize / n;
    for n0 in (0..n).step_by(chunk) {
        let len = chunk.min(n - n0);
        flats[at].record_copy_texels(rec, src.buffer(), n0 * per / 4, len * per / 4);
        let total = (len * strips) as u32;
        let params = ConvParams { n_offset: n0 as u32, total, ..l.params };
        let grid = ctx.grid_1d(l.entry, u64::from(total), WG)?;
        dispatch_launch(ctx, rec, l, Some(&flats), &[(params, grid)])?;
    }
    Ok(())
}

/// Dispatches the launch's kernel once for each (parameters, grid) of `pieces`, reading the
/// inputs from `flats` (in the order of `l.inputs`) where given, else from their buffers.
fn dispatch_launch(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    l: &Launch<'_>,
    flats: Option<&[Flat]>,
    pieces: &[(ConvParams, [u32; 3])],
) -> Result<()> {
    let mut buffers: Vec<(u32, &wgpu::Buffer)> = l.outputs.to_vec();
    // The depthwise strips bind y (binding 4) again as texels (y_quads, binding 14) and store
    // runs of four through them where every output row is whole texels (ROW_QUADS,
    // shared/strip_stores.wgsl). With wide stores (CPU adapters) the same kernels store as
    // 64-bit integers, the stride-1 strips runs of eight where every row is whole octets
    // (ROW_OCTS, y_octs at binding 15; shared/strip_stores_wide.wgsl).
    let strips = l.entry.ends_with("_strips");
    let stride_1_strips = l.entry == "tiles_3x3_depthwise_strips";
    let wide = strips && ctx.uses_wide_stores();
    let shader = if wide { l.shader.wide() } else { l.shader };
    if strips && let Some(&(_, y)) = l.outputs.iter().find(|o| o.0 == 4) {
        buffers.push((14, y));
        if wide && stride_1_strips {
            buffers.push((15, y));
        }
    }
    let row_quads = strips && l.params.output[2].is_multiple_of(4);
    let row_octs = wide && l.params.output[2].is_multiple_of(8);
    // And read x's rows a texel at a time where they are whole texels (IN_QUADS).
    let in_quads = strips && l.params.input[2].is_multiple_of(4);
    let mut extra = Vec::new();
    for (i, (binding, tex_binding, t)) in l.inputs.iter().enumerate() {
        let view = match flats {
            Some(flats) => {
                buffers.push((*binding, &ctx.inner.dummy));
                &flats[i].view
            }
            None => {
                buffers.push((*binding, t.buffer()));
                &ctx.inner.dummy_texture
            }
        };
        extra.push(texture_entry(*tex_binding, view));
    }
    let on = |b: bool| if b { 1.0 } else { 0.0 };
    let mut constants = vec![
        ("WG", WG as f64),
        ("TEXTURE_INPUTS", on(flats.is_some())),
        ("IN_QUADS", on(in_quads)),
        ("ACT", f64::from(l.params.act)),
        ("BIAS", f64::from(l.params.has_bias)),
    ];
    if strips {
        constants.push(("ROW_QUADS", on(row_quads)));
    }
    if wide {
        constants.push(("ROW_OCTS", on(row_octs)));
    }
    // Where the stride-1 strips' rows start in their first texel, the same for all of them
    // where rows are whole texels (tiles_3x3.wgsl's STRIP_SHIFT; 4: unknown).
    if stride_1_strips {
        let shift = if in_quads { (4 - l.params.pad[2] % 4) % 4 } else { 4 };
        constants.push(("STRIP_SHIFT", f64::from(shift)));
        let blocks = strip_blocks(ctx, l.params.output[1] as usize, l.params.output[2] as usize);
        constants.push(("STRIP_BLOCKS", blocks as f64));
    }
    constants.extend_from_slice(l.constants);
    for (params, grid) in pieces {
        let params = bytemuck::bytes_of(params);
        let d = Dispatch::new(shader, l.entry, params, &buffers, *grid).constants(&constants);
        ctx.record_with(rec, &d, &extra)?;
    }
    Ok(())
}

/// Output rows per invocation of `tiles_3x3_depthwise_strips` (per block: see `strip_blocks`)
/// and `depthwise_3x3_s2_strips` (their STRIP and S2_STRIP).
const DEPTHWISE_STRIP: usize = 8;
const DEPTHWISE_S2_STRIP: usize = 8;

/// Blocks of DEPTHWISE_STRIP rows each invocation of `tiles_3x3_depthwise_strips` runs down
/// its column (its STRIP_BLOCKS) for an output of (out_h, out_w): on CPU adapters the whole
/// plane where its rows are whole texels, so that each block fetches 8 new source rows rather
/// than 10 and the weights, scale and shift are read once per plane (least of 6 to 8, batch
/// 16 but for the first: the bench's 64 channels of 56x56 at batch 8 1.47 -> 1.26 ms, 192 of
/// 28x28 2.98 -> 2.83 ms); else one (576 channels of 14x14, whose rows store value by value,
/// took 3.53 -> 4.75 ms in two blocks), and on GPUs one, for parallelism (not measured there).
fn strip_blocks(ctx: &Context, out_h: usize, out_w: usize) -> usize {
    if ctx.is_cpu_adapter() && out_w.is_multiple_of(4) {
        out_h.div_ceil(DEPTHWISE_STRIP).max(1)
    } else {
        1
    }
}

/// Invocations of a depthwise kernel over strips of `rows` x `cols` outputs (conv_io.wgsl's
/// `strip_at`) writing a 2-D output of this shape.
fn strips(shape: &[usize], rows: usize, cols: usize) -> usize {
    shape[..2].iter().product::<usize>() * shape[2].div_ceil(rows) * shape[3].div_ceil(cols)
}

/// Whether a depthwise 3x3 convolution of stride 1 on the tiles takes its data gradient on the
/// forward strips (`tiles_3x3_depthwise_strips` with FLIPPED): grad_x[c, i, j] = sum over (kh,
/// kw) of w[c, 2 - kh, 2 - kw] grad_y[c, i + pad - 2 + kh, j + pad - 2 + kw], the forward pass
/// over grad_y with the kernel flipped and padding 2 - pad, where pad is at most 2: on CPU
/// adapters, where the forward pass runs there too, about 2.7x the 4x4 tiles (64 channels of
/// 56x56, batch 8: 6.9-7.1 -> 2.6 ms). GPUs keep the tiles, as their forward pass keeps the
/// direct kernel: not measured there.
fn depthwise_data_grad_by_strips(g: &Geometry, ctx: &Context) -> bool {
    let depthwise = g.groups == g.x.c && g.groups == g.c_out;
    depthwise && g.is_plain_3x3() && g.pad.iter().all(|&p| p <= 2) && ctx.is_cpu_adapter()
}

/// Invocations of a `Direct::PerOutput` entry point writing a tensor of this shape:
/// `conv_forward` computes four outputs of a row each, `conv_transpose_forward` one.
fn per_output_total(entry: &str, shape: &[usize]) -> usize {
    if entry == "conv_forward" { quads(shape) } else { shape.iter().product() }
}

/// The forward pass on the direct (`conv_forward`, `conv_transpose_forward`), depthwise or
/// tile kernels.
pub(super) fn forward(pass: &mut Pass<'_, '_>, io: &ConvIo<'_>, kernel: Direct) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let y_shape = io.y.shape();
    let (shader, entry, total, textures, x_bindings) = match kernel {
        // Depthwise ones of stride 1 down strips of rows (tiles_3x3.wgsl).
        Direct::Tiles3x3 if g.groups == g.x.c && g.groups == g.c_out && g.is_plain_3x3() => {
            let rows = DEPTHWISE_STRIP * strip_blocks(ctx, y_shape[2], y_shape[3]);
            let total = strips(y_shape, rows, 8);
            (Shader::ConvTiles3x3, "tiles_3x3_depthwise_strips", total, true, (5, 13))
        }
        Direct::Tiles3x3 => {
            (Shader::ConvTiles3x3, "tiles_3x3_forward", tiles_4x4(y_shape), true, (5, 13))
        }
        Direct::Depthwise if g.is_3x3_stride_2() => {
            let total = strips(y_shape, DEPTHWISE_S2_STRIP, 4);
            (Shader::ConvDepthwise, "depthwise_3x3_s2_strips", total, true, (1, 11))
        }
        Direct::Depthwise => {
            (Shader::ConvDepthwise, "depthwise_forward", quads(y_shape), true, (1, 11))
        }
        Direct::PerOutput { textures } => {
            let entry = if plan.transposed { "conv_transpose_forward" } else { "conv_forward" };
            (Shader::ConvDirect, entry, per_output_total(entry, y_shape), textures, (1, 11))
        }
    };
    let total = check_u32(op, "output elements", total)?;
    let b = io.b().map_or(&ctx.inner.dummy, Tensor::buffer);
    // The tiles read their source, x here, through grad_y's bindings (see tiles_3x3.wgsl).
    let launch = Launch {
        shader,
        entry,
        params: io.out_params(g.params(false, total)),
        grid: ctx.grid_1d(op, u64::from(total), WG)?,
        inputs: &[(x_bindings.0, x_bindings.1, io.x), (WEIGHT_BINDING, 12, io.w)],
        outputs: &[(3, b), (4, io.y.buffer())],
        textures,
        constants: &[],
    };
    record(ctx, pass.rec, &launch)
}

/// The 3x3 tiles' forward pass fused with ReLU and a 2x2 max-pool (`y` pooled, and the argmax
/// into `indices` when given).
pub(super) fn tiles_forward_relu_pool(
    pass: &mut Pass<'_, '_>,
    io: &ConvIo<'_>,
    pooling: &Pooling<'_>,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let total = check_u32(plan.op, "tiles", tiles_4x4(&plan.g.output_shape()))?;
    let launch = Launch {
        shader: Shader::ConvTiles3x3,
        entry: "tiles_3x3_forward_relu_pool",
        params: relu_pool_params(plan, io, pooling, total),
        grid: ctx.grid_1d(plan.op, u64::from(total), WG)?,
        // The tiles read x through grad_y's bindings (see tiles_3x3.wgsl).
        inputs: &[(5, 13, io.x), (WEIGHT_BINDING, 12, io.w)],
        outputs: &relu_pool_outputs(ctx, io, pooling),
        textures: true,
        constants: &[],
    };
    record(ctx, pass.rec, &launch)
}

/// A fused conv -> ReLU -> 2x2 max-pool kernel's parameters: the layer's, the pooled size and
/// whether it saves the argmax.
fn relu_pool_params(
    plan: &ConvPlan,
    io: &ConvIo<'_>,
    pooling: &Pooling<'_>,
    total: u32,
) -> ConvParams {
    let [ph, pw] = pooling.pooled;
    ConvParams {
        pool: [ph as u32, pw as u32],
        pool_indices: pooling.indices.is_some() as u32,
        ..plan.g.params(io.bias.is_some(), total)
    }
}

/// Its outputs' bindings: the bias (or a placeholder), the pooled y and the argmax (or one).
fn relu_pool_outputs<'a>(
    ctx: &'a Context,
    io: &ConvIo<'a>,
    pooling: &Pooling<'a>,
) -> [(u32, &'a wgpu::Buffer); 3] {
    let b = io.bias.map_or(&ctx.inner.dummy, Tensor::buffer);
    let i = pooling.indices.map_or(&ctx.inner.dummy_rw, Tensor::buffer);
    [(3, b), (4, io.y.buffer()), (7, i)]
}

/// A first layer's convolution, ReLU and 2x2 max-pool on `pooled_forward` (`y` pooled, and the
/// argmax into `indices` when given): an invocation per (sample, block of four output
/// channels, window), from x's texture copy (the choice checked it fits).
pub(super) fn pooled_forward(
    pass: &mut Pass<'_, '_>,
    io: &ConvIo<'_>,
    pooling: &Pooling<'_>,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let [ph, pw] = pooling.pooled;
    let total = check_u32(op, "pooled windows", g.x.n * g.c_out.div_ceil(4) * ph * pw)?;
    let params = relu_pool_params(plan, io, pooling, total);
    let x = Flat::copy_of(ctx, pass.rec, io.x).ok_or_else(|| plan.mismatch())?;
    let taps = pooled_tap_weights(pass, io.w, true)?;
    let buffers = relu_pool_outputs(ctx, io, pooling);
    let grid = ctx.grid_1d(op, u64::from(total), WG)?;
    let d = dispatch(Shader::ConvPooled, "pooled_forward", &params, &buffers, grid);
    let textures = [texture_entry(11, &x.view), texture_entry(12, &taps.view)];
    ctx.record_with(pass.rec, &d, &textures)
}

/// Both gradients on the direct, depthwise or tile kernels: grad_x (skipped when `None`) by
/// gathers over grad_y, then grad_W by a sum per weight, in pieces of rows that keep each
/// invocation within lavapipe's loop limit (`row_pieces`) where its loops grow with the batch.
pub(super) fn backward(
    pass: &mut Pass<'_, '_>,
    (x, w, grad_y): (&Tensor, &Tensor, &Tensor),
    (grad_x, grad_w): (Option<&Tensor>, &Tensor),
    kernel: Direct,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    if let Some(gx) = grad_x {
        let mut constants: &[(&str, f64)] = &[];
        let (shader, entry, params, textures, outputs) = match kernel {
            // A depthwise one: the forward strips over grad_y with the kernel flipped
            // (`depthwise_data_grad_by_strips`).
            Direct::Tiles3x3 if depthwise_data_grad_by_strips(g, ctx) => {
                let rows = DEPTHWISE_STRIP * strip_blocks(ctx, gx.shape()[2], gx.shape()[3]);
                let total = check_u32(op, "strips", strips(gx.shape(), rows, 8))?;
                let swapped = g.swapped_params(total);
                let pad = [0, 2 - swapped.pad[1], 2 - swapped.pad[2]];
                let params = ConvParams { pad, ..swapped };
                let outputs = vec![(3, &ctx.inner.dummy), (4, gx.buffer())];
                constants = &[("FLIPPED", 1.0)];
                (Shader::ConvTiles3x3, "tiles_3x3_depthwise_strips", params, true, outputs)
            }
            // A placeholder for the bias the forward tiles add.
            Direct::Tiles3x3 => {
                let total = check_u32(op, "tiles", tiles_4x4(gx.shape()))?;
                let params = g.params(false, total);
                let outputs = vec![(3, &ctx.inner.dummy), (4, gx.buffer())];
                (Shader::ConvTiles3x3, "tiles_3x3_backward_input", params, true, outputs)
            }
            // Stride 2: down strips of grad_x's rows, the layer's parameters swapped.
            Direct::Depthwise if g.is_3x3_stride_2() => {
                let total = strips(gx.shape(), DEPTHWISE_S2_STRIP, 4);
                let params = g.swapped_params(check_u32(op, "strips", total)?);
                let outputs = vec![(4, gx.buffer())];
                let entry = "depthwise_3x3_s2_backward_input_strips";
                (Shader::ConvDepthwise, entry, params, true, outputs)
            }
            Direct::Depthwise => {
                let total = check_u32(op, "input elements", quads(gx.shape()))?;
                let params = g.params(false, total);
                let outputs = vec![(4, gx.buffer())];
                (Shader::ConvDepthwise, "depthwise_backward_input", params, true, outputs)
            }
            // A gather from grad_y into an "output" the size of x: the transposed
            // convolution's forward kernel for a convolution, and the other way round.
            Direct::PerOutput { textures } => {
                let entry = if plan.transposed { "conv_forward" } else { "conv_transpose_forward" };
                let total = check_u32(op, "input elements", per_output_total(entry, gx.shape()))?;
                let outputs = vec![(3, &ctx.inner.dummy), (4, gx.buffer())];
                (Shader::ConvDirect, entry, g.swapped_params(total), textures, outputs)
            }
        };
        // The tiles and depthwise kernels read grad_y through grad_y's bindings, the direct
        // kernel through x's (it runs a forward kernel on grad_y).
        let grad_y_at = if let Direct::PerOutput { .. } = kernel { (1, 11) } else { (5, 13) };
        let inputs = [(grad_y_at.0, grad_y_at.1, grad_y), (WEIGHT_BINDING, 12, w)];
        let grid = ctx.grid_1d(op, u64::from(params.total), WG)?;
        let (inputs, outputs) = (&inputs[..], &outputs[..]);
        let launch = Launch { shader, entry, params, grid, inputs, outputs, textures, constants };
        record(ctx, pass.rec, &launch)?;
    }
    let weights = check_u32(op, "weight elements", grad_w.numel())?;
    // `slots`: what one workgroup of 64 (lanes 64) or one invocation (lanes 1) sums.
    let (shader, entry, params, (lanes, slots), textures, inputs) = match kernel {
        // One workgroup of 64 per weight slot (output channel, input channel of its group,
        // depth tap), or one invocation per slot (as for the depthwise kernel below); x
        // through grad_y's bindings and grad_y through x's (see tiles_3x3.wgsl).
        Direct::Tiles3x3 => {
            let taps_d = g.kernel[..g.kernel.len() - 2].iter().product::<usize>();
            let slots = g.c_out * (g.x.c / g.groups) * taps_d;
            let tiles = tiles_4x4(grad_y.shape()) / g.c_out;
            let total = check_u32(op, "tiles", tiles)?;
            // One invocation's loop takes every tile of its slot.
            let lanes = sums_per_slot(ctx, tiles, slots) && tiles <= MAX_LOOP_ITERATIONS;
            let (entry, grid) = match lanes {
                true => ("tiles_3x3_backward_weight_lanes", ctx.grid_1d(op, slots as u64, WG)?),
                false => ("tiles_3x3_backward_weight", ctx.grid_1d(op, slots as u64 * 64, 64)?),
            };
            // A placeholder for the pooled variant's indices (the three share their body).
            let outputs = [(6, grad_w.buffer()), (7, &ctx.inner.dummy_rw)];
            let launch = Launch {
                shader: Shader::ConvTiles3x3,
                entry,
                params: g.params(false, total),
                grid,
                inputs: &[(5, 13, x), (1, 11, grad_y)],
                outputs: &outputs,
                textures: true,
                constants: &[],
            };
            return record(ctx, pass.rec, &launch);
        }
        // 3x3 of stride 2: one workgroup of 64 per channel (all nine taps), or one invocation
        // per channel (`sums_per_slot`); else one workgroup of 64 per weight. The lanes of a
        // workgroup share each piece's rows.
        Direct::Depthwise => {
            let params = g.params(false, weights);
            let inputs = [(1, 11, x), (5, 13, grad_y)];
            let (entry, lanes) = if g.is_3x3_stride_2() {
                let quads = g.x.n * g.out[0] * g.out[1].div_ceil(4);
                if sums_per_slot(ctx, quads, g.c_out) {
                    ("depthwise_3x3_s2_backward_weight_lanes", (1, g.c_out))
                } else {
                    ("depthwise_3x3_s2_backward_weight", (64, g.c_out))
                }
            } else {
                ("depthwise_backward_weight", (64, weights as usize))
            };
            (Shader::ConvDepthwise, entry, params, lanes, true, inputs)
        }
        // Sum over the batch and positions of (strided tensor) x (dense tensor); a transposed
        // convolution's is the convolution's with x and grad_y swapped.
        Direct::PerOutput { textures } => {
            let (params, strided, dense) = if plan.transposed {
                (g.swapped_params(weights), grad_y, x)
            } else {
                (g.params(false, weights), x, grad_y)
            };
            let inputs = [(1, 11, strided), (5, 13, dense)];
            let lanes = (1, weights as usize);
            (Shader::ConvDirect, "conv_backward_weight", params, lanes, textures, inputs)
        }
    };
    let grid = if lanes == 64 {
        ctx.grid_1d(op, slots as u64 * 64, 64)?
    } else {
        ctx.grid_1d(op, slots as u64, WG)?
    };
    let outputs = [(6, grad_w.buffer())];
    let launch = Launch {
        shader,
        entry,
        params,
        grid,
        inputs: &inputs,
        outputs: &outputs,
        textures,
        constants: &[],
    };
    record_pieces(ctx, pass.rec, &launch, &row_pieces(op, &params, lanes)?)
}

/// The weight gradient of [`tiles_forward_relu_pool`]'s convolution from the pooled gradient
/// and the argmax: each 4x4 tile of grad_y holds four whole windows, which the kernel reads in
/// pooled form (a network's first layer, which has no data gradient).
pub(super) fn tiles_weight_grad_pooled(
    pass: &mut Pass<'_, '_>,
    (x, grad_p, indices, grad_w): (&Tensor, &Tensor, &Tensor, &Tensor),
    [ph, pw]: [usize; 2],
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let slots = g.c_out * (g.x.c / g.groups);
    let total = (tiles_4x4(&g.output_shape()) / g.c_out) as u32;
    let launch = Launch {
        shader: Shader::ConvTiles3x3,
        entry: "tiles_3x3_backward_weight_pooled",
        params: ConvParams { pool: [ph as u32, pw as u32], ..g.params(false, total) },
        grid: ctx.grid_1d(op, slots as u64 * 64, 64)?,
        inputs: &[(5, 13, x), (1, 11, grad_p)],
        outputs: &[(6, grad_w.buffer()), (7, indices.buffer())],
        textures: true,
        constants: &[],
    };
    record(ctx, pass.rec, &launch)
}

/// Windows one launch of `pooled_backward_weight` sums: 1,024 per lane, within lavapipe's loop
/// limit (and few enough that a test reaches a second piece).
const WINDOWS_PER_PIECE: usize = 64 * 1024;

/// The weight gradient of a fused conv -> ReLU -> 2x2 max-pool's convolution (a first layer of
/// stride 1, see `select::pooled_rows`) from the pooled gradient and the argmax on
/// `pooled_backward_weight`: a workgroup of 64 per (output channel, input channel, kernel
/// row), over the batch's windows in pieces of [`WINDOWS_PER_PIECE`].
pub(super) fn pooled_weight_grad(
    pass: &mut Pass<'_, '_>,
    (x, grad_p, indices, grad_w): (&Tensor, &Tensor, &Tensor, &Tensor),
    [ph, pw]: [usize; 2],
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let slots = g.c_out * g.x.c * g.kernel[0];
    let windows = g.x.n * ph * pw;
    let params = ConvParams { pool: [ph as u32, pw as u32], ..g.params(false, 0) };
    let pieces: Vec<ConvParams> = (0..windows)
        .step_by(WINDOWS_PER_PIECE)
        .map(|first| {
            let rows = [first as u32, (first + WINDOWS_PER_PIECE).min(windows) as u32];
            ConvParams { rows, ..params }
        })
        .collect();
    let launch = Launch {
        shader: Shader::ConvPooled,
        entry: "pooled_backward_weight",
        params,
        grid: ctx.grid_1d(op, slots as u64 * 64, 64)?,
        inputs: &[(1, 11, x), (5, 13, grad_p)],
        outputs: &[(6, grad_w.buffer()), (7, indices.buffer())],
        textures: true,
        constants: &[],
    };
    record_pieces(ctx, pass.rec, &launch, &pieces)
}

/// A weight's taps with four channels to a texel: output channels for `pooled_forward`
/// (`by_output`), input channels for `pooled_backward_input` (`pack_taps_by_*`).
pub(super) fn pooled_tap_weights(
    pass: &mut Pass<'_, '_>,
    w: &Tensor,
    by_output: bool,
) -> Result<Flat> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let taps: usize = g.kernel.iter().product();
    let (blocked, other) = if by_output { (g.c_out, g.x.c) } else { (g.x.c, g.c_out) };
    let texels = blocked.div_ceil(4) * other * taps;
    let packed = Flat::new(ctx, 4 * texels).ok_or_else(|| plan.mismatch())?;
    let params = g.params(false, check_u32(op, "weight texels", texels)?);
    let grid = ctx.grid_1d(op, texels as u64, WG)?;
    let entry = if by_output { "pack_taps_by_output" } else { "pack_taps_by_input" };
    let buffers = [(WEIGHT_BINDING, w.buffer())];
    let d = dispatch(Shader::ConvPooled, entry, &params, &buffers, grid);
    let texture = [texture_entry(8, &packed.view)];
    pass.rec.parameter_derived(|rec| ctx.record_with(rec, &d, &texture))?;
    Ok(packed)
}

/// grad_x of samples [n0, n0 + len) of a fused conv -> ReLU -> 2x2 max-pool's convolution
/// (stride 1, kernels up to 5 wide: `select::pooled_data_rows`) on `pooled_backward_input`,
/// from `b`, the chunk's unpooled gradient that the weight gradient's GEMM reads (packed, in
/// im2col's pooled order), and the weight as [`pooled_tap_weights`] packs it by input: no
/// grad_col and no col2im. Blocks of four input channels along the grid's z.
pub(super) fn pooled_data_grad_chunk(
    pass: &mut Pass<'_, '_>,
    (taps, b, grad_x): (&Flat, &Packed, &Tensor),
    [ph, pw]: [usize; 2],
    (n0, len): (usize, usize),
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let quads = g.x.size[0] * g.x.size[1].div_ceil(4);
    let total = check_u32(op, "input rows' quads", len * quads)?;
    let params = ConvParams { pool: [ph as u32, pw as u32], ..g.chunk_params(n0, false, total) };
    let [x, y, _] = ctx.grid_1d(op, u64::from(total), WG)?;
    let blocks = check_u32(op, "input channel blocks", g.x.c.div_ceil(4))?;
    let buffers = [(4, grad_x.buffer())];
    // The first column a quad's taps reach, iw0 + pad_w - (k_w - 1), has the same parity for
    // every quad (iw0 is a multiple of 4): compiled in (a branch runs whether taken or not).
    let odd = (g.pad[1] + 1 + g.kernel[1]) % 2 == 1;
    let constants = [("WG", WG as f64), ("ODD_COLUMNS", f64::from(u8::from(odd)))];
    let d =
        dispatch(Shader::ConvPooled, "pooled_backward_input", &params, &buffers, [x, y, blocks])
            .constants(&constants);
    let textures = [texture_entry(12, &taps.view), texture_entry(13, &b.view)];
    ctx.record_with(pass.rec, &d, &textures)
}
