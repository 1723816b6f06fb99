//! The one path every kernel takes: shader source, cached pipeline, uniform parameters, bind
//! group, dispatch. Operators in `ops/` validate shapes, fill a parameter struct and call
//! `Context::record`; nothing else creates pipelines or bind groups.

mod shader;
mod timing;

pub use shader::Shader;
pub(crate) use timing::{profile, time_ranges};

use crate::{Context, Error, Result};

/// A bind group entry for a texture view (the `extra` bindings of [`Context::record_with`]).
pub(crate) fn texture_entry(binding: u32, view: &wgpu::TextureView) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource: wgpu::BindingResource::TextureView(view) }
}

/// Default workgroup size of the one-dimensional kernels (the prelude's `WG`).
pub(crate) const WG: u32 = 64;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    shader: Shader,
    entry: &'static str,
    /// Override constants as (name, f64 bits), so the key can be hashed.
    constants: Vec<(&'static str, u64)>,
}

/// One kernel launch: which entry point, its override constants, its parameters (a uniform at
/// binding 0), its storage buffers (binding index, buffer) and its grid of workgroups.
pub(crate) struct Dispatch<'a> {
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: &'a [(&'static str, f64)],
    pub params: &'a [u8],
    pub buffers: &'a [(u32, &'a wgpu::Buffer)],
    pub workgroups: [u32; 3],
    /// Bindings that see only part of their buffer: (binding, byte offset, byte size). Large
    /// tensors are processed in chunks that each fit `max_storage_buffer_binding_size`.
    pub ranges: &'a [(u32, u64, u64)],
}

/// The override constants of the one-dimensional kernels: the prelude's `WG`.
pub(crate) const WG_CONSTANT: &[(&str, f64)] = &[("WG", WG as f64)];

impl<'a> Dispatch<'a> {
    /// A launch of `entry` over `workgroups`, with no override constants or byte ranges.
    pub(crate) fn new(
        shader: Shader,
        entry: &'static str,
        params: &'a [u8],
        buffers: &'a [(u32, &'a wgpu::Buffer)],
        workgroups: [u32; 3],
    ) -> Self {
        Dispatch { shader, entry, constants: &[], params, buffers, workgroups, ranges: &[] }
    }

    /// A launch of a one-dimensional kernel (the prelude's `WG` and `linear_index`) over at
    /// least `invocations` invocations; `op` names the operator in an error.
    pub(crate) fn linear(
        ctx: &Context,
        op: &'static str,
        (shader, entry): (Shader, &'static str),
        params: &'a [u8],
        buffers: &'a [(u32, &'a wgpu::Buffer)],
        invocations: u64,
    ) -> Result<Self> {
        let workgroups = ctx.grid_1d(op, invocations, WG)?;
        Ok(Dispatch {
            constants: WG_CONSTANT,
            ..Self::new(shader, entry, params, buffers, workgroups)
        })
    }

    /// The same with override constants.
    pub(crate) fn constants(self, constants: &'a [(&'static str, f64)]) -> Self {
        Dispatch { constants, ..self }
    }

    /// The same with bindings that see only part of their buffer.
    pub(crate) fn ranges(self, ranges: &'a [(u32, u64, u64)]) -> Self {
        Dispatch { ranges, ..self }
    }
}

impl Context {
    fn pipeline(&self, key: &PipelineKey, constants: &[(&str, f64)]) -> wgpu::ComputePipeline {
        let mut cache = self.inner.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(key) {
            return p.clone();
        }
        let module = {
            let mut modules = self.inner.modules.lock().unwrap_or_else(|e| e.into_inner());
            modules
                .entry(key.shader)
                .or_insert_with(|| {
                    self.inner.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(key.shader.file_name()),
                        source: wgpu::ShaderSource::Wgsl(key.shader.source().into()),
                    })
                })
                .clone()
        };
        let pipeline =
            self.inner.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key.entry),
                layout: None,
                module: &module,
                entry_point: Some(key.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        cache.insert(key.clone(), pipeline.clone());
        pipeline
    }

    /// Creates everything one kernel launch needs (pipeline from the cache, parameter uniform,
    /// bind group with `extra` bindings that are not storage buffers, such as texture views),
    /// ready to be recorded any number of times.
    pub(crate) fn prepare_with(
        &self,
        d: &Dispatch<'_>,
        extra: &[wgpu::BindGroupEntry<'_>],
    ) -> Result<Prepared> {
        let max_binding = self.binding_limit();
        let range_of = |binding: u32| d.ranges.iter().find(|r| r.0 == binding).map(|r| (r.1, r.2));
        for (binding, buffer) in d.buffers {
            let size = range_of(*binding).map_or(buffer.size(), |r| r.1);
            if size > max_binding {
                return Err(Error::TooLarge {
                    what: format!("a buffer bound by {}", d.entry),
                    bytes: size,
                    limit_name: "max_storage_buffer_binding_size",
                    limit: max_binding,
                });
            }
        }
        let key = PipelineKey {
            shader: d.shader,
            entry: d.entry,
            constants: d.constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        };
        let pipeline = self.pipeline(&key, d.constants);
        // Uniform buffers are sized in multiples of 16 bytes.
        let mut contents = d.params.to_vec();
        contents.resize(d.params.len().div_ceil(16).max(1) * 16, 0);
        // Written through the queue rather than mapped at creation: on a lost device mapping
        // fails hard, while a queue write reports an error the caller's error scope catches.
        let params = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(d.entry),
            size: contents.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.inner.queue.write_buffer(&params, 0, &contents);
        let mut entries =
            vec![wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() }];
        entries.extend(d.buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: match range_of(*binding) {
                Some((offset, size)) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset,
                    size: std::num::NonZeroU64::new(size),
                }),
                None => b.as_entire_binding(),
            },
        }));
        entries.extend(extra.iter().cloned());
        let bind_group = self.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(d.entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Ok(Prepared {
            label: d.entry,
            pipeline,
            bind_group,
            workgroups: d.workgroups,
            _params: params,
        })
    }

    /// Records one kernel launch: at once into an encoder, or into a plan for replay.
    pub(crate) fn record(&self, rec: &mut Recorder<'_>, d: &Dispatch<'_>) -> Result<()> {
        self.record_with(rec, d, &[])
    }

    /// [`Context::record`] with bindings that are not storage buffers (texture views).
    pub(crate) fn record_with(
        &self,
        rec: &mut Recorder<'_>,
        d: &Dispatch<'_>,
        extra: &[wgpu::BindGroupEntry<'_>],
    ) -> Result<()> {
        let prepared = self.prepare_with(d, extra)?;
        match rec {
            Recorder::Encoder(enc) => {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(d.entry),
                    timestamp_writes: None,
                });
                prepared.dispatch(&mut pass);
            }
            Recorder::Plan { steps, parameters, .. } => {
                steps.push(Step { op: StepOp::Dispatch(prepared), parameters: *parameters })
            }
        }
        Ok(())
    }

    /// A 2-D grid of `wg`-wide workgroups with at least `invocations` invocations (see
    /// `linear_index` in the prelude).
    pub(crate) fn grid_1d(&self, op: &'static str, invocations: u64, wg: u32) -> Result<[u32; 3]> {
        let max = u64::from(self.inner.limits.max_compute_workgroups_per_dimension);
        let groups = invocations.div_ceil(u64::from(wg)).max(1);
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::invalid(
                op,
                format!("{invocations} invocations exceed the dispatch limit"),
            ));
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Records work with `f`, submits it, and turns any GPU validation or out-of-memory error it
    /// raised into [`Error::Gpu`].
    pub(crate) fn run<T>(
        &self,
        op: &str,
        f: impl FnOnce(&mut Recorder<'_>) -> Result<T>,
    ) -> Result<T> {
        let device = &self.inner.device;
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(op) });
        let out = f(&mut Recorder::Encoder(&mut encoder));
        if out.is_ok() {
            self.submit(encoder.finish());
        }
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        if let Some(e) = oom.or(validation) {
            return Err(Error::Gpu { op: op.to_string(), message: e.to_string() });
        }
        out
    }
}

/// A kernel launch with its pipeline and bind group made: recording it again costs three calls.
pub(crate) struct Prepared {
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    /// Kept alive with the bind group that refers to it.
    _params: wgpu::Buffer,
}

impl Prepared {
    pub(crate) fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// One step of a recorded plan.
pub(crate) struct Step {
    pub op: StepOp,
    /// Whether the step only prepares data derived from parameters (packed or folded weights,
    /// weight copies) into resources of its own: what an inference plan need not redo until the
    /// parameters change ([`Recorder::parameter_derived`]).
    pub parameters: bool,
}

/// What a step does.
pub(crate) enum StepOp {
    /// A kernel launch.
    Dispatch(Prepared),
    /// A copy between resources.
    Copy(Copy),
}

/// Which of a plan's steps a replay records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Every step.
    Whole,
    /// All but the steps derived from parameters, whose results are still in place.
    Batch,
    /// Only the steps derived from parameters.
    Parameters,
}

impl Part {
    /// Whether a replay of this part records `step`.
    pub(crate) fn takes(self, step: &Step) -> bool {
        match self {
            Part::Whole => true,
            Part::Batch => !step.parameters,
            Part::Parameters => step.parameters,
        }
    }
}

/// A copy recorded outside compute passes.
pub(crate) enum Copy {
    /// Buffer to buffer: (source, offset, destination, offset, bytes).
    Buffer(wgpu::Buffer, u64, wgpu::Buffer, u64, u64),
    /// `height` rows of `width` rgba32f texels from `buffer` (starting at byte `offset`,
    /// `bytes_per_row` apart) into rows `y ..` of `texture`, from texel `x` on.
    ToTexture {
        buffer: wgpu::Buffer,
        offset: u64,
        bytes_per_row: u32,
        texture: wgpu::Texture,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    /// Zeroes `size` bytes of a buffer from byte `offset` on (multiples of 4).
    Zero(wgpu::Buffer, u64, u64),
}

impl Copy {
    /// What the copy does and its size, for `GCONV_PROFILE_EACH`.
    pub(crate) fn describe(&self) -> String {
        let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        match self {
            Copy::Buffer(.., size) => format!("buffer to buffer, {:.2} MiB", mib(*size)),
            Copy::ToTexture { width, height, .. } => {
                let bytes = u64::from(*width) * u64::from(*height) * 16;
                format!("to a texture, {width}x{height} texels, {:.2} MiB", mib(bytes))
            }
            Copy::Zero(_, _, size) => format!("zero, {:.2} MiB", mib(*size)),
        }
    }

    fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        match self {
            Copy::Buffer(src, so, dst, doff, size) => {
                encoder.copy_buffer_to_buffer(src, *so, dst, *doff, *size)
            }
            Copy::ToTexture { buffer, offset, bytes_per_row, texture, x, y, width, height } => {
                encoder.copy_buffer_to_texture(
                    wgpu::TexelCopyBufferInfo {
                        buffer,
                        layout: wgpu::TexelCopyBufferLayout {
                            offset: *offset,
                            bytes_per_row: Some(*bytes_per_row),
                            rows_per_image: None,
                        },
                    },
                    wgpu::TexelCopyTextureInfo {
                        texture,
                        mip_level: 0,
                        origin: wgpu::Origin3d { x: *x, y: *y, z: 0 },
                        aspect: wgpu::TextureAspect::All,
                    },
                    wgpu::Extent3d { width: *width, height: *height, depth_or_array_layers: 1 },
                )
            }
            Copy::Zero(buffer, offset, size) => encoder.clear_buffer(buffer, *offset, Some(*size)),
        }
    }
}

/// Where kernel launches go: straight into a command encoder (eager operators), or into a plan
/// that the executor replays every step with no further allocation.
pub(crate) enum Recorder<'a> {
    /// Record now.
    Encoder(&'a mut wgpu::CommandEncoder),
    /// Keep for replay; `parameters` marks the steps recorded inside
    /// [`Recorder::parameter_derived`], and `kept` says whether the plan keeps what those
    /// steps make from one run to the next (an inference plan: they run once per parameter
    /// version, so packing a weight costs a run nothing); `textures` holds the copies of
    /// activations its nodes share ([`TexturePool`]).
    Plan { steps: &'a mut Vec<Step>, parameters: bool, kept: bool, textures: TexturePool },
}

/// The textures a plan's steps copy activations into for texel fetches (`Flat::copied`),
/// shared between its nodes: a node takes a free one of the same format and size or makes
/// one, and gives them all back once recorded (`Recording::mark`), so that a later node's
/// copy overwrites it. Sound because a pooled texture is only ever written by its user's
/// whole copy, recorded outside [`Recorder::parameter_derived`] steps (which an inference plan
/// skips between parameter changes), and read by that node's kernels alone.
#[derive(Default)]
pub(crate) struct TexturePool {
    free: Vec<PooledTexture>,
    busy: Vec<PooledTexture>,
}

/// A pooled texture: its format and texels (the key), and the texture with its view.
pub(crate) type PooledTexture = ((wgpu::TextureFormat, usize), wgpu::Texture, wgpu::TextureView);

impl Recorder<'_> {
    pub(crate) fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.copy_op(Copy::Buffer(src.clone(), src_offset, dst.clone(), dst_offset, size));
    }

    /// How many steps a plan holds so far (0 when recording into an encoder): where a
    /// node's kernels start, for profiling.
    pub(crate) fn len(&self) -> usize {
        match self {
            Recorder::Encoder(_) => 0,
            Recorder::Plan { steps, .. } => steps.len(),
        }
    }

    pub(crate) fn copy_op(&mut self, op: Copy) {
        match self {
            Recorder::Encoder(enc) => op.record(enc),
            Recorder::Plan { steps, parameters, .. } => {
                steps.push(Step { op: StepOp::Copy(op), parameters: *parameters })
            }
        }
    }

    /// A free pooled texture of this format and size, now the current node's; `None` outside
    /// a plan, inside [`Recorder::parameter_derived`], or where none is free.
    pub(crate) fn take_texture(
        &mut self,
        key: (wgpu::TextureFormat, usize),
    ) -> Option<(wgpu::Texture, wgpu::TextureView)> {
        let Recorder::Plan { textures, parameters: false, .. } = self else { return None };
        let at = textures.free.iter().position(|t| t.0 == key)?;
        let t = textures.free.swap_remove(at);
        textures.busy.push(t.clone());
        Some((t.1, t.2))
    }

    /// Adds a texture made for the current node to the pool (in a plan, outside
    /// [`Recorder::parameter_derived`]).
    pub(crate) fn pool_texture(&mut self, t: PooledTexture) {
        if let Recorder::Plan { textures, parameters: false, .. } = self {
            textures.busy.push(t);
        }
    }

    /// Gives the current node's pooled textures back: a node's steps are all recorded.
    pub(crate) fn release_textures(&mut self) {
        if let Recorder::Plan { textures, .. } = self {
            let busy = std::mem::take(&mut textures.busy);
            textures.free.extend(busy);
        }
    }

    /// Whether what [`Recorder::parameter_derived`] steps make is kept from one run to the
    /// next (see `Recorder::Plan`).
    pub(crate) fn keeps_parameter_data(&self) -> bool {
        matches!(self, Recorder::Plan { kept: true, .. })
    }

    /// Records with `f` steps that read only parameters (weights, biases, batch norm's
    /// parameters and running statistics) and write only resources of their own, which no
    /// other step writes: a weight packed into its own texture, batch norm folded into a
    /// convolution's scale and shift. An inference plan replays them only when the
    /// parameters have changed since its last run ([`Part::Batch`]). Scratch that such steps
    /// pass data through on its way may be shared, as long as all of them are inside.
    pub(crate) fn parameter_derived<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let outer = match self {
            Recorder::Encoder(_) => return f(self),
            Recorder::Plan { parameters, .. } => std::mem::replace(parameters, true),
        };
        let out = f(self);
        if let Recorder::Plan { parameters, .. } = self {
            *parameters = outer;
        }
        out
    }
}

/// Records `part` of a plan's steps into `encoder`, as few compute passes as the copies allow.
pub(crate) fn replay(steps: &[Step], part: Part, encoder: &mut wgpu::CommandEncoder, label: &str) {
    let mut taken = steps.iter().filter(|s| part.takes(s)).peekable();
    while let Some(step) = taken.next() {
        match &step.op {
            StepOp::Copy(op) => op.record(encoder),
            StepOp::Dispatch(first) => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label),
                    timestamp_writes: None,
                });
                first.dispatch(&mut pass);
                while let Some(StepOp::Dispatch(p)) = taken.peek().map(|s| &s.op) {
                    p.dispatch(&mut pass);
                    taken.next();
                }
            }
        }
    }
}
