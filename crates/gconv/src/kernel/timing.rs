//! Timing a plan's kernels on the device: one kernel at a time (`GCONV_PROFILE`), or one
//! range of steps (a layer's forward or backward kernels) at a time, for `gconv profile`.
//!
//! Where the device has a clock to read (`Context::device_clock`: a GPU with timestamp
//! queries), every range runs in one submission between two timestamps the GPU writes (an
//! empty compute pass each, written when all earlier work has finished), so a part's time is
//! the device's alone. Elsewhere (CPU adapters included) each range is a submission of its
//! own, timed on the host from submit to the end of the wait, less what an empty submission
//! takes: on a discrete GPU the round trip (~0.1 ms) would otherwise count in every part, and
//! on lavapipe about 0.25 ms.

use std::ops::Range;

use super::{Part, Step, StepOp, replay};
use crate::{Context, Error, Result};

/// Runs `part` of a plan's steps one kernel at a time and returns the time of each entry
/// point summed (`GCONV_PROFILE=1`: for finding the kernel that dominates).
pub(crate) fn profile(
    ctx: &Context,
    steps: &[Step],
    part: Part,
) -> Result<Vec<(&'static str, f64)>> {
    let ranges: Vec<Range<usize>> =
        (0..steps.len()).filter(|&i| part.takes(&steps[i])).map(|i| i..i + 1).collect();
    let seconds = time_each(ctx, steps, &ranges, part)?;
    let mut times: Vec<(&'static str, f64)> = Vec::new();
    for (range, t) in ranges.iter().zip(seconds) {
        let step = &steps[range.start];
        let label = label(step);
        if std::env::var_os("GCONV_PROFILE_EACH").is_some() {
            match &step.op {
                StepOp::Dispatch(p) => {
                    eprintln!("    {label} {:?}: {:.3} ms", p.workgroups, t * 1e3)
                }
                StepOp::Copy(c) => eprintln!("    copy ({}): {:.3} ms", c.describe(), t * 1e3),
            }
        }
        match times.iter_mut().find(|(l, _)| *l == label) {
            Some(e) => e.1 += t,
            None => times.push((label, t)),
        }
    }
    times.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(times)
}

/// Times `part` of each range of `steps` (see the module's note): the seconds each took and
/// the entry points it ran (in order, each once).
pub(crate) fn time_ranges(
    ctx: &Context,
    steps: &[Step],
    ranges: &[Range<usize>],
    part: Part,
) -> Result<Vec<(f64, Vec<&'static str>)>> {
    let seconds = time_each(ctx, steps, ranges, part)?;
    Ok(ranges
        .iter()
        .zip(seconds)
        .map(|(range, t)| {
            let mut kernels: Vec<&'static str> = Vec::new();
            for label in steps[range.clone()].iter().filter(|s| part.takes(s)).map(label) {
                if !kernels.contains(&label) {
                    kernels.push(label);
                }
            }
            (t, kernels)
        })
        .collect())
}

fn label(step: &Step) -> &'static str {
    match &step.op {
        StepOp::Copy(_) => "copy",
        StepOp::Dispatch(p) => p.label,
    }
}

/// Pieces of work one call of [`Context::time_on_device`] times: two timestamps each, in one
/// query set.
const MAX_PIECES: usize = wgpu::QUERY_SET_MAX_QUERIES as usize / 2;

/// The seconds `part` of each range of `steps` took, on the device's clock where it has one.
fn time_each(
    ctx: &Context,
    steps: &[Step],
    ranges: &[Range<usize>],
    part: Part,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(ranges.len());
    for chunk in ranges.chunks(MAX_PIECES) {
        let record = |k: usize, encoder: &mut wgpu::CommandEncoder| {
            replay(&steps[chunk[k].clone()], part, encoder, "gconv profile");
            Ok(())
        };
        match ctx.time_on_device(chunk.len(), record)? {
            Some(times) => out.extend(times),
            None => {
                let base = empty_submission(ctx)?;
                return ranges
                    .iter()
                    .map(|r| Ok((host_time(ctx, &steps[r.clone()], part)? - base).max(0.0)))
                    .collect();
            }
        }
    }
    Ok(out)
}

/// What a host-timed part pays besides its work: one empty submission and its wait (the
/// median of nine; about 0.25 ms on lavapipe, where a step of MobileNetV2 has some 900 parts).
fn empty_submission(ctx: &Context) -> Result<f64> {
    let mut times =
        (0..9).map(|_| host_time(ctx, &[], Part::Whole)).collect::<Result<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// One submission of `part` of `steps`, waited for, timed on the host.
fn host_time(ctx: &Context, steps: &[Step], part: Part) -> Result<f64> {
    let mut encoder =
        ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
    replay(steps, part, &mut encoder, "gconv profile");
    let start = std::time::Instant::now();
    ctx.submit(encoder.finish());
    ctx.synchronize()?;
    Ok(start.elapsed().as_secs_f64())
}

impl Context {
    /// The seconds the device spent on each of `parts` pieces of work, where `record(k,
    /// encoder)` records piece `k`: all in one submission, each between two timestamps the
    /// device writes once all earlier work has finished (so pieces do not overlap), waited
    /// for. `None` where the device has no clock to read ([`Context::device_clock`]). At most
    /// 2048 pieces a call.
    ///
    /// # Errors
    /// What `record` returns; [`Error::InvalidArgument`] for more than 2048 pieces;
    /// [`Error::Gpu`] if the device fails.
    pub fn time_on_device(
        &self,
        parts: usize,
        mut record: impl FnMut(usize, &mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<Option<Vec<f64>>> {
        if !self.device_clock() {
            return Ok(None);
        }
        if parts > MAX_PIECES {
            return Err(Error::invalid(
                "time_on_device",
                format!("{parts} pieces of work; a call times at most {MAX_PIECES}"),
            ));
        }
        if parts == 0 {
            return Ok(Some(Vec::new()));
        }
        let device = self.device();
        let count = 2 * parts as u32;
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("gconv timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = u64::from(count) * 8;
        let buffer = |usage| {
            self.create_buffer(&wgpu::BufferDescriptor {
                label: Some("gconv timestamps"),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let resolved = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let stamp = |encoder: &mut wgpu::CommandEncoder, index: u32| {
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gconv timestamp"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(index),
                    end_of_pass_write_index: None,
                }),
            });
        };
        for k in 0..parts {
            stamp(&mut encoder, 2 * k as u32);
            record(k, &mut encoder)?;
            stamp(&mut encoder, 2 * k as u32 + 1);
        }
        encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
        self.submit(encoder.finish());
        let gpu = |message: String| Error::Gpu { op: "time_on_device".into(), message };
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu(e.to_string()))?;
        rx.recv().map_err(|e| gpu(e.to_string()))?.map_err(|e| gpu(e.to_string()))?;
        let ticks: Vec<u64> = {
            let view = staging.slice(..).get_mapped_range().map_err(|e| gpu(e.to_string()))?;
            bytemuck::pod_collect_to_vec::<u8, u64>(&view)
        };
        staging.unmap();
        let period = f64::from(self.queue().get_timestamp_period()) * 1e-9;
        Ok(Some(ticks.chunks(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period).collect()))
    }
}
