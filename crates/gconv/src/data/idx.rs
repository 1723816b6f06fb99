//! The MNIST IDX format (raw or gzip-compressed): `train-images-idx3-ubyte` and its siblings,
//! as MNIST and Fashion-MNIST ship.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Dataset, Normalization, Splits, format_error};
use crate::{Error, Result};

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
        Ok(Dataset {
            pixels,
            labels: labels_data,
            channels: 1,
            rows: isizes[1],
            cols: isizes[2],
            classes: (0..10).map(|c| c.to_string()).collect(),
            norm: Normalization::mnist(),
        })
    }
}

impl Splits {
    /// Loads an MNIST-format directory: `train-images-idx3-ubyte[.gz]`,
    /// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
    /// Both splits are normalised with MNIST's customary mean and deviation.
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

/// Whether `dir` holds an MNIST-format training split.
pub(super) fn is_idx(dir: &Path) -> bool {
    find(dir, "train-images-idx3-ubyte").is_ok()
}
