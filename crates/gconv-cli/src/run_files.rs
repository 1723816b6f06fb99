//! The files a training run keeps up to date, each replaced atomically so an interruption
//! never leaves one half-written: the checkpoint (`--save`: the state dict under PyTorch's
//! names, which PyTorch loads as it is), the optimizer's state beside it (what `--resume`
//! needs besides), and the metrics file (`--metrics`: one JSON object per epoch).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use gconv::nn::{Model, checkpoint};

use crate::source::ModelSource;

/// Where a run is: `step` steps of epoch `epoch` (1-based) are done, `steps` in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub step: u64,
    pub steps: u64,
}

/// What a resumed run must share with the one that saved, or its data order and updates
/// would differ.
pub struct RunKey {
    pub seed: u64,
    pub batch_size: usize,
    pub optimizer: String,
}

/// The optimizer state's file beside checkpoint `path`: `model.safetensors` ->
/// `model.optimizer.safetensors`.
pub fn optimizer_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map_or_else(|| "checkpoint".into(), |s| s.to_string_lossy());
    path.with_file_name(format!("{stem}.optimizer.safetensors"))
}

/// Writes the optimizer's state, then the checkpoint, both recording `at` and `key`: a
/// checkpoint always has the optimizer state it was saved with (`resume` checks the steps).
pub fn save(
    path: &Path,
    model: &Model,
    source: &ModelSource,
    at: Position,
    key: &RunKey,
    data: &crate::dataset::DataInfo,
) -> Result<()> {
    let run = [
        ("gconv.epoch", at.epoch.to_string()),
        ("gconv.step", at.step.to_string()),
        ("gconv.steps", at.steps.to_string()),
        ("gconv.seed", key.seed.to_string()),
        ("gconv.batch_size", key.batch_size.to_string()),
        ("gconv.optimizer", key.optimizer.clone()),
    ];
    let (state, _) = model.optimizer_state()?;
    let meta: Vec<(&str, &str)> = run.iter().map(|(k, v)| (*k, v.as_str())).collect();
    checkpoint::save(&optimizer_path(path), &state, &meta)?;
    let mut meta = source.metadata(model)?;
    meta.extend(run.iter().map(|(k, v)| (k.to_string(), v.clone())));
    meta.extend(data.metadata());
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    checkpoint::save(path, &source.checkpoint_names_of(model.state_dict()?)?, &meta)?;
    Ok(())
}

fn number(meta: &BTreeMap<String, String>, key: &str, path: &Path) -> Result<u64> {
    let Some(text) = meta.get(key) else {
        bail!("{} was not written by gconv train --save (no {key} in its metadata)", path.display())
    };
    text.parse().with_context(|| format!("{}: {key} {text:?} is not a number", path.display()))
}

/// Loads a checkpoint written by [`save`] into `model` (parameters, buffers, optimizer state
/// and step count) and returns where its run stopped.
pub fn resume(
    path: &Path,
    model: &mut Model,
    source: &ModelSource,
    key: &RunKey,
) -> Result<Position> {
    let (state, meta) = checkpoint::load_with_metadata(path)?;
    let at = Position {
        epoch: number(&meta, "gconv.epoch", path)?,
        step: number(&meta, "gconv.step", path)?,
        steps: number(&meta, "gconv.steps", path)?,
    };
    let saved = |k: &str| meta.get(k).map_or("", String::as_str).to_string();
    for (what, now, then) in [
        ("--seed", key.seed.to_string(), saved("gconv.seed")),
        ("--batch-size", key.batch_size.to_string(), saved("gconv.batch_size")),
        ("the optimizer", key.optimizer.clone(), saved("gconv.optimizer")),
    ] {
        if now != then {
            bail!(
                "{} was saved with {what} {then}, not {now}: resume with the same settings",
                path.display()
            );
        }
    }
    let state = source.graph_names_of(state)?;
    model.load_state_dict(&state).with_context(|| format!("loading {}", path.display()))?;
    let opt_path = optimizer_path(path);
    let (opt, opt_meta) = checkpoint::load_with_metadata(&opt_path)
        .with_context(|| format!("reading the optimizer state of {}", path.display()))?;
    if number(&opt_meta, "gconv.steps", &opt_path)? != at.steps {
        bail!("{} and {} are from different steps of the run", opt_path.display(), path.display());
    }
    model
        .load_optimizer_state(&opt, at.steps)
        .with_context(|| format!("loading {}", opt_path.display()))?;
    Ok(at)
}

/// The metrics file: the lines of this run (and, when resuming, of the run it continues),
/// rewritten whole and atomically after each epoch.
pub struct MetricsLog {
    path: Option<PathBuf>,
    text: String,
}

impl MetricsLog {
    /// A fresh log at `path`, or, when resuming after `completed` epochs, one that keeps the
    /// file's lines of those epochs.
    pub fn new(path: Option<&Path>, completed: Option<u64>) -> Result<MetricsLog> {
        let mut text = String::new();
        if let (Some(p), Some(completed)) = (path, completed)
            && p.exists()
        {
            let old = std::fs::read_to_string(p)
                .with_context(|| format!("reading the metrics file {}", p.display()))?;
            for line in old.lines() {
                let epoch = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("epoch").and_then(serde_json::Value::as_u64));
                if epoch.is_some_and(|e| e <= completed) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        Ok(MetricsLog { path: path.map(Path::to_path_buf), text })
    }

    /// Adds one line and rewrites the file.
    pub fn push(&mut self, line: &serde_json::Value) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        self.text.push_str(&line.to_string());
        self.text.push('\n');
        checkpoint::write_atomically(path, self.text.as_bytes())?;
        Ok(())
    }
}
