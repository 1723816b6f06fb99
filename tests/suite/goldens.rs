//! The PyTorch golden cases of tests/goldens, on the GPU and on gconv-ref, on every context:
//! the default kernels and each slower twin (no subgroups, the workgroup GEMM layout, im2col
//! with the storage-buffer GEMM, the direct kernels).

use gconv_tests::golden;

use super::common::every_context;

#[test]
fn pytorch_goldens_pass_on_gpu_and_reference_on_every_context() {
    for (name, c) in every_context() {
        let s = golden::run_dir(c, &golden::default_dir()).expect("golden directory");
        let lines: Vec<String> =
            s.failed.iter().map(|(c, f)| format!("{c}: {}", f.join("; "))).collect();
        assert!(
            lines.is_empty(),
            "{name}: {} golden cases failed:\n{}",
            lines.len(),
            lines.join("\n")
        );
        assert!(s.passed >= 53, "{name}: only {} cases ran", s.passed);
    }
}
