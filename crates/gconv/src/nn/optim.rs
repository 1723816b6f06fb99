//! Optimizers as GPU kernels (`optim.wgsl`), with PyTorch's defaults and update rules.

use super::plan::ParamState;
use crate::kernel::{Dispatch, Recorder, Shader, WG};
use crate::ops::check_u32;
use crate::{Context, Error, Result, Tensor};

/// An optimizer and its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.Adam` (amsgrad off).
    Adam {
        /// Learning rate (PyTorch: 1e-3).
        lr: f32,
        /// (beta1, beta2) (PyTorch: 0.9, 0.999).
        betas: (f32, f32),
        /// Added to the denominator (PyTorch: 1e-8).
        eps: f32,
        /// L2 penalty added to the gradient (PyTorch: 0).
        weight_decay: f32,
    },
    /// `torch.optim.AdamW` (amsgrad off): Adam with decoupled weight decay, each step
    /// multiplying the parameters by 1 - lr x weight_decay.
    AdamW {
        /// Learning rate (PyTorch: 1e-3).
        lr: f32,
        /// (beta1, beta2) (PyTorch: 0.9, 0.999).
        betas: (f32, f32),
        /// Added to the denominator (PyTorch: 1e-8).
        eps: f32,
        /// Decoupled decay (PyTorch: 0.01).
        weight_decay: f32,
    },
    /// `torch.optim.SGD` (dampening 0, not Nesterov).
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum (PyTorch: 0).
        momentum: f32,
        /// L2 penalty added to the gradient (PyTorch: 0).
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub fn adam(lr: f32) -> Optimizer {
        Optimizer::Adam { lr, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0 }
    }

    /// SGD with learning rate `lr` and `momentum`.
    pub fn sgd(lr: f32, momentum: f32) -> Optimizer {
        Optimizer::Sgd { lr, momentum, weight_decay: 0.0 }
    }

    /// Checks the hyper-parameters as PyTorch's constructors do, and that each is finite: a
    /// learning rate, epsilon, momentum and weight decay at least 0, betas in [0, 1).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the hyper-parameter and its value.
    pub fn validate(&self) -> Result<()> {
        let (name, checks): (&'static str, Vec<(&str, f32, bool)>) = match *self {
            Optimizer::Adam { lr, betas: (b1, b2), eps, weight_decay }
            | Optimizer::AdamW { lr, betas: (b1, b2), eps, weight_decay } => (
                if matches!(self, Optimizer::Adam { .. }) { "Adam" } else { "AdamW" },
                vec![
                    ("lr", lr, lr >= 0.0),
                    ("beta1", b1, (0.0..1.0).contains(&b1)),
                    ("beta2", b2, (0.0..1.0).contains(&b2)),
                    ("eps", eps, eps >= 0.0),
                    ("weight_decay", weight_decay, weight_decay >= 0.0),
                ],
            ),
            Optimizer::Sgd { lr, momentum, weight_decay } => (
                "SGD",
                vec![
                    ("lr", lr, lr >= 0.0),
                    ("momentum", momentum, momentum >= 0.0),
                    ("weight_decay", weight_decay, weight_decay >= 0.0),
                ],
            ),
        };
        for (what, value, valid) in checks {
            if !value.is_finite() || !valid {
                let range = match what {
                    "beta1" | "beta2" => "in [0, 1)",
                    _ => "finite and at least 0",
                };
                return Err(Error::invalid(
                    "optimizer",
                    format!("{name}'s {what} must be {range}, got {value}"),
                ));
            }
        }
        Ok(())
    }

    /// How many state tensors (of the parameter's size) each parameter needs.
    pub(crate) fn state_count(&self) -> usize {
        match self {
            Optimizer::Adam { .. } | Optimizer::AdamW { .. } => 2,
            Optimizer::Sgd { momentum, .. } if *momentum != 0.0 => 1,
            Optimizer::Sgd { .. } => 0,
        }
    }

    /// What changes from step to step, as `optim.wgsl`'s `StepFactors`: Adam's bias
    /// corrections for step `t` (1-based), 1 - beta1^t and 1 - beta2^t, and the learning
    /// rate's factor `lr_scale` (a schedule's).
    pub(crate) fn factors(&self, t: u64, lr_scale: f32) -> [f32; 4] {
        match self {
            Optimizer::Adam { betas: (b1, b2), .. } | Optimizer::AdamW { betas: (b1, b2), .. } => {
                let t = t.min(i32::MAX as u64) as i32;
                [1.0 - b1.powi(t), 1.0 - b2.powi(t), lr_scale, 0.0]
            }
            Optimizer::Sgd { .. } => [1.0, 1.0, lr_scale, 0.0],
        }
    }

    /// Records the update of parameter `p`, the `index`-th of its model, which marks the health
    /// word of `metrics` when a gradient element is not finite (`shaders/shared/health.wgsl`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        ctx: &Context,
        rec: &mut Recorder<'_>,
        p: &ParamState,
        index: usize,
        factors: &Tensor,
        metrics: &Tensor,
        spare: &Tensor,
    ) -> Result<()> {
        let (entry, lr, b1, b2, eps, wd, momentum) = match *self {
            Optimizer::Adam { lr, betas, eps, weight_decay } => {
                ("adam_update", lr, betas.0, betas.1, eps, weight_decay, 0.0)
            }
            Optimizer::AdamW { lr, betas, eps, weight_decay } => {
                ("adamw_update", lr, betas.0, betas.1, eps, weight_decay, 0.0)
            }
            Optimizer::Sgd { lr, momentum, weight_decay } => {
                ("sgd_update", lr, 0.0, 0.0, 0.0, weight_decay, momentum)
            }
        };
        let numel = p.value.numel();
        // Parameters larger than one storage binding are updated block by block.
        let chunk = crate::ops::gemm::rows_per_chunk(ctx, "optimizer", numel, 1)?;
        for start in (0..numel).step_by(chunk) {
            let len = chunk.min(numel - start);
            let total = check_u32("optimizer", "parameter elements", len)?;
            let params: [u32; 8] = [
                total,
                lr.to_bits(),
                b1.to_bits(),
                b2.to_bits(),
                eps.to_bits(),
                wd.to_bits(),
                momentum.to_bits(),
                u32::try_from(index).unwrap_or(u32::MAX),
            ];
            // SGD without momentum never touches its state slot; a spare buffer fills it.
            let s1 = p.state.first().map_or(spare.buffer(), Tensor::buffer);
            let mut buffers: Vec<(u32, &wgpu::Buffer)> = vec![
                (1, p.value.buffer()),
                (2, p.grad.buffer()),
                (3, s1),
                (5, factors.buffer()),
                (6, metrics.buffer()),
            ];
            if let Some(s2) = p.state.get(1) {
                buffers.push((4, s2.buffer()));
            }
            // Whole texels: the kernel reads vec4s (chunks are multiples of the offset
            // alignment, and tensors hold whole texels).
            let (offset, size) = ((start * 4) as u64, (len.div_ceil(4) * 16) as u64);
            let mut ranges: Vec<(u32, u64, u64)> = Vec::new();
            if len < numel {
                ranges.extend([(1, offset, size), (2, offset, size)]);
                for (slot, t) in [(3u32, p.state.first()), (4, p.state.get(1))] {
                    if t.is_some() {
                        ranges.push((slot, offset, size));
                    }
                }
            }
            ctx.record(
                rec,
                &Dispatch::new(
                    Shader::Optim,
                    entry,
                    bytemuck::cast_slice(&params),
                    &buffers,
                    ctx.grid_1d("optimizer", u64::from(total).div_ceil(4), WG)?,
                )
                .constants(&[("WG", f64::from(WG))])
                .ranges(&ranges),
            )?;
        }
        Ok(())
    }
}
