//! Colour data end to end: a CIFAR-10-format directory and an image-folder directory, written
//! here in the real formats with classes that are learnable patterns, train a spec with batch
//! norm and dropout; `eval` reports the confusion matrix (text, JSON, heatmap) and `predict`
//! names its top classes; bad datasets are errors naming the file and the cause.

mod common;

use std::path::Path;

use common::{fails, ok, s, scratch};

/// A 32x32 RGB image (planes R, G, B) of class `class` (0..4), sample `k`: reddish, greenish,
/// horizontal stripes, vertical stripes, over noise.
fn pattern(class: usize, k: usize, side: usize) -> Vec<u8> {
    let mut out = vec![0u8; 3 * side * side];
    let mut state = (k * 7919 + class * 104_729 + 1) as u64;
    let mut noise = || {
        state =
            state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % 96) as u8
    };
    for y in 0..side {
        for x in 0..side {
            let (r, g, b) = match class {
                0 => (200, 60, 60),
                1 => (60, 200, 60),
                2 if (y / 2) % 2 == 0 => (220, 220, 220),
                3 if (x / 2) % 2 == 0 => (220, 220, 220),
                _ => (40, 40, 40),
            };
            for (c, v) in [r, g, b].into_iter().enumerate() {
                out[c * side * side + y * side + x] = (v as u8).saturating_add(noise()) / 2 + 20;
            }
        }
    }
    out
}

/// CIFAR-10's binary layout: `data_batch_1.bin`, `data_batch_2.bin`, `test_batch.bin`,
/// `batches.meta.txt`.
fn write_cifar10(dir: &Path, train: usize, test: usize) {
    let record = |class: usize, k: usize| {
        let mut r = vec![class as u8];
        r.extend(pattern(class, k, 32));
        r
    };
    let half = train / 2;
    for (name, range) in [("data_batch_1.bin", 0..half), ("data_batch_2.bin", half..train)] {
        let bytes: Vec<u8> = range.flat_map(|k| record(k % 4, k)).collect();
        std::fs::write(dir.join(name), bytes).expect("batch");
    }
    let bytes: Vec<u8> = (0..test).flat_map(|k| record(k % 4, 100_000 + k)).collect();
    std::fs::write(dir.join("test_batch.bin"), bytes).expect("test batch");
    let names = "red\ngreen\nrows\ncolumns\ne\nf\ng\nh\ni\nj\n";
    std::fs::write(dir.join("batches.meta.txt"), names).expect("meta");
}

/// torchvision's ImageFolder layout, 24x24 PNGs of three classes.
fn write_folders(dir: &Path, train: usize, test: usize) {
    for (split, count, offset) in [("train", train, 0), ("val", test, 50_000)] {
        for (class, name) in ["columns", "green", "red"].iter().enumerate() {
            let folder = dir.join(split).join(name);
            std::fs::create_dir_all(&folder).expect("class folder");
            let pattern_class = [3, 1, 0][class];
            for k in 0..count / 3 {
                let planes = pattern(pattern_class, offset + k, 24);
                let plane = 24 * 24;
                let rgb: Vec<u8> = (0..plane)
                    .flat_map(|i| [planes[i], planes[plane + i], planes[2 * plane + i]])
                    .collect();
                let img = image::RgbImage::from_raw(24, 24, rgb).expect("image");
                img.save(folder.join(format!("{k:04}.png"))).expect("png");
            }
        }
    }
}

const SPEC: &str = "conv(3,8,k=3,p=1) bn relu maxpool(2) conv(8,16,k=3,p=1) bn relu gap flatten \
                    dropout(0.2) linear(10)";

fn last_accuracy(metrics: &Path) -> f64 {
    let text = std::fs::read_to_string(metrics).expect("metrics");
    let last: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("a line")).expect("json");
    last["test_accuracy"].as_f64().expect("accuracy")
}

#[test]
fn a_cifar10_directory_trains_a_bn_dropout_spec_and_eval_names_its_classes() {
    let dir = scratch("cifar10");
    let data = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&data).expect("data dir");
    write_cifar10(&data, 480, 120);
    let (ckpt, metrics) = (dir.join("cifar.safetensors"), dir.join("metrics.jsonl"));
    let out = ok(&[
        "train",
        "--layers",
        SPEC,
        "--data",
        s(&dir),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--save",
        s(&ckpt),
        "--metrics",
        s(&metrics),
        "--quiet",
        "--seed",
        "2",
    ]);
    assert!(out.contains("480 training and 120 test images"), "{out}");
    let accuracy = last_accuracy(&metrics);
    assert!(accuracy > 0.9, "test accuracy {accuracy} after 3 epochs: {out}");
    // The checkpoint records the classes and the training split's normalisation.
    let (_, meta) = gconv::nn::checkpoint::load_with_metadata(&ckpt).expect("checkpoint");
    assert!(meta["gconv.classes"].contains("\"columns\""), "{meta:?}");
    let mean: Vec<f32> = serde_json::from_str(&meta["gconv.mean"]).expect("mean");
    assert_eq!(mean.len(), 3);

    let common = ["--layers", SPEC, "--input", "3x32x32", "--checkpoint", s(&ckpt)];
    let text = ok(&[&["eval", "--data", s(&dir)][..], &common].concat());
    assert!(text.contains("confusion matrix") && text.contains("columns"), "{text}");
    let heatmap = dir.join("confusion.png");
    let json =
        ok(&[&["eval", "--data", s(&dir), "--json", "--confusion", s(&heatmap)][..], &common]
            .concat());
    let report: serde_json::Value = serde_json::from_str(&json).expect("eval --json is JSON");
    assert_eq!(report["classes"][2], "rows");
    let matrix = report["confusion"].as_array().expect("matrix");
    assert_eq!(matrix.len(), 10);
    let total: u64 = matrix
        .iter()
        .flat_map(|r| r.as_array().expect("row"))
        .map(|v| v.as_u64().expect("count"))
        .sum();
    assert_eq!(total, 120);
    assert!((report["accuracy"].as_f64().expect("accuracy") - accuracy).abs() < 1e-6);
    assert!(image::open(&heatmap).expect("heatmap").width() > 400);

    // predict reads a colour image, normalises it as the checkpoint says and names classes.
    let planes = pattern(1, 7, 32);
    let rgb: Vec<u8> =
        (0..1024).flat_map(|i| [planes[i], planes[1024 + i], planes[2048 + i]]).collect();
    let png = dir.join("green.png");
    image::RgbImage::from_raw(32, 32, rgb).expect("image").save(&png).expect("png");
    let out = ok(&[&["predict", "--top", "3"][..], &common, &[s(&png)]].concat());
    assert!(out.starts_with(&format!("{}: green (class 1)", png.display())), "{out}");
    assert_eq!(out.matches('%').count(), 3, "{out}");
}

#[test]
fn an_image_folder_trains_resized_to_the_input_and_names_classes_by_folder() {
    let dir = scratch("folders");
    write_folders(&dir, 300, 60);
    let metrics = dir.join("metrics.jsonl");
    let out = ok(&[
        "train",
        "--layers",
        &SPEC.replace("linear(10)", "linear(3)"),
        "--input",
        "3x16x16",
        "--data",
        s(&dir),
        "--epochs",
        "3",
        "--batch-size",
        "20",
        "--metrics",
        s(&metrics),
        "--quiet",
    ]);
    assert!(out.contains("300 training and 60 test images"), "{out}");
    let accuracy = last_accuracy(&metrics);
    assert!(accuracy > 0.9, "test accuracy {accuracy}: {out}");
}

#[test]
fn datasets_that_cannot_be_read_are_errors_naming_the_file_and_cause() {
    let dir = scratch("bad-data");
    let train = ["train", "--layers", SPEC, "--epochs", "1", "--quiet", "--data"];
    fails(&[&train[..], &[s(&dir)]].concat(), "no dataset found: looked for MNIST's");
    fails(&[&train[..], &[s(&dir.join("absent"))]].concat(), "absent");
    // A CIFAR batch cut short.
    write_cifar10(&dir, 8, 4);
    let bytes = std::fs::read(dir.join("data_batch_1.bin")).expect("batch");
    std::fs::write(dir.join("data_batch_1.bin"), &bytes[..bytes.len() - 100]).expect("cut");
    fails(
        &[&train[..], &[s(&dir)]].concat(),
        "data_batch_1.bin: 12192 bytes is not a whole number",
    );
    // A label past the class names.
    let mut bytes = bytes.clone();
    bytes[0] = 10;
    std::fs::write(dir.join("data_batch_1.bin"), &bytes).expect("label");
    fails(&[&train[..], &[s(&dir)]].concat(), "record 0 has label 10; the dataset has 10 classes");
    // Image folders: a file that is not an image, and a test class the training split lacks.
    let folders = scratch("bad-folders");
    write_folders(&folders, 6, 3);
    std::fs::write(folders.join("train/red/broken.png"), b"not a png").expect("broken");
    fails(&[&train[..], &[s(&folders)]].concat(), "broken.png: not an image");
    std::fs::remove_file(folders.join("train/red/broken.png")).expect("rm");
    std::fs::create_dir_all(folders.join("val/blue")).expect("blue");
    fails(
        &[&train[..], &[s(&folders)]].concat(),
        "class \"blue\" is not among the training classes",
    );
    // Normalisation that cannot be.
    std::fs::remove_dir_all(folders.join("val/blue")).expect("rm");
    fails(
        &[&train[..], &[s(&folders), "--mean", "0.5,0.5", "--std", "0.2,0.2"]].concat(),
        "--mean and --std give 2 values; the data have 3 channels",
    );
    fails(
        &[&train[..], &[s(&folders), "--mean", "0.5", "--std", "0"]].concat(),
        "deviation 0 is not positive",
    );
}
