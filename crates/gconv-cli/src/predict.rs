//! `gconv predict`: the classes of image files, or the logits of a batch of raw input tensors
//! (for comparing with PyTorch number by number).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use gconv::data::Dataset;
use gconv::nn::{Model, checkpoint};

use crate::train::input_of;
use crate::visualize::Trained;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("inputs").required(true).args(["images", "tensors"])))]
pub struct PredictArgs {
    #[command(flatten)]
    trained: Trained,
    /// Invert grey levels first (dark digits on light paper; MNIST is light on dark).
    #[arg(long)]
    invert: bool,
    /// A safetensors file with tensor `input`: a batch N x C x H x W of f32 model inputs, used
    /// as they are (no resizing, no normalisation).
    #[arg(long, conflicts_with = "images")]
    tensors: Option<PathBuf>,
    /// Where to write tensor `logits` (N x classes) for --tensors, atomically.
    #[arg(long, requires = "tensors")]
    logits: Option<PathBuf>,
    /// Images to classify (PNG or JPEG).
    images: Vec<PathBuf>,
}

/// Samples per forward pass over a large --tensors batch.
const CHUNK: usize = 256;

pub fn predict(ctx: &gconv::Context, a: &PredictArgs) -> Result<()> {
    let mut model = crate::visualize::load(ctx, &a.trained)?;
    let input = input_of(&model)?;
    let (names, batch) = match &a.tensors {
        Some(path) => {
            let x = read_input(path, input)?;
            let n = x.len() / input.iter().product::<usize>();
            ((0..n).map(|i| format!("sample {i}")).collect::<Vec<_>>(), x)
        }
        None => {
            let mut batch = Vec::new();
            for path in &a.images {
                batch.extend(image_input(path, a.invert, input)?);
            }
            (a.images.iter().map(|p| p.display().to_string()).collect(), batch)
        }
    };
    let logits = run(&mut model, &batch, names.len(), input)?;
    let classes = logits.len() / names.len();
    if let Some(path) = &a.logits {
        let tensors = vec![("logits".to_string(), vec![names.len(), classes], logits.clone())];
        checkpoint::save(path, &tensors, &[("model", model.name())])?;
        say!("wrote logits ({} x {classes}) to {}", names.len(), path.display());
    }
    for (name, row) in names.iter().zip(logits.chunks(classes)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let (best, &v) = row
            .iter()
            .enumerate()
            .fold((0, &row[0]), |acc, (i, x)| if *x > *acc.1 { (i, x) } else { acc });
        say!("{name}: class {best} ({:.1}%)", 100.0 * (v - max).exp() / sum);
    }
    Ok(())
}

/// The logits of `n` inputs, in chunks of at most [`CHUNK`].
fn run(model: &mut Model, batch: &[f32], n: usize, input: [usize; 3]) -> Result<Vec<f32>> {
    let per = input.iter().product::<usize>();
    let mut out = Vec::new();
    for start in (0..n).step_by(CHUNK) {
        let count = CHUNK.min(n - start);
        let x = &batch[start * per..(start + count) * per];
        out.extend(model.predict(x, count)?.to_vec()?);
    }
    Ok(out)
}

/// Tensor `input` of a safetensors file, checked against the model's per-sample shape.
fn read_input(path: &Path, input: [usize; 3]) -> Result<Vec<f32>> {
    let tensors = checkpoint::load(path)?;
    let Some((_, shape, values)) = tensors.iter().find(|t| t.0 == "input") else {
        let names: Vec<&str> = tensors.iter().map(|t| t.0.as_str()).collect();
        bail!("{} has no tensor named \"input\" (it has {names:?})", path.display());
    };
    if shape.len() != 4 || shape[1..] != input || shape[0] == 0 {
        bail!(
            "{}: tensor \"input\" has shape {shape:?}; the model takes N x {} x {} x {}",
            path.display(),
            input[0],
            input[1],
            input[2]
        );
    }
    Ok(values.clone())
}

/// One image file as a model input: grey levels (inverted with `invert`), resized and given
/// the model's channels as the training data are, then normalised.
pub(crate) fn image_input(path: &Path, invert: bool, input: [usize; 3]) -> Result<Vec<f32>> {
    let img = crate::picture::open(path)?.to_luma8();
    let (iw, ih) = img.dimensions();
    let mut pixels = img.into_raw();
    if invert {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    let d = Dataset { pixels, labels: vec![0], rows: ih as usize, cols: iw as usize };
    Ok(d.batch(&[0], input).0)
}
