//! The bench's peers in the same run: PyTorch and ONNX Runtime on the CPU, through
//! `peers.py`, when a Python with torch, torchvision and onnxruntime is found
//! (`GCONV_BENCH_PYTHON`, else `python3`). Absent, the report's peer columns stay null and the
//! bench says why; nothing fails.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The peers' report (see peers.py), or why there is none.
pub(crate) fn run(quick: bool) -> Result<Value, String> {
    let python = std::env::var("GCONV_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers.py");
    let probe = Command::new(&python)
        .args(["-c", "import torch, torchvision"])
        .output()
        .map_err(|e| format!("no {python} ({e})"))?;
    if !probe.status.success() {
        return Err(format!("{python} has no torch and torchvision"));
    }
    let mut cmd = Command::new(&python);
    cmd.arg(&script);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.output().map_err(|e| format!("{} did not run ({e})", script.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("peers.py failed: {}", err.lines().last().unwrap_or("")));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).map_err(|e| format!("peers.py printed no report ({e})"))
}

/// Fills each row's `torch_images_per_sec` and `onnxruntime_images_per_sec` from `peers`.
pub(crate) fn fill(rows: &mut [Value], peers: &Value) {
    for row in rows {
        let model = row["model"].as_str().unwrap_or("").to_string();
        let work = row["work"].as_str().unwrap_or("").to_string();
        let batch = row["batch"].to_string();
        for (peer, key) in
            [("torch", "torch_images_per_sec"), ("onnxruntime", "onnxruntime_images_per_sec")]
        {
            let v = &peers[peer][&model][&work][&batch];
            if v.is_number() {
                row[key] = v.clone();
            }
        }
    }
}
