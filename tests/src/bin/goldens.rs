//! `gconv-goldens [DIR]`: runs every PyTorch golden case of DIR (default: tests/goldens) on the
//! GPU and on gconv-ref; one line per failing case, then `N passed, N failed`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map_or_else(gconv_tests::golden::default_dir, Into::into);
    let ctx = match gconv::Context::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("adapter: {}", ctx.adapter_name());
    println!("goldens: {}", dir.display());
    let s = match gconv_tests::golden::run_dir(&ctx, &dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    for (case, failures) in &s.failed {
        println!("FAILED {case}: {}", failures.join("; "));
    }
    println!(
        "{} expected tensors compared (forward and gradients, GPU and reference)",
        s.tensors_checked
    );
    println!("{} passed, {} failed", s.passed, s.failed.len());
    if s.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
