//! Lowering: a graph's nodes become the kernels' view of the plan ([`Exec`]), each resolved for
//! the batch's shapes, and runs of nodes that one kernel can do are fused. Plan values are
//! numbered as graph values are: 0 the input, k + 1 plan node k's output.

use super::PlanKind;
use crate::nn::graph::{Graph, Node};
use crate::nn::layer::Layer;
use crate::ops::BatchNormOptions;
use crate::ops::activation::{Act, Clamp};
use crate::ops::conv::{Attrs, ConvPlan, ConvReluPool};
use crate::ops::pool::PoolPlan;
use crate::{Context, Error, Result, Tensor};

/// How one node (or a fused run of graph nodes) runs.
pub(super) enum Exec {
    Conv(ConvPlan),
    /// Conv -> ReLU -> 2x2 max-pool in one kernel, and the convolution's (un-pooled) output
    /// shape, that of the scratch gradient its backward pass may need.
    ConvReluPool(Box<ConvReluPool>, Vec<usize>),
    Pool(PoolPlan),
    Linear,
    /// ReLU or ReLU6.
    Clamp(Clamp),
    /// The element-wise sum of its inputs.
    Add,
    /// The sum of two inputs and the ReLU, ReLU6 or hardtanh behind it (the node after it in
    /// the graph), in one pass. Inference plans only.
    AddClamp(Act),
    /// Its inputs along the channels.
    Concat,
    /// Softmax along a dimension (its backward pass reads its output).
    Softmax(usize),
    /// Constant padding (PyTorch's pad list) with a value.
    Pad(Vec<i64>, f32),
    Dropout {
        p: f32,
        layer: u32,
    },
    /// Batch norm with its per-node (mean, invstd) and gradient sums, both (2, C), and the
    /// ReLU, ReLU6 or hardtanh fused behind it (the node after it in the graph).
    BatchNorm {
        o: BatchNormOptions,
        stats: Tensor,
        sums: Tensor,
        clamp: Option<Clamp>,
    },
    /// A view of its input (Flatten; Dropout in evaluation).
    Alias,
    /// Conv -> batch norm -> (ReLU, ReLU6 or hardtanh) in evaluation, as one convolution whose
    /// epilogue applies batch norm as each channel's scale and shift, then the clamp:
    /// `batch_norm_fold` writes them into `affine` (2, C_out) from the running statistics,
    /// batch norm's weight and bias and the convolution's bias before the convolution runs,
    /// every step (the parameters may change between steps). Inference plans only.
    ConvBn {
        conv: ConvPlan,
        eps: f64,
        affine: Tensor,
        act: Act,
    },
}

impl Exec {
    /// Whether the node's backward pass reads its input.
    pub(super) fn backward_reads_input(&self) -> bool {
        matches!(
            self,
            Exec::Conv(_)
                | Exec::ConvReluPool(..)
                | Exec::Linear
                | Exec::Clamp(_)
                | Exec::BatchNorm { .. }
        )
    }

    /// Whether the node's backward pass reads its output.
    pub(super) fn backward_reads_output(&self) -> bool {
        matches!(self, Exec::Softmax(_))
    }
}

/// A graph after lowering: plan node i runs graph nodes `first[i]..first[i + 1]` as
/// `execs[i]`, reading plan values `inputs[i]` and writing value i + 1; `shapes[v]` is value
/// v's shape.
pub(super) struct Lowered {
    pub first: Vec<usize>,
    pub execs: Vec<Exec>,
    pub inputs: Vec<Vec<usize>>,
    pub shapes: Vec<Vec<usize>>,
}

impl Lowered {
    /// The (node, slot) pairs that read value `v`, in execution order.
    pub(super) fn readers(&self, v: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (k, inputs) in self.inputs.iter().enumerate() {
            out.extend(inputs.iter().enumerate().filter(|(_, i)| **i == v).map(|(s, _)| (k, s)));
        }
        out
    }
}

/// Lowers `graph` for a batch of `batch` samples and fuses what `kind` allows (a capture keeps
/// every node's output, so it fuses nothing).
pub(super) fn lower(ctx: &Context, graph: &Graph, batch: usize, kind: PlanKind) -> Result<Lowered> {
    let shapes = graph.shapes(batch)?;
    let train = matches!(kind, PlanKind::Train { .. });
    let mut dropout_index = 0u32;
    let execs = graph
        .nodes
        .iter()
        .map(|node| {
            let x = &shapes[node.inputs[0]];
            exec_of(ctx, graph, node, x, train, &mut dropout_index)
        })
        .collect::<Result<_>>()?;
    fuse(ctx, graph, execs, &shapes, kind)
}

/// One node resolved for the shape of its (first) input `x`.
fn exec_of(
    ctx: &Context,
    graph: &Graph,
    node: &Node,
    x: &[usize],
    train: bool,
    dropout_index: &mut u32,
) -> Result<Exec> {
    let weight = || &graph.params[node.params[0]].spec.shape;
    Ok(match &node.layer {
        Layer::Conv { dims, options, .. } => {
            Exec::Conv(ConvPlan::new(conv_name(*dims), *dims, (x, weight()), Attrs::Conv(options))?)
        }
        Layer::ConvTranspose { dims, options, .. } => {
            let attrs = Attrs::Transpose(options);
            Exec::Conv(ConvPlan::new("conv_transpose", *dims, (x, weight()), attrs)?)
        }
        Layer::MaxPool { dims, options } => {
            Exec::Pool(PoolPlan::max("max_pool", *dims, x, options)?)
        }
        Layer::AvgPool { dims, options } => {
            Exec::Pool(PoolPlan::avg("avg_pool", *dims, x, options)?)
        }
        Layer::AdaptiveAvgPool { dims, output_size } => {
            Exec::Pool(PoolPlan::adaptive("adaptive_avg_pool", false, *dims, x, output_size)?)
        }
        Layer::Linear { .. } => Exec::Linear,
        Layer::Relu => Exec::Clamp(Clamp::Relu),
        Layer::Relu6 => Exec::Clamp(Clamp::Relu6),
        Layer::LeakyRelu { negative_slope } => Exec::Clamp(Clamp::LeakyRelu(*negative_slope)),
        Layer::Sigmoid => Exec::Clamp(Clamp::Sigmoid),
        Layer::Hardtanh { min_val, max_val } => Exec::Clamp(Clamp::Hardtanh(*min_val, *max_val)),
        Layer::Scale { factor } => Exec::Clamp(Clamp::Scale(*factor)),
        Layer::Softmax { dim } => {
            Exec::Softmax(crate::ops::activation::resolve_dim("softmax", *dim, x.len())?)
        }
        Layer::Pad { padding, value } => Exec::Pad(padding.clone(), *value),
        Layer::Add => Exec::Add,
        Layer::Concat => Exec::Concat,
        Layer::Dropout { p } if train && *p > 0.0 => {
            *dropout_index += 1;
            Exec::Dropout { p: *p, layer: *dropout_index }
        }
        Layer::Dropout { .. } | Layer::Flatten => Exec::Alias,
        Layer::BatchNorm { num_features, eps, momentum, .. } => Exec::BatchNorm {
            o: BatchNormOptions { training: train, momentum: *momentum, eps: *eps },
            stats: Tensor::zeros(ctx, &[2, *num_features])?,
            sums: Tensor::zeros(ctx, &[2, *num_features])?,
            clamp: None,
        },
    })
}

/// Fuses runs of graph nodes that one kernel can do (conv -> ReLU -> 2x2 max-pool, see
/// `ops::conv::ConvReluPool`; batch norm -> ReLU, ReLU6 or hardtanh; in evaluation, conv ->
/// batch norm (-> clamp) and a sum of two values -> clamp) where the values between them have
/// no other reader, and maps the graph's values to the plan's.
fn fuse(
    ctx: &Context,
    graph: &Graph,
    graph_execs: Vec<Exec>,
    graph_shapes: &[Vec<usize>],
    kind: PlanKind,
) -> Result<Lowered> {
    let mut slots: Vec<Option<Exec>> = graph_execs.into_iter().map(Some).collect();
    // The plan value of each graph value (None inside a fused run).
    let mut value = vec![None; graph_shapes.len()];
    value[0] = Some(0);
    let mut lowered =
        Lowered { first: Vec::new(), execs: Vec::new(), inputs: Vec::new(), shapes: vec![] };
    lowered.shapes.push(graph_shapes[0].clone());
    let mut i = 0;
    while i < slots.len() {
        let pooled = match (slots.get(i), slots.get(i + 1), slots.get(i + 2)) {
            (
                Some(Some(Exec::Conv(conv))),
                Some(Some(Exec::Clamp(Clamp::Relu))),
                Some(Some(Exec::Pool(pool))),
            ) if kind != PlanKind::Capture && only_reader(graph, i + 1, i + 1, i + 2) => {
                ConvReluPool::fusion(ctx, conv, pool)?
            }
            _ => None,
        };
        // Conv -> batch norm (-> clamp) in evaluation: batch norm in the convolution's epilogue.
        if kind == PlanKind::Eval
            && let Some((width, eps, clamp)) = conv_bn(ctx, graph, &slots, i)?
        {
            let Some(Exec::Conv(conv)) = slots[i].take() else {
                return Err(Error::invalid("plan", "internal error: conv + batch norm lost"));
            };
            let c_out = conv.output_shape()[1];
            let act = Act::of("conv + batch_norm", clamp)?;
            let affine = Tensor::zeros(ctx, &[2, c_out])?;
            push(&mut lowered, &mut value, graph, graph_shapes, (i, width))?;
            lowered.execs.push(Exec::ConvBn { conv, eps, affine, act });
            i += width;
            continue;
        }
        // A sum of two values -> ReLU, ReLU6 or hardtanh in evaluation: one pass.
        if kind == PlanKind::Eval
            && graph.nodes[i].inputs.len() == 2
            && let (Some(Some(Exec::Add)), Some(Some(Exec::Clamp(c)))) =
                (slots.get(i), slots.get(i + 1))
            && Act::fusable(*c)
            && sole_reader(graph, i + 1, i + 1)
        {
            let act = Act::of("add + clamp", Some(*c))?;
            slots[i] = None;
            slots[i + 1] = None;
            push(&mut lowered, &mut value, graph, graph_shapes, (i, 2))?;
            lowered.execs.push(Exec::AddClamp(act));
            i += 2;
            continue;
        }
        // Batch norm -> ReLU, ReLU6 or hardtanh: the clamp in batch norm's kernels.
        let clamp = match (slots.get(i), slots.get(i + 1)) {
            (Some(Some(Exec::BatchNorm { .. })), Some(Some(Exec::Clamp(c))))
                if kind != PlanKind::Capture
                    && Act::fusable(*c)
                    && sole_reader(graph, i + 1, i + 1) =>
            {
                Some(*c)
            }
            _ => None,
        };
        let exec = match (slots[i].take(), pooled) {
            (Some(Exec::Conv(conv)), Some(pooled)) => {
                slots[i + 1] = None;
                let Some(Exec::Pool(pool)) = slots[i + 2].take() else {
                    return Err(Error::invalid("plan", "internal error: fusion lost its pool"));
                };
                let conv_shape = graph_shapes[i + 1].clone();
                Exec::ConvReluPool(Box::new(ConvReluPool { conv, pool, pooled }), conv_shape)
            }
            (Some(Exec::BatchNorm { o, stats, sums, .. }), _) if clamp.is_some() => {
                slots[i + 1] = None;
                Exec::BatchNorm { o, stats, sums, clamp }
            }
            (Some(exec), _) => exec,
            (None, _) => return Err(Error::invalid("plan", "internal error: fused twice")),
        };
        let width = match exec {
            Exec::ConvReluPool(..) => 3,
            Exec::BatchNorm { clamp: Some(_), .. } => 2,
            _ => 1,
        };
        push(&mut lowered, &mut value, graph, graph_shapes, (i, width))?;
        lowered.execs.push(exec);
        i += width;
    }
    Ok(lowered)
}

/// Records plan node for graph nodes `i .. i + width` (its exec pushed next): its first graph
/// node, its inputs' plan values, its output's shape and plan value.
fn push(
    lowered: &mut Lowered,
    value: &mut [Option<usize>],
    graph: &Graph,
    graph_shapes: &[Vec<usize>],
    (i, width): (usize, usize),
) -> Result<()> {
    let inputs = graph.nodes[i].inputs.iter().map(|&v| value[v]).collect::<Option<Vec<_>>>();
    let inputs =
        inputs.ok_or_else(|| Error::invalid("plan", "internal error: a fused value is read"))?;
    lowered.first.push(i);
    lowered.inputs.push(inputs);
    lowered.shapes.push(graph_shapes[i + width].clone());
    value[i + width] = Some(lowered.execs.len() + 1);
    Ok(())
}

/// Graph nodes i (a convolution), i + 1 (batch norm in evaluation, with running statistics)
/// and maybe i + 2 (a clamp an epilogue computes), each value between them read by the next
/// node only, where the convolution's kernel takes the fused epilogue: the run's width,
/// batch norm's eps and the clamp.
fn conv_bn(
    ctx: &Context,
    graph: &Graph,
    slots: &[Option<Exec>],
    i: usize,
) -> Result<Option<(usize, f64, Option<Clamp>)>> {
    let (Some(Some(Exec::Conv(conv))), Some(Some(Exec::BatchNorm { o, .. }))) =
        (slots.get(i), slots.get(i + 1))
    else {
        return Ok(None);
    };
    let bn = &graph.nodes[i + 1];
    if o.training || bn.buffers.len() < 2 || !sole_reader(graph, i + 1, i + 1) {
        return Ok(None);
    }
    if !conv.fuses_post(ctx)? {
        return Ok(None);
    }
    let clamp = match slots.get(i + 2) {
        Some(Some(Exec::Clamp(c))) if Act::fusable(*c) && sole_reader(graph, i + 2, i + 2) => {
            Some(*c)
        }
        _ => None,
    };
    Ok(Some((if clamp.is_some() { 3 } else { 2 }, o.eps, clamp)))
}

/// Whether graph values `a` (conv -> ReLU) and `a + 1` (ReLU -> pool) are each read by one
/// node only, `relu` and `pool`, once.
fn only_reader(graph: &Graph, a: usize, relu: usize, pool: usize) -> bool {
    sole_reader(graph, a, relu) && sole_reader(graph, a + 1, pool)
}

/// Whether graph value `v` is read once, by node `node`, which reads nothing else.
fn sole_reader(graph: &Graph, v: usize, node: usize) -> bool {
    graph.nodes[node].inputs == [v] && graph.consumers(v) == [node]
}

fn conv_name(dims: usize) -> &'static str {
    ["conv1d", "conv2d", "conv3d"][dims.clamp(1, 3) - 1]
}
