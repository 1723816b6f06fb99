//! What the end-to-end tests share: running the binary, its expected failures, scratch
//! directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

pub fn gconv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gconv"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("the gconv binary runs")
}

/// Runs gconv and returns its stdout, failing with its stderr when it fails.
pub fn ok(args: &[&str]) -> String {
    let out = gconv(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gconv {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs gconv expecting a failure: exit status 1 and an error naming `cause`, no panic.
pub fn fails(args: &[&str], cause: &str) {
    let out = gconv(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "gconv {args:?} succeeded");
    assert!(matches!(out.status.code(), Some(1 | 2)), "gconv {args:?}: {:?}", out.status);
    assert!(stderr.contains(cause), "gconv {args:?}: {stderr:?} does not mention {cause:?}");
    assert!(!stderr.contains("panicked"), "gconv {args:?} panicked: {stderr}");
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gconv-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
