//! The PyTorch golden cases of tests/goldens, on the GPU and on gconv-ref.

use gconv_tests::golden;

#[test]
fn pytorch_goldens_pass_on_gpu_and_reference() {
    let s =
        golden::run_dir(super::common::ctx(), &golden::default_dir()).expect("golden directory");
    let lines: Vec<String> =
        s.failed.iter().map(|(c, f)| format!("{c}: {}", f.join("; "))).collect();
    assert!(lines.is_empty(), "{} golden cases failed:\n{}", lines.len(), lines.join("\n"));
    assert!(s.passed >= 53, "only {} cases ran", s.passed);
}
