//! Timing a plan's kernels on the device: one kernel at a time (`GCONV_PROFILE`), or one
//! range of steps (a layer's forward or backward kernels) per submission, for `gconv profile`.

use std::ops::Range;

use super::{Step, replay};
use crate::Context;

/// Runs a plan's steps one submission per kernel, waiting for each, and returns the time of
/// each entry point summed (`GCONV_PROFILE=1`: slow, for finding the kernel that dominates).
pub(crate) fn profile(ctx: &Context, steps: &[Step]) -> Vec<(&'static str, f64)> {
    let mut times: Vec<(&'static str, f64)> = Vec::new();
    for step in steps {
        let mut encoder =
            ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let label = match step {
            Step::Copy(op) => {
                op.record(&mut encoder);
                "copy"
            }
            Step::Dispatch(p) => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                });
                p.dispatch(&mut pass);
                p.label
            }
        };
        let start = std::time::Instant::now();
        ctx.submit(encoder.finish());
        let _ = ctx.synchronize();
        let t = start.elapsed().as_secs_f64();
        if std::env::var_os("GCONV_PROFILE_EACH").is_some() {
            if let Step::Dispatch(p) = step {
                eprintln!("    {label} {:?}: {:.2} ms", p.workgroups, t * 1e3);
            }
        }
        match times.iter_mut().find(|(l, _)| *l == label) {
            Some(e) => e.1 += t,
            None => times.push((label, t)),
        }
    }
    times.sort_by(|a, b| b.1.total_cmp(&a.1));
    times
}

/// Runs each range of `steps` as one submission and waits for it: the seconds each took and
/// the entry points it ran (in order, each once).
pub(crate) fn time_ranges(
    ctx: &Context,
    steps: &[Step],
    ranges: &[Range<usize>],
) -> crate::Result<Vec<(f64, Vec<&'static str>)>> {
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let part = &steps[range.clone()];
        let mut kernels: Vec<&'static str> = Vec::new();
        for step in part {
            let label = match step {
                Step::Copy(_) => "copy",
                Step::Dispatch(p) => p.label,
            };
            if !kernels.contains(&label) {
                kernels.push(label);
            }
        }
        let mut encoder =
            ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        replay(part, &mut encoder, "gconv profile");
        let start = std::time::Instant::now();
        ctx.submit(encoder.finish());
        ctx.synchronize()?;
        out.push((start.elapsed().as_secs_f64(), kernels));
    }
    Ok(out)
}
