//! A training run's bookkeeping between steps: the metrics read since an epoch began, the
//! divergence check every read makes, the checkpoints it allows, and what the run prints when
//! a signal stops it.

use std::path::PathBuf;

use anyhow::{Result, bail};
use gconv::nn::{Model, NonFinite};

use crate::interrupt::Interrupted;
use crate::run_files::{self, Position, RunKey};
use crate::source::ModelSource;

/// The settings the bookkeeping needs.
pub struct Run<'a> {
    pub source: &'a ModelSource,
    pub key: RunKey,
    /// Where checkpoints go (--save, or the --resume file).
    pub save: Option<PathBuf>,
    /// The last checkpoint written.
    pub saved: Option<Position>,
    pub epochs: u64,
    pub steps_per_epoch: u64,
    pub continue_on_nan: bool,
    /// The class names and normalisation the checkpoints record.
    pub data: crate::dataset::DataInfo,
}

/// The metrics of one epoch, read from the device in pieces (at --save-every and at the end).
pub struct Window {
    /// The step of the epoch the device's counters started from.
    since: u64,
    loss_sum: f64,
    correct: f64,
    samples: u64,
    /// Whether every loss and gradient so far was finite.
    pub healthy: bool,
}

impl Window {
    /// An epoch's window whose first `step` steps were done before (a resumed run).
    pub fn starting_at(step: u64) -> Window {
        Window { since: step, loss_sum: 0.0, correct: 0.0, samples: 0, healthy: true }
    }

    /// Reads the device's metrics up to `at`. A loss or gradient that was not finite stops
    /// the run with an error naming the epoch, step and quantity, or with --continue-on-nan
    /// warns and marks the window unhealthy, so nothing is saved from it.
    pub fn take(&mut self, model: &mut Model, at: Position, run: &Run<'_>) -> Result<()> {
        let m = model.take_metrics()?;
        if let Some(bad) = &m.nonfinite {
            let step = self.since + bad.batch;
            if run.continue_on_nan {
                if self.healthy {
                    eprintln!(
                        "warning: epoch {}, step {step}: {bad}; training on (--continue-on-nan), \
                         saving nothing while it lasts",
                        at.epoch
                    );
                }
            } else {
                bail!(run.diverged(at.epoch, step, bad));
            }
            self.healthy = false;
        }
        if m.samples > 0 {
            self.loss_sum += m.loss * m.samples as f64;
            self.correct += m.accuracy * m.samples as f64;
            self.samples += m.samples;
        }
        self.since = at.step;
        Ok(())
    }

    /// (mean loss, accuracy) of the samples read.
    pub fn total(&self) -> (f64, f64) {
        let n = self.samples as f64;
        (self.loss_sum / n, self.correct / n)
    }
}

impl Run<'_> {
    /// Reads the metrics and saves, if they show nothing diverged.
    pub fn checkpoint(
        &mut self,
        model: &mut Model,
        window: &mut Window,
        at: Position,
    ) -> Result<()> {
        window.take(model, at, self)?;
        self.save(model, window.healthy, at)
    }

    /// Saves at `at` when there is a checkpoint file and the window was `healthy`.
    pub fn save(&mut self, model: &Model, healthy: bool, at: Position) -> Result<()> {
        if let (Some(path), true) = (&self.save, healthy) {
            run_files::save(path, model, self.source, at, &self.key, &self.data)?;
            self.saved = Some(at);
        }
        Ok(())
    }

    fn last_checkpoint(&self) -> String {
        match (&self.save, self.saved) {
            (None, _) => "nothing was saved (no --save)".into(),
            (Some(p), None) if p.exists() => format!("{} is unchanged", p.display()),
            (Some(_), None) => "nothing was saved yet".into(),
            (Some(p), Some(at)) => format!(
                "{} keeps epoch {}, step {} and is unchanged",
                p.display(),
                at.epoch,
                at.step
            ),
        }
    }

    fn diverged(&self, epoch: u64, step: u64, bad: &NonFinite) -> String {
        let last = self.last_checkpoint();
        let mut chars = last.chars();
        let last: String =
            chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect();
        format!(
            "training diverged at epoch {epoch}/{}, step {step}/{}: {bad}. {}. Try a lower --lr, \
             or --continue-on-nan to train on regardless",
            self.epochs, self.steps_per_epoch, last
        )
    }

    /// Tells where a signal stopped the run and how to resume it.
    pub fn stopped(&self, stop: Interrupted, at: Position) {
        let place = format!(
            "{stop} at epoch {}/{}, step {}/{}",
            at.epoch, self.epochs, at.step, self.steps_per_epoch
        );
        match (&self.save, self.saved) {
            (Some(path), Some(saved)) if saved == at => {
                eprintln!("{place}; saved {}", path.display());
                eprintln!("resume with: {}", resume_command(path));
            }
            (Some(_), _) => eprintln!("{place}; {}", self.last_checkpoint()),
            (None, _) => eprintln!("{place}; nothing saved (train with --save FILE to keep it)"),
        }
    }
}

/// This process's command line with `--resume path` in place of any --resume it had.
fn resume_command(path: &std::path::Path) -> String {
    let mut words = vec!["gconv".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--resume" {
            args.next();
        } else if !arg.starts_with("--resume=") {
            words.push(arg);
        }
    }
    words.extend(["--resume".to_string(), path.display().to_string()]);
    words.iter().map(|w| quoted(w)).collect::<Vec<_>>().join(" ")
}

/// A word as a POSIX shell reads it back.
fn quoted(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
