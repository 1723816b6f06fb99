//! Learning-rate schedules: the factor the optimizer's learning rate is multiplied by at each
//! step, a function of the step alone, so a resumed run continues the schedule exactly.
//!
//! A linear warm-up over the first `warmup` epochs rises from 1/W to 1 (W the warm-up's
//! steps); after it, `constant` keeps 1, `step` multiplies by `gamma` every `step_size` epochs
//! (PyTorch's `StepLR`), `cosine` follows half a cosine from 1 to 0 over the remaining steps
//! (PyTorch's `CosineAnnealingLR` with `eta_min` 0, stepped every batch).

use anyhow::{Result, bail};
use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// The optimizer's learning rate throughout.
    Constant,
    /// Times --gamma every --step-size epochs.
    Step,
    /// Half a cosine down to 0 by the last step.
    Cosine,
}

/// A schedule over a run of `epochs` epochs of `steps_per_epoch` steps.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub warmup_epochs: u64,
    pub step_size: u64,
    pub gamma: f32,
    pub epochs: u64,
    pub steps_per_epoch: u64,
}

impl Schedule {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.warmup_epochs >= self.epochs && self.warmup_epochs > 0 {
            bail!(
                "--warmup ({}) must be fewer epochs than --epochs ({})",
                self.warmup_epochs,
                self.epochs
            );
        }
        if self.step_size == 0 {
            bail!("--step-size must be at least 1 epoch");
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            bail!("--gamma must be finite and at least 0, got {}", self.gamma);
        }
        Ok(())
    }

    /// The factor for step `step` (0-based, counted over the whole run).
    pub fn factor(&self, step: u64) -> f32 {
        let warmup = self.warmup_epochs * self.steps_per_epoch;
        if step < warmup {
            return (step + 1) as f32 / warmup as f32;
        }
        let since = step - warmup;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Step => {
                let epochs = since / self.steps_per_epoch.max(1);
                self.gamma.powi((epochs / self.step_size).min(i32::MAX as u64) as i32)
            }
            ScheduleKind::Cosine => {
                let total = (self.epochs * self.steps_per_epoch).saturating_sub(warmup).max(1);
                let t = since.min(total) as f64 / total as f64;
                (0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup_epochs: u64) -> Schedule {
        Schedule { kind, warmup_epochs, step_size: 2, gamma: 0.5, epochs: 6, steps_per_epoch: 10 }
    }

    #[test]
    fn warmup_rises_linearly_then_each_kind_follows_its_curve() {
        let s = schedule(ScheduleKind::Constant, 1);
        assert_eq!((s.factor(0), s.factor(4), s.factor(9), s.factor(10)), (0.1, 0.5, 1.0, 1.0));
        let s = schedule(ScheduleKind::Step, 0);
        assert_eq!((s.factor(19), s.factor(20), s.factor(45)), (1.0, 0.5, 0.25));
        let s = schedule(ScheduleKind::Cosine, 1);
        assert_eq!(s.factor(10), 1.0);
        assert!((s.factor(35) - 0.5).abs() < 1e-6, "half way: {}", s.factor(35));
        assert!(s.factor(59) < 0.002 && s.factor(59) > 0.0);
        assert!(schedule(ScheduleKind::Cosine, 6).validate().is_err());
    }
}
