//! Max, average and adaptive pooling, 1-D to 3-D (`pool.wgsl`).

use super::{Dims, Spatial, check_u32, context_of, to3};
use crate::kernel::{Dispatch, Recorder, Shader, WG, texture_entry};
use crate::ops::tiled::{Flat, Packed};
use crate::{Context, DType, Error, Result, Tensor};

/// Attributes of `max_pool1d/2d/3d`, with PyTorch's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxPoolOptions {
    /// Window size per dimension.
    pub kernel_size: Dims,
    /// Step between windows; `None` means `kernel_size`, as in PyTorch.
    pub stride: Option<Dims>,
    /// Implicit negative-infinity padding on both sides (at most half the dilated window).
    pub padding: Dims,
    /// Spacing between window taps.
    pub dilation: Dims,
    /// Use ceil instead of floor for the output size (a last window may start in the input's
    /// tail or the left padding, never in the right padding).
    pub ceil_mode: bool,
}

impl MaxPoolOptions {
    /// A `kernel_size` window with stride = kernel_size, no padding, dilation 1, floor mode.
    pub fn new(kernel_size: impl Into<Dims>) -> Self {
        MaxPoolOptions {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: 0.into(),
            dilation: 1.into(),
            ceil_mode: false,
        }
    }
    /// Sets `stride`.
    pub fn stride(mut self, v: impl Into<Dims>) -> Self {
        self.stride = Some(v.into());
        self
    }
    /// Sets `padding`.
    pub fn padding(mut self, v: impl Into<Dims>) -> Self {
        self.padding = v.into();
        self
    }
    /// Sets `dilation`.
    pub fn dilation(mut self, v: impl Into<Dims>) -> Self {
        self.dilation = v.into();
        self
    }
    /// Sets `ceil_mode`.
    pub fn ceil_mode(mut self, v: bool) -> Self {
        self.ceil_mode = v;
        self
    }
}

/// Attributes of `avg_pool1d/2d/3d`, with PyTorch's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvgPoolOptions {
    /// Window size per dimension.
    pub kernel_size: Dims,
    /// Step between windows; `None` means `kernel_size`.
    pub stride: Option<Dims>,
    /// Implicit zero padding on both sides (at most half the window).
    pub padding: Dims,
    /// Use ceil instead of floor for the output size.
    pub ceil_mode: bool,
    /// Count padding zeros in the divisor (PyTorch's default, true).
    pub count_include_pad: bool,
    /// Divide by this instead of the window size.
    pub divisor_override: Option<usize>,
}

impl AvgPoolOptions {
    /// A `kernel_size` window with stride = kernel_size, no padding, floor mode,
    /// count_include_pad.
    pub fn new(kernel_size: impl Into<Dims>) -> Self {
        AvgPoolOptions {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: 0.into(),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
    /// Sets `stride`.
    pub fn stride(mut self, v: impl Into<Dims>) -> Self {
        self.stride = Some(v.into());
        self
    }
    /// Sets `padding`.
    pub fn padding(mut self, v: impl Into<Dims>) -> Self {
        self.padding = v.into();
        self
    }
    /// Sets `ceil_mode`.
    pub fn ceil_mode(mut self, v: bool) -> Self {
        self.ceil_mode = v;
        self
    }
    /// Sets `count_include_pad`.
    pub fn count_include_pad(mut self, v: bool) -> Self {
        self.count_include_pad = v;
        self
    }
    /// Sets `divisor_override`.
    pub fn divisor_override(mut self, v: usize) -> Self {
        self.divisor_override = Some(v);
        self
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    planes: u32,
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
    sample_offset: u32,
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

#[allow(clippy::too_many_arguments)]
fn window(
    op: &'static str,
    xs: &Spatial,
    x: &[usize],
    kernel_size: &Dims,
    stride: Option<&Dims>,
    padding: &Dims,
    dilation: &Dims,
    ceil_mode: bool,
    max_pad_of_window: bool,
) -> Result<Window> {
    let sd = xs.size.len();
    let kernel = kernel_size.resolve_positive(op, "kernel_size", sd)?;
    let stride = match stride {
        Some(s) if !s.0.is_empty() => s.resolve_positive(op, "stride", sd)?,
        _ => kernel.clone(),
    };
    let pad = padding.resolve(op, "padding", sd)?;
    let dilation = dilation.resolve_positive(op, "dilation", sd)?;
    for i in 0..sd {
        // Max pooling bounds padding by the dilated window, average pooling by the window.
        let window = if max_pad_of_window { (kernel[i] - 1) * dilation[i] + 1 } else { kernel[i] };
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
    op: &'static str,
    kind: PoolKind,
    xs: Spatial,
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
        let xs = Spatial::of(op, x, sd)?;
        let win = window(
            op,
            &xs,
            x,
            &o.kernel_size,
            o.stride.as_ref(),
            &o.padding,
            &o.dilation,
            o.ceil_mode,
            true,
        )?;
        Ok(PoolPlan {
            op,
            kind: PoolKind::Max,
            xs,
            x_shape: x.to_vec(),
            win,
            count_include_pad: false,
            divisor_override: 0,
        })
    }

    pub(crate) fn avg(
        op: &'static str,
        sd: usize,
        x: &[usize],
        o: &AvgPoolOptions,
    ) -> Result<Self> {
        let xs = Spatial::of(op, x, sd)?;
        let win = window(
            op,
            &xs,
            x,
            &o.kernel_size,
            o.stride.as_ref(),
            &o.padding,
            &1.into(),
            o.ceil_mode,
            false,
        )?;
        if o.divisor_override == Some(0) {
            return Err(Error::invalid(op, "divisor_override must be positive"));
        }
        Ok(PoolPlan {
            op,
            kind: PoolKind::Avg,
            xs,
            x_shape: x.to_vec(),
            win,
            count_include_pad: o.count_include_pad,
            divisor_override: o.divisor_override.unwrap_or(0),
        })
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

    fn params(&self, total: u32) -> Result<PoolParams> {
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

    fn check(&self, t: &Tensor, name: &str, expected: &[usize], dtype: DType) -> Result<()> {
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
    fn check_indices(&self, ctx: &Context, i: &Tensor, out: &[usize]) -> Result<()> {
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
            &Dispatch {
                shader: Shader::Pool,
                entry,
                constants: &[("WG", f64::from(WG))],
                params: bytemuck::bytes_of(&params),
                buffers,
                workgroups: ctx.grid_1d(self.op, u64::from(total), WG)?,
                ranges: &[],
            },
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
            if self.record_disjoint_backward(&ctx, rec, grad_y, i, grad_x, total)? {
                return Ok(());
            }
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

    /// The backward pass of a fused conv -> ReLU -> 2x2 max-pool up to the convolution's output
    /// for gemm_sg.wgsl's `conv_3x3_sg_r16` and `wgrad_3x3_sg`: the output gradient of samples
    /// [n0, n0 + len) in rows of ceil(W / 4) texels of `gy_rows` (see pool.wgsl's
    /// `max_pool_2x2_backward_spatial`).
    pub(crate) fn record_backward_spatial(
        &self,
        rec: &mut Recorder<'_>,
        grad_y: &Tensor,
        indices: &Tensor,
        n0: usize,
        len: usize,
        gy_rows: &Flat,
    ) -> Result<()> {
        let op = self.op;
        let ctx = context_of(op, &[grad_y])?;
        self.check_backward_packed(grad_y, indices)?;
        let (c, [h, w]) = (self.xs.c, [self.xs.size[0], self.xs.size[1]]);
        if n0 + len > self.xs.n || gy_rows.elems() < 4 * len * c * h * w.div_ceil(4) {
            return Err(Error::invalid(
                op,
                "spatial gradient shapes do not line up (an internal error)",
            ));
        }
        let invocations = len * c.div_ceil(4) * h.div_ceil(2) * w.div_ceil(4);
        let entry = "max_pool_2x2_backward_spatial";
        let textures = [texture_entry(9, &gy_rows.view)];
        self.record_unpool(&ctx, rec, entry, (grad_y, indices), (n0, len, invocations), &textures)
    }

    /// One of the 2x2 max-pool's backward kernels into textures, `invocations` of them over
    /// samples [n0, n0 + len).
    fn record_unpool(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        entry: &'static str,
        (grad_y, indices): (&Tensor, &Tensor),
        (n0, len, invocations): (usize, usize, usize),
        textures: &[wgpu::BindGroupEntry<'_>],
    ) -> Result<()> {
        let op = self.op;
        let total = check_u32(op, "positions", invocations)?;
        let mut params = self.params(total)?;
        params.planes = check_u32(op, "planes", len * self.xs.c)?;
        params.sample_offset = check_u32(op, "samples", n0)?;
        ctx.record_with(
            rec,
            &Dispatch {
                shader: Shader::Pool,
                entry,
                constants: &[("WG", f64::from(WG))],
                params: bytemuck::bytes_of(&params),
                buffers: &[(4, grad_y.buffer()), (6, indices.buffer())],
                workgroups: ctx.grid_1d(op, u64::from(total), WG)?,
                ranges: &[],
            },
            textures,
        )
    }

    /// The backward pass of a fused conv -> ReLU -> 2x2 max-pool (see [`Self::window_2x2`]) up
    /// to the convolution's output, for samples [n0, n0 + len): the gradient at each window's
    /// argmax goes straight into the packed operands of the convolution's gradient GEMMs, in
    /// im2col's pooled order: `gy` (C x 4 * windows) and its transpose `gyt` (see pool.wgsl's
    /// `max_pool_2x2_backward_packed`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_backward_packed(
        &self,
        rec: &mut Recorder<'_>,
        grad_y: &Tensor,
        indices: &Tensor,
        n0: usize,
        len: usize,
        gy: &Packed,
        gyt: &Packed,
    ) -> Result<()> {
        let op = self.op;
        let ctx = context_of(op, &[grad_y])?;
        let [ph, pw] = self.check_backward_packed(grad_y, indices)?;
        let (c, windows) = (self.xs.c, len * ph * pw);
        if n0 + len > self.xs.n
            || gy.rows != c
            || gy.cols != 4 * windows
            || gyt.rows != 4 * windows
            || gyt.cols != c
        {
            return Err(Error::invalid(
                op,
                "packed gradient shapes do not line up (an internal error)",
            ));
        }
        let entry = "max_pool_2x2_backward_packed";
        let textures = [texture_entry(9, &gy.view), texture_entry(10, &gyt.view)];
        let invocations = windows * c.div_ceil(4);
        self.record_unpool(&ctx, rec, entry, (grad_y, indices), (n0, len, invocations), &textures)
    }

    /// Checks the pooled gradient and indices of a fused conv -> ReLU -> 2x2 max-pool's
    /// backward pass; the pooled (height, width).
    pub(crate) fn check_backward_packed(
        &self,
        grad_y: &Tensor,
        indices: &Tensor,
    ) -> Result<[usize; 2]> {
        let out = self.output_shape();
        self.check(grad_y, "grad_output", &out, DType::F32)?;
        self.check_indices(grad_y.context(), indices, &out)?;
        self.window_2x2().ok_or_else(|| {
            Error::invalid(
                self.op,
                "the packed backward pass needs a 2x2 window (an internal error)",
            )
        })
    }

    /// max_pool_backward_disjoint, when windows do not overlap (stride >= kernel, dilation 1)
    /// and the gradient and indices can be copied into textures; false otherwise.
    fn record_disjoint_backward(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        grad_y: &Tensor,
        indices: &Tensor,
        grad_x: &Tensor,
        total: u32,
    ) -> Result<bool> {
        let w = &self.win;
        let disjoint = (0..w.kernel.len())
            .all(|d| w.dilation[d] == 1 && w.stride[d] >= w.kernel[d] && w.stride[d] >= 1);
        if !disjoint || total >= 1 << 24 {
            return Ok(false);
        }
        let (Some(gy), Some(ix)) =
            (Flat::new(ctx, grad_y.numel()), Flat::new_i32(ctx, indices.numel()))
        else {
            return Ok(false);
        };
        if !gy.can_copy(grad_y.buffer()) || !ix.can_copy(indices.buffer()) {
            return Ok(false);
        }
        gy.record_copy(rec, grad_y.buffer());
        ix.record_copy(rec, indices.buffer());
        let params = self.params(total)?;
        ctx.record_with(
            rec,
            &Dispatch {
                shader: Shader::Pool,
                entry: "max_pool_backward_disjoint",
                constants: &[("WG", f64::from(WG))],
                params: bytemuck::bytes_of(&params),
                buffers: &[(5, grad_x.buffer())],
                workgroups: ctx.grid_1d(self.op, u64::from(total), WG)?,
                ranges: &[],
            },
            &[
                wgpu::BindGroupEntry {
                    binding: 7,
                    resource: wgpu::BindingResource::TextureView(&gy.view),
                },
                wgpu::BindGroupEntry {
                    binding: 8,
                    resource: wgpu::BindingResource::TextureView(&ix.view),
                },
            ],
        )?;
        Ok(true)
    }

    fn forward(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
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

    fn backward(&self, grad_y: &Tensor, x: &Tensor, indices: Option<&Tensor>) -> Result<Tensor> {
        let grad_x = Tensor::output(x.context(), x.shape(), DType::F32, self.op)?;
        x.context().run(self.op, |rec| self.record_backward(rec, grad_y, indices, &grad_x))?;
        Ok(grad_x)
    }
}

fn max_pool_nd(
    op: &'static str,
    sd: usize,
    x: &Tensor,
    o: &MaxPoolOptions,
) -> Result<(Tensor, Option<Tensor>)> {
    PoolPlan::max(op, sd, x.shape(), o)?.forward(x)
}

fn avg_pool_nd(op: &'static str, sd: usize, x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
    Ok(PoolPlan::avg(op, sd, x.shape(), o)?.forward(x)?.0)
}

fn adaptive_nd(
    op: &'static str,
    max: bool,
    sd: usize,
    x: &Tensor,
    output_size: &Dims,
) -> Result<(Tensor, Option<Tensor>)> {
    PoolPlan::adaptive(op, max, sd, x.shape(), output_size)?.forward(x)
}

fn expect_indices(op: &'static str, r: (Tensor, Option<Tensor>)) -> Result<(Tensor, Tensor)> {
    match r {
        (y, Some(i)) => Ok((y, i)),
        (_, None) => Err(Error::invalid(op, "internal error: no indices were produced")),
    }
}

fn max_pool_backward_nd(
    op: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    indices: &Tensor,
    o: &MaxPoolOptions,
) -> Result<Tensor> {
    PoolPlan::max(op, sd, x.shape(), o)?.backward(grad_y, x, Some(indices))
}

fn avg_pool_backward_nd(
    op: &'static str,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    o: &AvgPoolOptions,
) -> Result<Tensor> {
    PoolPlan::avg(op, sd, x.shape(), o)?.backward(grad_y, x, None)
}

fn adaptive_backward_nd(
    op: &'static str,
    max: bool,
    sd: usize,
    grad_y: &Tensor,
    x: &Tensor,
    indices: Option<&Tensor>,
) -> Result<Tensor> {
    // The output size is grad_output's spatial size.
    let out = grad_y.shape()[grad_y.rank().saturating_sub(sd)..].to_vec();
    PoolPlan::adaptive(op, max, sd, x.shape(), &out.into())?.backward(grad_y, x, indices)
}

/// The output shape of max pooling for an input shape with `sd` spatial dimensions.
///
/// # Errors
/// As the operators, without running anything.
pub fn max_pool_output_shape(x: &[usize], sd: usize, o: &MaxPoolOptions) -> Result<Vec<usize>> {
    Ok(PoolPlan::max("max_pool", sd, x, o)?.output_shape())
}

/// The output shape of average pooling for an input shape with `sd` spatial dimensions.
///
/// # Errors
/// As the operators, without running anything.
pub fn avg_pool_output_shape(x: &[usize], sd: usize, o: &AvgPoolOptions) -> Result<Vec<usize>> {
    Ok(PoolPlan::avg("avg_pool", sd, x, o)?.output_shape())
}

macro_rules! pool_fns {
    ($sd:literal, $max:ident, $max_idx:ident, $avg:ident, $amax:ident, $amax_idx:ident, $aavg:ident) => {
        #[doc = concat!("Max pooling over ", stringify!($sd), "-D windows of an (N, C, ...) or (C, ...) input.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for an input of the wrong rank, bad attributes or an
        /// output size below 1.
        pub fn $max(x: &Tensor, o: &MaxPoolOptions) -> Result<Tensor> {
            Ok(max_pool_nd(stringify!($max), $sd, x, o)?.0)
        }

        #[doc = concat!("[`", stringify!($max), "`] that also returns the argmax of each window (i32, ")]
        /// the flat index within the input's (n, c) plane, as PyTorch's `return_indices=True`).
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($max), "`].")]
        pub fn $max_idx(x: &Tensor, o: &MaxPoolOptions) -> Result<(Tensor, Tensor)> {
            expect_indices(stringify!($max), max_pool_nd(stringify!($max), $sd, x, o)?)
        }

        #[doc = concat!("Average pooling over ", stringify!($sd), "-D windows.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for an input of the wrong rank, bad attributes or an
        /// output size below 1.
        pub fn $avg(x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
            avg_pool_nd(stringify!($avg), $sd, x, o)
        }

        #[doc = concat!("Adaptive max pooling to `output_size` (", stringify!($sd), "-D); (1, ...) is global max pooling.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for an input of the wrong rank or a zero output size.
        pub fn $amax(x: &Tensor, output_size: impl Into<Dims>) -> Result<Tensor> {
            Ok(adaptive_nd(stringify!($amax), true, $sd, x, &output_size.into())?.0)
        }

        #[doc = concat!("[`", stringify!($amax), "`] that also returns the argmax indices.")]
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($amax), "`].")]
        pub fn $amax_idx(x: &Tensor, output_size: impl Into<Dims>) -> Result<(Tensor, Tensor)> {
            expect_indices(stringify!($amax), adaptive_nd(stringify!($amax), true, $sd, x, &output_size.into())?)
        }

        #[doc = concat!("Adaptive average pooling to `output_size` (", stringify!($sd), "-D); (1, ...) is global average pooling.")]
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for an input of the wrong rank or a zero output size.
        pub fn $aavg(x: &Tensor, output_size: impl Into<Dims>) -> Result<Tensor> {
            Ok(adaptive_nd(stringify!($aavg), false, $sd, x, &output_size.into())?.0)
        }
    };
}

macro_rules! pool_backward_fns {
    ($sd:literal, $max:ident, $avg:ident, $amax:ident, $aavg:ident) => {
        /// Gradient of max pooling with respect to its input `x`, through the `indices` the
        /// forward pass returned; windows that overlap add up.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] when grad_output or indices do not have the output's shape.
        pub fn $max(
            grad_output: &Tensor,
            x: &Tensor,
            indices: &Tensor,
            o: &MaxPoolOptions,
        ) -> Result<Tensor> {
            max_pool_backward_nd(stringify!($max), $sd, grad_output, x, indices, o)
        }

        /// Gradient of average pooling with respect to its input `x`.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] when grad_output does not have the output's shape.
        pub fn $avg(grad_output: &Tensor, x: &Tensor, o: &AvgPoolOptions) -> Result<Tensor> {
            avg_pool_backward_nd(stringify!($avg), $sd, grad_output, x, o)
        }

        /// Gradient of adaptive max pooling with respect to `x`, through the saved `indices`;
        /// the output size is grad_output's.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for mismatched shapes.
        pub fn $amax(grad_output: &Tensor, x: &Tensor, indices: &Tensor) -> Result<Tensor> {
            adaptive_backward_nd(stringify!($amax), true, $sd, grad_output, x, Some(indices))
        }

        /// Gradient of adaptive average pooling with respect to `x`; the output size is
        /// grad_output's.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for mismatched shapes.
        pub fn $aavg(grad_output: &Tensor, x: &Tensor) -> Result<Tensor> {
            adaptive_backward_nd(stringify!($aavg), false, $sd, grad_output, x, None)
        }
    };
}

pool_backward_fns!(
    1,
    max_pool1d_backward,
    avg_pool1d_backward,
    adaptive_max_pool1d_backward,
    adaptive_avg_pool1d_backward
);
pool_backward_fns!(
    2,
    max_pool2d_backward,
    avg_pool2d_backward,
    adaptive_max_pool2d_backward,
    adaptive_avg_pool2d_backward
);
pool_backward_fns!(
    3,
    max_pool3d_backward,
    avg_pool3d_backward,
    adaptive_max_pool3d_backward,
    adaptive_avg_pool3d_backward
);

pool_fns!(
    1,
    max_pool1d,
    max_pool1d_with_indices,
    avg_pool1d,
    adaptive_max_pool1d,
    adaptive_max_pool1d_with_indices,
    adaptive_avg_pool1d
);
pool_fns!(
    2,
    max_pool2d,
    max_pool2d_with_indices,
    avg_pool2d,
    adaptive_max_pool2d,
    adaptive_max_pool2d_with_indices,
    adaptive_avg_pool2d
);
pool_fns!(
    3,
    max_pool3d,
    max_pool3d_with_indices,
    avg_pool3d,
    adaptive_max_pool3d,
    adaptive_max_pool3d_with_indices,
    adaptive_avg_pool3d
);
