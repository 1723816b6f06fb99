//! Datasets: the MNIST IDX format (raw or gzip-compressed), normalisation, shuffled batches.

use std::io::Read;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::{Error, Result};

/// MNIST's mean and standard deviation, the normalisation PyTorch's tutorial uses.
pub const MNIST_MEAN: f32 = 0.1307;
/// See [`MNIST_MEAN`].
pub const MNIST_STD: f32 = 0.3081;

/// Images (one byte per pixel, row-major) with their labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `len * rows * cols` pixels.
    pub pixels: Vec<u8>,
    /// One class per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

/// A training split and a test split.
#[derive(Clone, Debug)]
pub struct Splits {
    /// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`.
    pub train: Dataset,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`.
    pub test: Dataset,
}

fn format_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), message: message.into() }
}

/// `raw`, gunzipped when it starts with gzip's magic bytes.
fn gunzip_if_needed(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format_error(path, format!("not a valid gzip file ({e})")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path)
        .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    gunzip_if_needed(path, raw)
}

/// Parses an IDX file of unsigned bytes with `dims` dimensions: (sizes, data). The magic number
/// must be `0x0000_08_<dims>`, the sizes must match the data exactly.
pub fn parse_idx(path: &Path, bytes: &[u8], dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    if bytes.len() < 4 {
        return Err(format_error(
            path,
            format!("truncated: {} bytes, not even a magic number", bytes.len()),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected = 0x0800 | dims as u32;
    if magic != expected {
        return Err(format_error(
            path,
            format!(
                "magic number {magic:#010x}, expected {expected:#010x} (unsigned bytes, {dims} dimensions)"
            ),
        ));
    }
    let header = 4 + 4 * dims;
    if bytes.len() < header {
        return Err(format_error(
            path,
            format!("truncated: {} bytes, the IDX header alone needs {header}", bytes.len()),
        ));
    }
    let sizes: Vec<usize> = (0..dims)
        .map(|i| {
            let at = 4 + 4 * i;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    let need = sizes.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s));
    match need {
        Some(n) if bytes.len() - header == n => Ok((sizes, bytes[header..].to_vec())),
        Some(n) => Err(format_error(
            path,
            format!(
                "sizes {sizes:?} need {n} data bytes, the file has {} (truncated or corrupt)",
                bytes.len() - header
            ),
        )),
        None => Err(format_error(path, format!("sizes {sizes:?} overflow"))),
    }
}

/// `dir/name`, or `dir/name.gz` when only that exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if plain.exists() {
        Ok(plain)
    } else if gz.exists() {
        Ok(gz)
    } else {
        Err(Error::Io {
            path: plain.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {name} or {name}.gz in this directory"),
            ),
        })
    }
}

impl Dataset {
    /// Loads an image file (3-D IDX) and its label file (1-D IDX), checking that they agree.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing or unreadable file, [`Error::Format`] for a corrupt one.
    pub fn load_idx(images: &Path, labels: &Path) -> Result<Dataset> {
        Self::from_idx_bytes(images, read_maybe_gz(images)?, labels, read_maybe_gz(labels)?)
    }

    /// Parses image and label IDX data (raw or gzip-compressed) already in memory; the paths
    /// only name them in errors.
    ///
    /// # Errors
    /// [`Error::Format`] for corrupt data.
    pub fn from_idx_bytes(
        images: &Path,
        image_bytes: Vec<u8>,
        labels: &Path,
        label_bytes: Vec<u8>,
    ) -> Result<Dataset> {
        let (isizes, pixels) = parse_idx(images, &gunzip_if_needed(images, image_bytes)?, 3)?;
        let (lsizes, labels_data) = parse_idx(labels, &gunzip_if_needed(labels, label_bytes)?, 1)?;
        if isizes[0] != lsizes[0] {
            return Err(format_error(
                labels,
                format!("{} labels for {} images", lsizes[0], isizes[0]),
            ));
        }
        if let Some(bad) = labels_data.iter().find(|&&l| l > 9) {
            return Err(format_error(labels, format!("label {bad} is not a digit class 0-9")));
        }
        Ok(Dataset { pixels, labels: labels_data, rows: isizes[1], cols: isizes[2] })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` images (all when `n` is larger).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            pixels: self.pixels[..n * self.rows * self.cols].to_vec(),
            labels: self.labels[..n].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// The images at `indices`, normalised ((pixel / 255 - mean) / std), as a batch of shape
    /// (len, channels, height, width): resized bilinearly when the model's input differs from
    /// the images, the grey channel repeated to fill `channels`. Also returns their labels.
    pub fn batch(&self, indices: &[usize], input: [usize; 3]) -> (Vec<f32>, Vec<i32>) {
        let [channels, h, w] = input;
        let mut out = Vec::with_capacity(indices.len() * channels * h * w);
        let mut labels = Vec::with_capacity(indices.len());
        let plane = self.rows * self.cols;
        for &i in indices {
            let img = &self.pixels[i * plane..(i + 1) * plane];
            let grey = resize(img, self.rows, self.cols, h, w);
            for _ in 0..channels {
                out.extend(grey.iter().map(|&p| (p / 255.0 - MNIST_MEAN) / MNIST_STD));
            }
            labels.push(i32::from(self.labels[i]));
        }
        (out, labels)
    }
}

/// Bilinear resize of a grey image (align_corners = false, as PyTorch's interpolate), in
/// pixel units.
pub fn resize(img: &[u8], rows: usize, cols: usize, h: usize, w: usize) -> Vec<f32> {
    if (rows, cols) == (h, w) {
        return img.iter().map(|&p| f32::from(p)).collect();
    }
    let at = |y: usize, x: usize| f32::from(img[y.min(rows - 1) * cols + x.min(cols - 1)]);
    let mut out = Vec::with_capacity(h * w);
    for oy in 0..h {
        let fy = ((oy as f32 + 0.5) * rows as f32 / h as f32 - 0.5).max(0.0);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        for ox in 0..w {
            let fx = ((ox as f32 + 0.5) * cols as f32 / w as f32 - 0.5).max(0.0);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let top = at(y0, x0) * (1.0 - tx) + at(y0, x0 + 1) * tx;
            let bottom = at(y0 + 1, x0) * (1.0 - tx) + at(y0 + 1, x0 + 1) * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

impl Splits {
    /// Loads an MNIST-format directory: `train-images-idx3-ubyte[.gz]`,
    /// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the missing file; [`Error::Format`] for a corrupt one.
    pub fn load_mnist(dir: &Path) -> Result<Splits> {
        let train = Dataset::load_idx(
            &find(dir, "train-images-idx3-ubyte")?,
            &find(dir, "train-labels-idx1-ubyte")?,
        )?;
        let test = Dataset::load_idx(
            &find(dir, "t10k-images-idx3-ubyte")?,
            &find(dir, "t10k-labels-idx1-ubyte")?,
        )?;
        Ok(Splits { train, test })
    }
}

/// The order of an epoch: 0..n shuffled by a generator seeded with (seed, epoch), so every run
/// with the same seed sees the same batches.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    order.shuffle(&mut rng);
    order
}
