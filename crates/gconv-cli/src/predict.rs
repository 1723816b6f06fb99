//! `gconv predict`: the classes of image files, or the logits of a batch of raw input tensors
//! (for comparing with PyTorch number by number).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use gconv::data::{Dataset, Normalization};
use gconv::nn::{Model, checkpoint};

use crate::dataset::DataInfo;
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
    /// Print the K most probable classes of each input, with their probabilities.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    top: u16,
    /// Images to classify (PNG or JPEG; grey or colour as the model's input channels).
    images: Vec<PathBuf>,
}

/// Samples per forward pass over a large --tensors batch.
const CHUNK: usize = 256;

pub fn predict(ctx: &gconv::Context, a: &PredictArgs) -> Result<()> {
    let (mut model, info) = crate::visualize::load_with_info(ctx, &a.trained)?;
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
                batch.extend(image_input(path, a.invert, input, &info)?);
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
        let top = top_k(row, usize::from(a.top));
        let best: Vec<String> = top
            .iter()
            .map(|&(c, p)| {
                // Named classes by name and index; numbered ones (the digits) by index.
                let label = match &info.classes {
                    Some(_) if info.name(c) != c.to_string() => {
                        format!("{} (class {c})", info.name(c))
                    }
                    _ => format!("class {c}"),
                };
                format!("{label} ({:.1}%)", 100.0 * p)
            })
            .collect();
        say!("{name}: {}", best.join(", "));
    }
    Ok(())
}

/// The `k` most probable classes of a row of logits (softmax), most probable first.
fn top_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    let mut p: Vec<(usize, f32)> =
        row.iter().enumerate().map(|(i, v)| (i, (v - max).exp() / sum)).collect();
    p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    p.truncate(k);
    p
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

/// One image file as a model input: grey levels (inverted with `invert`) for a one-channel
/// model, RGB for a three-channel one, resized as the training data are, then normalised as
/// the checkpoint records (MNIST's values where it records none).
pub(crate) fn image_input(
    path: &Path,
    invert: bool,
    input: [usize; 3],
    info: &DataInfo,
) -> Result<Vec<f32>> {
    let img = crate::picture::open(path)?;
    let channels = if input[0] == 3 { 3 } else { 1 };
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let mut pixels = gconv::data::image_planes(&img, channels);
    if invert {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    let d = Dataset {
        pixels,
        labels: vec![0],
        channels,
        rows: ih,
        cols: iw,
        classes: Vec::new(),
        norm: info.norm.clone().unwrap_or_else(Normalization::mnist),
    };
    Ok(d.batch(&[0], input).0)
}
