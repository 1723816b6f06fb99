//! Lowering: a graph's nodes become the kernels' view of the plan ([`Exec`]), each resolved for
//! the batch's shapes, and runs of nodes that one kernel can do are fused.

use super::PlanKind;
use crate::nn::graph::{Graph, Node};
use crate::nn::layer::Layer;
use crate::ops::BatchNormOptions;
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
    pub(super) fn backward_reads_input(&self) -> bool {
        matches!(
            self,
            Exec::Conv(_)
                | Exec::ConvReluPool(..)
                | Exec::Linear
                | Exec::Relu
                | Exec::BatchNorm { .. }
        )
    }
}

/// A graph after lowering: plan node i runs graph nodes `first[i]..first[i + 1]` as
/// `execs[i]`, from value `shapes[i]` to `shapes[i + 1]`.
pub(super) struct Lowered {
    pub first: Vec<usize>,
    pub execs: Vec<Exec>,
    pub shapes: Vec<Vec<usize>>,
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
        .zip(&shapes)
        .map(|(node, x)| exec_of(ctx, graph, node, x, train, &mut dropout_index))
        .collect::<Result<_>>()?;
    fuse(ctx, execs, &shapes, kind)
}

/// One node resolved for its input shape `x`.
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
        Layer::Relu => Exec::Relu,
        Layer::Dropout { p } if train && *p > 0.0 => {
            *dropout_index += 1;
            Exec::Dropout { p: *p, layer: *dropout_index }
        }
        Layer::Dropout { .. } | Layer::Flatten => Exec::Alias,
        Layer::BatchNorm { num_features, eps, momentum, .. } => Exec::BatchNorm {
            o: BatchNormOptions { training: train, momentum: *momentum, eps: *eps },
            stats: Tensor::zeros(ctx, &[2, *num_features])?,
            sums: Tensor::zeros(ctx, &[2, *num_features])?,
        },
    })
}

/// Fuses runs of graph nodes that one kernel can do (conv -> ReLU -> 2x2 max-pool, see
/// `ops::conv::ConvReluPool`).
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
            ) if kind != PlanKind::Capture => ConvReluPool::fusion(ctx, conv, pool)?,
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
            (Some(exec), _) => exec,
            (None, _) => return Err(Error::invalid("plan", "internal error: fused twice")),
        };
        let width = if matches!(exec, Exec::ConvReluPool(..)) { 3 } else { 1 };
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
