//! Recording a plan's steps, once: the forward pass, the loss, the backward pass in reverse
//! node order (gradients of values read more than once and of shared parameters added up,
//! without atomics) and the optimizer's updates.

use std::cell::RefCell;

use super::flow::Contribution;
use super::lower::{Exec, Lowered};
use super::memory::Tensors;
use super::{Mark, ModelState, ParamState, Phase};
use crate::kernel::Recorder;
use crate::ops::activation::{
    record_add_clamp, record_add_inplace, record_clamp, record_clamp_backward, record_dropout,
    record_softmax, record_softmax_backward,
};
use crate::ops::combine::{record_add, record_slice};
use crate::ops::conv::{ConvIo, GradsOut, Post};
use crate::ops::gemm::{record_linear, record_linear_backward};
use crate::ops::loss::record_training_loss;
use crate::ops::norm::{record_batch_norm, record_batch_norm_backward, record_batch_norm_fold};
use crate::ops::pad::{record_pad, record_pad_backward};
use crate::{Context, Error, Result, Tensor};

/// A plan being recorded: the model's state, the lowered graph and its tensors, and the
/// ranges of steps each node's passes recorded.
pub(super) struct Recording<'a> {
    pub ctx: &'a Context,
    pub model: &'a ModelState<'a>,
    pub lowered: &'a Lowered,
    pub t: &'a Tensors,
    pub marks: RefCell<Vec<Mark>>,
}

fn missing(node: usize) -> Error {
    Error::invalid("plan", format!("internal error: node {node} lacks a parameter or gradient"))
}

impl Recording<'_> {
    /// Notes that steps `start..` of `rec` are node `node`'s (or the step's) `phase`.
    /// Its pooled textures go back to the pool ([`crate::kernel::TexturePool`]).
    pub(super) fn mark(
        &self,
        rec: &mut Recorder<'_>,
        node: Option<usize>,
        phase: Phase,
        start: usize,
    ) {
        rec.release_textures();
        let end = rec.len();
        if end > start {
            self.marks.borrow_mut().push(Mark { node, phase, steps: start..end });
        }
    }

    /// Parameter `k` of plan node `i`: that of the first graph node it runs.
    fn param(&self, i: usize, k: usize) -> Option<&ParamState> {
        self.param_of((i, 0), k)
    }

    /// Parameter `k` of the graph node `at` places after plan node `i`'s first.
    fn param_of(&self, (i, at): (usize, usize), k: usize) -> Option<&ParamState> {
        let node = &self.model.graph.nodes[self.lowered.first[i] + at];
        node.params.get(k).map(|&p| &self.model.params[p])
    }

    /// Buffer `k` (batch norm's running mean, then variance) of the same graph node.
    fn buffer_of(&self, (i, at): (usize, usize), k: usize) -> Option<&Tensor> {
        let node = &self.model.graph.nodes[self.lowered.first[i] + at];
        node.buffers.get(k).map(|&b| &self.model.buffers[b].1)
    }

    fn weight(&self, i: usize) -> Result<&Tensor> {
        self.param(i, 0).map(|p| &p.value).ok_or_else(|| missing(i))
    }

    fn bias(&self, i: usize) -> Option<&Tensor> {
        self.param(i, 1).map(|p| &p.value)
    }

    /// Every node's forward pass.
    pub(super) fn forward(&self, rec: &mut Recorder<'_>) -> Result<()> {
        let (ctx, t) = (self.ctx, self.t);
        for (i, exec) in self.lowered.execs.iter().enumerate() {
            let inputs = &self.lowered.inputs[i];
            let (x, y) = (&t.values[inputs[0]], &t.values[i + 1]);
            let start = rec.len();
            match exec {
                Exec::Conv(p) => {
                    let io = ConvIo::new(x, self.weight(i)?, self.bias(i), y);
                    p.record_forward(rec, &io, Some(&t.col))?;
                }
                Exec::ConvBn { conv, eps, affine, act } => {
                    // Batch norm's node follows the convolution's.
                    let bn = (i, 1);
                    let (Some(rm), Some(rv)) = (self.buffer_of(bn, 0), self.buffer_of(bn, 1))
                    else {
                        return Err(missing(i));
                    };
                    let param = |k: usize| self.param_of(bn, k).map(|p| &p.value);
                    let bn_affine = (param(0), param(1));
                    let stats = (rm, rv);
                    rec.parameter_derived(|rec| {
                        record_batch_norm_fold(rec, stats, bn_affine, self.bias(i), *eps, affine)
                    })?;
                    let post = Post { affine: Some(affine), act: *act };
                    let io = ConvIo { post, ..ConvIo::new(x, self.weight(i)?, None, y) };
                    conv.record_forward(rec, &io, Some(&t.col))?;
                }
                Exec::ConvReluPool(f, _) => {
                    let io = ConvIo::new(x, self.weight(i)?, self.bias(i), y);
                    let scratch = (t.relu_pool[i].as_ref(), Some(&t.col));
                    f.record_forward(rec, &io, t.indices[i].as_ref(), scratch)?;
                }
                Exec::Pool(p) => p.record_forward(rec, x, y, t.indices[i].as_ref())?,
                Exec::Linear => record_linear(ctx, rec, x, self.weight(i)?, self.bias(i), y)?,
                Exec::Clamp(kind) => record_clamp(ctx, rec, *kind, x, y)?,
                Exec::Softmax(d) => record_softmax(ctx, rec, x, y, *d)?,
                Exec::Pad(pad, value) => record_pad(ctx, rec, x, y, pad, *value)?,
                Exec::Add => {
                    let second = inputs.get(1).map_or(x, |&v| &t.values[v]);
                    record_add(ctx, rec, x, second, y)?;
                    for &v in inputs.iter().skip(2) {
                        record_add_inplace(ctx, rec, &t.values[v], y)?;
                    }
                }
                Exec::AddClamp(act) => {
                    let second = inputs.get(1).map_or(x, |&v| &t.values[v]);
                    record_add_clamp(ctx, rec, (x, second), *act, y)?;
                }
                Exec::Concat => {
                    let mut offset = 0;
                    for &v in inputs {
                        record_slice(ctx, rec, "cat_place", &t.values[v], y, 1, offset, false)?;
                        offset += t.values[v].shape()[1];
                    }
                }
                Exec::Dropout { p, layer } => {
                    record_dropout(ctx, rec, *p, *layer, self.model.shared.seed.buffer(), x, y)?
                }
                Exec::BatchNorm { o, stats, clamp, .. } => {
                    let (w, b) = (self.param(i, 0).map(|p| &p.value), self.bias(i));
                    let (rm, rv) = (self.buffer_of((i, 0), 0), self.buffer_of((i, 0), 1));
                    record_batch_norm(rec, x, rm, rv, w, b, o, (y, *clamp), stats)?;
                }
                Exec::Alias => {}
            }
            self.mark(rec, Some(i), Phase::Forward, start);
        }
        Ok(())
    }

    /// The loss and the metrics where the output is (N, classes) logits, and in training the
    /// logits' gradient. Inference also runs models whose output is a feature map (a filter
    /// bank), with no loss.
    pub(super) fn loss(&self, rec: &mut Recorder<'_>, train: bool) -> Result<()> {
        let (t, n) = (self.t, self.lowered.execs.len());
        let logits = &t.values[n];
        if logits.rank() != 2 && train {
            return Err(Error::invalid(
                "plan",
                format!("training needs an (N, classes) output, got {:?}", logits.shape()),
            ));
        }
        if logits.rank() != 2 {
            return Ok(());
        }
        let shared = self.model.shared;
        record_training_loss(
            self.ctx,
            rec,
            logits,
            &t.target,
            &t.losses,
            &t.count,
            &shared.one,
            &shared.metrics,
            t.grads[n].as_ref(),
            if train { self.model.label_smoothing } else { 0.0 },
        )
    }

    /// Every node's backward pass, last node first, for nodes whose output gets a gradient.
    /// A parameter's gradient goes to its gradient tensor the first time it is written, and
    /// to its scratch after that, which is then added in (weight sharing); the gradient of a
    /// value read several times is handled alike (`flow.rs`): no atomics, no zeroing pass.
    pub(super) fn backward(&self, rec: &mut Recorder<'_>) -> Result<()> {
        let params = self.model.params;
        let mut written = vec![false; params.len()];
        for i in (0..self.lowered.execs.len()).rev() {
            if self.t.grads[i + 1].is_none() {
                continue;
            }
            let mut adds = Vec::new();
            let mut target = |k: usize| -> Option<Tensor> {
                let id = *self.model.graph.nodes[self.lowered.first[i]].params.get(k)?;
                if written[id] {
                    adds.push(id);
                    params[id].scratch.clone()
                } else {
                    written[id] = true;
                    Some(params[id].grad.clone())
                }
            };
            let targets = [target(0), target(1)];
            let start = rec.len();
            self.backward_node(rec, i, &targets)?;
            for id in adds {
                let scratch = params[id].scratch.as_ref().ok_or_else(|| missing(i))?;
                record_add_inplace(self.ctx, rec, scratch, &params[id].grad)?;
            }
            self.mark(rec, Some(i), Phase::Backward, start);
        }
        Ok(())
    }

    /// Where node i's kernel writes the gradient of its (first) input: the input's gradient,
    /// or a scratch to add to it from when an earlier-run reader wrote it already.
    fn input_grad(&self, i: usize) -> Result<Option<&Tensor>> {
        let t = self.t;
        Ok(match t.flow.contributions[i][0] {
            Contribution::None | Contribution::Shared => None,
            Contribution::Write => t.grads[self.lowered.inputs[i][0]].as_ref(),
            Contribution::Add => Some(t.grad_scratch[i].as_ref().ok_or_else(|| missing(i))?),
        })
    }

    /// Node i's backward pass into its inputs' gradients and its parameters' gradient
    /// `targets` (weight, bias).
    fn backward_node(
        &self,
        rec: &mut Recorder<'_>,
        i: usize,
        targets: &[Option<Tensor>; 2],
    ) -> Result<()> {
        let (ctx, t) = (self.ctx, self.t);
        let gy = t.grads[i + 1].as_ref().ok_or_else(|| missing(i))?;
        let inputs = &self.lowered.inputs[i];
        match &self.lowered.execs[i] {
            Exec::Add | Exec::Concat | Exec::Alias => {
                let mut offset = 0;
                for (s, &u) in inputs.iter().enumerate() {
                    let contribution = t.flow.contributions[i][s];
                    let width = t.values[u].shape().get(1).copied().unwrap_or(0);
                    let Some(gx) = t.grads[u].as_ref().filter(|_| {
                        matches!(contribution, Contribution::Write | Contribution::Add)
                    }) else {
                        offset += width;
                        continue;
                    };
                    let accumulate = contribution == Contribution::Add;
                    if matches!(self.lowered.execs[i], Exec::Concat) {
                        record_slice(ctx, rec, "narrow", gx, gy, 1, offset, accumulate)?;
                    } else if accumulate {
                        record_add_inplace(ctx, rec, gy, gx)?;
                    } else {
                        let bytes = gy.numel() as u64 * 4;
                        rec.copy(gy.buffer(), 0, gx.buffer(), 0, bytes);
                    }
                    offset += width;
                }
                Ok(())
            }
            _ => {
                let gx = self.input_grad(i)?;
                self.backward_kernel(rec, i, gy, gx, targets)?;
                if let (Contribution::Add, Some(scratch)) = (t.flow.contributions[i][0], gx) {
                    let grad = t.grads[inputs[0]].as_ref().ok_or_else(|| missing(i))?;
                    record_add_inplace(ctx, rec, scratch, grad)?;
                }
                Ok(())
            }
        }
    }

    /// The kernels of node i's backward pass (one input): grad_y `gy` into the input's
    /// gradient `gx` (when one is wanted) and the parameters' `[gw, gb]`.
    fn backward_kernel(
        &self,
        rec: &mut Recorder<'_>,
        i: usize,
        gy: &Tensor,
        gx: Option<&Tensor>,
        [gw, gb]: &[Option<Tensor>; 2],
    ) -> Result<()> {
        let (ctx, t) = (self.ctx, self.t);
        let x = &t.values[self.lowered.inputs[i][0]];
        let grads = || -> Result<GradsOut<'_>> {
            let grad_w = gw.as_ref().ok_or_else(|| missing(i))?;
            Ok(GradsOut { grad_x: gx, grad_w, grad_b: gb.as_ref() })
        };
        match &self.lowered.execs[i] {
            Exec::Conv(p) => {
                p.record_backward(rec, (x, self.weight(i)?, gy), &grads()?, Some(&t.col))?
            }
            Exec::ConvReluPool(f, _) => {
                let ix = t.indices[i].as_ref().ok_or_else(|| missing(i))?;
                let conv_grad = t.conv_grads[i].as_ref().ok_or_else(|| missing(i))?;
                let scratch = (conv_grad, t.relu_pool[i].as_ref(), Some(&t.col));
                f.record_backward(rec, (x, self.weight(i)?, gy, ix), &grads()?, scratch)?;
            }
            Exec::Pool(p) => {
                if let Some(gx) = gx {
                    p.record_backward(rec, gy, t.indices[i].as_ref(), gx)?;
                }
            }
            Exec::Linear => {
                let w = self.weight(i)?;
                let gw = gw.as_ref().ok_or_else(|| missing(i))?.reshape(w.shape())?;
                record_linear_backward(ctx, rec, x, w, gy, gx, &gw, gb.as_ref())?;
            }
            Exec::Clamp(kind) => {
                if let Some(gx) = gx {
                    record_clamp_backward(ctx, rec, *kind, x, gy, gx)?;
                }
            }
            Exec::Softmax(d) => {
                if let Some(gx) = gx {
                    record_softmax_backward(ctx, rec, &t.values[i + 1], gy, gx, *d)?;
                }
            }
            Exec::Pad(pad, _) => {
                if let Some(gx) = gx {
                    record_pad_backward(ctx, rec, gy, gx, pad)?;
                }
            }
            Exec::Dropout { p, layer } => {
                if let Some(gx) = gx {
                    let seed = self.model.shared.seed.buffer();
                    record_dropout(ctx, rec, *p, *layer, seed, gy, gx)?;
                }
            }
            Exec::BatchNorm { o, stats, sums, clamp } => {
                let w = self.param(i, 0).map(|p| &p.value);
                let clamp = clamp.map(|c| (c, self.bias(i)));
                record_batch_norm_backward(rec, gy, x, stats, w, clamp, o, gx, sums)?;
                // sums = (sum(grad_y), sum(grad_y * xhat)): the bias's and weight's gradients.
                let bytes = (sums.numel() / 2 * 4) as u64;
                if let Some(gw) = gw {
                    rec.copy(sums.buffer(), bytes, gw.buffer(), 0, bytes);
                }
                if let Some(gb) = gb {
                    rec.copy(sums.buffer(), 0, gb.buffer(), 0, bytes);
                }
            }
            Exec::Add | Exec::Concat | Exec::Alias => {}
            Exec::ConvBn { .. } | Exec::AddClamp(_) => {
                return Err(Error::invalid(
                    "plan",
                    "internal error: a node fused for inference has no backward pass",
                ));
            }
        }
        Ok(())
    }

    /// The optimizer's update of every parameter.
    pub(super) fn optimizer(&self, rec: &mut Recorder<'_>) -> Result<()> {
        let m = self.model;
        let shared = &m.shared;
        for (i, p) in m.params.iter().enumerate() {
            m.optimizer.record(
                self.ctx,
                rec,
                p,
                i,
                &shared.factors,
                &shared.metrics,
                &shared.spare,
            )?;
        }
        Ok(())
    }
}
