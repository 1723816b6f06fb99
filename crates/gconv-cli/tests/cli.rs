//! End-to-end tests of the `gconv` binary: the course's tools (summary, filter, visualize,
//! devices) on the bundled images and the PyTorch checkpoints, the files they write, and their
//! errors (one line naming the cause, exit status 1, never a panic).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fails, gconv, ok, repo, s, scratch};

#[test]
fn summary_totals_match_pytorch() {
    for (model, params) in
        [("lenet5", 61_706), ("simplecnn", 93_322), ("convnet", 206_922), ("vgg16", 138_357_544)]
    {
        let json: serde_json::Value =
            serde_json::from_str(&ok(&["summary", "--model", model, "--json"])).expect("json");
        assert_eq!(json["trainable_params"], params, "{model}");
        let rows = json["layers"].as_array().expect("layers");
        let sum: u64 = rows.iter().map(|r| r["params"].as_u64().expect("params")).sum();
        assert_eq!(sum, params, "{model}: rows");
    }
    let table = ok(&["summary", "--model", "simplecnn"]);
    assert!(table.contains("Trainable parameters: 93,322"), "{table}");
    assert!(table.contains("conv1    Conv2d     [1, 32, 28, 28]"), "{table}");
    let vgg = ok(&["summary", "--model", "vgg16", "--input", "3x224x224"]);
    assert!(vgg.contains("Trainable parameters: 138,357,544"), "{vgg}");
    assert!(vgg.contains("15.47 G"), "{vgg}");
}

#[test]
fn summary_of_resnet18_and_mobilenet_v2_with_classes_and_input() {
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["summary", "--model", "resnet18", "--json"])).expect("json");
    assert_eq!(json["trainable_params"], 11_689_512);
    assert_eq!(json["macs"], 1_814_073_344u64);
    let args = ["summary", "--model", "mobilenet_v2", "--input", "1x64x64", "--classes", "10"];
    let json: serde_json::Value =
        serde_json::from_str(&ok(&[&args[..], &["--json"]].concat())).expect("json");
    // 3,504,872 - (3 - 1) x 32 x 9 (first conv) - 1280 x 990 - 990 (classifier).
    assert_eq!(json["trainable_params"], 3_504_872 - 2 * 32 * 9 - 1280 * 990 - 990);
    assert_eq!(json["input_shape"], serde_json::json!([1, 1, 64, 64]));
}

#[test]
fn summary_of_a_layer_spec_and_its_errors() {
    let spec = "conv(3,64,k=3,p=1) relu maxpool(2) conv(64,128,k=3,s=2,p=1)";
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["summary", "--layers", spec, "--input", "3x32x32", "--json"]))
            .expect("json");
    let last = &json["layers"][3];
    assert_eq!(last["output_shape"], serde_json::json!([1, 128, 8, 8]));
    assert_eq!(last["receptive_field"], serde_json::json!([8.0, 8.0]));
    assert_eq!(json["trainable_params"], 1792 + 73_856);
    // The caret sits under the bad token.
    let out = gconv(&["summary", "--layers", "conv(3,8,k=3) relu maxpol(2)", "--input", "3x9x9"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("unknown layer \"maxpol\""), "{stderr}");
    assert!(stderr.contains(&format!("\n{}^^^^^^\n", " ".repeat(2 + 19))), "{stderr}");
    fails(&["summary", "--layers", "relu"], "--layers and --model-file need --input");
    // Branches whose shapes disagree: the node and both shapes.
    let spec = "conv(1,8,k=3,p=1) res(conv(8,16,k=3,p=1))";
    fails(
        &["summary", "--layers", spec, "--input", "1x8x8"],
        "layer 1.add: inputs of different shapes: [1, 16, 8, 8] and [1, 8, 8, 8]",
    );
    fails(&["summary", "--layers", "relu", "--input", "1x8x8", "--classes", "3"], "--classes");
    fails(&["summary", "--layers", "relu", "--input", "3xx"], "not a shape");
    fails(&["summary", "--model", "resnet"], "invalid value 'resnet'");
    fails(&["summary"], "required");
}

/// A grey image with a vertical edge: black left of column `edge`, white from it on.
fn edge_image(dir: &Path, width: u32, height: u32, edge: u32) -> PathBuf {
    let img = image::GrayImage::from_fn(width, height, |x, _| {
        image::Luma([if x < edge { 0 } else { 255 }])
    });
    let path = dir.join("edge.png");
    img.save(&path).expect("write edge.png");
    path
}

#[test]
fn sobel_finds_a_vertical_edge_in_the_right_column() {
    let dir = scratch("sobel");
    let input = edge_image(&dir, 40, 24, 17);
    let out = dir.join("sobel-x.png");
    let printed = ok(&["filter", "--kernel", "sobel-x", s(&input), s(&out)]);
    assert!(printed.contains("40x24 -> 40x24"), "{printed}");
    let img = image::open(&out).expect("output").to_luma8();
    assert_eq!(img.dimensions(), (40, 24));
    // Away from the top and bottom rows (zero padding), every row peaks at 255 exactly in
    // columns 16 and 17 (the two columns whose 3x3 window straddles the edge), 0 elsewhere
    // but the right border, where the zero padding makes a second (falling) edge.
    for y in 1..23 {
        let row: Vec<u8> = (0..40).map(|x| img.get_pixel(x, y)[0]).collect();
        assert_eq!((row[16], row[17]), (255, 255), "row {y}: {row:?}");
        assert!(row[..16].iter().all(|&v| v == 0), "row {y}: {row:?}");
        assert!(row[18..39].iter().all(|&v| v == 0), "row {y}: {row:?}");
    }
    // sobel-y sees no horizontal edge inside the image.
    let out_y = dir.join("sobel-y.png");
    ok(&["filter", "--kernel", "sobel-y", s(&input), s(&out_y)]);
    let img = image::open(&out_y).expect("output").to_luma8();
    assert!((2..22).all(|y| (1..16).all(|x| img.get_pixel(x, y)[0] == 0)));
    // Stride, padding and dilation change the size as the formula says.
    let small = dir.join("small.png");
    let printed = ok(&[
        "filter",
        "--kernel",
        "sobel",
        "--stride",
        "2",
        "--padding",
        "0",
        "--dilation",
        "2",
        s(&input),
        s(&small),
    ]);
    // floor((40 - 2*2 - 1) / 2) + 1 = 18; floor((24 - 5) / 2) + 1 = 10.
    assert!(printed.contains("40x24 -> 18x10"), "{printed}");
    assert_eq!(image::open(&small).expect("small").to_luma8().dimensions(), (18, 10));
}

#[test]
fn filters_on_the_bundled_photographs() {
    let dir = scratch("photos");
    let camera = repo("assets/images/camera.png");
    let astronaut = repo("assets/images/astronaut.png");
    for kernel in ["sobel", "gaussian5", "laplacian", "sharpen", "emboss", "box3", "prewitt-x"] {
        let out = dir.join(format!("{kernel}.png"));
        ok(&["filter", "--kernel", kernel, s(&camera), s(&out)]);
        let img = image::open(&out).expect("output");
        assert_eq!((img.width(), img.height()), (512, 512), "{kernel}");
        assert!(!img.color().has_color(), "{kernel}: a grey image stays grey");
    }
    // The identity kernel gives the image back; a blur keeps the mean brightness.
    let same = dir.join("identity.png");
    ok(&["filter", "--kernel", "identity", s(&camera), s(&same)]);
    let original = image::open(&camera).expect("camera").to_luma8();
    assert_eq!(image::open(&same).expect("identity").to_luma8(), original);
    // RGB is filtered per channel (a depthwise convolution).
    let out = dir.join("astronaut-sobel.jpg");
    let printed = ok(&["filter", "--kernel", "sobel", s(&astronaut), s(&out)]);
    assert!(printed.contains("RGB, depthwise"), "{printed}");
    assert!(image::open(&out).expect("jpeg").color().has_color());
    let grey = dir.join("astronaut-grey.png");
    ok(&["filter", "--kernel", "box3", "--channels", "grey", s(&astronaut), s(&grey)]);
    assert!(!image::open(&grey).expect("grey").color().has_color());
    // A kernel file: an un-normalised 3x3 blur is divided by its sum.
    let kernel = dir.join("blur.txt");
    std::fs::write(&kernel, "# a blur\n1 2 1\n2, 4, 2\n1 2 1\n").expect("kernel file");
    let blur = dir.join("blur.png");
    ok(&["filter", "--kernel-file", s(&kernel), s(&camera), s(&blur)]);
    let mean = |img: &image::GrayImage| {
        img.pixels().map(|p| f64::from(p[0])).sum::<f64>() / f64::from(img.width() * img.height())
    };
    let blurred = image::open(&blur).expect("blur").to_luma8();
    assert!((mean(&blurred) - mean(&original)).abs() < 2.0);
}

#[test]
fn filter_errors_name_their_cause() {
    let dir = scratch("filter-errors");
    let camera = repo("assets/images/camera.png");
    let out = dir.join("out.png");
    fails(
        &["filter", "--kernel", "sobel", "/no/such/image.png", s(&out)],
        "cannot read /no/such/image.png",
    );
    let text = dir.join("not-an-image.png");
    std::fs::write(&text, "hello").expect("write");
    fails(&["filter", "--kernel", "sobel", s(&text), s(&out)], "as an image");
    fails(&["filter", "--kernel", "blurry", s(&camera), s(&out)], "invalid value 'blurry'");
    fails(
        &["filter", "--kernel", "sobel", s(&camera), s(&dir.join("out.bmpx"))],
        "use .png or .jpg",
    );
    let ragged = dir.join("ragged.txt");
    std::fs::write(&ragged, "1 2 3\n4 5\n").expect("write");
    fails(&["filter", "--kernel-file", s(&ragged), s(&camera), s(&out)], "same number of values");
    let words = dir.join("words.txt");
    std::fs::write(&words, "1 x 3\n").expect("write");
    fails(&["filter", "--kernel-file", s(&words), s(&camera), s(&out)], "\"x\" is not a number");
    fails(
        &["filter", "--kernel-file", s(&dir.join("none.txt")), s(&camera), s(&out)],
        "cannot read the kernel file",
    );
    fails(&["filter", "--kernel", "sobel", "--stride", "0", s(&camera), s(&out)], "at least 1");
    assert!(!out.exists(), "a failed filter wrote {}", out.display());
}

#[test]
fn visualize_filters_and_features_of_a_trained_model() {
    let dir = scratch("visualize");
    let ckpt = repo("tests/checkpoints/simplecnn.safetensors");
    let filters = dir.join("filters.png");
    let printed = ok(&[
        "visualize",
        "filters",
        "--model",
        "simplecnn",
        "--checkpoint",
        s(&ckpt),
        s(&filters),
    ]);
    assert!(printed.contains("conv1.weight: 32 kernels of 1x3x3"), "{printed}");
    let img = image::open(&filters).expect("filters").to_rgb8();
    // 8 columns of 3x3 kernels at 12 pixels per tap with 6-pixel gaps, 4 rows, title above.
    assert!(img.width() >= 8 * 36 + 7 * 6 && img.height() >= 4 * 36 + 3 * 6 + 16);
    // A digit from the bundled test split, written as PNG.
    let data = gconv_digit();
    let digit = dir.join("digit.png");
    image::GrayImage::from_raw(28, 28, data).expect("digit").save(&digit).expect("write digit");
    let features = dir.join("features.png");
    let printed = ok(&[
        "visualize",
        "features",
        "--model",
        "simplecnn",
        "--checkpoint",
        s(&ckpt),
        "--image",
        s(&digit),
        s(&features),
    ]);
    assert!(printed.contains("3 convolution layers (conv1, conv2, conv3)"), "{printed}");
    let img = image::open(&features).expect("features").to_rgb8();
    // Four rows (input, conv1..3) of 84-pixel maps with 16-pixel labels; 8 maps wide.
    assert_eq!(img.height(), 10 + 4 * (16 + 6 + 84 + 12));
    assert_eq!(img.width(), 2 * 10 + 8 * 84 + 7 * 6);
    // Each map is normalised to its own range: every conv row holds black and white pixels.
    for row in 1..4u32 {
        let y0 = 10 + row * 118 + 22;
        let px: Vec<u8> = (y0..y0 + 84)
            .flat_map(|y| (10..94).map(move |x| (x, y)))
            .map(|(x, y)| img.get_pixel(x, y)[0])
            .collect();
        assert_eq!((px.iter().min(), px.iter().max()), (Some(&0), Some(&255)), "row {row}");
    }
    fails(
        &["visualize", "filters", "--model", "lenet5", "--checkpoint", s(&ckpt), s(&filters)],
        "missing",
    );
    fails(
        &[
            "visualize",
            "features",
            "--model",
            "simplecnn",
            "--checkpoint",
            s(&dir.join("x.safetensors")),
            "--image",
            s(&digit),
            s(&features),
        ],
        "x.safetensors",
    );
}

/// The first test digit of the bundled set (28x28 grey levels).
fn gconv_digit() -> Vec<u8> {
    let splits = gconv::data::Splits::load_mnist(&repo("assets/mnist-10k")).expect("digits");
    splits.test.pixels[..784].to_vec()
}

#[test]
fn devices_lists_the_adapter_and_every_command_has_an_example() {
    let out = ok(&["devices"]);
    assert!(out.contains("[0]") && out.contains("max storage binding"), "{out}");
    assert!(out.contains("max workgroup size"), "{out}");
    fails(&["--adapter", "no-such-adapter", "devices"], "no adapter matches");
    for cmd in ["devices", "train", "eval", "predict", "summary", "filter"] {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("Example"), "gconv {cmd} --help has no example:\n{help}");
    }
    for sub in ["filters", "features"] {
        let help = ok(&["visualize", sub, "--help"]);
        assert!(help.contains("Example"), "gconv visualize {sub} --help has no example");
    }
}

#[test]
fn a_closed_stdout_pipe_ends_the_program_quietly() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args(["summary", "--model", "vgg16"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("gconv runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}

/// Writes tensor `input` (the first `n` inputs of branches-expected.safetensors) to `path`;
/// returns PyTorch's logits for them.
fn pytorch_batch(path: &Path, n: usize) -> Vec<f32> {
    use gconv::nn::checkpoint;
    let expected = checkpoint::load(&repo("tests/checkpoints/branches-expected.safetensors"))
        .expect("expected");
    let get = |name: &str| expected.iter().find(|t| t.0 == name).expect(name).clone();
    let (_, mut shape, x) = get("x");
    shape[0] = n;
    let input = vec![("input".to_string(), shape, x[..n * 28 * 28].to_vec())];
    checkpoint::save(path, &input, &[]).expect("write input");
    get("logits").2[..n * 10].to_vec()
}

#[test]
fn predict_writes_the_logits_of_raw_tensors_as_pytorch_computes_them() {
    let dir = scratch("predict-tensors");
    let (x, y) = (dir.join("x.safetensors"), dir.join("y.safetensors"));
    let want = pytorch_batch(&x, 20);
    let model = repo("tests/checkpoints/branches.spec");
    let ckpt = repo("tests/checkpoints/branches.safetensors");
    let (model, ckpt) = (s(&model), s(&ckpt));
    let source = ["--model-file", model, "--input", "1x28x28", "--checkpoint", ckpt];
    let out = ok(&[&["predict"], &source[..], &["--tensors", s(&x), "--logits", s(&y)]].concat());
    assert!(out.contains("wrote logits (20 x 10)") && out.contains("sample 19: class"), "{out}");
    let logits = gconv::nn::checkpoint::load(&y).expect("logits");
    assert_eq!((logits[0].0.as_str(), &logits[0].1[..]), ("logits", &[20, 10][..]));
    let got = &logits[0].2;
    let diff: f32 = got.iter().zip(&want).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
    let norm: f32 = want.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!(diff <= 1e-4 * norm, "logits differ from PyTorch's by {:.3e}", diff / norm);
    // Inputs that do not fit the model, and files without an input.
    let wrong = dir.join("wrong.safetensors");
    let bad = vec![("input".to_string(), vec![2, 3, 28, 28], vec![0.0; 2 * 3 * 28 * 28])];
    gconv::nn::checkpoint::save(&wrong, &bad, &[]).expect("write");
    let missing = dir.join("missing.safetensors");
    for (file, cause) in [
        (&wrong, "tensor \"input\" has shape [2, 3, 28, 28]; the model takes N x 1 x 28 x 28"),
        (&y, "has no tensor named \"input\""),
        (&missing, "missing.safetensors"),
    ] {
        fails(&[&["predict"], &source[..], &["--tensors", s(file)]].concat(), cause);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_spec_trains_saves_evaluates_and_refuses_another_architecture() {
    let dir = scratch("spec-train");
    let file = dir.join("tiny.spec");
    std::fs::write(&file, "# tiny\nconv(1,4,k=3,p=1) bn relu\nres(conv(4,4,k=3,p=1) bn) # block\ngap flatten linear(10)\n")
        .expect("model file");
    let ckpt = dir.join("tiny.safetensors");
    let model = ["--model-file", s(&file)];
    let train = ["train", "--epochs", "1", "--limit", "128", "--test-limit", "64", "--quiet"];
    let out = ok(&[&train[..], &model[..], &["--save", s(&ckpt)]].concat());
    assert!(out.contains("tiny: 254 parameters") && out.contains("epoch 1/1"), "{out}");
    let state = gconv::nn::checkpoint::load(&ckpt).expect("checkpoint");
    let names: Vec<&str> = state.iter().map(|t| t.0.as_str()).collect();
    assert!(
        names.contains(&"3.body.0.weight") && names.contains(&"3.body.1.running_var"),
        "{names:?}"
    );
    let out = ok(&[&["eval", "--checkpoint", s(&ckpt)], &model[..]].concat());
    assert!(out.contains("test accuracy"), "{out}");
    fails(
        &["eval", "--model", "resnet18", "--checkpoint", s(&ckpt)],
        "the checkpoint does not match model resnet18: missing conv1.weight [64, 3, 7, 7]",
    );
    std::fs::remove_dir_all(&dir).ok();
}
