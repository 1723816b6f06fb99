//! The executor's plans: a graph compiled for one batch size and one purpose, in phases:
//! lowering and fusion (`lower.rs`), how values and gradients flow over branches and when each
//! is live (`flow.rs`), allocation (`memory.rs`: activation and gradient buffers from a pool
//! that shares buffers whose lifetimes do not overlap), then
//! recording every kernel launch once (`record.rs`: forward, loss, backward, optimizer).
//! Running a plan replays its steps into one command buffer.

mod flow;
mod lower;
mod memory;
mod record;

use std::sync::atomic::{AtomicU64, Ordering};

use super::graph::Graph;
use super::optim::Optimizer;
use crate::kernel::{Part, Recorder, Step};
use crate::{Context, Error, Result, Tensor};

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
    /// [loss sum, correct, samples, batches, health, -, -, -] (`shaders/shared/health.wgsl`):
    /// accumulated on the device until read.
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

/// What a plan is built from: the model's graph and its state on the device.
pub(crate) struct ModelState<'a> {
    pub graph: &'a Graph,
    pub params: &'a [ParamState],
    /// Batch norm's running statistics, by state-dict name.
    pub buffers: &'a [(String, Tensor)],
    pub shared: &'a Shared,
    pub optimizer: &'a Optimizer,
    /// The training loss's label smoothing (evaluation plans use none).
    pub label_smoothing: f32,
    /// The augmentation of training batches.
    pub augment: Option<&'a crate::ops::AugmentOptions>,
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
    /// Kept alive for the recorded steps.
    _tensors: memory::Tensors,
    /// The un-augmented batch and the padding values, when training batches are augmented.
    _augment: Option<(Tensor, Tensor)>,
    /// The steps of each node's forward and backward passes and of the step's other parts.
    marks: Vec<Mark>,
    /// The parameters' version (`Model`'s count of changes to them) whose derived data (packed
    /// and folded weights: `Part::Parameters`) the last run left in place; `u64::MAX`: none.
    /// Atomic so that a plan, and the model and session holding it, stay `Sync`.
    prepared: AtomicU64,
    /// Whether runs keep that data from one to the next (an inference plan); a training plan
    /// redoes it every step, its parameters changing with each.
    kept: bool,
}

/// A part of a step, for profiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The batch's augmentation.
    Augment,
    /// A node's forward pass.
    Forward,
    /// The loss, its metrics and its gradient.
    Loss,
    /// A node's backward pass.
    Backward,
    /// The optimizer's updates.
    Optimizer,
}

impl Phase {
    /// "forward", "backward", ...
    pub fn name(self) -> &'static str {
        match self {
            Phase::Augment => "augment",
            Phase::Forward => "forward",
            Phase::Loss => "loss",
            Phase::Backward => "backward",
            Phase::Optimizer => "optimizer",
        }
    }
}

/// The steps of one part of a plan.
pub(crate) struct Mark {
    /// The plan node, for a forward or backward pass.
    pub node: Option<usize>,
    pub phase: Phase,
    pub steps: std::ops::Range<usize>,
}

/// The time of one part of a step: a node's forward or backward pass (`node` names the graph
/// nodes it runs, joined by `+` where they are fused), or the loss, augmentation or optimizer.
#[derive(Clone, Debug)]
pub struct LayerTiming {
    /// The node's name ("" for the step's other parts).
    pub node: String,
    /// Which part.
    pub phase: Phase,
    /// Seconds, from its submission to its completion.
    pub seconds: f64,
    /// The entry points it ran, in order.
    pub kernels: Vec<&'static str>,
}

impl Plan {
    /// Compiles `model`'s graph for `batch` samples and `kind`.
    pub(crate) fn build(
        ctx: &Context,
        model: &ModelState<'_>,
        batch: usize,
        kind: PlanKind,
    ) -> Result<Plan> {
        // Bind groups and pipelines are made here: a mistake in them comes back as an error.
        let device = ctx.device();
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let built = Plan::record(ctx, model, batch, kind);
        if let Some(e) = pollster::block_on(validation.pop()) {
            return Err(Error::Gpu { op: "plan".into(), message: e.to_string() });
        }
        built
    }

    fn record(ctx: &Context, model: &ModelState<'_>, batch: usize, kind: PlanKind) -> Result<Plan> {
        let lowered = lower::lower(ctx, model.graph, batch, kind)?;
        let tensors = memory::allocate(ctx, &lowered, kind, batch)?;
        let mut steps = Vec::new();
        let train = matches!(kind, PlanKind::Train { .. });
        let textures = Default::default();
        let rec =
            &mut Recorder::Plan { steps: &mut steps, parameters: false, kept: !train, textures };
        let recording = record::Recording {
            ctx,
            model,
            lowered: &lowered,
            t: &tensors,
            marks: Default::default(),
        };
        // Training batches are augmented on the device: the host writes `raw`, the first
        // kernel writes the augmented batch where the forward pass reads it.
        let mut augment = None;
        let start = rec.len();
        if let (true, Some(o)) = (train, model.augment) {
            let raw = Tensor::zeros(ctx, tensors.input.shape())?;
            let channels = tensors.input.shape().get(1).copied().unwrap_or(1);
            let fill = Tensor::from_slice(ctx, &o.fills(channels), &[channels])?;
            let io = (&raw, &tensors.input);
            crate::ops::augment::record_augment(
                ctx,
                rec,
                io,
                model.shared.seed.buffer(),
                &fill,
                o,
            )?;
            augment = Some((raw, fill));
        }
        recording.mark(rec, None, Phase::Augment, start);
        recording.forward(rec)?;
        let start = rec.len();
        recording.loss(rec, train)?;
        recording.mark(rec, None, Phase::Loss, start);
        if train {
            recording.backward(rec)?;
        }
        if kind == (PlanKind::Train { update: true }) {
            let start = rec.len();
            recording.optimizer(rec)?;
            recording.mark(rec, None, Phase::Optimizer, start);
        }
        let marks = recording.marks.into_inner();
        let graph_nodes = &model.graph.nodes;
        let nodes = (0..lowered.execs.len())
            .map(|i| {
                let end = lowered.first.get(i + 1).copied().unwrap_or(graph_nodes.len());
                let names: Vec<&str> =
                    graph_nodes[lowered.first[i]..end].iter().map(|g| g.name.as_str()).collect();
                names.join("+")
            })
            .collect();
        Ok(Plan {
            steps,
            input: augment.as_ref().map_or_else(|| tensors.input.clone(), |a| a.0.clone()),
            target: tensors.target.clone(),
            logits: tensors.values[lowered.execs.len()].clone(),
            pooled_bytes: tensors.pooled_bytes,
            values: tensors.values.clone(),
            nodes,
            _tensors: tensors,
            _augment: augment,
            marks,
            prepared: AtomicU64::new(u64::MAX),
            kept: !train,
        })
    }

    /// Runs `part` of the steps one by one and reports the time of each kernel (see
    /// `kernel::profile`).
    pub(crate) fn profile(&self, ctx: &Context, part: Part) -> Result<Vec<(&'static str, f64)>> {
        crate::kernel::profile(ctx, &self.steps, part)
    }

    /// Times every part of the plan (see `kernel::time_ranges`): `runs` rounds of `part` of
    /// the steps after a warm-up of them all, the median of each part.
    pub(crate) fn time_parts(
        &self,
        ctx: &Context,
        runs: usize,
        part: Part,
    ) -> Result<Vec<LayerTiming>> {
        let ranges: Vec<_> = self.marks.iter().map(|m| m.steps.clone()).collect();
        crate::kernel::time_ranges(ctx, &self.steps, &ranges, Part::Whole)?;
        let mut rounds = Vec::new();
        for _ in 0..runs.max(1) {
            rounds.push(crate::kernel::time_ranges(ctx, &self.steps, &ranges, part)?);
        }
        Ok(self
            .marks
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let mut times: Vec<f64> = rounds.iter().map(|r| r[k].0).collect();
                times.sort_by(f64::total_cmp);
                LayerTiming {
                    node: m.node.map(|n| self.nodes[n].clone()).unwrap_or_default(),
                    phase: m.phase,
                    seconds: times[times.len() / 2],
                    kernels: rounds[0][k].1.clone(),
                }
            })
            .collect())
    }

    /// Whether the data derived from the parameters is in place for their `version`.
    pub(crate) fn prepared_for(&self, version: u64) -> bool {
        self.prepared.load(Ordering::Relaxed) == version
    }

    /// The part of the steps the next run replays: all but those deriving data from the
    /// parameters where the plan keeps that data and it is in place for their `version`.
    pub(crate) fn next_part(&self, version: u64) -> Part {
        if self.kept && self.prepared_for(version) { Part::Batch } else { Part::Whole }
    }

    /// The part of the steps a run replays once that data is in place.
    pub(crate) fn steady_part(&self) -> Part {
        if self.kept { Part::Batch } else { Part::Whole }
    }

    /// Notes that a run (submitted, so ahead of any later one) derives the data from the
    /// parameters of `version`.
    pub(crate) fn set_prepared(&self, version: u64) {
        self.prepared.store(version, Ordering::Relaxed);
    }

    /// Records `part` of the plan's steps into `encoder`.
    pub(crate) fn replay(&self, encoder: &mut wgpu::CommandEncoder, part: Part) {
        crate::kernel::replay(&self.steps, part, encoder, "gconv step");
    }
}
