//! `gconv filter`: a classic image kernel applied by the engine's conv2d on the GPU.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use gconv::Tensor;
use gconv::ops::{self, ConvOptions};

use crate::picture;

/// The kernels `--kernel` names (PyTorch's convolution is a cross-correlation: the matrices
/// are applied as written, not flipped).
pub const KERNELS: [&str; 12] = [
    "sobel-x",
    "sobel-y",
    "sobel",
    "prewitt-x",
    "prewitt-y",
    "laplacian",
    "gaussian3",
    "gaussian5",
    "box3",
    "sharpen",
    "emboss",
    "identity",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Channels {
    /// Grey for a grey image, per-channel RGB for a colour one.
    Auto,
    /// Convert to grey first (one channel, one kernel).
    Grey,
    /// Filter R, G and B separately (a depthwise convolution, groups = 3).
    Rgb,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["kernel", "kernel_file"])))]
pub struct FilterArgs {
    /// A classic kernel: sobel-x, sobel-y, sobel (gradient magnitude), prewitt-x, prewitt-y,
    /// laplacian, gaussian3, gaussian5, box3, sharpen, emboss, identity.
    #[arg(long, value_parser = KERNELS)]
    kernel: Option<String>,
    /// A text file with any kernel matrix: one row per line, numbers separated by spaces or
    /// commas.
    #[arg(long)]
    kernel_file: Option<PathBuf>,
    /// Stride of the convolution (the output shrinks by this factor).
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Zero padding on each side (default: dilation x (kernel - 1) / 2, which keeps the size
    /// at stride 1).
    #[arg(long)]
    padding: Option<usize>,
    /// Spacing between kernel taps.
    #[arg(long, default_value_t = 1)]
    dilation: usize,
    /// Which channels to filter.
    #[arg(long, value_enum, default_value_t = Channels::Auto)]
    channels: Channels,
    /// The image to filter (PNG or JPEG).
    input: PathBuf,
    /// Where to write the result (the format follows the extension: .png, .jpg).
    output: PathBuf,
}

/// A kernel matrix, row by row.
pub type Matrix = Vec<Vec<f32>>;

/// The named kernel's rows, and for a gradient pair (x, y) the second, whose magnitude is
/// wanted.
pub fn named_kernel(name: &str) -> Option<(Matrix, Option<Matrix>)> {
    let m = |rows: &[&[f32]]| rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>();
    let scaled = |rows: Vec<Vec<f32>>, by: f32| {
        rows.into_iter().map(|r| r.into_iter().map(|v| v / by).collect()).collect::<Vec<_>>()
    };
    let sobel_x = m(&[&[-1.0, 0.0, 1.0], &[-2.0, 0.0, 2.0], &[-1.0, 0.0, 1.0]]);
    let sobel_y = m(&[&[-1.0, -2.0, -1.0], &[0.0, 0.0, 0.0], &[1.0, 2.0, 1.0]]);
    Some(match name {
        "sobel-x" => (sobel_x, None),
        "sobel-y" => (sobel_y, None),
        "sobel" => (sobel_x, Some(sobel_y)),
        "prewitt-x" => (m(&[&[-1.0, 0.0, 1.0], &[-1.0, 0.0, 1.0], &[-1.0, 0.0, 1.0]]), None),
        "prewitt-y" => (m(&[&[-1.0, -1.0, -1.0], &[0.0, 0.0, 0.0], &[1.0, 1.0, 1.0]]), None),
        "laplacian" => (m(&[&[0.0, 1.0, 0.0], &[1.0, -4.0, 1.0], &[0.0, 1.0, 0.0]]), None),
        "gaussian3" => {
            (scaled(m(&[&[1.0, 2.0, 1.0], &[2.0, 4.0, 2.0], &[1.0, 2.0, 1.0]]), 16.0), None)
        }
        "gaussian5" => {
            let row = [1.0f32, 4.0, 6.0, 4.0, 1.0];
            let rows = row.iter().map(|a| row.iter().map(|b| a * b / 256.0).collect()).collect();
            (rows, None)
        }
        "box3" => (vec![vec![1.0 / 9.0; 3]; 3], None),
        "sharpen" => (m(&[&[0.0, -1.0, 0.0], &[-1.0, 5.0, -1.0], &[0.0, -1.0, 0.0]]), None),
        "emboss" => (m(&[&[-2.0, -1.0, 0.0], &[-1.0, 1.0, 1.0], &[0.0, 1.0, 2.0]]), None),
        "identity" => (m(&[&[0.0, 0.0, 0.0], &[0.0, 1.0, 0.0], &[0.0, 0.0, 0.0]]), None),
        _ => return None,
    })
}

/// Reads a kernel matrix: rows on lines, numbers separated by spaces or commas; `#` comments.
pub fn read_kernel_file(path: &Path) -> Result<Vec<Vec<f32>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the kernel file {}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let row = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<f32>().ok().filter(|v| v.is_finite()).with_context(|| {
                    format!("{} line {}: {t:?} is not a number", path.display(), n + 1)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        rows.push(row);
    }
    if rows.is_empty() {
        bail!("the kernel file {} holds no numbers", path.display());
    }
    if rows.iter().any(|r| r.len() != rows[0].len()) {
        bail!("the kernel file {}: every row needs the same number of values", path.display());
    }
    Ok(rows)
}

/// The filtered image: height, width and the channel-major values.
pub struct Filtered {
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

/// Applies `kernel` (and, for a gradient pair, the magnitude with `pair`) to `pixels`
/// (channels x h x w, in [0, 1]) with one depthwise conv2d on the GPU.
pub fn apply(
    ctx: &gconv::Context,
    pixels: &[f32],
    [channels, h, w]: [usize; 3],
    kernel: &[Vec<f32>],
    pair: Option<&[Vec<f32>]>,
    options: &ConvOptions,
) -> Result<Filtered> {
    let (kh, kw) = (kernel.len(), kernel[0].len());
    // Weight (channels x per, 1, kh, kw) with groups = channels: each channel its own kernels.
    let per = if pair.is_some() { 2 } else { 1 };
    let mut weight = Vec::with_capacity(channels * per * kh * kw);
    for _ in 0..channels {
        weight.extend(kernel.iter().flatten());
        if let Some(p) = pair {
            weight.extend(p.iter().flatten());
        }
    }
    let x = Tensor::from_slice(ctx, pixels, &[1, channels, h, w])?;
    let wt = Tensor::from_slice(ctx, &weight, &[channels * per, 1, kh, kw])?;
    let y = ops::conv2d(&x, &wt, None, &options.clone().groups(channels))?;
    let (oh, ow) = (y.shape()[2], y.shape()[3]);
    let out = y.to_vec()?;
    let values = if per == 2 {
        // Gradient magnitude sqrt(gx^2 + gy^2) from the two responses of each channel.
        let plane = oh * ow;
        (0..channels)
            .flat_map(|c| {
                let (gx, gy) = (&out[2 * c * plane..], &out[(2 * c + 1) * plane..]);
                (0..plane).map(move |i| gx[i].hypot(gy[i]))
            })
            .collect()
    } else {
        out
    };
    Ok(Filtered { height: oh, width: ow, values })
}

/// Maps responses to 0-255: a kernel that sums to zero (an edge detector) gives signed
/// responses, shown as their absolute value scaled by the largest; any other kernel is
/// divided by its sum (so un-normalised blurs work) and clamped to [0, 1].
pub fn to_bytes(values: &[f32], kernel_sum: f32, magnitude: bool) -> Vec<u8> {
    if magnitude || kernel_sum.abs() < 1e-6 {
        let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { 255.0 / max } else { 0.0 };
        values.iter().map(|v| (v.abs() * scale).round().min(255.0) as u8).collect()
    } else {
        values.iter().map(|v| ((v / kernel_sum).clamp(0.0, 1.0) * 255.0).round() as u8).collect()
    }
}

pub fn filter(ctx: &gconv::Context, a: &FilterArgs) -> Result<()> {
    let (kernel, pair, label) = match (&a.kernel, &a.kernel_file) {
        (Some(name), _) => {
            let (k, p) = named_kernel(name).with_context(|| format!("unknown kernel {name:?}"))?;
            (k, p, name.clone())
        }
        (None, Some(path)) => (read_kernel_file(path)?, None, path.display().to_string()),
        (None, None) => bail!("give --kernel NAME or --kernel-file FILE"),
    };
    if a.stride == 0 || a.dilation == 0 {
        bail!("--stride and --dilation must be at least 1");
    }
    picture::output_format(&a.output)?;
    let img = picture::open(&a.input)?;
    let colour = match a.channels {
        Channels::Auto => img.color().has_color(),
        Channels::Grey => false,
        Channels::Rgb => true,
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (channels, pixels): (usize, Vec<f32>) = if colour {
        let rgb = img.to_rgb8();
        let mut planes = vec![0f32; 3 * h * w];
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                planes[c * h * w + i] = f32::from(p[c]) / 255.0;
            }
        }
        (3, planes)
    } else {
        (1, img.to_luma8().pixels().map(|p| f32::from(p[0]) / 255.0).collect())
    };
    let (kh, kw) = (kernel.len(), kernel[0].len());
    let pad = match a.padding {
        Some(p) => [p, p],
        None => [a.dilation * (kh - 1) / 2, a.dilation * (kw - 1) / 2],
    };
    let options = ConvOptions::default().stride(a.stride).padding(pad).dilation(a.dilation);
    let out = apply(ctx, &pixels, [channels, h, w], &kernel, pair.as_deref(), &options)?;
    let sum: f32 = kernel.iter().flatten().sum();
    let bytes = to_bytes(&out.values, sum, pair.is_some());
    let (oh, ow) = (out.height as u32, out.width as u32);
    let image = if channels == 3 {
        let plane = out.height * out.width;
        let interleaved = (0..plane).flat_map(|i| (0..3).map(move |c| c * plane + i));
        let data: Vec<u8> = interleaved.map(|j| bytes[j]).collect();
        image::DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(ow, oh, data).context("internal error: image size")?,
        )
    } else {
        image::DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(ow, oh, bytes).context("internal error: image size")?,
        )
    };
    picture::save(&image, &a.output)?;
    say!(
        "{label} {kh}x{kw}, stride {}, padding {}x{}, dilation {}: {w}x{h} -> {ow}x{oh} ({}) -> {}",
        a.stride,
        pad[0],
        pad[1],
        a.dilation,
        if colour { "RGB, depthwise" } else { "grey" },
        a.output.display()
    );
    say!(
        "output width = floor((W + 2P - D(K-1) - 1) / S) + 1 = floor(({w} + 2*{} - {}*({kw}-1) - 1) / {}) + 1 = {ow}",
        pad[1],
        a.dilation,
        a.stride
    );
    Ok(())
}
