//! The bundled default dataset: the 10,000-digit MNIST subset in assets/mnist-10k (see its
//! README for provenance), compiled into the binary so `gconv train` needs no download and no
//! working directory.

use std::path::Path;

use gconv::data::{Dataset, Splits};

const TRAIN_IMAGES: &[u8] = include_bytes!("../../../assets/mnist-10k/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../../assets/mnist-10k/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../../assets/mnist-10k/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../../assets/mnist-10k/t10k-labels-idx1-ubyte.gz");

/// The bundled MNIST subset: 7,996 training and 2,004 test digits.
pub fn mnist() -> gconv::Result<Splits> {
    let load = |images: &[u8], labels: &[u8], name: &str| {
        Dataset::from_idx_bytes(
            Path::new(&format!("bundled {name} images")),
            images.to_vec(),
            Path::new(&format!("bundled {name} labels")),
            labels.to_vec(),
        )
    };
    Ok(Splits {
        train: load(TRAIN_IMAGES, TRAIN_LABELS, "train")?,
        test: load(TEST_IMAGES, TEST_LABELS, "test")?,
    })
}
