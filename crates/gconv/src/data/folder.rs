//! Image folders in torchvision's `ImageFolder` layout: `DIR/train/<class>/*.png|jpg` and
//! `DIR/test/<class>/...` (or `val/`), class names from the folders (sorted, as torchvision
//! sorts them), images decoded in parallel and resized to one size.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::{Dataset, Normalization, Splits, format_error};
use crate::{Error, Result};

/// The training and test folders of an image-folder dataset in `dir`.
pub(super) fn detect(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let train = dir.join("train");
    let test = ["test", "val"].iter().map(|t| dir.join(t)).find(|p| p.is_dir())?;
    train.is_dir().then_some((train, test))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

/// The sub-folders of `dir`, sorted by name.
fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            out.push((name.unwrap_or_default(), path));
        }
    }
    out.sort();
    Ok(out)
}

/// The images of a class folder (`.png`, `.jpg`, `.jpeg`, any case), sorted.
fn images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        if path.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Decodes `path` as `channels` (1: luma, 3: RGB) planes of `size` (height, width).
fn decode(path: &Path, channels: usize, size: (usize, usize)) -> Result<Vec<u8>> {
    let img = image::open(path).map_err(|e| format_error(path, format!("not an image ({e})")))?;
    let (h, w) = size;
    let img = if (img.height() as usize, img.width() as usize) == (h, w) {
        img
    } else {
        img.resize_exact(w as u32, h as u32, FilterType::Triangle)
    };
    Ok(image_planes(&img, channels))
}

/// An image's pixels as `channels` planes (channels first): grey (luma) for 1, RGB
/// otherwise; how datasets and single images become a model's bytes.
pub fn image_planes(img: &image::DynamicImage, channels: usize) -> Vec<u8> {
    let interleaved =
        if channels == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
    let channels = if channels == 1 { 1 } else { 3 };
    let plane = img.width() as usize * img.height() as usize;
    let mut out = vec![0u8; channels * plane];
    for (i, px) in interleaved.chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
    out
}

/// Decodes `files` on every core, in order.
fn decode_all(files: &[(PathBuf, u8)], channels: usize, size: (usize, usize)) -> Result<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut out = Vec::with_capacity(part.len() * channels * size.0 * size.1);
                    for (path, _) in part {
                        out.extend(decode(path, channels, size)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::invalid("image folder", "a decoding thread panicked"))
                })
            })
            .collect()
    });
    let mut pixels = Vec::new();
    for p in parts {
        pixels.extend(p?);
    }
    Ok(pixels)
}

impl Splits {
    /// Loads an image-folder dataset: `dir/train/<class>/` and `dir/test/<class>/` (or
    /// `val/`) of PNG or JPEG files, labelled by the training folders' sorted names. Images are
    /// decoded in parallel as `channels` (1: luma, 3: RGB; default 3) and resized bilinearly
    /// to `size` (height, width; default the first training image's). Normalised per channel
    /// with the training split's mean and deviation.
    ///
    /// # Errors
    /// [`Error::Format`] naming the directory when it is not in this layout, a test class the
    /// training split lacks, or a file that does not decode; [`Error::Io`] for unreadable
    /// folders.
    pub fn load_folders(
        dir: &Path,
        size: Option<(usize, usize)>,
        channels: Option<usize>,
    ) -> Result<Splits> {
        let Some((train_dir, test_dir)) = detect(dir) else {
            return Err(format_error(dir, "no train/ and test/ (or val/) class folders"));
        };
        let channels = channels.unwrap_or(3);
        if channels != 1 && channels != 3 {
            return Err(Error::invalid(
                "image folder",
                format!("images decode as 1 (grey) or 3 (RGB) channels, not {channels}"),
            ));
        }
        let classes = class_dirs(&train_dir)?;
        if classes.is_empty() || classes.len() > 256 {
            return Err(format_error(
                &train_dir,
                format!("{} class folders (expected 1 to 256)", classes.len()),
            ));
        }
        let names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
        let list = |root: &Path| -> Result<Vec<(PathBuf, u8)>> {
            let mut files = Vec::new();
            for (name, path) in class_dirs(root)? {
                let label = names.iter().position(|n| *n == name).ok_or_else(|| {
                    format_error(&path, format!("class {name:?} is not among the training classes"))
                })?;
                files.extend(images(&path)?.into_iter().map(|f| (f, label as u8)));
            }
            Ok(files)
        };
        let (train, test) = (list(&train_dir)?, list(&test_dir)?);
        let Some((first, _)) = train.first() else {
            return Err(format_error(&train_dir, "no .png or .jpg images in the class folders"));
        };
        let size = match size {
            Some(s) => s,
            None => {
                let (w, h) = image::image_dimensions(first)
                    .map_err(|e| format_error(first, format!("not an image ({e})")))?;
                (h as usize, w as usize)
            }
        };
        if size.0 == 0 || size.1 == 0 {
            return Err(Error::invalid("image folder", format!("image size {size:?}")));
        }
        let split = |files: &[(PathBuf, u8)]| -> Result<Dataset> {
            Ok(Dataset {
                pixels: decode_all(files, channels, size)?,
                labels: files.iter().map(|f| f.1).collect(),
                channels,
                rows: size.0,
                cols: size.1,
                classes: names.clone(),
                norm: Normalization::identity(channels),
            })
        };
        let mut splits = Splits { train: split(&train)?, test: split(&test)? };
        splits.normalise_from_train();
        Ok(splits)
    }
}
