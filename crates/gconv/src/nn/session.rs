//! Inference inside a host application: a [`Session`] runs a model on data that is already on
//! the GPU (the host's buffer or texture) and records its work into the host's command
//! encoder, so the host decides when to submit and can chain gconv between its own passes.

use super::model::Model;
use super::plan::PlanKind;
use crate::kernel::{Dispatch, Part, Prepared, Shader, WG};
use crate::{Error, Result, Tensor};

/// What a session reads each time it is recorded.
#[derive(Clone, Copy, Debug)]
pub enum SessionInput<'a> {
    /// f32 values in NCHW order, already in the model's input space (normalised), starting
    /// `offset` bytes into `buffer` (a multiple of 4). The buffer needs `COPY_SRC` usage; one
    /// device-side copy moves the batch into the plan's input.
    Buffer {
        /// The host's buffer.
        buffer: &'a wgpu::Buffer,
        /// Byte offset of the first value.
        offset: u64,
    },
    /// One image (batch 1) in a 2-D texture of format `Rgba8Unorm`, `Bgra8Unorm`, `R8Unorm` or
    /// `Rgba32Float` with `TEXTURE_BINDING` usage. A shader converts it: grey (BT.709 luma, or
    /// red for `R8Unorm`) or RGB as the model's channels, bilinear resize to the model's input
    /// size, then `(v - mean) / std` (unorm texels are in [0, 1]).
    Texture {
        /// The host's texture.
        texture: &'a wgpu::Texture,
        /// Subtracted from every value (MNIST's models: 0.1307).
        mean: f32,
        /// Divides every value (MNIST's models: 0.3081).
        std: f32,
    },
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TextureParams {
    in_w: u32,
    in_h: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    colour: u32,
    mean: f32,
    std: f32,
}

/// A model compiled for one batch size, ready to be recorded into a host's encoder any number
/// of times. Its logits (and with [`Session::with_feature_maps`] every layer's output) stay in
/// gconv's buffers, which the host can bind or copy from.
///
/// ```no_run
/// # fn demo(device: gconv::wgpu::Device, queue: gconv::wgpu::Queue, image: &gconv::wgpu::Buffer)
/// # -> gconv::Result<()> {
/// use gconv::nn::{Model, ModelConfig, Session, SessionInput, checkpoint};
/// let ctx = gconv::Context::from_wgpu(device.clone(), queue.clone())?;
/// let mut model = Model::builtin(&ctx, "simplecnn", &ModelConfig::default_for("simplecnn"), 0)?;
/// model.load_state_dict(&checkpoint::load("simplecnn.safetensors".as_ref())?)?;
/// let mut session = Session::new(model, 1)?;
/// let mut encoder = device.create_command_encoder(&Default::default());
/// session.record(&mut encoder, SessionInput::Buffer { buffer: image, offset: 0 })?;
/// queue.submit([encoder.finish()]);
/// let logits = session.logits()?; // a Tensor over gconv's buffer: bind it, or to_vec() it
/// # Ok(()) }
/// ```
pub struct Session {
    model: Model,
    batch: usize,
    kind: PlanKind,
    /// The conversion kernel prepared for the last texture seen, and its inputs.
    texture: Option<(wgpu::Texture, [u32; 2], Prepared)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("model", &self.model).field("batch", &self.batch).finish()
    }
}

impl Session {
    /// Compiles `model` for inference on batches of `batch` (buffers, pipelines and bind
    /// groups are made now, once).
    ///
    /// # Errors
    /// [`Error::TooLarge`] naming the limit when a buffer of the plan exceeds the device's;
    /// [`Error::Gpu`] when the device fails (lost, out of memory).
    pub fn new(model: Model, batch: usize) -> Result<Session> {
        Session::build(model, batch, PlanKind::Eval)
    }

    /// As [`Session::new`], but every layer's output keeps a buffer of its own, readable with
    /// [`Session::feature_map`] after each run (more memory).
    ///
    /// # Errors
    /// As [`Session::new`].
    pub fn with_feature_maps(model: Model, batch: usize) -> Result<Session> {
        Session::build(model, batch, PlanKind::Capture)
    }

    fn build(mut model: Model, batch: usize, kind: PlanKind) -> Result<Session> {
        let device = model.context().device().clone();
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let built = model.plan(batch, kind).map(|plan| plan.target.clone());
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(e) = validation.or(oom) {
            return Err(Error::Gpu { op: "session".into(), message: e.to_string() });
        }
        // No targets: every sample is ignored by the loss, so no metrics accumulate.
        let target = built?;
        let ignored = vec![-100i32; batch];
        model.context().queue().write_buffer(target.buffer(), 0, bytemuck::cast_slice(&ignored));
        // The data the plan derives from the parameters (packed and folded weights), made once
        // in a submission of gconv's: the session's model never changes, and the host's
        // submissions on the same queue come after it.
        model.prepare_parameters(batch, kind)?;
        Ok(Session { model, batch, kind, texture: None })
    }

    /// The input shape the session expects, batch first.
    pub fn input_shape(&self) -> Vec<usize> {
        let mut shape = vec![self.batch];
        shape.extend(self.model.input_shape());
        shape
    }

    /// The model the session runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Records the forward pass on `input` into the host's `encoder`: the input's conversion
    /// or copy, then every kernel of the plan. Nothing is submitted; the results are there
    /// once the host has submitted the encoder's commands.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the input does not fit: a buffer too small for the
    /// batch at its offset, a misaligned offset, a missing usage flag, an unsupported texture
    /// format, or a texture for a batch larger than 1.
    pub fn record(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        input: SessionInput<'_>,
    ) -> Result<()> {
        let shape = self.input_shape();
        let bytes = shape.iter().product::<usize>() as u64 * 4;
        match input {
            SessionInput::Buffer { buffer, offset } => {
                if !offset.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT) {
                    return Err(Error::invalid(
                        "session",
                        format!("the input offset {offset} is not a multiple of 4"),
                    ));
                }
                if !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
                    return Err(Error::invalid(
                        "session",
                        "the input buffer needs COPY_SRC usage (gconv copies it on the device)",
                    ));
                }
                if offset.checked_add(bytes).is_none_or(|end| end > buffer.size()) {
                    return Err(Error::invalid(
                        "session",
                        format!(
                            "the input buffer holds {} bytes, too small for an f32 input of \
                             shape {shape:?} ({bytes} bytes) at offset {offset}",
                            buffer.size()
                        ),
                    ));
                }
                let plan = self.model.plan(self.batch, self.kind)?;
                encoder.copy_buffer_to_buffer(buffer, offset, plan.input.buffer(), 0, bytes);
            }
            SessionInput::Texture { texture, mean, std } => {
                self.prepare_texture(texture, [mean.to_bits(), std.to_bits()])?;
                if let Some((_, _, prepared)) = &self.texture {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("gconv texture input"),
                        timestamp_writes: None,
                    });
                    prepared.dispatch(&mut pass);
                }
            }
        }
        self.model.plan(self.batch, self.kind)?.replay(encoder, Part::Batch);
        Ok(())
    }

    fn prepare_texture(&mut self, texture: &wgpu::Texture, norm: [u32; 2]) -> Result<()> {
        if let Some((t, n, _)) = &self.texture
            && t == texture
            && *n == norm
        {
            return Ok(());
        }
        let [mean, std] = norm.map(f32::from_bits);
        let shape = self.input_shape();
        if self.batch != 1 || shape.len() != 4 {
            return Err(Error::invalid(
                "session",
                format!(
                    "a texture is one image: the session needs batch 1 and a CxHxW input, not {shape:?}"
                ),
            ));
        }
        let colour = match texture.format() {
            wgpu::TextureFormat::Rgba8Unorm
            | wgpu::TextureFormat::Bgra8Unorm
            | wgpu::TextureFormat::Rgba32Float => 1,
            wgpu::TextureFormat::R8Unorm => 0,
            other => {
                return Err(Error::invalid(
                    "session",
                    format!(
                        "texture format {other:?} is not supported; use Rgba8Unorm, Bgra8Unorm, \
                         R8Unorm or Rgba32Float"
                    ),
                ));
            }
        };
        if texture.dimension() != wgpu::TextureDimension::D2 || texture.sample_count() != 1 {
            return Err(Error::invalid("session", "the texture must be 2-D and single-sampled"));
        }
        if !texture.usage().contains(wgpu::TextureUsages::TEXTURE_BINDING) {
            return Err(Error::invalid("session", "the texture needs TEXTURE_BINDING usage"));
        }
        if !(std.is_finite() && std != 0.0 && mean.is_finite()) {
            return Err(Error::invalid(
                "session",
                format!("mean {mean} and std {std} must be finite, std non-zero"),
            ));
        }
        let params = TextureParams {
            in_w: texture.width(),
            in_h: texture.height(),
            out_c: shape[1] as u32,
            out_h: shape[2] as u32,
            out_w: shape[3] as u32,
            colour,
            mean,
            std,
        };
        let ctx = self.model.context().clone();
        let total = shape[1..].iter().product::<usize>() as u64;
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let plan = self.model.plan(self.batch, self.kind)?;
        let prepared = ctx.prepare_with(
            &Dispatch::new(
                Shader::Texture,
                "texture_to_tensor",
                bytemuck::bytes_of(&params),
                &[(2, plan.input.buffer())],
                ctx.grid_1d("session", total, WG)?,
            ),
            &[wgpu::BindGroupEntry {
                binding: 1,
                resource: wgpu::BindingResource::TextureView(&view),
            }],
        )?;
        self.texture = Some((texture.clone(), norm, prepared));
        Ok(())
    }

    /// The logits (batch, classes) of the last recorded run, in gconv's buffer (`STORAGE |
    /// COPY_SRC`): bind [`Tensor::buffer`] in the host's own passes, or read it with
    /// [`Tensor::to_vec`].
    ///
    /// # Errors
    /// [`Error::Gpu`] if the plan cannot be made.
    pub fn logits(&mut self) -> Result<Tensor> {
        Ok(self.model.plan(self.batch, self.kind)?.logits.clone())
    }

    /// Records a copy of the logits into the host's `buffer` at `offset` (bytes; needs
    /// `COPY_DST` usage and room for them).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the buffer is too small, misaligned or not `COPY_DST`.
    pub fn copy_logits_to(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        buffer: &wgpu::Buffer,
        offset: u64,
    ) -> Result<()> {
        let logits = self.logits()?;
        let bytes = logits.numel() as u64 * 4;
        if !offset.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
            || !buffer.usage().contains(wgpu::BufferUsages::COPY_DST)
            || offset.checked_add(bytes).is_none_or(|end| end > buffer.size())
        {
            return Err(Error::invalid(
                "session",
                format!(
                    "the output buffer ({} bytes, {:?}) cannot take {bytes} bytes of logits at \
                     offset {offset}: it needs COPY_DST usage, room, and a 4-byte aligned offset",
                    buffer.size(),
                    buffer.usage()
                ),
            ));
        }
        encoder.copy_buffer_to_buffer(logits.buffer(), 0, buffer, offset, bytes);
        Ok(())
    }

    /// The output of the layer named `layer` (or `input`) from the last run; only for a
    /// session made by [`Session::with_feature_maps`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for another session or an unknown layer name.
    pub fn feature_map(&mut self, layer: &str) -> Result<Tensor> {
        if self.kind != PlanKind::Capture {
            return Err(Error::invalid(
                "session",
                "feature maps are kept only by a session made with Session::with_feature_maps",
            ));
        }
        let index = if layer == "input" {
            Some(0)
        } else {
            self.model.graph().nodes.iter().position(|n| n.name == layer).map(|i| i + 1)
        };
        let Some(index) = index else {
            return Err(Error::invalid("session", format!("the model has no layer {layer:?}")));
        };
        Ok(self.model.plan(self.batch, self.kind)?.values[index].clone())
    }
}
