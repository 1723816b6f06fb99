//! A model on the device: its graph, parameters, optimizer state and compiled plans.

use std::collections::{HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::checkpoint::StateDict;
use super::graph::Graph;
use super::layer::{Init, ParamSpec};
use super::metrics::{self, Metrics};
use super::models::{self, ModelConfig};
use super::optim::Optimizer;
use super::plan::{ModelState, ParamState, Plan, PlanKind, Shared};
use crate::kernel::Part;
use crate::{Context, Error, Result, Tensor};

/// Submissions allowed in flight before a step waits for the oldest: bounds the queue (and the
/// staging memory of uploads) without waiting inside a step.
const IN_FLIGHT: usize = 2;

/// A trainable model on a [`Context`].
pub struct Model {
    ctx: Context,
    name: String,
    graph: Graph,
    /// Logits per sample (the last value's width), inferred once.
    classes: usize,
    params: Vec<ParamState>,
    /// Batch norm's running statistics and batch counts, by state-dict name.
    buffers: Vec<(String, Tensor)>,
    shared: Shared,
    optimizer: Optimizer,
    plans: HashMap<(usize, PlanKind), Plan>,
    step: u64,
    seed: u64,
    /// The learning rate's factor (a schedule's), written with each step's factors.
    lr_scale: f32,
    /// Whether the gradients and optimizer state are allocated (the first training plan or
    /// optimizer-state access does it).
    training_state: bool,
    /// The training loss's label smoothing.
    label_smoothing: f32,
    /// The augmentation of training batches.
    augment: Option<crate::ops::AugmentOptions>,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
    /// Changes to the parameters and running statistics so far (training runs, loads): an
    /// inference plan redoes the data it derives from them (packed and folded weights) when
    /// this moved since its last run (`Plan::prepared_for`).
    version: u64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("parameters", &self.parameter_count())
            .finish()
    }
}

impl Model {
    /// A built-in model (`lenet5`, `simplecnn`, `convnet`, `vgg16`) with PyTorch's default
    /// initialisation from `seed`, and Adam(1e-3) as its optimizer.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unknown model or an input it cannot take.
    pub fn builtin(ctx: &Context, name: &str, config: &ModelConfig, seed: u64) -> Result<Model> {
        let graph = models::build(name, config)?;
        Self::from_graph(ctx, name, graph, seed)
    }

    /// A model from any graph, initialised as PyTorch does (each parameter's [`Init`]):
    /// weights and biases uniform in ±1/sqrt(fan_in) (Kaiming-uniform with a = sqrt(5)) unless
    /// the layer says otherwise, batch norm's weight 1 and bias 0, drawn in parameter order
    /// from a generator seeded with `seed`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when a parameter does not fit the device.
    pub fn from_graph(ctx: &Context, name: &str, graph: Graph, seed: u64) -> Result<Model> {
        let classes = graph.shapes(1)?.last().and_then(|s| s.get(1).copied()).unwrap_or(0);
        let mut rng = StdRng::seed_from_u64(seed);
        let optimizer = Optimizer::adam(1e-3);
        let mut params = Vec::new();
        for (id, p) in graph.params.iter().enumerate() {
            let values = initial_values(&p.spec, &mut rng);
            let uses = graph.nodes.iter().filter(|n| n.params.contains(&id)).count();
            params.push(Self::param_state(ctx, &p.name, &p.spec.shape, &values, uses > 1)?);
        }
        let buffers = graph
            .buffers
            .iter()
            .map(|b| {
                let Init::Constant(v) = b.spec.init else {
                    return Err(Error::invalid("model", "buffers start constant"));
                };
                let shape = if b.spec.shape.is_empty() { vec![1] } else { b.spec.shape.clone() };
                Ok((
                    b.name.clone(),
                    Tensor::from_slice(ctx, &vec![v; shape.iter().product()], &shape)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let shared = Shared {
            metrics: Tensor::zeros(ctx, &[metrics::WORDS])?,
            seed: Tensor::from_slice_i32(ctx, &[0], &[1])?,
            factors: Tensor::from_slice(ctx, &[1.0, 1.0, 1.0, 0.0], &[4])?,
            one: Tensor::from_slice(ctx, &[1.0], &[1])?,
            spare: Tensor::zeros(ctx, &[4])?,
        };
        Ok(Model {
            ctx: ctx.clone(),
            name: name.to_string(),
            classes,
            graph,
            params,
            buffers,
            shared,
            optimizer,
            plans: HashMap::new(),
            step: 0,
            seed,
            lr_scale: 1.0,
            training_state: false,
            label_smoothing: 0.0,
            augment: None,
            in_flight: VecDeque::new(),
            version: 0,
        })
    }

    /// A parameter as inference needs it: its gradient, optimizer state and scratch wait for
    /// [`Model::ensure_training_state`] (a one-value placeholder and nothing until then).
    fn param_state(
        ctx: &Context,
        name: &str,
        shape: &[usize],
        values: &[f32],
        shared: bool,
    ) -> Result<ParamState> {
        Ok(ParamState {
            name: name.to_string(),
            value: Tensor::from_slice(ctx, values, shape)?,
            grad: Tensor::zeros(ctx, &[1])?,
            state: Vec::new(),
            scratch: shared.then(|| Tensor::zeros(ctx, &[1])).transpose()?,
        })
    }

    /// Allocates every parameter's gradient, optimizer state and shared-use scratch the first
    /// time anything needs them (a training plan, the optimizer's state), so a model that only
    /// runs inference never holds three to four times its weights.
    fn ensure_training_state(&mut self) -> Result<()> {
        if self.training_state {
            return Ok(());
        }
        for p in &mut self.params {
            let shape = p.value.shape().to_vec();
            p.grad = Tensor::zeros(&self.ctx, &shape)?;
            p.state = (0..self.optimizer.state_count())
                .map(|_| Tensor::zeros(&self.ctx, &shape))
                .collect::<Result<_>>()?;
            if p.scratch.is_some() {
                p.scratch = Some(Tensor::zeros(&self.ctx, &shape)?);
            }
        }
        self.training_state = true;
        Ok(())
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The graph it runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Trainable parameters (elements).
    pub fn parameter_count(&self) -> usize {
        self.graph.parameter_count()
    }

    /// Per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.graph.input_shape
    }

    /// The context the model lives on.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Replaces the optimizer; its state starts from zero.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a hyper-parameter PyTorch refuses or one that is not
    /// finite ([`Optimizer::validate`]); [`Error::TooLarge`] when the state does not fit.
    pub fn set_optimizer(&mut self, optimizer: Optimizer) -> Result<()> {
        optimizer.validate()?;
        self.optimizer = optimizer;
        if self.training_state {
            for p in &mut self.params {
                let shape = p.value.shape().to_vec();
                p.state = (0..optimizer.state_count())
                    .map(|_| Tensor::zeros(&self.ctx, &shape))
                    .collect::<Result<_>>()?;
            }
        }
        self.step = 0;
        self.plans.retain(|(_, kind), _| !matches!(kind, PlanKind::Train { .. }));
        Ok(())
    }

    /// Scales the optimizer's learning rate by `scale` from the next step on (a learning-rate
    /// schedule's factor, as PyTorch's `LambdaLR`); 1 at first.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a negative or non-finite factor.
    pub fn set_lr_scale(&mut self, scale: f32) -> Result<()> {
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(Error::invalid(
                "model",
                format!("the learning rate's factor must be finite and at least 0, got {scale}"),
            ));
        }
        self.lr_scale = scale;
        Ok(())
    }

    /// Trains with label smoothing `e` (PyTorch's `cross_entropy(label_smoothing=e)`) from
    /// the next step on; evaluation reports the plain cross-entropy.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless 0 <= e <= 1.
    pub fn set_label_smoothing(&mut self, e: f32) -> Result<()> {
        let o = crate::ops::CrossEntropyOptions { label_smoothing: e, ..Default::default() };
        o.validate()?;
        if e != self.label_smoothing {
            self.label_smoothing = e;
            self.plans.retain(|(_, kind), _| !matches!(kind, PlanKind::Train { .. }));
        }
        Ok(())
    }

    /// Augments every training batch on the device (random crops with padding, flips; see
    /// [`crate::ops::augment`]) from the next step on, with the step's seed
    /// ([`Model::step_seed`]); `None` turns it off. Evaluation never augments.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a model whose input is not (C, H, W) or options that do
    /// not fit it.
    pub fn set_augmentation(&mut self, augment: Option<crate::ops::AugmentOptions>) -> Result<()> {
        if let Some(o) = &augment {
            let [c, h, w] = self.graph.input_shape[..] else {
                return Err(Error::invalid(
                    "augment",
                    format!("the model's input {:?} is not (C, H, W)", self.graph.input_shape),
                ));
            };
            o.validate(c, h, w)?;
        }
        if augment != self.augment {
            self.augment = augment;
            self.plans.retain(|(_, kind), _| !matches!(kind, PlanKind::Train { .. }));
        }
        Ok(())
    }

    /// The seed word of the latest training step, from which its dropout masks and
    /// augmentation follow (the model's seed and the step count).
    pub fn step_seed(&self) -> u32 {
        let seed = (self.seed ^ self.step.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (seed >> 32) as u32
    }

    /// The plan for `batch` and `kind`, compiled on first use.
    pub(crate) fn plan(&mut self, batch: usize, kind: PlanKind) -> Result<&Plan> {
        if batch == 0 {
            return Err(Error::invalid("model", "a batch needs at least one sample"));
        }
        if matches!(kind, PlanKind::Train { .. }) {
            self.ensure_training_state()?;
        }
        if !self.plans.contains_key(&(batch, kind)) {
            let state = ModelState {
                graph: &self.graph,
                params: &self.params,
                buffers: &self.buffers,
                shared: &self.shared,
                optimizer: &self.optimizer,
                label_smoothing: self.label_smoothing,
                augment: self.augment.as_ref(),
            };
            let plan = Plan::build(&self.ctx, &state, batch, kind)?;
            self.plans.insert((batch, kind), plan);
        }
        self.plans
            .get(&(batch, kind))
            .ok_or_else(|| Error::invalid("model", "internal error: plan missing"))
    }

    fn upload(
        &mut self,
        kind: PlanKind,
        images: &[f32],
        labels: Option<&[i32]>,
        batch: usize,
    ) -> Result<()> {
        let per: usize = self.graph.input_shape.iter().product();
        if images.len() != batch * per {
            return Err(Error::invalid(
                "model",
                format!(
                    "{} input values do not make {batch} samples of shape {:?}",
                    images.len(),
                    self.graph.input_shape
                ),
            ));
        }
        let classes = self.classes;
        if let Some(labels) = labels
            && let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= classes)
        {
            return Err(Error::invalid(
                "model",
                format!("label {bad} is outside the model's {classes} classes"),
            ));
        }
        let queue = self.ctx.queue().clone();
        let plan = self.plan(batch, kind)?;
        queue.write_buffer(plan.input.buffer(), 0, bytemuck::cast_slice(images));
        // Without labels (prediction) the targets are ignored samples: no metrics, no loss.
        let ignored = vec![-100i32; batch];
        queue.write_buffer(
            plan.target.buffer(),
            0,
            bytemuck::cast_slice(labels.unwrap_or(&ignored)),
        );
        Ok(())
    }

    fn submit(&mut self, batch: usize, kind: PlanKind) -> Result<()> {
        // Keep at most IN_FLIGHT steps queued: wait for the oldest before adding another.
        while self.in_flight.len() >= IN_FLIGHT {
            if let Some(index) = self.in_flight.pop_front() {
                self.ctx
                    .device()
                    .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
                    .map_err(|e| Error::Gpu { op: "train step".into(), message: e.to_string() })?;
            }
        }
        let ctx = self.ctx.clone();
        let version = self.version;
        let plan = self.plan(batch, kind)?;
        let part = plan.next_part(version);
        if std::env::var_os("GCONV_PROFILE").is_some() {
            let times = plan.profile(&ctx, part)?;
            plan.set_prepared(version);
            let total: f64 = times.iter().map(|t| t.1).sum();
            eprintln!("step profile ({:.1} ms):", total * 1e3);
            for (label, t) in times {
                eprintln!("  {label:32} {:8.2} ms", t * 1e3);
            }
            return Ok(());
        }
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("gconv step") });
        plan.replay(&mut encoder, part);
        let index = ctx.submit(encoder.finish());
        plan.set_prepared(version);
        self.in_flight.push_back(index);
        Ok(())
    }

    fn step_state(&mut self) {
        self.step += 1;
        // A training run changes the parameters or batch norm's running statistics.
        self.version += 1;
        let factors = self.optimizer.factors(self.step, self.lr_scale);
        self.ctx.queue().write_buffer(
            self.shared.factors.buffer(),
            0,
            bytemuck::cast_slice(&factors),
        );
        // A different dropout mask and augmentation every step, reproducible from the
        // model's seed.
        let seed = self.step_seed();
        self.ctx.queue().write_buffer(self.shared.seed.buffer(), 0, bytemuck::bytes_of(&seed));
    }

    /// One training step on a batch: forward, loss, backward and the optimizer update, recorded
    /// once per batch size and submitted as one command buffer. Loss and accuracy accumulate on
    /// the device ([`Model::take_metrics`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the data does not fit the model or a label is not a class.
    pub fn train_step(&mut self, images: &[f32], labels: &[i32]) -> Result<()> {
        let kind = PlanKind::Train { update: true };
        self.upload(kind, images, Some(labels), labels.len())?;
        self.step_state();
        self.submit(labels.len(), kind)
    }

    /// Submits the steps of the plan for `batch` and `kind` that derive data from the
    /// parameters, where the plan's last run did not leave it for the current ones: what a
    /// [`super::Session`] does once, so that the runs the host records skip those steps.
    ///
    /// # Errors
    /// As the plan's compilation.
    pub(crate) fn prepare_parameters(&mut self, batch: usize, kind: PlanKind) -> Result<()> {
        let (ctx, version) = (self.ctx.clone(), self.version);
        let plan = self.plan(batch, kind)?;
        if !plan.prepared_for(version) {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            plan.replay(&mut encoder, Part::Parameters);
            ctx.submit(encoder.finish());
            plan.set_prepared(version);
        }
        Ok(())
    }

    /// Forward, loss and backward without an update: afterwards [`Model::gradients`] holds the
    /// gradient of the batch's mean loss.
    ///
    /// # Errors
    /// As [`Model::train_step`].
    pub fn compute_gradients(&mut self, images: &[f32], labels: &[i32]) -> Result<()> {
        let kind = PlanKind::Train { update: false };
        self.upload(kind, images, Some(labels), labels.len())?;
        self.step_state();
        self.submit(labels.len(), kind)
    }

    /// Evaluates a batch (dropout off); loss and accuracy accumulate on the device.
    ///
    /// # Errors
    /// As [`Model::train_step`].
    pub fn eval_batch(&mut self, images: &[f32], labels: &[i32]) -> Result<()> {
        self.upload(PlanKind::Eval, images, Some(labels), labels.len())?;
        self.submit(labels.len(), PlanKind::Eval)
    }

    /// As [`Model::eval_batch`], and returns the batch's logits (batch, classes), on the
    /// device (until the next batch of this size).
    ///
    /// # Errors
    /// As [`Model::train_step`].
    pub fn eval_batch_logits(&mut self, images: &[f32], labels: &[i32]) -> Result<Tensor> {
        self.eval_batch(images, labels)?;
        Ok(self.plan(labels.len(), PlanKind::Eval)?.logits.clone())
    }

    /// The logits (batch, classes) for a batch of `batch` inputs, in evaluation mode.
    ///
    /// # Errors
    /// As [`Model::train_step`].
    pub fn predict(&mut self, images: &[f32], batch: usize) -> Result<Tensor> {
        self.upload(PlanKind::Eval, images, None, batch)?;
        self.submit(batch, PlanKind::Eval)?;
        Ok(self.plan(batch, PlanKind::Eval)?.logits.clone())
    }

    /// Times a step on a batch part by part, each node's forward (and with `train` backward)
    /// kernels on their own (on the device's clock where it has one, see
    /// [`Context::device_clock`]), the median of `runs` rounds after a warm-up: what
    /// `gconv profile` prints. With `train` the rounds are training steps (the parameters
    /// change); the metrics they accumulate are dropped.
    ///
    /// # Errors
    /// As [`Model::train_step`].
    pub fn profile(
        &mut self,
        images: &[f32],
        labels: &[i32],
        train: bool,
        runs: usize,
    ) -> Result<Vec<super::LayerTiming>> {
        let kind = if train { PlanKind::Train { update: true } } else { PlanKind::Eval };
        self.upload(kind, images, Some(labels), labels.len())?;
        if train {
            self.step_state();
        }
        let ctx = self.ctx.clone();
        let version = self.version;
        let plan = self.plan(labels.len(), kind)?;
        // The rounds after the warm-up run what a step runs then.
        let part = plan.steady_part();
        let timings = plan.time_parts(&ctx, runs, part)?;
        plan.set_prepared(version);
        self.take_metrics()?;
        Ok(timings)
    }

    /// The median seconds, over `runs`, the host takes to record the commands of a step on
    /// `batch` inputs (a training step with `train`, else inference) without submitting them:
    /// the CPU's share of every step, which bounds a step on a GPU whose kernels take less.
    /// `gconv profile` prints it beside the step's time.
    ///
    /// # Errors
    /// As [`Model::train_step`].
    pub fn recording_seconds(&mut self, batch: usize, train: bool, runs: usize) -> Result<f64> {
        let kind = if train { PlanKind::Train { update: true } } else { PlanKind::Eval };
        let ctx = self.ctx.clone();
        let plan = self.plan(batch, kind)?;
        let mut times: Vec<f64> = (0..runs.max(1))
            .map(|_| {
                let start = std::time::Instant::now();
                let mut encoder = ctx.device().create_command_encoder(&Default::default());
                plan.replay(&mut encoder, plan.steady_part());
                drop(encoder.finish());
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    /// Runs a batch of `batch` inputs in evaluation mode and returns every layer's output
    /// (the input first, then one per node, by node name), each in a buffer of its own: the
    /// feature maps a visualisation reads.
    ///
    /// # Errors
    /// As [`Model::predict`].
    pub fn forward_capture(
        &mut self,
        images: &[f32],
        batch: usize,
    ) -> Result<Vec<(String, Tensor)>> {
        self.upload(PlanKind::Capture, images, None, batch)?;
        self.submit(batch, PlanKind::Capture)?;
        let names: Vec<String> = std::iter::once("input".to_string())
            .chain(self.graph.nodes.iter().map(|n| n.name.clone()))
            .collect();
        let plan = self.plan(batch, PlanKind::Capture)?;
        Ok(names.into_iter().zip(plan.values.iter().cloned()).collect())
    }

    /// Reads the loss and accuracy accumulated since the last call (waits for the device) and
    /// starts again from zero.
    ///
    /// # Errors
    /// [`Error::Gpu`] if the device fails.
    pub fn take_metrics(&mut self) -> Result<Metrics> {
        let words: Vec<u32> = self.shared.metrics.to_vec()?.into_iter().map(f32::to_bits).collect();
        self.in_flight.clear();
        self.ctx.queue().write_buffer(
            self.shared.metrics.buffer(),
            0,
            bytemuck::cast_slice(&[0u32; metrics::WORDS]),
        );
        let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        Ok(metrics::decode(&words, &names))
    }

    /// Bytes of the pooled activation and gradient buffers of the plan for `batch` and `kind`.
    ///
    /// # Errors
    /// As the plan's compilation.
    pub fn planned_bytes(&mut self, batch: usize, train: bool) -> Result<u64> {
        let kind = if train { PlanKind::Train { update: true } } else { PlanKind::Eval };
        Ok(self.plan(batch, kind)?.pooled_bytes)
    }

    /// The kernels' view of the plan for `batch`: one entry per group of graph nodes that run
    /// together, their names joined by `+` (`conv1+relu1+pool1` where a convolution, its
    /// ReLU and a 2x2 max-pool are fused into one kernel).
    ///
    /// # Errors
    /// As the plan's compilation.
    pub fn planned_nodes(&mut self, batch: usize, train: bool) -> Result<Vec<String>> {
        let kind = if train { PlanKind::Train { update: true } } else { PlanKind::Eval };
        Ok(self.plan(batch, kind)?.nodes.clone())
    }

    /// The parameters' gradients from the last training step or [`Model::compute_gradients`],
    /// by name.
    ///
    /// # Errors
    /// [`Error::Gpu`] if the device fails.
    pub fn gradients(&self) -> Result<StateDict> {
        self.params
            .iter()
            .map(|p| {
                let shape = p.value.shape().to_vec();
                // Before any training the gradients are zero (and not allocated).
                let values =
                    if self.training_state { p.grad.to_vec()? } else { vec![0.0; p.value.numel()] };
                Ok((p.name.clone(), shape, values))
            })
            .collect()
    }

    /// Every tensor a checkpoint holds, by name: (name, shape as PyTorch states it, tensor).
    fn entries(&self) -> Vec<(&str, Vec<usize>, &Tensor)> {
        let params =
            self.params.iter().map(|p| (p.name.as_str(), p.value.shape().to_vec(), &p.value));
        // num_batches_tracked is a scalar in PyTorch.
        let buffers = self.buffers.iter().map(|(n, t)| {
            let shape =
                if n.ends_with("num_batches_tracked") { vec![] } else { t.shape().to_vec() };
            (n.as_str(), shape, t)
        });
        params.chain(buffers).collect()
    }

    /// The parameters and buffers (batch norm's running statistics) by PyTorch state-dict
    /// name: (name, shape, values).
    ///
    /// # Errors
    /// [`Error::Gpu`] if the device fails.
    pub fn state_dict(&self) -> Result<StateDict> {
        self.entries()
            .into_iter()
            .map(|(name, shape, t)| {
                let values = if name.ends_with("num_batches_tracked") {
                    vec![self.step as f32]
                } else {
                    t.to_vec()?
                };
                Ok((name.to_string(), shape, values))
            })
            .collect()
    }

    /// Loads parameters and buffers by name. Every one must be present with its shape, and
    /// nothing else: otherwise the error lists each difference.
    ///
    /// # Errors
    /// [`Error::StateMismatch`] listing missing, unexpected and misshapen tensors.
    pub fn load_state_dict(&mut self, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
        self.version += 1;
        let entries = self.entries();
        self.write_named(&entries, tensors)
    }

    /// The optimizer's state, named as PyTorch's optimizers keep it for each parameter
    /// (Adam's `{name}.exp_avg` and `{name}.exp_avg_sq`, SGD's `{name}.momentum_buffer`),
    /// and the training steps taken: with the state dict, what resuming a run needs.
    ///
    /// # Errors
    /// [`Error::Gpu`] if the device fails.
    pub fn optimizer_state(&self) -> Result<(StateDict, u64)> {
        if !self.training_state {
            // Zero, as the optimizer starts, and not allocated yet.
            let state = self
                .params
                .iter()
                .flat_map(|p| {
                    let shape = p.value.shape().to_vec();
                    self.optimizer_state_names().iter().map(move |kind| {
                        (format!("{}.{kind}", p.name), shape.clone(), vec![0.0; p.value.numel()])
                    })
                })
                .collect();
            return Ok((state, self.step));
        }
        let state = self
            .optimizer_entries()
            .into_iter()
            .map(|(name, shape, t)| Ok((name, shape, t.to_vec()?)))
            .collect::<Result<_>>()?;
        Ok((state, self.step))
    }

    /// Restores [`Model::optimizer_state`] for the current optimizer, which must be the one
    /// that saved it, and the step count (Adam's bias corrections and the dropout masks
    /// continue from it).
    ///
    /// # Errors
    /// [`Error::StateMismatch`] listing missing, unexpected and misshapen tensors.
    pub fn load_optimizer_state(&mut self, state: &StateDict, steps: u64) -> Result<()> {
        self.ensure_training_state()?;
        let entries = self.optimizer_entries();
        let entries: Vec<(&str, Vec<usize>, &Tensor)> =
            entries.iter().map(|(n, s, t)| (n.as_str(), s.clone(), *t)).collect();
        self.write_named(&entries, state)?;
        self.step = steps;
        Ok(())
    }

    /// PyTorch's names for the optimizer's per-parameter state tensors.
    fn optimizer_state_names(&self) -> &'static [&'static str] {
        let names: &'static [&'static str] = match self.optimizer {
            Optimizer::Adam { .. } | Optimizer::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
            Optimizer::Sgd { .. } => &["momentum_buffer"],
        };
        &names[..self.optimizer.state_count().min(names.len())]
    }

    fn optimizer_entries(&self) -> Vec<(String, Vec<usize>, &Tensor)> {
        let names = self.optimizer_state_names();
        self.params
            .iter()
            .flat_map(|p| {
                p.state
                    .iter()
                    .zip(names)
                    .map(|(t, kind)| (format!("{}.{kind}", p.name), p.value.shape().to_vec(), t))
            })
            .collect()
    }

    /// Writes `tensors` into `entries` by name, after checking that the names and shapes are
    /// exactly the entries'.
    fn write_named(
        &self,
        entries: &[(&str, Vec<usize>, &Tensor)],
        tensors: &[(String, Vec<usize>, Vec<f32>)],
    ) -> Result<()> {
        let mut problems = Vec::new();
        let by_name: HashMap<&str, &(String, Vec<usize>, Vec<f32>)> =
            tensors.iter().map(|t| (t.0.as_str(), t)).collect();
        for (name, expected, _) in entries {
            match by_name.get(name) {
                None => problems.push(format!("missing {name} {expected:?}")),
                Some((_, shape, _)) if shape != expected => problems.push(format!(
                    "{name}: shape {shape:?} in the checkpoint, {expected:?} in the model"
                )),
                Some((_, shape, values)) if values.len() != shape.iter().product::<usize>() => {
                    problems.push(format!("{name}: {} values for shape {shape:?}", values.len()))
                }
                Some(_) => {}
            }
        }
        for (name, shape, _) in tensors {
            if !entries.iter().any(|(n, _, _)| n == name) {
                problems.push(format!("unexpected {name} {shape:?}"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::StateMismatch { model: self.name.clone(), problems });
        }
        for (name, _, t) in entries {
            if let Some((_, _, values)) = by_name.get(name) {
                self.ctx.queue().write_buffer(t.buffer(), 0, bytemuck::cast_slice(values));
            }
        }
        Ok(())
    }
}

/// A parameter's starting values, as PyTorch's initialisers draw them.
fn initial_values(spec: &ParamSpec, rng: &mut StdRng) -> Vec<f32> {
    let n: usize = spec.shape.iter().product();
    // N(0, 1) by Box-Muller from two uniform draws.
    let mut normal = || {
        let (u1, u2): (f32, f32) = (1.0 - rng.random::<f32>(), rng.random::<f32>());
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    };
    match spec.init {
        Init::Uniform => {
            let bound = 1.0 / (spec.fan_in.max(1) as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
        }
        Init::Constant(v) => vec![v; n],
        Init::KaimingNormalFanOut => {
            // fan_out = weight.shape[0] * taps.
            let fan_out = spec.shape.first().copied().unwrap_or(1)
                * spec.shape.get(2..).map_or(1, |k| k.iter().product());
            let std = (2.0 / fan_out.max(1) as f32).sqrt();
            (0..n).map(|_| std * normal()).collect()
        }
        Init::Normal(std) => (0..n).map(|_| std * normal()).collect(),
    }
}
