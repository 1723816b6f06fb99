//! Project automation, run as `cargo xtask <task>` (alias in .cargo/config.toml):
//!
//! - `test`: the whole suite, cheapest checks first: formatting, tidy rules, the dependency
//!   invariant, a GPU adapter (installing lavapipe on Debian when none exists), clippy, the
//!   tests, rustdoc, the golden runner's summary, and the library's examples (host
//!   applications on their own wgpu device), whose results are checked.
//! - `goldens [DIR]`: every PyTorch golden case of DIR (default tests/goldens) on the GPU and
//!   on gconv-ref.
//! - `bench [--quick] [--json FILE] [--only SECTIONS] [--layer TEXT]`: gconv-bench (GEMM
//!   against the CPU's SGEMM, convolution layers, pooling, training and inference speed, a
//!   VGG16 step, the branching models), built in release mode; `--quick` runs a small subset
//!   once each in the test profile (`test` runs it last);
//!   `--only gemm,conv,pool,train,vgg16,branching,models,overhead` picks sections,
//!   `--layer TEXT` the convolution layers whose name contains TEXT.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n==> {step}");
    let status = cmd.status().with_context(|| format!("could not start {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("goldens") => goldens(args.get(1).map(PathBuf::from)),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test | cargo xtask goldens [DIR] | \
                 cargo xtask bench [--quick] [--json FILE] [--only SECTIONS] [--layer TEXT]"
            );
            std::process::exit(2);
        }
    }
}

fn goldens(dir: Option<PathBuf>) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "--package", "gconv-tests", "--bin", "gconv-goldens", "--"]);
    if let Some(dir) = dir {
        // Relative to where the user stands, not to the workspace root cargo runs in.
        let dir = std::fs::canonicalize(&dir)
            .with_context(|| format!("no directory {}", dir.display()))?;
        cmd.arg(dir);
    }
    run("goldens", &mut cmd)
}

fn bench(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    let quick = args.iter().any(|a| a == "--quick");
    cmd.args(["run", "--quiet", "--package", "gconv-bench"]);
    if !quick {
        cmd.arg("--release");
    }
    cmd.arg("--");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                cmd.arg(arg);
            }
            "--json" => {
                let file = it.next().context("--json needs a file name")?;
                // Relative to where the user stands, not to the workspace root cargo runs in.
                let path = std::env::current_dir()?.join(file);
                cmd.arg("--json").arg(path);
            }
            "--only" => {
                let sections = it.next().context("--only needs sections, e.g. gemm,conv")?;
                cmd.arg("--only").arg(sections);
            }
            "--layer" => {
                let text = it.next().context("--layer needs part of a layer's name")?;
                cmd.arg("--layer").arg(text);
            }
            other => bail!(
                "unknown bench argument {other:?} \
                 (expected --quick, --json FILE, --only SECTIONS, --layer TEXT)"
            ),
        }
    }
    run("bench", &mut cmd)
}

fn test() -> Result<()> {
    run("rustfmt", cargo().args(["fmt", "--all", "--", "--check"]))?;
    tidy()?;
    dependency_invariants()?;
    ensure_adapter()?;
    // -D warnings as clippy's own argument, not RUSTFLAGS: dependencies keep one fingerprint,
    // so rustdoc below reuses the metadata clippy built.
    run(
        "clippy",
        cargo().args(["clippy", "--workspace", "--all-targets", "--quiet", "--", "-D", "warnings"]),
    )?;
    run("tests", cargo().args(["test", "--workspace"]))?;
    run(
        "rustdoc",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--quiet"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    goldens(None)?;
    examples()?;
    // Benchmarks are not timed tests: this only checks that every one of them runs.
    bench(&["--quick".to_string()])
}

/// Runs a command and returns its stdout, echoing it; fails with its stderr.
fn output(step: &str, cmd: &mut Command) -> Result<String> {
    eprintln!("\n==> {step}");
    let out = cmd.output().with_context(|| format!("could not start {step}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprint!("{stdout}");
    if !out.status.success() {
        bail!("{step} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

/// The predicted class in a line like `...: class 7 (97.6%)`.
fn predicted_class(text: &str) -> Option<u32> {
    let rest = &text[text.find("class ")? + 6..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The examples: the headless app's prediction on the digit its shader draws must equal
/// `gconv predict` on the same image, and the Sobel loop must match the CPU reference (it
/// exits with an error otherwise).
fn examples() -> Result<()> {
    let dir = root().join("target/xtask");
    std::fs::create_dir_all(&dir)?;
    let checkpoint = root().join("tests/checkpoints/simplecnn.safetensors");
    for digit in ["7", "4"] {
        let image = dir.join(format!("drawn-{digit}.png"));
        let mut run_example = cargo();
        run_example
            .args(["run", "--quiet", "--package", "gconv", "--example", "headless_digit", "--"])
            .args(["--digit", digit, "--save-image"])
            .arg(&image);
        let example = output(&format!("example headless_digit --digit {digit}"), &mut run_example)?;
        let predict = output(
            "gconv predict on the same image",
            cargo()
                .args(["run", "--quiet", "--package", "gconv-cli", "--", "predict"])
                .args(["--model", "simplecnn", "--checkpoint"])
                .arg(&checkpoint)
                .arg(&image),
        )?;
        let (a, b) = (predicted_class(&example), predicted_class(&predict));
        if a.is_none() || a != b {
            bail!("the example predicted {a:?} but gconv predict {b:?} on {}", image.display());
        }
    }
    let sobel = output(
        "example sobel_loop",
        cargo()
            .args(["run", "--quiet", "--package", "gconv", "--example", "sobel_loop", "--"])
            .args(["--frames", "60"]),
    )?;
    if !sobel.contains("matches the CPU reference") {
        bail!("sobel_loop did not report a match with the CPU reference");
    }
    Ok(())
}

/// Files a newcomer can read, at most this many lines: the library's Rust (the folder
/// `crates/gconv/src`), every shader, and the code map.
const MAX_LINES: [(&str, &str, usize); 3] =
    [("crates/gconv/src", "rs", 800), ("shaders", "wgsl", 600), ("", "ARCHITECTURE.md", 170)];

/// Every Rust file opens with a `//!` line saying what it is for; every shader with a `//`
/// line naming itself. No file is longer than [`MAX_LINES`] allows.
fn tidy() -> Result<()> {
    eprintln!("\n==> tidy");
    let mut bad = Vec::new();
    let mut long = Vec::new();
    let mut check_length = |path: &Path, text: &str| {
        let relative = path.strip_prefix(root()).unwrap_or(path);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let rule = MAX_LINES
            .iter()
            .find(|(dir, kind, _)| relative.starts_with(dir) && (*kind == ext || *kind == name));
        let lines = text.lines().count();
        if let Some((_, _, max)) = rule
            && lines > *max
        {
            long.push(format!("{} ({lines} lines, at most {max})", relative.display()));
        }
    };
    let architecture = root().join("ARCHITECTURE.md");
    check_length(&architecture, &std::fs::read_to_string(&architecture).unwrap_or_default());
    for dir in ["crates", "tests", "xtask", "shaders"] {
        visit(&root().join(dir), &mut |path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let first = text.lines().next().unwrap_or("");
            let ok = match path.extension().and_then(|e| e.to_str()) {
                Some("rs") => first.starts_with("//!"),
                Some("wgsl") => {
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    first.starts_with("//") && first.contains(name)
                }
                _ => true,
            };
            if !ok {
                bad.push(path.display().to_string());
            }
            check_length(path, &text);
        })?;
    }
    if !bad.is_empty() {
        bail!("files without a leading comment saying what they are for:\n  {}", bad.join("\n  "));
    }
    if !long.is_empty() {
        bail!("files too long to read at once (split them by concern):\n  {}", long.join("\n  "));
    }
    Ok(())
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path)) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target" || n == "goldens") {
                continue;
            }
            visit(&path, f)?;
        } else {
            f(&path);
        }
    }
    Ok(())
}

/// Architecture invariant: gconv-ref does not depend on wgpu (the reference stays independent
/// of the GPU stack it checks).
fn dependency_invariants() -> Result<()> {
    eprintln!("\n==> dependency invariants");
    let out = cargo()
        .args([
            "tree",
            "--quiet",
            "--package",
            "gconv-ref",
            "--edges",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .context("running cargo tree")?;
    if !out.status.success() {
        bail!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = tree.lines().find(|l| l.starts_with("wgpu") || l.starts_with("naga")) {
        bail!("gconv-ref must not depend on the GPU stack, but it pulls in {line}");
    }
    Ok(())
}

fn adapter_exists() -> Result<bool> {
    let status = cargo()
        .args(["run", "--quiet", "--package", "gconv-cli", "--", "devices", "--check"])
        .status()
        .context("running gconv devices")?;
    Ok(status.success())
}

/// The suite needs a wgpu adapter. Without one, on Debian as root, install Mesa's software
/// Vulkan driver (lavapipe); otherwise stop with the fix, never skip the GPU tests silently.
fn ensure_adapter() -> Result<()> {
    eprintln!("\n==> GPU adapter");
    if adapter_exists()? {
        return Ok(());
    }
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !(is_root && Path::new("/etc/debian_version").exists()) {
        bail!(
            "no GPU adapter: install a Vulkan driver (Debian/Ubuntu: `apt-get install \
             mesa-vulkan-drivers` for the software driver lavapipe) or your GPU's driver"
        );
    }
    eprintln!("no GPU adapter: installing mesa-vulkan-drivers (lavapipe) with apt-get");
    run("apt-get update", Command::new("apt-get").args(["update", "-qq"]))?;
    run(
        "apt-get install mesa-vulkan-drivers",
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", "mesa-vulkan-drivers"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    if !adapter_exists()? {
        bail!("still no GPU adapter after installing mesa-vulkan-drivers");
    }
    Ok(())
}
