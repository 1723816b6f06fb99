//! The dataset readers on files written here in the real formats: CIFAR-100's coarse and fine
//! labels and class names, CIFAR-10's planes, image folders as grey or colour, the per-channel
//! statistics, and batches converted between grey and colour.

use gconv::data::{Kind, Normalization, Splits, detect};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("gconv-datasets-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// A CIFAR record: header bytes, then planes R (all `r`), G (all `g`), B (a ramp).
fn record(header: &[u8], r: u8, g: u8) -> Vec<u8> {
    let mut out = header.to_vec();
    out.extend(std::iter::repeat_n(r, 1024));
    out.extend(std::iter::repeat_n(g, 1024));
    out.extend((0..1024).map(|i| (i % 256) as u8));
    out
}

#[test]
fn cifar100_reads_fine_labels_and_names_from_its_archive_folder() {
    let dir = scratch("cifar100");
    let data = dir.join("cifar-100-binary");
    std::fs::create_dir_all(&data).expect("dir");
    let train: Vec<u8> = (0..5u8).flat_map(|k| record(&[k % 20, 99 - k], 10 * k, 255)).collect();
    std::fs::write(data.join("train.bin"), train).expect("train");
    std::fs::write(data.join("test.bin"), record(&[3, 42], 0, 0)).expect("test");
    let names: String = (0..100).map(|c| format!("class{c}\n")).collect();
    std::fs::write(data.join("fine_label_names.txt"), names).expect("names");
    assert_eq!(detect(&dir), Some(Kind::Cifar));
    let s = Splits::load(&dir, None, None).expect("load");
    assert_eq!((s.train.len(), s.test.len(), s.train.channels), (5, 1, 3));
    assert_eq!(s.train.labels, [99, 98, 97, 96, 95]);
    assert_eq!(s.test.labels, [42]);
    assert_eq!((s.train.classes.len(), s.train.classes[42].as_str()), (100, "class42"));
    // Planes in order: R of sample 1 is 10, G 255, B a ramp.
    let img = &s.train.pixels[3072..2 * 3072];
    assert_eq!((img[0], img[1024], img[2048 + 7]), (10, 255, 7));
    // The training split's statistics: G is constant (deviation floored, not 0).
    let n = &s.train.norm;
    assert!((n.mean[0] - 20.0 / 255.0).abs() < 1e-6 && (n.mean[1] - 1.0).abs() < 1e-6, "{n:?}");
    assert!(n.std[1] > 0.0 && n.std[1] < 1e-3);
    // A name file that does not fit is an error naming it.
    std::fs::write(data.join("fine_label_names.txt"), "a\nb\n").expect("names");
    let e = Splits::load(&dir, None, None).expect_err("2 names").to_string();
    assert!(e.contains("fine_label_names.txt") && e.contains("2 class names"), "{e}");
}

#[test]
fn image_folders_decode_grey_or_colour_and_batches_convert_between_them() {
    let dir = scratch("folders");
    for (split, class, shade) in
        [("train", "dark", 40u8), ("train", "light", 200), ("val", "light", 210)]
    {
        let folder = dir.join(split).join(class);
        std::fs::create_dir_all(&folder).expect("folder");
        let img = image::RgbImage::from_fn(8, 6, |x, _| image::Rgb([shade, shade, (x * 30) as u8]));
        img.save(folder.join("a.png")).expect("png");
    }
    assert_eq!(detect(&dir), Some(Kind::Folders));
    let colour = Splits::load(&dir, Some((3, 4)), None).expect("colour");
    assert_eq!((colour.train.channels, colour.train.rows, colour.train.cols), (3, 3, 4));
    assert_eq!(colour.train.classes, ["dark", "light"]);
    assert_eq!((colour.train.labels.clone(), colour.test.labels.clone()), (vec![0, 1], vec![1]));
    let grey = Splits::load(&dir, None, Some(1)).expect("grey");
    assert_eq!((grey.train.channels, grey.train.rows, grey.train.cols), (1, 6, 8));
    // A grey batch for a three-channel model repeats the plane; a colour one for a
    // one-channel model takes the luma, its normalisation weighted alike.
    let mut g = grey.train.clone();
    g.norm = Normalization::identity(1);
    let (x, y) = g.batch(&[1], [3, 6, 8]);
    assert_eq!(y, [1]);
    assert_eq!((x[0], x[48], x[96]), (x[0], x[0], x[0]));
    let mut c = colour.train.clone();
    c.norm = Normalization::identity(3);
    let (x, _) = c.batch(&[0], [1, 3, 4]);
    let b = f32::from(c.pixels[2 * 12]) / 255.0;
    let luma = 0.2126 * 40.0 / 255.0 + 0.7152 * 40.0 / 255.0 + 0.0722 * b;
    assert!((x[0] - luma).abs() < 1e-5, "{} vs {luma}", x[0]);
    assert!(Normalization { mean: vec![0.5], std: vec![0.0] }.validate().is_err());
}
