//! [`ConvPlan`]: a convolution or transposed convolution resolved for one input and weight
//! shape. The geometry is checked once; then each pass is recorded into any recorder (at once
//! for the eager operators, into a plan for the executor): the pass's tensors are checked,
//! `select.rs` chooses its kernel, and the strategy module the choice names records it.

use std::sync::Mutex;

use super::geometry::Geometry;
use super::select::{self, DataGrad, Forward, Reads, Source, WeightGrad};
use super::subgroup_3x3::{self, GradSource};
use super::{ConvGrads, direct, im2col, pointwise, tiled};

use crate::kernel::{Dispatch, Recorder, Shader, WG_CONSTANT};
use crate::ops::activation::Act;
use crate::ops::reduce::record_channel_sum;
use crate::ops::texture::{Flat, Packed};
use crate::ops::uniforms::{BIAS_AFFINE, ConvParams};
use crate::ops::{check_bias, check_u32, context_of};
use crate::{Context, DType, Error, Result, Tensor};

/// A convolution resolved for one input and weight shape.
pub(crate) struct ConvPlan {
    pub(super) op: &'static str,
    pub(super) g: Geometry,
    pub(super) transposed: bool,
    /// For a transposed convolution of one group: the convolution whose data gradient it is
    /// (its input is this one's output and its output this one's input, with the same
    /// weight), whose passes run this one's on the texture GEMM (see `select.rs`).
    pub(super) adjoint: Option<Box<ConvPlan>>,
    /// The weight the plan's forward pass last packed for `conv_3x3_sg_r16`, and the packed
    /// texture: its backward pass reads that texture flipped (the kernel's `A_FLIPPED`)
    /// instead of packing the weight again. In a model's plan the forward pass runs first in
    /// every step, so the texture holds the same weight when the backward pass reads it.
    pub(super) forward_pack: Mutex<Option<(wgpu::Buffer, Packed)>>,
}

/// The tensors of a forward pass, and what its epilogue does besides adding the bias.
#[derive(Clone, Copy)]
pub(crate) struct ConvIo<'a> {
    pub x: &'a Tensor,
    pub w: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub y: &'a Tensor,
    pub post: Post<'a>,
}

/// What a forward pass's epilogue applies to its sums: batch norm in evaluation folded in as
/// each output channel's scale and shift (in place of the bias, which the fold took in), then
/// a clamp. Only the kernels [`select::fuses_post`] names take it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Post<'a> {
    /// (2, C_out): the scales, then the shifts (`norm::record_batch_norm_fold`).
    pub affine: Option<&'a Tensor>,
    pub act: Act,
}

impl Post<'_> {
    /// No batch norm and no clamp: the bias only.
    pub(crate) fn is_plain(&self) -> bool {
        self.affine.is_none() && self.act == Act::NONE
    }
}

impl<'a> ConvIo<'a> {
    /// A plain forward pass: the bias only.
    pub(crate) fn new(
        x: &'a Tensor,
        w: &'a Tensor,
        bias: Option<&'a Tensor>,
        y: &'a Tensor,
    ) -> Self {
        ConvIo { x, w, bias, y, post: Post::default() }
    }

    /// What the kernels bind as the bias: the folded batch norm's scales and shifts, or the
    /// bias.
    pub(super) fn b(&self) -> Option<&'a Tensor> {
        self.post.affine.or(self.bias)
    }

    /// The conv kernels' parameters for this pass: `params` with the bias's kind
    /// (`has_bias`: 0, 1 or [`BIAS_AFFINE`]) and the clamp.
    pub(super) fn out_params(&self, params: ConvParams) -> ConvParams {
        let has_bias = match (self.post.affine, self.bias) {
            (Some(_), _) => BIAS_AFFINE,
            (None, b) => b.is_some() as u32,
        };
        let Act { kind, lo, hi } = self.post.act;
        ConvParams { has_bias, act: kind, act_lo: lo, act_hi: hi, ..params }
    }
}

/// The gradients a backward pass writes: grad_x is skipped when `None` (a network's input),
/// grad_b where the layer has no bias.
#[derive(Clone, Copy)]
pub(crate) struct GradsOut<'a> {
    pub grad_x: Option<&'a Tensor>,
    pub grad_w: &'a Tensor,
    pub grad_b: Option<&'a Tensor>,
}

/// A pass being recorded: the convolution, its device, and where its kernels go. Every
/// strategy module's functions take one.
pub(super) struct Pass<'a, 'r> {
    pub plan: &'a ConvPlan,
    pub ctx: &'a Context,
    pub rec: &'a mut Recorder<'r>,
}

impl<'r> Pass<'_, 'r> {
    /// The same recorder for another convolution's pass (a transposed convolution's adjoint).
    pub(super) fn on<'b>(&'b mut self, plan: &'b ConvPlan) -> Pass<'b, 'r> {
        Pass { plan, ctx: self.ctx, rec: &mut *self.rec }
    }
}

/// A fused ReLU + 2x2 max-pool's output: the pooled (height, width), and where the argmax
/// goes (training).
#[derive(Clone, Copy)]
pub(crate) struct Pooling<'a> {
    pub pooled: [usize; 2],
    pub indices: Option<&'a Tensor>,
}

/// The plan's storage scratch `col` where it holds `elems` values (see
/// [`ConvPlan::scratch_elems`]), else a scratch of the call's own.
pub(super) fn scratch(ctx: &Context, col: Option<&Tensor>, elems: usize) -> Result<Tensor> {
    match col {
        Some(t) if t.numel() >= elems => Ok(t.clone()),
        _ => Tensor::zeros(ctx, &[elems]),
    }
}

/// One launch of a `shaders/conv/` kernel with the `WG` override.
pub(super) fn dispatch<'a>(
    shader: Shader,
    entry: &'static str,
    params: &'a ConvParams,
    buffers: &'a [(u32, &'a wgpu::Buffer)],
    workgroups: [u32; 3],
) -> Dispatch<'a> {
    let params = bytemuck::bytes_of(params);
    Dispatch::new(shader, entry, params, buffers, workgroups).constants(WG_CONSTANT)
}

impl ConvPlan {
    /// The output's shape.
    pub(crate) fn output_shape(&self) -> Vec<usize> {
        self.g.output_shape()
    }

    pub(super) fn adjoint(&self) -> Result<&ConvPlan> {
        self.adjoint
            .as_deref()
            .ok_or_else(|| Error::invalid(self.op, "no adjoint convolution (an internal error)"))
    }

    pub(super) fn check(&self, t: &Tensor, name: &str, expected: &[usize]) -> Result<()> {
        if t.shape() != expected {
            return Err(Error::invalid(
                self.op,
                format!("{name} must have shape {expected:?}, got {:?}", t.shape()),
            ));
        }
        Ok(())
    }

    /// Whether the forward pass's kernel takes a fused epilogue ([`Post`]), in a plan.
    pub(crate) fn fuses_post(&self, ctx: &Context) -> Result<bool> {
        select::fuses_post(self, ctx)
    }

    /// The storage scratch the passes use, in elements (a plan shares one among its
    /// convolutions): im2col's chunk ([`im2col::chunk`]), or the weight that the subgroup 3x3
    /// forward pass (`fused` with ReLU and a 2x2 max-pool) packs on its way into a texture.
    pub(crate) fn scratch_elems(&self, ctx: &Context, fused: bool) -> Result<usize> {
        if select::uses_col_scratch(self, ctx) {
            Ok(im2col::chunk(self, ctx)?.1)
        } else if select::packs_3x3(self, ctx, fused)? {
            Ok(subgroup_3x3::pack_elems(self.g.c_out, self.g.x.c))
        } else {
            Ok(0)
        }
    }

    /// Records the forward pass; `col` is an optional storage scratch of at least
    /// [`Self::scratch_elems`] elements (allocated when absent).
    pub(crate) fn record_forward(
        &self,
        rec: &mut Recorder<'_>,
        io: &ConvIo<'_>,
        col: Option<&Tensor>,
    ) -> Result<()> {
        let op = self.op;
        let mut tensors = vec![io.x, io.w, io.y];
        tensors.extend(io.bias.iter().chain(&io.post.affine));
        let ctx = context_of(op, &tensors)?;
        check_bias(op, io.bias, self.g.c_out)?;
        if let Some(affine) = io.post.affine {
            self.check(affine, "the folded batch norm", &[2, self.g.c_out])?;
        }

        self.check(io.y, "the output", &self.output_shape())?;
        check_u32(op, "output elements", io.y.numel())?;
        check_u32(op, "input elements", io.x.numel())?;
        check_u32(op, "weight elements", io.w.numel())?;
        let kernel = select::forward(self, &ctx, Flat::can_hold(&ctx, io.x), false)?;
        let post = !io.post.is_plain();
        let both = io.bias.is_some() && io.post.affine.is_some();
        if post && (both || !select::takes_post(self, kernel)) {
            return Err(Error::invalid(
                op,
                "no kernel for this fused epilogue (an internal error)",
            ));
        }
        let pass = &mut Pass { plan: self, ctx: &ctx, rec };
        let act = io.post.act;
        match kernel {
            Forward::Adjoint(data) => tiled::adjoint_forward(pass, io, data),
            Forward::Subgroup3x3 { chunk } => {
                subgroup_3x3::forward(pass, io, (act, None), chunk, (None, col))
            }
            Forward::SubgroupRows { chunk } => subgroup_3x3::forward_rows(pass, io, act, chunk),
            Forward::Gemm { chunk, col } => {
                tiled::forward(pass, io, (chunk, col), (act, None), None)
            }
            Forward::Im2col { chunk } => {
                let scratch = im2col::scratch(self, &ctx, col)?;
                im2col::forward(pass, io, &scratch, chunk)
            }
            Forward::Direct(kernel) => direct::forward(pass, io, kernel),
            Forward::Pooled => Err(self.mismatch()),
        }
    }

    /// Records the gradients from grad_y; `col` as for [`Self::record_forward`].
    pub(crate) fn record_backward(
        &self,
        rec: &mut Recorder<'_>,
        (x, w, grad_y): (&Tensor, &Tensor, &Tensor),
        grads: &GradsOut<'_>,
        col: Option<&Tensor>,
    ) -> Result<()> {
        let (op, g) = (self.op, &self.g);
        let mut tensors = vec![x, w, grad_y, grads.grad_w];
        tensors.extend(grads.grad_x.iter().chain(&grads.grad_b));
        let ctx = context_of(op, &tensors)?;
        self.check(grad_y, "grad_output", &self.output_shape())?;
        self.check(grads.grad_w, "grad_weight", w.shape())?;
        check_u32(op, "output elements", grad_y.numel())?;
        if let Some(gx) = grads.grad_x {
            self.check(gx, "grad_input", x.shape())?;
        }
        if let Some(gb) = grads.grad_b {
            self.check(gb, "grad_bias", &[g.c_out])?;
            record_channel_sum(&ctx, rec, grad_y, g.x.n, g.c_out, gb)?;
        }
        let reads = Reads {
            x_fits: Flat::can_hold(&ctx, x),
            grad_y_fits: Flat::can_hold(&ctx, grad_y),
            data: grads.grad_x.is_some(),
        };
        let weight = select::weight_grad(self, &ctx, Source::Plain, reads)?;
        let data = match grads.grad_x {
            Some(_) => Some(select::data_grad(self, &ctx, Source::Plain, reads)?),
            None => None,
        };
        let (pass, tensors) = (&mut Pass { plan: self, ctx: &ctx, rec }, (x, w, grad_y));
        let out = (grads.grad_x, grads.grad_w);
        // Each strategy records both gradients: some share work between them (the subgroup
        // kernels grad_y's rows of texels, a transposed convolution's adjoint grad_y's texture
        // copy, im2col its scratch).
        match (weight, data) {
            (WeightGrad::Direct(kernel), None | Some(DataGrad::Direct(_))) => {
                direct::backward(pass, tensors, out, kernel)
            }
            (WeightGrad::Im2col { chunk }, None | Some(DataGrad::Im2col { .. })) => {
                let scratch = im2col::scratch(self, &ctx, col)?;
                im2col::backward(pass, tensors, out, &scratch, chunk)
            }
            (WeightGrad::Gemm { chunk, col }, data) => {
                tiled::backward(pass, tensors, out, (chunk, col), data)
            }
            (WeightGrad::Subgroup3x3 { chunk }, None | Some(DataGrad::Subgroup3x3 { .. })) => {
                subgroup_3x3::backward(pass, (GradSource::Plain(grad_y), x, w), out, chunk, None)
            }
            (WeightGrad::Pointwise { chunk, b }, data) => {
                pointwise::backward(pass, tensors, out, (chunk, b), data)
            }
            (WeightGrad::SubgroupRows { chunk }, data) => {
                subgroup_3x3::weight_grad_rows(pass, (x, grad_y), grads.grad_w, chunk)?;
                tiled::data_backward(pass, (w, grad_y, None), grads.grad_x, data)
            }
            (WeightGrad::Adjoint { chunk, col }, None | Some(DataGrad::Adjoint { .. })) => {
                tiled::adjoint_backward(pass, tensors, out, (chunk, col))
            }
            _ => Err(self.mismatch()),
        }
    }

    /// The error for choices that do not go together (an internal error).
    pub(super) fn mismatch(&self) -> Error {
        Error::invalid(self.op, "the chosen kernels do not go together (an internal error)")
    }

    pub(super) fn forward(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = Tensor::output(x.context(), &self.output_shape(), DType::F32, self.op)?;
        let io = ConvIo::new(x, w, bias, &y);
        x.context().run(self.op, |rec| self.record_forward(rec, &io, None))?;
        Ok(y)
    }

    pub(super) fn backward(
        &self,
        grad_y: &Tensor,
        x: &Tensor,
        w: &Tensor,
        has_bias: bool,
    ) -> Result<ConvGrads> {
        let ctx = x.context();
        let grad_input = Tensor::output(ctx, x.shape(), DType::F32, self.op)?;
        let grad_weight = Tensor::output(ctx, w.shape(), DType::F32, self.op)?;
        let grad_bias = if has_bias {
            Some(Tensor::output(ctx, &[self.g.c_out], DType::F32, self.op)?)
        } else {
            None
        };
        let grads = GradsOut {
            grad_x: Some(&grad_input),
            grad_w: &grad_weight,
            grad_b: grad_bias.as_ref(),
        };
        ctx.run(self.op, |rec| self.record_backward(rec, (x, w, grad_y), &grads, None))?;
        Ok(ConvGrads { grad_input, grad_weight, grad_bias })
    }
}
