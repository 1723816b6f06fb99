//! Images in and out: reading with a clear error, writing atomically, and drawing grids of
//! tiles with text labels (an 8x8 bitmap font).

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// Opens an image file (PNG or JPEG), naming the file in the error.
pub fn open(path: &Path) -> Result<DynamicImage> {
    image::open(path).with_context(|| format!("cannot read {} as an image", path.display()))
}

/// The format an output path's extension names (PNG or JPEG), checked before any work is done.
pub fn output_format(path: &Path) -> Result<ImageFormat> {
    match ImageFormat::from_path(path) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => Ok(f),
        _ => bail!(
            "cannot tell the image format of {} from its extension: use .png or .jpg",
            path.display()
        ),
    }
}

/// Writes `image` to `path` in the format its extension names, through a temporary file in the
/// same directory and a rename, so an interrupted write never leaves a half file.
pub fn save(image: &DynamicImage, path: &Path) -> Result<()> {
    let format = output_format(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let write = || -> Result<()> {
        // JPEG has no alpha or 16-bit channels.
        let image = if format == ImageFormat::Jpeg {
            DynamicImage::from(image.to_rgb8())
        } else {
            image.clone()
        };
        image.save_with_format(&tmp, format)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Draws `text` with its top-left corner at (x, y), each font pixel `scale` pixels square.
pub fn draw_text(img: &mut RgbImage, text: &str, x: u32, y: u32, scale: u32, colour: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits >> col & 1 == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = x + (i as u32 * 8 + col) * scale + dx;
                        let py = y + row as u32 * scale + dy;
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, colour);
                        }
                    }
                }
            }
        }
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 8 * scale
}

/// Normalises `values` to [0, 1] by their own minimum and maximum (a constant map is mid grey).
pub fn normalised(values: &[f32]) -> Vec<f32> {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![0.5; values.len()];
    }
    values.iter().map(|v| (v - lo) / (hi - lo)).collect()
}

/// Copies a (h x w) map of [0, 1] values, or three such planes as RGB, into `img` at (x, y),
/// resized by nearest neighbour to `tw` x `th` pixels.
pub fn blit(
    img: &mut RgbImage,
    planes: &[&[f32]],
    (h, w): (usize, usize),
    (x, y): (u32, u32),
    (tw, th): (u32, u32),
) {
    for ty in 0..th {
        for tx in 0..tw {
            let sy = (ty as usize * h / th as usize).min(h - 1);
            let sx = (tx as usize * w / tw as usize).min(w - 1);
            let v = |p: &[f32]| (p[sy * w + sx].clamp(0.0, 1.0) * 255.0).round() as u8;
            let px = match planes {
                [r, g, b] => Rgb([v(r), v(g), v(b)]),
                [p, ..] => {
                    let g = v(p);
                    Rgb([g, g, g])
                }
                [] => Rgb([0, 0, 0]),
            };
            if x + tx < img.width() && y + ty < img.height() {
                img.put_pixel(x + tx, y + ty, px);
            }
        }
    }
}
