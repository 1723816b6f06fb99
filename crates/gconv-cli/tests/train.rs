//! `gconv train` failing loudly and losing nothing: hyper-parameters checked, a diverging run
//! stopped without touching the last good checkpoint, a checkpoint every epoch (and every
//! --save-every steps), SIGINT and SIGTERM ending a run with a checkpoint it resumes from, and
//! a metrics file that belongs to one run.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{fails, gconv, ok, s, scratch};

/// A small, quick run: LeNet-5 on 256 digits, tested on 64.
const QUICK: [&str; 10] = [
    "train",
    "--model",
    "lenet5",
    "--limit",
    "256",
    "--test-limit",
    "64",
    "--quiet",
    "--seed",
    "1",
];

fn metadata(path: &Path, key: &str) -> String {
    let (_, meta) = gconv::nn::checkpoint::load_with_metadata(path).expect("checkpoint");
    meta.get(key).cloned().unwrap_or_default()
}

#[test]
fn hyperparameters_are_checked_before_training() {
    for (args, cause) in [
        (&["--lr", "nan"][..], "Adam's lr must be finite and at least 0, got NaN"),
        (&["--optimizer", "sgd", "--lr=-1"], "SGD's lr must be finite and at least 0, got -1"),
        (&["--optimizer", "sgd", "--momentum", "inf"], "SGD's momentum must be finite"),
        (&["--weight-decay=-0.5"], "Adam's weight_decay must be finite and at least 0"),
        (&["--save-every", "0", "--save", "x.safetensors"], "--save-every"),
        (&["--batch-size", "0"], "--batch-size and --epochs must be at least 1"),
    ] {
        fails(&[&QUICK[..], args].concat(), cause);
    }
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint() {
    let dir = scratch("diverge");
    let ckpt = dir.join("lenet5.safetensors");
    let save = ["--save", s(&ckpt), "--epochs", "1"];
    ok(&[&QUICK[..], &save[..]].concat());
    let good = std::fs::read(&ckpt).expect("checkpoint");
    let good_optimizer = std::fs::read(dir.join("lenet5.optimizer.safetensors")).expect("state");
    let wild = ["--optimizer", "sgd", "--lr", "1e30", "--epochs", "3"];
    let out = gconv(&[&QUICK[..], &save[..2], &wild[..]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("training diverged at epoch 1/3, step "), "{stderr}");
    assert!(stderr.contains("is not finite"), "{stderr}");
    assert!(stderr.contains(&format!("{} is unchanged", ckpt.display())), "{stderr}");
    assert!(std::fs::read(&ckpt).expect("checkpoint") == good, "the checkpoint changed");
    let optimizer = std::fs::read(dir.join("lenet5.optimizer.safetensors")).expect("state");
    assert!(optimizer == good_optimizer, "the optimizer state changed");
    // --continue-on-nan trains every epoch, warns, and still writes no NaN checkpoint.
    let out = gconv(&[&QUICK[..], &save[..2], &wild[..], &["--continue-on-nan"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("training on (--continue-on-nan)"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("epoch 3/3"));
    assert!(std::fs::read(&ckpt).expect("checkpoint") == good, "a NaN checkpoint was written");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checkpoints_follow_the_epochs_and_steps_and_the_metrics_file_is_the_runs() {
    let dir = scratch("checkpoints");
    let (ckpt, metrics) = (dir.join("run.safetensors"), dir.join("metrics.jsonl"));
    std::fs::write(&metrics, "a line of another run\n").expect("old metrics");
    let args =
        ["--save", s(&ckpt), "--metrics", s(&metrics), "--epochs", "2", "--batch-size", "64"];
    ok(&[&QUICK[..], &args[..], &["--save-every", "3"]].concat());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&metrics)
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!((lines[0]["epoch"].as_u64(), lines[1]["epoch"].as_u64()), (Some(1), Some(2)));
    // 256 images in batches of 64: 4 steps an epoch, 8 in all, the last save after epoch 2.
    assert_eq!(metadata(&ckpt, "gconv.epoch"), "2");
    assert_eq!(metadata(&ckpt, "gconv.steps"), "8");
    assert_eq!(metadata(&ckpt, "model"), "lenet5");
    // Resuming a finished run has nothing to do; resuming it for one more epoch appends.
    let more =
        ["--save", s(&ckpt), "--metrics", s(&metrics), "--epochs", "3", "--batch-size", "64"];
    let out = ok(&[&QUICK[..], &more[..], &["--resume", s(&ckpt)]].concat());
    assert!(out.contains("resuming") && out.contains("epoch 3/3"), "{out}");
    let text = std::fs::read_to_string(&metrics).expect("metrics");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert_eq!(metadata(&ckpt, "gconv.steps"), "12");
    // A resume with another batch size would see other batches: refused.
    fails(
        &[&QUICK[..], &["--resume", s(&ckpt), "--batch-size", "32"]].concat(),
        "was saved with --batch-size 64, not 32",
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Starts a long run and returns it once it has printed its first epoch's line.
fn start_long_run(dir: &Path) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let ckpt = dir.join("long.safetensors");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args(["train", "--model", "lenet5", "--limit", "512", "--test-limit", "64", "--quiet"])
        .args(["--epochs", "1000", "--save", s(&ckpt)])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gconv runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.starts_with("epoch 1/1000") {
        line.clear();
        assert!(stdout.read_line(&mut line).expect("read") > 0, "gconv ended early");
    }
    (child, stdout)
}

fn signal(child: &std::process::Child, name: &str) {
    // The shell's own kill: no procps needed.
    let command = format!("kill {name} {}", child.id());
    let status = Command::new("sh").args(["-c", &command]).status().expect("sh runs");
    assert!(status.success());
}

#[test]
fn a_signal_stops_the_run_after_its_step_with_a_checkpoint_that_resumes() {
    let dir = scratch("signal");
    let ckpt = dir.join("long.safetensors");
    for (sig, status, name) in [("-INT", 130, "SIGINT"), ("-TERM", 143, "SIGTERM")] {
        let (child, _stdout) = start_long_run(&dir);
        signal(&child, sig);
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{name}: {stderr}");
        assert!(stderr.contains(&format!("stopped by {name} at epoch ")), "{stderr}");
        assert!(stderr.contains(&format!("saved {}", ckpt.display())), "{stderr}");
        let resume = stderr.lines().find_map(|l| l.strip_prefix("resume with: gconv "));
        let resume = resume.expect("the resume command").to_string();
        assert!(resume.ends_with(&format!("--resume {}", s(&ckpt))), "{resume}");
        // The checkpoint evaluates, and the printed command resumes the run.
        let out = ok(&["eval", "--model", "lenet5", "--checkpoint", s(&ckpt)]);
        assert!(out.contains("test accuracy"), "{out}");
        let epoch: u64 = metadata(&ckpt, "gconv.epoch").parse().expect("epoch");
        let words: Vec<&str> = resume.split(' ').collect();
        let epochs = words.iter().position(|w| *w == "--epochs").expect("--epochs") + 1;
        let until = (epoch + 1).to_string();
        let mut words = words.clone();
        words[epochs] = &until;
        let out = ok(&words);
        assert!(out.contains(&format!("resuming {}", ckpt.display())), "{out}");
        assert!(out.contains(&format!("epoch {until}/{until}")), "{out}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = scratch("second-signal");
    let (child, _stdout) = start_long_run(&dir);
    signal(&child, "-INT");
    signal(&child, "-INT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130));
    std::fs::remove_dir_all(&dir).ok();
}

/// The process's resident memory in KiB (Linux's /proc), or None elsewhere.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_soak_run_holds_its_memory_after_the_first_epochs() {
    // Twelve short epochs; resident memory (host and, on lavapipe, the device's) after the
    // third and after the eleventh.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args(["train", "--model", "lenet5", "--limit", "256", "--test-limit", "64", "--quiet"])
        .args(["--epochs", "12"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gconv runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut early, mut late) = (None, None);
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("read") > 0 {
        if line.starts_with("epoch 3/12") {
            early = resident_kib(child.id());
        } else if line.starts_with("epoch 11/12") {
            late = resident_kib(child.id());
        }
        line.clear();
    }
    assert!(child.wait().expect("wait").success());
    if let (Some(early), Some(late)) = (early, late) {
        assert!(late <= early + 8 * 1024, "resident memory grew from {early} KiB to {late} KiB");
    }
}

#[test]
fn a_batch_of_8000_digits_trains_although_its_activations_exceed_a_binding() {
    // SimpleCNN's pooled first activation is 7996 x 32 x 14 x 14 floats (200 MB), over
    // lavapipe's 128 MiB storage binding: the kernels take it in aligned slices.
    let out = ok(&["train", "--model", "simplecnn", "--batch-size", "8000", "--epochs", "1"]
        .into_iter()
        .chain(["--test-limit", "100", "--quiet"])
        .collect::<Vec<_>>());
    assert!(out.contains("7996 training and 100 test images, batch 8000"), "{out}");
    let line = out.lines().find(|l| l.starts_with("epoch 1/1")).expect("the epoch's line");
    assert!(line.contains("train loss 2.3"), "one step from the initialisation: {line}");
}

#[test]
fn two_epochs_resumed_for_two_more_give_the_weights_of_four_in_one_run() {
    let dir = scratch("resume-equivalence");
    // Dropout, augmentation, a warm-up and step schedule, AdamW, label smoothing: every piece
    // of state a resumed run must carry over (optimizer moments, step, schedule position, the
    // seeds of the masks and the crops).
    let spec = "conv(1,6,k=3,p=1) bn relu maxpool(2) conv(6,8,k=3,p=1) relu gap flatten \
                dropout(0.3) linear(10)";
    let common = [
        "train",
        "--layers",
        spec,
        "--limit",
        "192",
        "--test-limit",
        "32",
        "--batch-size",
        "32",
        "--quiet",
        "--seed",
        "4",
        "--optimizer",
        "adamw",
        "--schedule",
        "step",
        "--step-size",
        "1",
        "--gamma",
        "0.7",
        "--warmup",
        "1",
        "--label-smoothing",
        "0.1",
        "--augment",
        "crop=2,flip",
    ];
    let (whole, half) = (dir.join("whole.safetensors"), dir.join("half.safetensors"));
    let plot = dir.join("curves.png");
    ok(&[&common[..], &["--epochs", "4", "--save", s(&whole), "--plot", s(&plot)]].concat());
    ok(&[&common[..], &["--epochs", "2", "--save", s(&half)]].concat());
    ok(&[&common[..], &["--epochs", "4", "--resume", s(&half)]].concat());
    let a = gconv::nn::checkpoint::load(&whole).expect("whole");
    let b = gconv::nn::checkpoint::load(&half).expect("resumed");
    assert_eq!(a.len(), b.len());
    for ((name, _, x), (_, _, y)) in a.iter().zip(&b) {
        let diff = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(diff <= 1e-6, "{name}: resumed run differs by {diff}");
    }
    // The curves of the four-epoch run: a picture of both panels.
    let img = image::open(&plot).expect("curves");
    assert_eq!((img.width(), img.height()), (1000, 420));
    std::fs::remove_dir_all(&dir).ok();
}
