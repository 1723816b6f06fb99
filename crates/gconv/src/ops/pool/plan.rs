//! [`PoolPlan`]: a pooling checked once for an input shape (PyTorch's output-size rules),
//! then its forward and backward kernels recorded into any recorder.

use super::{AvgPoolOptions, MaxPoolOptions};
use crate::kernel::{Copy, Dispatch, Recorder, Shader, texture_entry};
use crate::ops::texture::Flat;
use crate::ops::{Dims, Spatial, check_u32, context_of, to3};
use crate::{Context, DType, Error, Result, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct PoolParams {
    pub(super) planes: u32,
    input: [u32; 3],
    output: [u32; 3],
    kernel: [u32; 3],
    stride: [u32; 3],
    pad: [u32; 3],
    dilation: [u32; 3],
    count_include_pad: u32,
    divisor_override: u32,
    total: u32,
    channels: u32,
    pub(super) sample_offset: u32,
}

/// PyTorch's `pooling_output_shape`: floor or ceil, and in ceil mode the last window must start
/// inside the input or its left padding.
fn pool_out_size(input: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> i64 {
    let (input, k, s, p, d) = (input as i64, k as i64, s as i64, p as i64, d as i64);
    let numerator = input + 2 * p - d * (k - 1) - 1 + if ceil { s - 1 } else { 0 };
    let mut out = numerator.div_euclid(s) + 1;
    if ceil && (out - 1) * s >= input + p {
        out -= 1;
    }
    out
}

struct Window {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    pad: Vec<usize>,
    dilation: Vec<usize>,
    out: Vec<usize>,
}

/// A windowed pooling's attributes, from either options struct.
struct WindowSpec<'a> {
    kernel_size: &'a Dims,
    stride: Option<&'a Dims>,
    padding: &'a Dims,
    dilation: Dims,
    ceil_mode: bool,
    /// Max pooling: padding is bounded by the dilated window (average pooling: the window).
    max: bool,
}

fn window(op: &'static str, xs: &Spatial, x: &[usize], spec: &WindowSpec<'_>) -> Result<Window> {
    let WindowSpec { kernel_size, stride, padding, ceil_mode, .. } = *spec;
    let sd = xs.size.len();
    let kernel = kernel_size.resolve_positive(op, "kernel_size", sd)?;
    let stride = match stride {
        Some(s) if !s.0.is_empty() => s.resolve_positive(op, "stride", sd)?,
        _ => kernel.clone(),
    };
    let pad = padding.resolve(op, "padding", sd)?;
    let dilation = spec.dilation.resolve_positive(op, "dilation", sd)?;
    for i in 0..sd {
        // Max pooling bounds padding by the dilated window, average pooling by the window.
        let window = if spec.max { (kernel[i] - 1) * dilation[i] + 1 } else { kernel[i] };
        if pad[i] > window / 2 {
            return Err(Error::invalid(
                op,
                format!("padding {pad:?} should be at most half of the kernel size {kernel:?}"),
            ));
        }
    }
    let out: Vec<i64> = (0..sd)
        .map(|i| pool_out_size(xs.size[i], kernel[i], stride[i], pad[i], dilation[i], ceil_mode))
        .collect();
    if out.iter().any(|&v| v < 1) {
        return Err(Error::invalid(
            op,
            format!(
                "output size {out:?} is below 1 for input {x:?} with kernel_size {kernel:?}, \
                 stride {stride:?}, padding {pad:?}, dilation {dilation:?}"
            ),
        ));
    }
    let out = out.into_iter().map(|v| v as usize).collect();
    Ok(Window { kernel, stride, pad, dilation, out })
}

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolKind {
    Max,
    Avg,
    AdaptiveMax,
    AdaptiveAvg,
}

/// A pooling resolved for one input shape: checked once, then recorded forward and backward
/// into any recorder.
pub(crate) struct PoolPlan {
    pub(super) op: &'static str,
    kind: PoolKind,
    pub(super) xs: Spatial,
    x_shape: Vec<usize>,
    win: Window,
    count_include_pad: bool,
    divisor_override: usize,
}

impl PoolPlan {
    pub(crate) fn max(
        op: &'static str,
        sd: usize,
        x: &[usize],
        o: &MaxPoolOptions,
    ) -> Result<Self> {
        let spec = WindowSpec {
            kernel_size: &o.kernel_size,
            stride: o.stride.as_ref(),
            padding: &o.padding,
            dilation: o.dilation.clone(),
            ceil_mode: o.ceil_mode,
            max: true,
        };
        Self::windowed(op, (PoolKind::Max, sd), x, &spec, (false, 0))
    }

    pub(crate) fn avg(
        op: &'static str,
        sd: usize,
        x: &[usize],
        o: &AvgPoolOptions,
    ) -> Result<Self> {
        if o.divisor_override == Some(0) {
            return Err(Error::invalid(op, "divisor_override must be positive"));
        }
        let spec = WindowSpec {
            kernel_size: &o.kernel_size,
            stride: o.stride.as_ref(),
            padding: &o.padding,
            dilation: 1.into(),
            ceil_mode: o.ceil_mode,
            max: false,
        };
        let divisor = (o.count_include_pad, o.divisor_override.unwrap_or(0));
        Self::windowed(op, (PoolKind::Avg, sd), x, &spec, divisor)
    }

    /// A max or average pooling: `(count_include_pad, divisor_override)` for the average.
    fn windowed(
        op: &'static str,
        (kind, sd): (PoolKind, usize),
        x: &[usize],
        spec: &WindowSpec<'_>,
        (count_include_pad, divisor_override): (bool, usize),
    ) -> Result<Self> {
        let xs = Spatial::of(op, x, sd)?;
        let win = window(op, &xs, x, spec)?;
        let x_shape = x.to_vec();
        Ok(PoolPlan { op, kind, xs, x_shape, win, count_include_pad, divisor_override })
    }

    pub(crate) fn adaptive(
        op: &'static str,
        max: bool,
        sd: usize,
        x: &[usize],
        output_size: &Dims,
    ) -> Result<Self> {
        let xs = Spatial::of(op, x, sd)?;
        let out = output_size.resolve_positive(op, "output_size", sd)?;
        let win = Window {
            kernel: vec![1; sd],
            stride: vec![1; sd],
            pad: vec![0; sd],
            dilation: vec![1; sd],
            out,
        };
        let kind = if max { PoolKind::AdaptiveMax } else { PoolKind::AdaptiveAvg };
        Ok(PoolPlan {
            op,
            kind,
            xs,
            x_shape: x.to_vec(),
            win,
            count_include_pad: false,
            divisor_override: 0,
        })
    }

    /// The output's shape.
    pub(crate) fn output_shape(&self) -> Vec<usize> {
        self.xs.out_shape(self.xs.c, &self.win.out)
    }

    /// The output's (height, width) when this is a 2-D max-pool over disjoint 2x2 windows
    /// (kernel 2, stride 2, no padding, dilation 1, no ceil-mode extra window): the pooling a
    /// convolution's GEMM can fuse.
    pub(crate) fn window_2x2(&self) -> Option<[usize; 2]> {
        let w = &self.win;
        let two = |v: &[usize]| v == [2, 2];
        let plain = self.kind == PoolKind::Max
            && self.xs.size.len() == 2
            && two(&w.kernel)
            && two(&w.stride)
            && w.pad == [0, 0]
            && w.dilation == [1, 1]
            && (0..2).all(|i| w.out[i] == self.xs.size[i] / 2);
        plain.then(|| [w.out[0], w.out[1]])
    }

    /// Whether the pooling saves argmax indices (and its backward pass needs them).
    pub(crate) fn has_indices(&self) -> bool {
        matches!(self.kind, PoolKind::Max | PoolKind::AdaptiveMax)
    }

    pub(super) fn params(&self, total: u32) -> Result<PoolParams> {
        let (xs, win) = (&self.xs, &self.win);
        Ok(PoolParams {
            planes: (xs.n * xs.c) as u32,
            input: to3(&xs.size, 1),
            output: to3(&win.out, 1),
            kernel: to3(&win.kernel, 1),
            stride: to3(&win.stride, 1),
            pad: to3(&win.pad, 0),
            dilation: to3(&win.dilation, 1),
            count_include_pad: self.count_include_pad as u32,
            divisor_override: check_u32(self.op, "divisor_override", self.divisor_override)?,
            total,
            channels: xs.c as u32,
            sample_offset: 0,
        })
    }

    pub(super) fn check(
        &self,
        t: &Tensor,
        name: &str,
        expected: &[usize],
        dtype: DType,
    ) -> Result<()> {
        t.expect_dtype(self.op, dtype)?;
        if t.shape() != expected {
            return Err(Error::invalid(
                self.op,
                format!("{name} must have shape {expected:?}, got {:?}", t.shape()),
            ));
        }
        Ok(())
    }

    /// The argmax indices: same device, i32, the output's shape.
    pub(super) fn check_indices(&self, ctx: &Context, i: &Tensor, out: &[usize]) -> Result<()> {
        if !i.context().same(ctx) {
            return Err(Error::ContextMismatch { op: self.op });
        }
        self.check(i, "indices", out, DType::I32)
    }

    fn run(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        entry: &'static str,
        total: u32,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> Result<()> {
        let params = self.params(total)?;
        ctx.record(
            rec,
            &Dispatch::linear(
                ctx,
                self.op,
                (Shader::Pool, entry),
                bytemuck::bytes_of(&params),
                buffers,
                u64::from(total),
            )?,
        )
    }

    /// Records the forward pass; `indices` is required exactly when [`Self::has_indices`].
    pub(crate) fn record_forward(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        y: &Tensor,
        indices: Option<&Tensor>,
    ) -> Result<()> {
        let op = self.op;
        let ctx = context_of(op, &[x, y])?;
        self.check(x, "the input", &self.x_shape, DType::F32)?;
        let out = self.output_shape();
        self.check(y, "the output", &out, DType::F32)?;
        let total = check_u32(op, "output elements", y.numel())?;
        check_u32(op, "input elements", x.numel())?;
        let mut buffers = vec![(1, x.buffer()), (2, y.buffer())];
        let entry = match (self.kind, indices) {
            (PoolKind::Max | PoolKind::AdaptiveMax, Some(i)) => {
                self.check_indices(&ctx, i, &out)?;
                if self.kind == PoolKind::Max && self.record_3x3_s2_forward(&ctx, rec, x, y, i)? {
                    return Ok(());
                }
                buffers.push((3, i.buffer()));
                if self.kind == PoolKind::Max {
                    "max_pool_forward"
                } else {
                    "adaptive_max_pool_forward"
                }
            }
            (PoolKind::Avg, None) => "avg_pool_forward",
            (PoolKind::AdaptiveAvg, None) => "adaptive_avg_pool_forward",
            _ => return Err(Error::invalid(op, "indices go with max pooling, and only there")),
        };
        self.run(&ctx, rec, entry, total, &buffers)
    }

    /// max_pool_3x3_s2_forward on CPU adapters, for 2-D 3x3 windows of stride 2 and dilation
    /// 1 (ResNet's stem): four outputs of a row per invocation, x read as texels of a texture
    /// copy (on lavapipe a storage-buffer load is a per-lane loop); false where it does not
    /// apply or x cannot be copied. GPUs keep max_pool_forward, which needs no copy.
    fn record_3x3_s2_forward(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        y: &Tensor,
        indices: &Tensor,
    ) -> Result<bool> {
        let w = &self.win;
        let applies = ctx.is_cpu_adapter()
            && w.kernel[..] == [3, 3]
            && w.stride[..] == [2, 2]
            && w.dilation[..] == [1, 1];
        let out_w = w.out.last().copied().unwrap_or(1);
        let quads = y.numel() / out_w.max(1) * out_w.div_ceil(4);
        if !applies || quads >= 1 << 24 {
            return Ok(false);
        }
        let Some(flat) = Flat::copy_of(ctx, rec, x) else {
            return Ok(false);
        };
        let params = self.params(quads as u32)?;
        ctx.record_with(
            rec,
            &Dispatch::linear(
                ctx,
                self.op,
                (Shader::Pool, "max_pool_3x3_s2_forward"),
                bytemuck::bytes_of(&params),
                &[(2, y.buffer()), (3, indices.buffer())],
                quads as u64,
            )?,
            &[texture_entry(10, &flat.view)],
        )?;
        Ok(true)
    }

    /// Records grad_x: one invocation per input element gathers from the windows holding it
    /// (through the saved argmax for max pooling).
    pub(crate) fn record_backward(
        &self,
        rec: &mut Recorder<'_>,
        grad_y: &Tensor,
        indices: Option<&Tensor>,
        grad_x: &Tensor,
    ) -> Result<()> {
        let op = self.op;
        let ctx = context_of(op, &[grad_y, grad_x])?;
        let out = self.output_shape();
        self.check(grad_y, "grad_output", &out, DType::F32)?;
        self.check(grad_x, "grad_input", &self.x_shape, DType::F32)?;
        let total = check_u32(op, "input elements", grad_x.numel())?;
        check_u32(op, "output elements", grad_y.numel())?;
        if let (PoolKind::Max | PoolKind::AdaptiveMax, Some(i)) = (self.kind, indices) {
            self.check_indices(&ctx, i, &out)?;
        }
        if let (PoolKind::Max, Some(i)) = (self.kind, indices) {
            if self.record_scatter_backward(&ctx, rec, (grad_y, i), grad_x)?
                || self.record_texture_backward(&ctx, rec, grad_y, i, grad_x, total)?
            {
                return Ok(());
            }
        }
        if self.kind == PoolKind::AdaptiveAvg && self.win.out.iter().all(|&o| o == 1) {
            return self.record_global_avg_backward(&ctx, rec, grad_y, grad_x);
        }
        let mut buffers = vec![(4, grad_y.buffer()), (5, grad_x.buffer())];
        let entry = match (self.kind, indices) {
            (PoolKind::Max | PoolKind::AdaptiveMax, Some(i)) => {
                buffers.push((6, i.buffer()));
                if self.kind == PoolKind::Max {
                    "max_pool_backward"
                } else {
                    "adaptive_max_pool_backward"
                }
            }
            (PoolKind::Avg, None) => "avg_pool_backward",
            (PoolKind::AdaptiveAvg, None) => {
                // The adaptive entries share one function that reads the indices in its max branch.
                buffers.push((6, &ctx.inner.dummy));
                "adaptive_avg_pool_backward"
            }
            _ => {
                return Err(Error::invalid(
                    op,
                    "max pooling's gradient needs the forward pass's indices",
                ));
            }
        };
        self.run(&ctx, rec, entry, total, &buffers)
    }

    /// Global average pooling's backward pass: each input gets its plane's gradient over the
    /// plane's size (`global_avg_pool_backward`), four values per invocation where planes hold
    /// whole quads (then so does grad_x's buffer).
    fn record_global_avg_backward(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        grad_y: &Tensor,
        grad_x: &Tensor,
    ) -> Result<()> {
        let plane: usize = self.xs.size.iter().product();
        let n = grad_x.numel();
        let (entry, total, binding) = if plane.is_multiple_of(4) {
            ("global_avg_pool_backward4", n / 4, 9)
        } else {
            ("global_avg_pool_backward", n, 5)
        };
        let total = check_u32(self.op, "input elements", total)?;
        self.run(ctx, rec, entry, total, &[(4, grad_y.buffer()), (binding, grad_x.buffer())])
    }

    /// Max pooling's backward pass for 1-D and 2-D windows of dilation 1 that overlap by less
    /// than a stride (kernel <= 2 * stride, not disjoint: ResNet's 3x3/2): grad_x zeroed, then
    /// `max_pool_backward_scatter` over the windows of each parity along h and w in turn (no
    /// two of one parity share an input); false where it does not apply.
    fn record_scatter_backward(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        (grad_y, indices): (&Tensor, &Tensor),
        grad_x: &Tensor,
    ) -> Result<bool> {
        let w = &self.win;
        let dims = w.kernel.len();
        let overlap = (0..dims).any(|d| w.stride[d] < w.kernel[d]);
        let applies = dims <= 2
            && overlap
            && (0..dims).all(|d| w.dilation[d] == 1 && 2 * w.stride[d] >= w.kernel[d]);
        if !applies {
            return Ok(false);
        }
        // (out_h, out_w) as the kernel sees them (to3: a 1-D pooling's h is 1).
        let [_, out_h, out_w] = to3(&w.out, 1).map(|v| v as usize);
        let planes = self.xs.n * self.xs.c;
        if planes * out_h.div_ceil(2) * out_w.div_ceil(2) >= 1 << 24 {
            return Ok(false);
        }
        rec.copy_op(Copy::Zero(grad_x.buffer().clone(), 0, 4 * grad_x.numel() as u64));
        for parity in 0..4u32 {
            let (a, b) = ((parity >> 1) as usize, (parity & 1) as usize);
            let windows = planes * (out_h - a).div_ceil(2) * (out_w - b).div_ceil(2);
            if windows == 0 {
                continue;
            }
            let params = PoolParams { sample_offset: parity, ..self.params(windows as u32)? };
            ctx.record(
                rec,
                &Dispatch::linear(
                    ctx,
                    self.op,
                    (Shader::Pool, "max_pool_backward_scatter"),
                    bytemuck::bytes_of(&params),
                    &[(4, grad_y.buffer()), (5, grad_x.buffer()), (6, indices.buffer())],
                    windows as u64,
                )?,
            )?;
        }
        Ok(true)
    }

    /// Max pooling's backward pass with no loop over the kernel where windows do not overlap
    /// (stride >= kernel, dilation 1: max_pool_backward_disjoint) and the gradient and indices
    /// can be copied into textures; false otherwise.
    fn record_texture_backward(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        grad_y: &Tensor,
        indices: &Tensor,
        grad_x: &Tensor,
        total: u32,
    ) -> Result<bool> {
        let w = &self.win;
        let all = |f: &dyn Fn(usize) -> bool| (0..w.kernel.len()).all(f);
        let plain = all(&|d| w.dilation[d] == 1 && w.stride[d] >= 1);
        if !all(&|d| w.stride[d] >= w.kernel[d]) {
            return Ok(false);
        }
        let entry = "max_pool_backward_disjoint";
        if !plain || total >= 1 << 24 {
            return Ok(false);
        }
        let ix = Flat::new_i32(ctx, indices.numel()).filter(|f| f.can_copy(indices.buffer()));
        let (Some(gy), Some(ix)) = (Flat::of(ctx, grad_y), ix) else {
            return Ok(false);
        };
        gy.record_copy(rec, grad_y.buffer());
        ix.record_copy(rec, indices.buffer());
        let params = self.params(total)?;
        ctx.record_with(
            rec,
            &Dispatch::linear(
                ctx,
                self.op,
                (Shader::Pool, entry),
                bytemuck::bytes_of(&params),
                &[(5, grad_x.buffer())],
                u64::from(total),
            )?,
            &[texture_entry(7, &gy.view), texture_entry(8, &ix.view)],
        )?;
        Ok(true)
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let ctx = x.context();
        let out = self.output_shape();
        let y = Tensor::output(ctx, &out, DType::F32, self.op)?;
        let indices = if self.has_indices() {
            Some(Tensor::output(ctx, &out, DType::I32, self.op)?)
        } else {
            None
        };
        ctx.run(self.op, |rec| self.record_forward(rec, x, &y, indices.as_ref()))?;
        Ok((y, indices))
    }

    pub(super) fn backward(
        &self,
        grad_y: &Tensor,
        x: &Tensor,
        indices: Option<&Tensor>,
    ) -> Result<Tensor> {
        let grad_x = Tensor::output(x.context(), x.shape(), DType::F32, self.op)?;
        x.context().run(self.op, |rec| self.record_backward(rec, grad_y, indices, &grad_x))?;
        Ok(grad_x)
    }
}
