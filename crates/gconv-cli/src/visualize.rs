//! `gconv visualize filters|features`: pictures of a trained model's first-layer kernels and of
//! the feature maps its convolutions compute (captured from the executor's forward pass).

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use gconv::nn::Layer;
use image::{DynamicImage, Rgb, RgbImage};

use crate::dataset::DataInfo;
use crate::picture::{self, blit, draw_text, normalised, text_width};
use crate::source::{DIGITS, ModelSource};
use crate::train;

#[derive(Subcommand, Debug)]
pub enum VisualizeCmd {
    /// A grid of the first convolution's kernels, each normalised to its own range.
    ///
    /// Example: gconv visualize filters --model simplecnn --checkpoint simplecnn.safetensors filters.png
    Filters(FiltersArgs),
    /// For each convolution, a labelled row of its first feature maps for one image.
    ///
    /// Example: gconv visualize features --model simplecnn --checkpoint simplecnn.safetensors --image digit.png features.png
    Features(FeaturesArgs),
}

/// A model and its trained checkpoint (predict and visualize).
#[derive(Args, Debug)]
pub struct Trained {
    #[command(flatten)]
    source: ModelSource,
    /// A safetensors checkpoint with PyTorch's state-dict names (optional with --onnx, whose
    /// file holds weights).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct FiltersArgs {
    #[command(flatten)]
    trained: Trained,
    /// Pixels per kernel tap.
    #[arg(long, default_value_t = 12)]
    scale: u32,
    /// Where to write the picture (.png or .jpg).
    output: PathBuf,
}

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    #[command(flatten)]
    trained: Trained,
    /// The input image (PNG or JPEG), converted to the model's input size and channels.
    #[arg(long)]
    image: PathBuf,
    /// Invert grey levels first (dark digits on light paper; MNIST is light on dark).
    #[arg(long)]
    invert: bool,
    /// Feature maps per layer.
    #[arg(long, default_value_t = 8)]
    count: usize,
    /// Height in pixels of each drawn feature map.
    #[arg(long, default_value_t = 84)]
    cell: u32,
    /// Where to write the picture (.png or .jpg).
    output: PathBuf,
}

const BACKGROUND: Rgb<u8> = Rgb([32, 32, 40]);
const INK: Rgb<u8> = Rgb([235, 235, 235]);
const GAP: u32 = 6;
const MARGIN: u32 = 10;
const TEXT: u32 = 2; // font scale: 16-pixel letters

pub fn visualize(ctx: &gconv::Context, cmd: &VisualizeCmd) -> Result<()> {
    match cmd {
        VisualizeCmd::Filters(a) => filters(ctx, a),
        VisualizeCmd::Features(a) => features(ctx, a),
    }
}

/// The model with the checkpoint's parameters (for digits unless --input and --classes say
/// otherwise).
pub(crate) fn load(ctx: &gconv::Context, t: &Trained) -> Result<gconv::nn::Model> {
    Ok(load_with_info(ctx, t)?.0)
}

/// The trained model and what its checkpoint records of its data (class names,
/// normalisation); a model whose checkpoint records no data is built for the digits.
pub(crate) fn load_with_info(
    ctx: &gconv::Context,
    t: &Trained,
) -> Result<(gconv::nn::Model, DataInfo)> {
    train::load_model(ctx, &t.source, t.checkpoint.as_deref(), |info| {
        info.shape().unwrap_or(DIGITS)
    })
}

fn filters(ctx: &gconv::Context, a: &FiltersArgs) -> Result<()> {
    if a.scale == 0 {
        bail!("--scale must be at least 1");
    }
    picture::output_format(&a.output)?;
    let model = load(ctx, &a.trained)?;
    let node = model
        .graph()
        .nodes
        .iter()
        .find(|n| matches!(n.layer, Layer::Conv { dims: 2, .. }))
        .context("the model has no 2-d convolution")?;
    let name = format!("{}.weight", node.name);
    let state = model.state_dict()?;
    let (_, shape, w) = state
        .iter()
        .find(|(n, _, _)| *n == name)
        .with_context(|| format!("internal error: no parameter {name}"))?;
    let [out_c, in_c, kh, kw] = shape[..] else {
        bail!("{name} has shape {shape:?}, not (out, in, kh, kw)");
    };
    let per = in_c * kh * kw;
    let cols = out_c.min(8) as u32;
    let rows = out_c.div_ceil(8) as u32;
    let (tw, th) = (kw as u32 * a.scale, kh as u32 * a.scale);
    let title = format!("{name}: {out_c} kernels of {in_c}x{kh}x{kw}");
    let grid_w = cols * (tw + GAP) - GAP;
    let width = 2 * MARGIN + grid_w.max(text_width(&title, TEXT));
    let top = MARGIN + 8 * TEXT + GAP;
    let height = top + rows * (th + GAP) - GAP + MARGIN;
    let mut img = RgbImage::from_pixel(width, height, BACKGROUND);
    draw_text(&mut img, &title, MARGIN, MARGIN, TEXT, INK);
    for o in 0..out_c {
        let kernel = normalised(&w[o * per..(o + 1) * per]);
        let plane = kh * kw;
        // Three input channels are drawn as colour, any other count as their mean.
        let planes: Vec<Vec<f32>> = if in_c == 3 {
            (0..3).map(|c| kernel[c * plane..(c + 1) * plane].to_vec()).collect()
        } else {
            vec![
                (0..plane)
                    .map(|i| (0..in_c).map(|c| kernel[c * plane + i]).sum::<f32>() / in_c as f32)
                    .collect(),
            ]
        };
        let refs: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
        let (col, row) = (o as u32 % cols, o as u32 / cols);
        let at = (MARGIN + col * (tw + GAP), top + row * (th + GAP));
        blit(&mut img, &refs, (kh, kw), at, (tw, th));
    }
    picture::save(&DynamicImage::ImageRgb8(img), &a.output)?;
    say!("{title} -> {} ({width}x{height})", a.output.display());
    Ok(())
}

fn features(ctx: &gconv::Context, a: &FeaturesArgs) -> Result<()> {
    if a.count == 0 || a.cell == 0 {
        bail!("--count and --cell must be at least 1");
    }
    picture::output_format(&a.output)?;
    let (mut model, info) = load_with_info(ctx, &a.trained)?;
    let input = train::input_of(&model)?;
    let x = crate::predict::image_input(&a.image, a.invert, input, &info)?;
    let convs: Vec<String> = model
        .graph()
        .nodes
        .iter()
        .filter(|n| {
            matches!(n.layer, Layer::Conv { dims: 2, .. } | Layer::ConvTranspose { dims: 2, .. })
        })
        .map(|n| n.name.clone())
        .collect();
    if convs.is_empty() {
        bail!("the model has no 2-d convolution");
    }
    let values = model.forward_capture(&x, 1)?;
    // Rows: the input, then each convolution's output (its first `count` channels).
    let mut rows: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (name, t) in &values {
        if name == "input" || convs.contains(name) {
            rows.push((name.clone(), t.shape().to_vec(), t.to_vec()?));
        }
    }
    let cell = a.cell;
    let tile_w = |shape: &[usize]| (cell as usize * shape[3]).div_ceil(shape[2]).max(1) as u32;
    let label = |name: &str, shape: &[usize]| {
        let what = if name == "input" { "input".to_string() } else { format!("{name} output") };
        format!("{what} {}x{}x{}", shape[1], shape[2], shape[3])
    };
    let row_h = 8 * TEXT + GAP + cell + 2 * GAP;
    let mut width = 0;
    for (name, shape, _) in &rows {
        let n = if name == "input" { 1 } else { shape[1].min(a.count) as u32 };
        width =
            width.max(n * (tile_w(shape) + GAP) - GAP).max(text_width(&label(name, shape), TEXT));
    }
    let (width, height) = (width + 2 * MARGIN, MARGIN + rows.len() as u32 * row_h);
    let mut img = RgbImage::from_pixel(width, height, BACKGROUND);
    for (r, (name, shape, data)) in rows.iter().enumerate() {
        let y = MARGIN + r as u32 * row_h;
        draw_text(&mut img, &label(name, shape), MARGIN, y, TEXT, INK);
        let (c, h, w) = (shape[1], shape[2], shape[3]);
        let plane = h * w;
        let tile = (tile_w(shape), cell);
        let y = y + 8 * TEXT + GAP;
        if name == "input" {
            let all = normalised(&data[..c * plane]);
            let planes: Vec<&[f32]> = all.chunks(plane).collect();
            blit(&mut img, &planes, (h, w), (MARGIN, y), tile);
            continue;
        }
        for i in 0..c.min(a.count) {
            let map = normalised(&data[i * plane..(i + 1) * plane]);
            let x = MARGIN + i as u32 * (tile.0 + GAP);
            blit(&mut img, &[&map], (h, w), (x, y), tile);
        }
    }
    picture::save(&DynamicImage::ImageRgb8(img), &a.output)?;
    say!(
        "{} convolution layers ({}), up to {} maps each -> {} ({width}x{height})",
        convs.len(),
        convs.join(", "),
        a.count,
        a.output.display()
    );
    Ok(())
}
