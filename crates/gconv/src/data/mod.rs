//! Datasets: MNIST's IDX format (`idx.rs`), CIFAR-10 and CIFAR-100's binary format
//! (`cifar.rs`) and torchvision's image folders (`folder.rs`), found by what a directory
//! holds; per-channel normalisation; batches resized to a model's input; seeded shuffles.

mod cifar;
mod folder;
mod idx;

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

pub use folder::image_planes;
pub use idx::parse_idx;

use crate::{Error, Result};

/// MNIST's mean and standard deviation, the normalisation PyTorch's tutorial uses.
pub const MNIST_MEAN: f32 = 0.1307;
/// See [`MNIST_MEAN`].
pub const MNIST_STD: f32 = 0.3081;

/// Per-channel normalisation of pixel values in [0, 1]: `(v - mean[c]) / std[c]`, as
/// torchvision's `Normalize`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// One per channel.
    pub mean: Vec<f32>,
    /// One per channel.
    pub std: Vec<f32>,
}

impl Normalization {
    /// MNIST's customary values (one channel).
    pub fn mnist() -> Normalization {
        Normalization { mean: vec![MNIST_MEAN], std: vec![MNIST_STD] }
    }

    /// Mean 0 and deviation 1 for `channels` channels (values left in [0, 1]).
    pub fn identity(channels: usize) -> Normalization {
        Normalization { mean: vec![0.0; channels], std: vec![1.0; channels] }
    }

    /// Checks the values: as many means as deviations, deviations positive and finite.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return Err(Error::invalid(
                "normalization",
                format!("{} means and {} deviations", self.mean.len(), self.std.len()),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::invalid("normalization", format!("deviation {s} is not positive")));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(Error::invalid("normalization", format!("mean {m} is not finite")));
        }
        Ok(())
    }

    /// (mean, std) of channel `c` (one value serves every channel).
    fn of(&self, c: usize) -> (f32, f32) {
        (self.mean[c % self.mean.len()], self.std[c % self.std.len()])
    }
}

/// Images (bytes, each image `channels` planes of `rows x cols`) with their labels, class
/// names and normalisation.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `len * channels * rows * cols` pixels, planes in channel order.
    pub pixels: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// The class names, by index.
    pub classes: Vec<String>,
    /// How [`Dataset::batch`] normalises the pixels.
    pub norm: Normalization,
}

/// A training split and a test split.
#[derive(Clone, Debug)]
pub struct Splits {
    /// The training images.
    pub train: Dataset,
    /// The test images.
    pub test: Dataset,
}

fn format_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), message: message.into() }
}

/// Which dataset a directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// MNIST's IDX files (MNIST, Fashion-MNIST).
    Idx,
    /// CIFAR-10 or CIFAR-100 binary batches.
    Cifar,
    /// `train/` and `test/` (or `val/`) folders of class folders.
    Folders,
}

/// The kind of dataset in `dir`, or `None`.
pub fn detect(dir: &Path) -> Option<Kind> {
    if idx::is_idx(dir) {
        Some(Kind::Idx)
    } else if cifar::detect(dir).is_some() {
        Some(Kind::Cifar)
    } else if folder::detect(dir).is_some() {
        Some(Kind::Folders)
    } else {
        None
    }
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn image_len(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The first `n` images (all when `n` is larger).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..self.clone_meta()
        }
    }

    fn clone_meta(&self) -> Dataset {
        Dataset {
            pixels: Vec::new(),
            labels: Vec::new(),
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            classes: self.classes.clone(),
            norm: self.norm.clone(),
        }
    }

    /// Per-channel mean and standard deviation of the pixels in [0, 1].
    pub fn channel_stats(&self) -> Normalization {
        let plane = self.rows * self.cols;
        let mut sums = vec![(0f64, 0f64); self.channels];
        for image in self.pixels.chunks_exact(self.image_len().max(1)) {
            for (c, s) in sums.iter_mut().enumerate() {
                for &p in &image[c * plane..(c + 1) * plane] {
                    let v = f64::from(p) / 255.0;
                    s.0 += v;
                    s.1 += v * v;
                }
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sums.iter().map(|s| s.0 / n).collect();
        let std = sums
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s.1 / n - m * m).max(0.0).sqrt() as f32).max(1e-6))
            .collect();
        Normalization { mean: mean.iter().map(|&m| m as f32).collect(), std }
    }

    /// The images at `indices` as a batch of shape (len, channels, height, width) for a
    /// model's `input`: resized bilinearly where the sizes differ; grey repeated into every
    /// channel, or colour turned grey (BT.709 luma) for a one-channel model; then normalised
    /// per channel with [`Dataset::norm`]. Also returns their labels.
    pub fn batch(&self, indices: &[usize], input: [usize; 3]) -> (Vec<f32>, Vec<i32>) {
        let [channels, h, w] = input;
        let mut out = Vec::with_capacity(indices.len() * channels * h * w);
        let mut labels = Vec::with_capacity(indices.len());
        let plane = self.rows * self.cols;
        for &i in indices {
            let img = &self.pixels[i * self.image_len()..(i + 1) * self.image_len()];
            let planes: Vec<Vec<f32>> = (0..self.channels)
                .map(|c| resize(&img[c * plane..(c + 1) * plane], self.rows, self.cols, h, w))
                .collect();
            let luma = (channels == 1 && self.channels == 3).then(|| {
                (0..h * w)
                    .map(|k| 0.2126 * planes[0][k] + 0.7152 * planes[1][k] + 0.0722 * planes[2][k])
                    .collect::<Vec<f32>>()
            });
            for c in 0..channels {
                let source = luma.as_ref().unwrap_or(&planes[c % self.channels]);
                let (mean, std) = match (&luma, &self.norm.mean[..]) {
                    // Grey from colour: the channels' statistics weighted as the luma is.
                    (Some(_), [r, g, b]) => {
                        let s = &self.norm.std;
                        (
                            0.2126 * r + 0.7152 * g + 0.0722 * b,
                            0.2126 * s[0] + 0.7152 * s[1] + 0.0722 * s[2],
                        )
                    }
                    _ => self.norm.of(c),
                };
                out.extend(source.iter().map(|&p| (p / 255.0 - mean) / std));
            }
            labels.push(i32::from(self.labels[i]));
        }
        (out, labels)
    }
}

/// Bilinear resize of one plane (align_corners = false, as PyTorch's interpolate), in
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
    /// Loads the dataset in `dir`, whichever of MNIST's IDX files, CIFAR's binary batches or
    /// image folders it holds (see [`Splits::load_mnist`], [`Splits::load_cifar`],
    /// [`Splits::load_folders`]; `size` and `channels` apply to image folders).
    ///
    /// # Errors
    /// [`Error::Format`] naming what was looked for when the directory holds none of them;
    /// the loader's errors otherwise.
    pub fn load(
        dir: &Path,
        size: Option<(usize, usize)>,
        channels: Option<usize>,
    ) -> Result<Splits> {
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        match detect(dir) {
            Some(Kind::Idx) => Splits::load_mnist(dir),
            Some(Kind::Cifar) => Splits::load_cifar(dir),
            Some(Kind::Folders) => Splits::load_folders(dir, size, channels),
            None => Err(format_error(
                dir,
                "no dataset found: looked for MNIST's train-images-idx3-ubyte[.gz], CIFAR-10's \
                 data_batch_1.bin, CIFAR-100's train.bin and test.bin (also in \
                 cifar-10-batches-bin/ and cifar-100-binary/), and train/ with test/ or val/ \
                 folders of class folders",
            )),
        }
    }

    /// Normalises both splits with the training split's per-channel statistics.
    pub fn normalise_from_train(&mut self) {
        self.set_normalization(self.train.channel_stats());
    }

    /// Normalises both splits with `norm`.
    pub fn set_normalization(&mut self, norm: Normalization) {
        self.train.norm = norm.clone();
        self.test.norm = norm;
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
