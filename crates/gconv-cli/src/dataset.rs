//! The data a command trains or evaluates on: `--data DIR` (MNIST's IDX files, CIFAR-10/100
//! binary batches or image folders, whichever the directory holds; the bundled digits by
//! default) and its normalisation (`--mean`, `--std`, else the training split's), and what a
//! checkpoint records of it (class names, normalisation) for `predict`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use gconv::data::{Dataset, Normalization, Splits};

use crate::source::{DataShape, parse_shape};

/// Where the data come from and how they are normalised.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// A dataset directory: MNIST-format IDX files (e.g. the full Fashion-MNIST in
    /// /usr/share/datasets/fashion-mnist), CIFAR-10 or CIFAR-100's binary batches, or
    /// train/ and test/ (or val/) folders of class folders of PNG or JPEG images (resized
    /// to --input, default the first image's size). Default: the bundled digits.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Per-channel means subtracted from pixels in [0, 1], comma-separated (one value serves
    /// every channel). Default: what the checkpoint records (eval), else MNIST's 0.1307 for
    /// IDX data (PyTorch's MNIST tutorial), else the training split's.
    #[arg(long, value_delimiter = ',', requires = "std", allow_negative_numbers = true)]
    pub mean: Vec<f32>,
    /// Per-channel standard deviations that divide them (MNIST: 0.3081).
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Vec<f32>,
}

impl DataArgs {
    /// Loads the splits, normalised as asked. `input` (--input, CxHxW) sizes image folders.
    pub fn load(&self, input: Option<&str>) -> Result<Splits> {
        let mut data = match &self.data {
            Some(dir) => {
                let shape = input.map(parse_shape).transpose()?;
                let (size, channels) = match shape.as_deref() {
                    Some(&[c, h, w]) => (Some((h, w)), Some(c).filter(|c| *c == 1 || *c == 3)),
                    _ => (None, None),
                };
                Splits::load(dir, size, channels)
                    .with_context(|| format!("loading the dataset in {}", dir.display()))?
            }
            None => crate::bundled::mnist()?,
        };
        if !self.mean.is_empty() {
            let norm = Normalization { mean: self.mean.clone(), std: self.std.clone() };
            norm.validate()?;
            let channels = data.train.channels;
            if norm.mean.len() != 1 && norm.mean.len() != channels {
                bail!(
                    "--mean and --std give {} values; the data have {channels} channels (give \
                     one value or one per channel)",
                    norm.mean.len()
                );
            }
            data.set_normalization(norm);
        }
        Ok(data)
    }
}

/// The data's shape for a model: its channels and size, and its classes.
pub fn data_shape(d: &Dataset) -> DataShape {
    DataShape { input: [d.channels, d.rows, d.cols], classes: d.classes.len() }
}

/// What a checkpoint records about the data it was trained on.
#[derive(Clone, Debug, Default)]
pub struct DataInfo {
    /// Class names by index.
    pub classes: Option<Vec<String>>,
    /// The normalisation of the inputs.
    pub norm: Option<Normalization>,
    /// The model's input (channels, height, width) as the checkpoint records it.
    pub input: Option<[usize; 3]>,
}

impl DataInfo {
    /// The class names and normalisation of `d`.
    pub fn of(d: &Dataset) -> DataInfo {
        DataInfo { classes: Some(d.classes.clone()), norm: Some(d.norm.clone()), input: None }
    }

    /// As checkpoint metadata.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut meta = Vec::new();
        if let Some(classes) = &self.classes {
            meta.push(("gconv.classes".into(), serde_json::json!(classes).to_string()));
        }
        if let Some(norm) = &self.norm {
            meta.push(("gconv.mean".into(), serde_json::json!(norm.mean).to_string()));
            meta.push(("gconv.std".into(), serde_json::json!(norm.std).to_string()));
        }
        meta
    }

    /// From a checkpoint's metadata (what is absent or unreadable stays `None`).
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> DataInfo {
        let list = |key: &str| -> Option<Vec<serde_json::Value>> {
            match serde_json::from_str(meta.get(key)?).ok()? {
                serde_json::Value::Array(items) => Some(items),
                _ => None,
            }
        };
        let floats = |key: &str| -> Option<Vec<f32>> {
            list(key)?.iter().map(|v| v.as_f64().map(|f| f as f32)).collect()
        };
        let classes: Option<Vec<String>> = list("gconv.classes")
            .and_then(|items| items.iter().map(|v| v.as_str().map(String::from)).collect());
        let norm = match (floats("gconv.mean"), floats("gconv.std")) {
            (Some(mean), Some(std)) => {
                Some(Normalization { mean, std }).filter(|n| n.validate().is_ok())
            }
            _ => None,
        };
        let input = meta.get("input").and_then(|t| match parse_shape(t).ok()?[..] {
            [c, h, w] => Some([c, h, w]),
            _ => None,
        });
        DataInfo { classes, norm, input }
    }

    /// The data shape a model of this checkpoint was built for, where it records one.
    pub fn shape(&self) -> Option<DataShape> {
        Some(DataShape { input: self.input?, classes: self.classes.as_ref()?.len() })
    }

    /// The name of class `c`.
    pub fn name(&self, c: usize) -> String {
        match self.classes.as_ref().and_then(|n| n.get(c)) {
            Some(name) => name.clone(),
            None => format!("class {c}"),
        }
    }
}
