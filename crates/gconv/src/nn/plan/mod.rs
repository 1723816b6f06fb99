//! The executor's plans: a graph compiled for one batch size and one purpose. Shapes are
//! inferred up front; activation and gradient buffers are allocated once, from a pool in which
//! buffers whose lifetimes do not overlap are shared; every kernel launch (pipeline, parameters,
//! bind group) is prepared once. Running a plan replays its steps into one command buffer.

use super::graph::Graph;
use super::layer::Layer;
use super::optim::Optimizer;
use crate::kernel::{Recorder, Step};
use crate::ops::BatchNormOptions;
use crate::ops::activation::{
    record_add_inplace, record_dropout, record_relu, record_relu_backward,
};
use crate::ops::conv::{ConvPlan, ReluPoolScratch};
use crate::ops::gemm::{record_linear, record_linear_backward};
use crate::ops::loss::record_training_loss;
use crate::ops::norm::{record_batch_norm, record_batch_norm_backward};
use crate::ops::pool::PoolPlan;
use crate::{Context, DType, Error, Result, Tensor};

/// What a plan does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanKind {
    /// Forward, loss, backward and, with `update`, the optimizer step.
    Train {
        /// Apply the optimizer (false: only compute the gradients).
        update: bool,
    },
    /// Forward in evaluation mode (dropout is the identity), loss metrics when targets exist.
    Eval,
    /// As `Eval`, but every value keeps a buffer of its own, so all the activations can be
    /// read after the run (feature-map capture). Uses more memory than `Eval`.
    Capture,
}

/// A parameter on the device with its gradient and optimizer state.
pub(crate) struct ParamState {
    pub name: String,
    pub value: Tensor,
    pub grad: Tensor,
    /// Adam's (m, v) or SGD's momentum buffer, zero-initialised.
    pub state: Vec<Tensor>,
    /// Where a second use of a shared parameter writes its gradient before it is added (only
    /// parameters used more than once have one).
    pub scratch: Option<Tensor>,
}

/// Buffers every plan of a model shares.
pub(crate) struct Shared {
    /// [loss sum, correct, samples, -]: accumulated on the device until read.
    pub metrics: Tensor,
    /// [seed] for dropout, rewritten before each step.
    pub seed: Tensor,
    /// [1 - beta1^t, 1 - beta2^t] for Adam, rewritten before each step.
    pub factors: Tensor,
    /// [1.0]: the upstream gradient of the mean loss.
    pub one: Tensor,
    /// A small writable buffer for kernel slots a configuration leaves unused.
    pub spare: Tensor,
}

/// Conv -> ReLU -> 2x2 max-pool as one tiled GEMM that pools as it writes (see
/// `ConvPlan::record_forward_relu_pool`). Backward, the pooling's gradient goes through its
/// indices (-1 where the ReLU was off) into a scratch gradient of the convolution's output,
/// then through the convolution.
struct ConvReluPool {
    conv: ConvPlan,
    pool: PoolPlan,
    pooled: [usize; 2],
    /// The convolution's (un-pooled) output shape, the scratch gradient's.
    conv_shape: Vec<usize>,
}

/// How one node (or a fused run of graph nodes) runs.
enum Exec {
    Conv(ConvPlan),
    /// Conv -> ReLU -> 2x2 max-pool in one kernel (see [`ConvReluPool`]).
    ConvReluPool(Box<ConvReluPool>),
    Pool(PoolPlan),
    Linear,
    Relu,
    Dropout {
        p: f32,
        layer: u32,
    },
    /// Batch norm with its per-node (mean, invstd) and gradient sums, both (2, C).
    BatchNorm {
        o: BatchNormOptions,
        stats: Tensor,
        sums: Tensor,
    },
    /// A view of its input (Flatten; Dropout in evaluation).
    Alias,
}

impl Exec {
    /// Whether the node's backward pass reads its input.
    fn backward_reads_input(&self) -> bool {
        matches!(
            self,
            Exec::Conv(_)
                | Exec::ConvReluPool(_)
                | Exec::Linear
                | Exec::Relu
                | Exec::BatchNorm { .. }
        )
    }
}

/// A compiled graph.
pub(crate) struct Plan {
    steps: Vec<Step>,
    /// The input batch, written by the host before each run.
    pub input: Tensor,
    /// The class targets (i32), written by the host before each run.
    pub target: Tensor,
    /// The logits after a run.
    pub logits: Tensor,
    /// Bytes of the pooled activation and gradient buffers.
    pub pooled_bytes: u64,
    /// Every value's output, for feature-map capture.
    pub values: Vec<Tensor>,
    /// Each plan node's graph nodes, names joined by `+`.
    pub nodes: Vec<String>,
    _keep: Vec<Tensor>,
}

/// Pooled buffers: a request takes the smallest free buffer that fits, or a new one.
struct Pool {
    buffers: Vec<(wgpu::Buffer, u64, usize)>,
}

impl Pool {
    fn take(
        &mut self,
        ctx: &Context,
        bytes: u64,
        start: usize,
        end: usize,
    ) -> Result<wgpu::Buffer> {
        let bytes = bytes.max(4);
        let best = self
            .buffers
            .iter_mut()
            .filter(|(_, size, busy_until)| *size >= bytes && *busy_until < start)
            .min_by_key(|(_, size, _)| *size);
        if let Some((buffer, _, busy)) = best {
            *busy = end;
            return Ok(buffer.clone());
        }
        let limit = ctx.limits().max_buffer_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                what: "an activation".into(),
                bytes,
                limit_name: "max_buffer_size",
                limit,
            });
        }
        let buffer = ctx.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gconv activation"),
            // Whole texels: the tiled kernels copy buffers into rgba32f textures.
            size: bytes.div_ceil(16) * 16,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.buffers.push((buffer.clone(), bytes, end));
        Ok(buffer)
    }
}

/// Storage classes: value v lives in `store[v]`; aliases share one.
fn intervals(n: usize, store: &[usize], uses: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let count = store.iter().copied().max().map_or(0, |m| m + 1);
    let mut iv = vec![(usize::MAX, 0usize); count];
    for v in 0..=n {
        let s = store[v];
        iv[s].0 = iv[s].0.min(uses[v].0);
        iv[s].1 = iv[s].1.max(uses[v].1);
    }
    iv
}

impl Plan {
    #[allow(clippy::too_many_arguments, reason = "the one constructor that sees the whole model")]
    pub(crate) fn build(
        ctx: &Context,
        graph: &Graph,
        params: &[ParamState],
        buffers: &[(String, Tensor)],
        shared: &Shared,
        optimizer: &Optimizer,
        batch: usize,
        kind: PlanKind,
    ) -> Result<Plan> {
        let graph_shapes = graph.shapes(batch)?;
        let train = matches!(kind, PlanKind::Train { .. });
        let mut dropout_index = 0u32;
        let graph_execs: Vec<Exec> =
            graph
                .nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    let x = &graph_shapes[i];
                    Ok(match &node.layer {
                        Layer::Conv { dims, options, .. } => {
                            let w = &graph.params[node.params[0]].spec.shape;
                            Exec::Conv(ConvPlan::conv(conv_name(*dims), *dims, x, w, options)?)
                        }
                        Layer::ConvTranspose { dims, options, .. } => {
                            let w = &graph.params[node.params[0]].spec.shape;
                            Exec::Conv(ConvPlan::conv_transpose(
                                "conv_transpose",
                                *dims,
                                x,
                                w,
                                options,
                            )?)
                        }
                        Layer::MaxPool { dims, options } => {
                            Exec::Pool(PoolPlan::max("max_pool", *dims, x, options)?)
                        }
                        Layer::AvgPool { dims, options } => {
                            Exec::Pool(PoolPlan::avg("avg_pool", *dims, x, options)?)
                        }
                        Layer::AdaptiveAvgPool { dims, output_size } => Exec::Pool(
                            PoolPlan::adaptive("adaptive_avg_pool", false, *dims, x, output_size)?,
                        ),
                        Layer::Linear { .. } => Exec::Linear,
                        Layer::Relu => Exec::Relu,
                        Layer::Dropout { p } if train && *p > 0.0 => {
                            dropout_index += 1;
                            Exec::Dropout { p: *p, layer: dropout_index }
                        }
                        Layer::Dropout { .. } | Layer::Flatten => Exec::Alias,
                        Layer::BatchNorm { num_features, eps, momentum, .. } => Exec::BatchNorm {
                            o: BatchNormOptions { training: train, momentum: *momentum, eps: *eps },
                            stats: Tensor::zeros(ctx, &[2, *num_features])?,
                            sums: Tensor::zeros(ctx, &[2, *num_features])?,
                        },
                    })
                })
                .collect::<Result<_>>()?;
        // Fusion: `execs[i]` runs graph nodes `first[i]..first[i + 1]`, from value `shapes[i]`
        // to `shapes[i + 1]`. A capture keeps every node's output, so it fuses nothing.
        let Lowered { first, execs, shapes } = fuse(ctx, graph_execs, &graph_shapes, kind)?;
        let n = execs.len();

        // Times: forward node i at i, the loss at n, backward node i at 2n - i.
        let t_loss = n;
        let t_bwd = |i: usize| 2 * n - i;
        // Activations: value 0 is the host-written input (not pooled); aliases share storage.
        let mut store = vec![0usize; n + 1];
        let mut next = 1;
        for v in 1..=n {
            store[v] = if matches!(execs[v - 1], Exec::Alias) { store[v - 1] } else { next };
            if store[v] == next {
                next += 1;
            }
        }
        let uses: Vec<(usize, usize)> = (0..=n)
            .map(|v| {
                let def = v.saturating_sub(1);
                let mut last = if v < n { v } else { t_loss };
                if kind == PlanKind::Capture {
                    last = 2 * n + 1;
                }
                if train && v < n && execs[v].backward_reads_input() {
                    last = t_bwd(v);
                }
                (def, last)
            })
            .collect();
        let act_iv = intervals(n, &store, &uses);
        // Gradients (training): grad[v] is written by node v's backward (the loss for v = n)
        // and read by node v-1's; Flatten shares its output's gradient with its input.
        let mut gstore = vec![0usize; n + 1];
        let mut gnext = 1;
        for v in (1..=n).rev() {
            gstore[v] =
                if v < n && matches!(execs[v], Exec::Alias) { gstore[v + 1] } else { gnext };
            if gstore[v] == gnext {
                gnext += 1;
            }
        }
        let guses: Vec<(usize, usize)> = (0..=n)
            .map(|v| {
                if v == 0 { (0, 0) } else { (if v == n { t_loss } else { t_bwd(v) }, t_bwd(v - 1)) }
            })
            .collect();
        let grad_iv = intervals(n, &gstore, &guses);

        let mut pool = Pool { buffers: Vec::new() };
        let input = Tensor::zeros(ctx, &shapes[0])?;
        let mut requests: Vec<(usize, u8, usize, u64)> = Vec::new();
        let bytes_of = |v: usize| shapes[v].iter().product::<usize>() as u64 * 4;
        for (s, iv) in act_iv.iter().enumerate().skip(1) {
            let bytes = (0..=n).filter(|&v| store[v] == s).map(bytes_of).max().unwrap_or(4);
            requests.push((iv.0, 0, s, bytes));
        }
        // (start, what, index, bytes): what is 0 for an activation, 1 for a gradient, 2 for the
        // scratch gradient of a fused node's convolution output (live during its backward).
        if train {
            for (s, iv) in grad_iv.iter().enumerate().skip(1) {
                let bytes = (1..=n).filter(|&v| gstore[v] == s).map(bytes_of).max().unwrap_or(4);
                requests.push((iv.0, 1, s, bytes));
            }
            for (i, exec) in execs.iter().enumerate() {
                if let Exec::ConvReluPool(f) = exec {
                    let bytes = f.conv_shape.iter().product::<usize>() as u64 * 4;
                    requests.push((t_bwd(i), 2, i, bytes));
                }
            }
        }
        requests.sort();
        let mut act_buf: Vec<Option<wgpu::Buffer>> = vec![None; act_iv.len()];
        let mut grad_buf: Vec<Option<wgpu::Buffer>> = vec![None; grad_iv.len()];
        let mut fused_buf: Vec<Option<wgpu::Buffer>> = vec![None; n];
        for (start, what, s, bytes) in requests {
            match what {
                0 => act_buf[s] = Some(pool.take(ctx, bytes, start, act_iv[s].1)?),
                1 => grad_buf[s] = Some(pool.take(ctx, bytes, start, grad_iv[s].1)?),
                _ => fused_buf[s] = Some(pool.take(ctx, bytes, start, start)?),
            }
        }
        let view = |buf: &Option<wgpu::Buffer>, shape: &[usize]| -> Result<Tensor> {
            buf.as_ref()
                .map(|b| Tensor::view_of(ctx, b, shape, DType::F32))
                .ok_or_else(|| Error::invalid("plan", "internal error: a value has no buffer"))
        };
        let values: Vec<Tensor> = (0..=n)
            .map(|v| {
                if store[v] == 0 {
                    Ok(input.reshape(&shapes[v])?)
                } else {
                    view(&act_buf[store[v]], &shapes[v])
                }
            })
            .collect::<Result<_>>()?;
        let grads: Vec<Option<Tensor>> = (0..=n)
            .map(|v| {
                if train && v > 0 {
                    view(&grad_buf[gstore[v]], &shapes[v]).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect::<Result<_>>()?;
        let fused_grads: Vec<Option<Tensor>> = execs
            .iter()
            .enumerate()
            .map(|(i, e)| match e {
                Exec::ConvReluPool(f) if train => view(&fused_buf[i], &f.conv_shape).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        let mut keep = Vec::new();
        let indices: Vec<Option<Tensor>> = execs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let wanted = match e {
                    Exec::Pool(p) => p.has_indices(),
                    Exec::ConvReluPool(_) => train,
                    _ => false,
                };
                if !wanted {
                    return Ok(None);
                }
                let t = Tensor::zeros(ctx, &shapes[i + 1])?;
                Ok(Some(Tensor::view_of(ctx, t.buffer(), &shapes[i + 1], DType::I32)))
            })
            .collect::<Result<_>>()?;
        let target = Tensor::from_slice_i32(ctx, &vec![0; batch], &[batch])?;
        let losses = Tensor::zeros(ctx, &[batch])?;
        let count = Tensor::zeros(ctx, &[1])?;

        // One im2col scratch for every convolution of the plan (they run one after another).
        let col_elems = execs
            .iter()
            .map(|e| match e {
                Exec::Conv(p) => match p.uses_col_scratch(ctx) {
                    Ok(true) => p.col_chunk(ctx).map(|c| c.1),
                    Ok(false) => Ok(0),
                    Err(e) => Err(e),
                },
                _ => Ok(0),
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        let col = Tensor::zeros(ctx, &[col_elems.max(1)])?;
        // What a fused node's forward pass keeps for its weight gradient: its pooled-order im2col
        // texture, or x in rows of texels.
        let relu_pool_cols: Vec<Option<ReluPoolScratch>> = execs
            .iter()
            .map(|e| match e {
                Exec::ConvReluPool(f) if train => f.conv.relu_pool_col(ctx, f.pooled),
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        let mut steps = Vec::new();
        let rec = &mut Recorder::Plan(&mut steps);
        // Parameters of (plan) node i: those of the first graph node it runs.
        let param = |i: usize, k: usize| graph.nodes[first[i]].params.get(k).map(|&p| &params[p]);
        for (i, exec) in execs.iter().enumerate() {
            let (x, y) = (&values[i], &values[i + 1]);
            match exec {
                Exec::Conv(p) => {
                    let w = param(i, 0).map(|p| &p.value).ok_or_else(|| missing(i))?;
                    p.record_forward(
                        rec,
                        x,
                        w,
                        param(i, 1).map(|p| &p.value),
                        y,
                        Some(&col),
                        false,
                    )?;
                }
                Exec::ConvReluPool(f) => {
                    let w = param(i, 0).map(|p| &p.value).ok_or_else(|| missing(i))?;
                    let b = param(i, 1).map(|p| &p.value);
                    f.conv.record_forward_relu_pool(
                        rec,
                        x,
                        w,
                        b,
                        y,
                        indices[i].as_ref(),
                        f.pooled,
                        relu_pool_cols[i].as_ref(),
                    )?;
                }
                Exec::Pool(p) => p.record_forward(rec, x, y, indices[i].as_ref())?,
                Exec::Linear => {
                    let w = param(i, 0).map(|p| &p.value).ok_or_else(|| missing(i))?;
                    record_linear(ctx, rec, x, w, param(i, 1).map(|p| &p.value), y)?;
                }
                Exec::Relu => record_relu(ctx, rec, x, y)?,
                Exec::Dropout { p, layer } => {
                    record_dropout(ctx, rec, *p, *layer, shared.seed.buffer(), x, y)?
                }
                Exec::BatchNorm { o, stats, .. } => {
                    let buffer =
                        |k: usize| graph.nodes[first[i]].buffers.get(k).map(|&b| &buffers[b].1);
                    let (w, b) = (param(i, 0).map(|p| &p.value), param(i, 1).map(|p| &p.value));
                    record_batch_norm(rec, x, buffer(0), buffer(1), w, b, o, y, stats)?;
                }
                Exec::Alias => {}
            }
        }
        let logits = values[n].clone();
        // Training needs (N, classes) logits for the loss; inference also runs models whose
        // output is a feature map (a filter bank), with no loss.
        if logits.rank() != 2 && train {
            return Err(Error::invalid(
                "plan",
                format!("training needs an (N, classes) output, got {:?}", logits.shape()),
            ));
        }
        if logits.rank() == 2 {
            record_training_loss(
                ctx,
                rec,
                &logits,
                &target,
                &losses,
                &count,
                &shared.one,
                &shared.metrics,
                grads[n].as_ref(),
            )?;
        }
        if train {
            let mut written = vec![false; params.len()];
            // The gradient target of a parameter: itself the first time, else its scratch
            // (added afterwards), so shared parameters accumulate.
            let mut targets = |i: usize, k: usize, adds: &mut Vec<usize>| -> Option<&Tensor> {
                let id = *graph.nodes[first[i]].params.get(k)?;
                if written[id] {
                    adds.push(id);
                    params[id].scratch.as_ref()
                } else {
                    written[id] = true;
                    Some(&params[id].grad)
                }
            };
            for i in (0..n).rev() {
                let gy = grads[i + 1].as_ref().ok_or_else(|| missing(i))?;
                let gx = if i == 0 { None } else { grads[i].as_ref() };
                let x = &values[i];
                let mut adds = Vec::new();
                match &execs[i] {
                    Exec::Conv(p) => {
                        let w = param(i, 0).map(|p| &p.value).ok_or_else(|| missing(i))?;
                        let gw = targets(i, 0, &mut adds).ok_or_else(|| missing(i))?.clone();
                        let gb = targets(i, 1, &mut adds).cloned();
                        p.record_backward(rec, x, w, gy, gx, &gw, gb.as_ref(), Some(&col))?;
                    }
                    Exec::ConvReluPool(f) => {
                        let (conv, pool) = (&f.conv, &f.pool);
                        let w = param(i, 0).map(|p| &p.value).ok_or_else(|| missing(i))?;
                        let gw = targets(i, 0, &mut adds).ok_or_else(|| missing(i))?.clone();
                        let gb = targets(i, 1, &mut adds).cloned();
                        let g_conv = fused_grads[i].as_ref().ok_or_else(|| missing(i))?;
                        let ix = indices[i].as_ref().ok_or_else(|| missing(i))?;
                        conv.record_backward_relu_pool(
                            rec,
                            pool,
                            x,
                            w,
                            gy,
                            ix,
                            (gx, &gw, gb.as_ref()),
                            g_conv,
                            relu_pool_cols[i].as_ref(),
                            Some(&col),
                        )?;
                    }
                    Exec::Pool(p) => {
                        if let Some(gx) = gx {
                            p.record_backward(rec, gy, indices[i].as_ref(), gx)?;
                        }
                    }
                    Exec::Linear => {
                        let w = param(i, 0).map(|p| &p.value).ok_or_else(|| missing(i))?;
                        let gw = targets(i, 0, &mut adds).ok_or_else(|| missing(i))?.clone();
                        let gb = targets(i, 1, &mut adds).cloned();
                        record_linear_backward(
                            ctx,
                            rec,
                            x,
                            w,
                            gy,
                            gx,
                            &gw.reshape(w.shape())?,
                            gb.as_ref(),
                        )?;
                    }
                    Exec::Relu => {
                        if let Some(gx) = gx {
                            record_relu_backward(ctx, rec, x, gy, gx)?;
                        }
                    }
                    Exec::Dropout { p, layer } => {
                        if let Some(gx) = gx {
                            record_dropout(ctx, rec, *p, *layer, shared.seed.buffer(), gy, gx)?;
                        }
                    }
                    Exec::BatchNorm { o, stats, sums } => {
                        let w = param(i, 0).map(|p| &p.value);
                        record_batch_norm_backward(rec, gy, x, stats, w, true, o, gx, sums)?;
                        // sums = (sum(grad_y), sum(grad_y * xhat)): the bias's and weight's gradients.
                        let bytes = (sums.numel() / 2 * 4) as u64;
                        if let Some(gw) = targets(i, 0, &mut adds) {
                            rec.copy(sums.buffer(), bytes, gw.buffer(), 0, bytes);
                        }
                        if let Some(gb) = targets(i, 1, &mut adds) {
                            rec.copy(sums.buffer(), 0, gb.buffer(), 0, bytes);
                        }
                    }
                    Exec::Alias => {}
                }
                for id in adds {
                    let scratch = params[id].scratch.as_ref().ok_or_else(|| missing(i))?;
                    record_add_inplace(ctx, rec, scratch, &params[id].grad)?;
                }
            }
            if kind == (PlanKind::Train { update: true }) {
                for p in params {
                    optimizer.record(ctx, rec, p, &shared.factors, &shared.spare)?;
                }
            }
        }
        let pooled_bytes = pool.buffers.iter().map(|(_, size, _)| size).sum();
        keep.extend([losses, count, col]);
        keep.extend(indices.into_iter().flatten());
        let nodes = (0..n)
            .map(|i| {
                let end = first.get(i + 1).copied().unwrap_or(graph.nodes.len());
                let names: Vec<&str> =
                    graph.nodes[first[i]..end].iter().map(|g| g.name.as_str()).collect();
                names.join("+")
            })
            .collect();
        Ok(Plan { steps, input, target, logits, pooled_bytes, values, nodes, _keep: keep })
    }

    /// Runs the steps one by one and reports the time of each kernel (see `kernel::profile`).
    pub(crate) fn profile(&self, ctx: &Context) -> Vec<(&'static str, f64)> {
        crate::kernel::profile(ctx, &self.steps)
    }

    /// Records the plan's steps into `encoder`.
    pub(crate) fn replay(&self, encoder: &mut wgpu::CommandEncoder) {
        crate::kernel::replay(&self.steps, encoder, "gconv step");
    }
}

/// A graph after fusion: plan node i runs graph nodes `first[i]..first[i + 1]` as `execs[i]`,
/// from value `shapes[i]` to `shapes[i + 1]`.
struct Lowered {
    first: Vec<usize>,
    execs: Vec<Exec>,
    shapes: Vec<Vec<usize>>,
}

/// Fuses runs of graph nodes that one kernel can do (conv -> ReLU -> 2x2 max-pool) and
/// returns, per plan node, its first graph node, how it runs, and the value shapes (input
/// first, then each plan node's output).
fn fuse(
    ctx: &Context,
    graph_execs: Vec<Exec>,
    graph_shapes: &[Vec<usize>],
    kind: PlanKind,
) -> Result<Lowered> {
    let mut slots: Vec<Option<Exec>> = graph_execs.into_iter().map(Some).collect();
    let mut first = Vec::new();
    let mut execs = Vec::new();
    let mut shapes = vec![graph_shapes[0].clone()];
    let mut i = 0;
    while i < slots.len() {
        let pooled = match (slots.get(i), slots.get(i + 1), slots.get(i + 2)) {
            (
                Some(Some(Exec::Conv(conv))),
                Some(Some(Exec::Relu)),
                Some(Some(Exec::Pool(pool))),
            ) if kind != PlanKind::Capture => conv.relu_pool_fusion(ctx, pool)?,
            _ => None,
        };
        let taken = (slots[i].take(), pooled);
        let exec = match taken {
            (Some(Exec::Conv(conv)), Some(pooled)) => {
                slots[i + 1] = None;
                let Some(Exec::Pool(pool)) = slots[i + 2].take() else {
                    return Err(Error::invalid("plan", "internal error: fusion lost its pool"));
                };
                let conv_shape = graph_shapes[i + 1].clone();
                Exec::ConvReluPool(Box::new(ConvReluPool { conv, pool, pooled, conv_shape }))
            }
            (Some(exec), _) => exec,
            (None, _) => return Err(Error::invalid("plan", "internal error: fused twice")),
        };
        let width = if matches!(exec, Exec::ConvReluPool(_)) { 3 } else { 1 };
        first.push(i);
        execs.push(exec);
        shapes.push(graph_shapes[i + width].clone());
        i += width;
    }
    Ok(Lowered { first, execs, shapes })
}

fn conv_name(dims: usize) -> &'static str {
    ["conv1d", "conv2d", "conv3d"][dims.clamp(1, 3) - 1]
}

fn missing(node: usize) -> Error {
    Error::invalid("plan", format!("internal error: node {node} lacks a parameter or gradient"))
}
