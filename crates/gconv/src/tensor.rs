//! Tensors: a device buffer with a shape and an element type, contiguous and row-major
//! (PyTorch's NCHW / NCDHW).

use crate::{Context, Error, Result};

/// Element type of a [`Tensor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float: activations, weights, gradients.
    F32,
    /// 32-bit signed integer: class targets, max-pooling indices.
    I32,
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
        })
    }
}

/// A contiguous tensor in a GPU buffer. Cloning is cheap and shares the buffer.
#[derive(Clone)]
pub struct Tensor {
    ctx: Context,
    buffer: wgpu::Buffer,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {})", self.shape, self.dtype)
    }
}

/// The number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    fn alloc(ctx: &Context, shape: &[usize], dtype: DType, label: &str) -> Result<Tensor> {
        let bytes = (numel(shape) as u64).checked_mul(4).ok_or_else(|| {
            Error::invalid("tensor", format!("shape {shape:?} overflows the address space"))
        })?;
        let limit = ctx.limits().max_buffer_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                what: format!("a tensor of shape {shape:?}"),
                bytes,
                limit_name: "max_buffer_size",
                limit,
            });
        }
        // Inside an error scope: a device out of memory is an error naming the allocation,
        // not a panic in wgpu's default handler.
        let oom = ctx.device().push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = ctx.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            // Whole texels: the tiled kernels copy buffers into rgba32f textures.
            size: bytes.max(4).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if pollster::block_on(oom.pop()).is_some() {
            return Err(Error::OutOfMemory { what: format!("{label} {shape:?}"), bytes });
        }
        Ok(Tensor { ctx: ctx.clone(), buffer, shape: shape.to_vec(), dtype })
    }

    /// A tensor over the host application's own `buffer` (made on this context's device): its
    /// first `numel(shape)` values, contiguous, in `dtype`. The eager operators then read and
    /// write the host's memory directly, with no copy.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the buffer lacks `STORAGE` usage or is too small for
    /// the shape.
    pub fn from_buffer(
        ctx: &Context,
        buffer: &wgpu::Buffer,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor> {
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::invalid("tensor", "the buffer needs STORAGE usage"));
        }
        let bytes = (numel(shape) as u64).saturating_mul(4);
        if buffer.size() < bytes {
            return Err(Error::invalid(
                "tensor",
                format!(
                    "a buffer of {} bytes is too small for a {dtype} tensor of shape {shape:?} \
                     ({bytes} bytes)",
                    buffer.size()
                ),
            ));
        }
        Ok(Tensor { ctx: ctx.clone(), buffer: buffer.clone(), shape: shape.to_vec(), dtype })
    }

    /// A tensor over an existing buffer (the executor's pooled buffers); the buffer must hold
    /// at least `numel(shape)` elements.
    pub(crate) fn view_of(
        ctx: &Context,
        buffer: &wgpu::Buffer,
        shape: &[usize],
        dtype: DType,
    ) -> Tensor {
        debug_assert!(buffer.size() >= numel(shape) as u64 * 4);
        Tensor { ctx: ctx.clone(), buffer: buffer.clone(), shape: shape.to_vec(), dtype }
    }

    /// A tensor of zeros (wgpu clears new buffers).
    ///
    /// # Errors
    /// [`Error::TooLarge`] when it exceeds the device's `max_buffer_size`.
    pub fn zeros(ctx: &Context, shape: &[usize]) -> Result<Tensor> {
        Self::alloc(ctx, shape, DType::F32, "zeros")
    }

    /// An output tensor for an operator; filled with a poison value when the context asks for it
    /// ([`Context::set_poison_outputs`]).
    pub(crate) fn output(ctx: &Context, shape: &[usize], dtype: DType, op: &str) -> Result<Tensor> {
        let t = Self::alloc(ctx, shape, dtype, op)?;
        if ctx.poison_outputs() {
            let word: u32 = match dtype {
                DType::F32 => f32::NAN.to_bits(),
                DType::I32 => i32::MIN as u32,
            };
            let fill: Vec<u32> = vec![word; (t.buffer.size() / 4) as usize];
            ctx.queue().write_buffer(&t.buffer, 0, bytemuck::cast_slice(&fill));
        }
        Ok(t)
    }

    fn check_len(len: usize, shape: &[usize]) -> Result<()> {
        if len != numel(shape) {
            return Err(Error::invalid(
                "tensor",
                format!("{len} values do not fill shape {shape:?} ({} elements)", numel(shape)),
            ));
        }
        Ok(())
    }

    /// Uploads f32 data of the given shape.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `data.len()` is not the shape's element count;
    /// [`Error::TooLarge`] past `max_buffer_size`.
    pub fn from_slice(ctx: &Context, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Self::check_len(data.len(), shape)?;
        let t = Self::alloc(ctx, shape, DType::F32, "upload")?;
        if !data.is_empty() {
            ctx.queue().write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    /// Uploads i32 data (class targets, indices) of the given shape.
    ///
    /// # Errors
    /// As [`Tensor::from_slice`].
    pub fn from_slice_i32(ctx: &Context, data: &[i32], shape: &[usize]) -> Result<Tensor> {
        Self::check_len(data.len(), shape)?;
        let t = Self::alloc(ctx, shape, DType::I32, "upload")?;
        if !data.is_empty() {
            ctx.queue().write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    fn read_words(&self) -> Result<Vec<u32>> {
        let n = self.numel();
        if n == 0 {
            return Ok(Vec::new());
        }
        let bytes = n as u64 * 4;
        let device = self.ctx.device();
        let staging = self.ctx.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.ctx.run("download", |enc| {
            enc.copy(&self.buffer, 0, &staging, 0, bytes);
            Ok(())
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let gpu = |message: String| Error::Gpu { op: "download".into(), message };
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu(e.to_string()))?;
        rx.recv().map_err(|e| gpu(e.to_string()))?.map_err(|e| gpu(e.to_string()))?;
        let words = {
            let view = staging.slice(..).get_mapped_range().map_err(|e| gpu(e.to_string()))?;
            bytemuck::cast_slice::<u8, u32>(&view).to_vec()
        };
        staging.unmap();
        Ok(words)
    }

    /// Downloads an f32 tensor (waits for the GPU).
    ///
    /// # Errors
    /// [`Error::DType`] for an i32 tensor; [`Error::Gpu`] if the device fails.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.expect_dtype("to_vec", DType::F32)?;
        Ok(self.read_words()?.into_iter().map(f32::from_bits).collect())
    }

    /// Downloads an i32 tensor (waits for the GPU).
    ///
    /// # Errors
    /// [`Error::DType`] for an f32 tensor; [`Error::Gpu`] if the device fails.
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        self.expect_dtype("to_vec_i32", DType::I32)?;
        Ok(self.read_words()?.into_iter().map(|w| w as i32).collect())
    }

    pub(crate) fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType { op, expected: dtype, actual: self.dtype });
        }
        Ok(())
    }

    /// The same data under another shape with the same number of elements (no copy).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the element counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::invalid(
                "reshape",
                format!("cannot view shape {:?} as {shape:?}", self.shape),
            ));
        }
        Ok(Tensor { shape: shape.to_vec(), ..self.clone() })
    }

    /// The shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The context (device) the tensor lives on.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The underlying wgpu buffer (at least 4 bytes; the data starts at offset 0).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}
