//! CIFAR-10 and CIFAR-100 in their binary format, as `cifar-10-binary.tar.gz` and
//! `cifar-100-binary.tar.gz` unpack: records of a label byte (CIFAR-100: coarse then fine)
//! and 3072 pixel bytes, the red, green and blue 32x32 planes in turn.

use std::path::{Path, PathBuf};

use super::{Dataset, Normalization, Splits, format_error};
use crate::{Error, Result};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;

/// Which CIFAR, and where its files are.
pub(super) enum Cifar {
    /// `data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`, `batches.meta.txt`.
    Ten(PathBuf),
    /// `train.bin`, `test.bin`, `fine_label_names.txt`.
    Hundred(PathBuf),
}

/// The CIFAR layout in `dir` or in the folder its archive unpacks to.
pub(super) fn detect(dir: &Path) -> Option<Cifar> {
    for d in [dir.to_path_buf(), dir.join("cifar-10-batches-bin"), dir.join("cifar-100-binary")] {
        if d.join("data_batch_1.bin").is_file() {
            return Some(Cifar::Ten(d));
        }
        if d.join("train.bin").is_file() && d.join("test.bin").is_file() {
            return Some(Cifar::Hundred(d));
        }
    }
    None
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// Class names, one per line of `path`, or the class numbers when the file is absent.
fn names(path: &Path, count: usize) -> Result<Vec<String>> {
    if !path.is_file() {
        return Ok((0..count).map(|c| c.to_string()).collect());
    }
    let text = String::from_utf8(read(path)?)
        .map_err(|_| format_error(path, "class names are not UTF-8 text"))?;
    let names: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != count {
        return Err(format_error(
            path,
            format!("{} class names, the dataset has {count} classes", names.len()),
        ));
    }
    Ok(names)
}

/// Parses one file of records whose label is byte `label_at` of a `header`-byte header.
fn records(
    path: &Path,
    bytes: &[u8],
    header: usize,
    label_at: usize,
    classes: usize,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let record = header + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(format_error(
            path,
            format!(
                "{} bytes is not a whole number of {record}-byte records (truncated or not \
                 CIFAR's binary format)",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / record;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[label_at];
        if usize::from(label) >= classes {
            return Err(format_error(
                path,
                format!("record {i} has label {label}; the dataset has {classes} classes"),
            ));
        }
        labels.push(label);
        pixels.extend_from_slice(&r[header..]);
    }
    Ok((pixels, labels))
}

fn dataset(pixels: Vec<u8>, labels: Vec<u8>, classes: Vec<String>) -> Dataset {
    Dataset {
        pixels,
        labels,
        channels: 3,
        rows: SIDE,
        cols: SIDE,
        classes,
        norm: Normalization::identity(3),
    }
}

impl Splits {
    /// Loads CIFAR-10 (`data_batch_1.bin` to `data_batch_5.bin`, those present, and
    /// `test_batch.bin`) or CIFAR-100 (`train.bin`, `test.bin`, fine labels), class names from
    /// `batches.meta.txt` or `fine_label_names.txt`, in `dir` or the folder the archive unpacks
    /// to (`cifar-10-batches-bin`, `cifar-100-binary`). Normalised per channel with the
    /// training split's mean and deviation.
    ///
    /// # Errors
    /// [`Error::Io`] naming a missing file; [`Error::Format`] naming a truncated file, a
    /// label out of range or a class-name file that does not fit.
    pub fn load_cifar(dir: &Path) -> Result<Splits> {
        let Some(layout) = detect(dir) else {
            return Err(format_error(
                dir,
                "no CIFAR files: looked for data_batch_1.bin (CIFAR-10) and train.bin with \
                 test.bin (CIFAR-100), here and in cifar-10-batches-bin/ or cifar-100-binary/",
            ));
        };
        let mut splits = match layout {
            Cifar::Ten(d) => {
                let classes = names(&d.join("batches.meta.txt"), 10)?;
                let (mut pixels, mut labels) = (Vec::new(), Vec::new());
                for k in 1..=5 {
                    let path = d.join(format!("data_batch_{k}.bin"));
                    if k > 1 && !path.exists() {
                        continue;
                    }
                    let (p, l) = records(&path, &read(&path)?, 1, 0, 10)?;
                    pixels.extend(p);
                    labels.extend(l);
                }
                let path = d.join("test_batch.bin");
                let (tp, tl) = records(&path, &read(&path)?, 1, 0, 10)?;
                Splits {
                    train: dataset(pixels, labels, classes.clone()),
                    test: dataset(tp, tl, classes),
                }
            }
            Cifar::Hundred(d) => {
                let classes = names(&d.join("fine_label_names.txt"), 100)?;
                let (train, test) = (d.join("train.bin"), d.join("test.bin"));
                let (p, l) = records(&train, &read(&train)?, 2, 1, 100)?;
                let (tp, tl) = records(&test, &read(&test)?, 2, 1, 100)?;
                Splits { train: dataset(p, l, classes.clone()), test: dataset(tp, tl, classes) }
            }
        };
        splits.normalise_from_train();
        Ok(splits)
    }
}
