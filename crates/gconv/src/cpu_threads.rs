//! A CPU adapter's worker threads, one CPU each (Linux).
//!
//! lavapipe (llvmpipe) runs a dispatch's workgroups on a pool of worker threads, one per CPU,
//! each taking a fixed share of the workgroups and sleeping between dispatches. The thread that
//! wakes them (the driver's queue thread) is still running on its CPU when it does, so Linux
//! often queues every worker on one other CPU; when the waker then sleeps, its CPU stays idle,
//! because a worker that ran on the busy CPU a moment ago counts as cache-hot there and is not
//! moved. On two cores the workers then take turns on one CPU for whole dispatches. `perf
//! sched` on a two-core VM showed it: workers waiting 90-170 ms a second to run with a CPU idle,
//! and MobileNetV2's inference at batch 16 taking 536-570 ms against 393-402 ms with each worker
//! pinned to a CPU of its own.
//!
//! So [`Context::with_options`](crate::Context::with_options), when it opens a CPU adapter,
//! takes the threads the driver started meanwhile that kept the name of the thread creating the
//! context (the driver's unnamed threads; its named ones, such as llvmpipe's `llvmpipe-N`
//! rasterizer threads, are left). lavapipe starts its queue thread first, then its workers. The
//! queue thread stays free: it runs the command buffers, their copies and the JIT compilation of
//! every pipeline variant, single-threaded work that pinned beside a worker (and beside every
//! other context's queue thread) ran the test suite on one CPU. The others are pinned each to
//! one CPU in turn of those this process may run on, so consecutive workers get different CPUs.
//! It never touches the threads of a host's device
//! ([`Context::from_wgpu`](crate::Context::from_wgpu)) or any thread it did not see start;
//! `GCONV_PIN_THREADS=0` turns it off. A thread that names itself only once it runs can be
//! pinned before it does (Mesa's disk-cache queue, which then widens its own affinity again);
//! it comes after the workers, so they keep their CPUs.

/// The environment variable that, set to `0`, keeps a CPU adapter's threads unpinned.
pub const PIN_THREADS_ENV: &str = "GCONV_PIN_THREADS";

/// Whether [`PIN_THREADS_ENV`] allows pinning (anything but `0`, or unset).
pub(crate) fn pinning_allowed() -> bool {
    !matches!(std::env::var(PIN_THREADS_ENV).as_deref().map(str::trim), Ok("0"))
}

/// The process's threads (ids) when taken, and the name of the thread that took it.
pub(crate) struct Snapshot {
    threads: Vec<i32>,
    name: Option<String>,
}

/// A driver thread a context pinned to one CPU: its id and the CPU (see
/// [`Context::pinned_threads`](crate::Context::pinned_threads)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedThread {
    /// The thread's id (Linux's tid).
    pub thread: i32,
    /// The CPU it may run on.
    pub cpu: usize,
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{PinnedThread, Snapshot};
    use rustix::thread::{CpuSet, Pid, sched_getaffinity, sched_setaffinity};

    fn comm(path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok().map(|s| s.trim_end().to_string())
    }

    fn threads() -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
        let mut ids: Vec<i32> =
            dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn snapshot() -> Snapshot {
        Snapshot { threads: threads(), name: comm("/proc/thread-self/comm") }
    }

    pub(crate) fn spread(before: &Snapshot) -> Vec<PinnedThread> {
        let Some(name) = &before.name else { return Vec::new() };
        let Ok(allowed) = sched_getaffinity(None) else { return Vec::new() };
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c)).collect();
        let started: Vec<i32> = threads()
            .into_iter()
            .filter(|t| !before.threads.contains(t))
            .filter(|t| comm(&format!("/proc/self/task/{t}/comm")).as_ref() == Some(name))
            .collect();
        // The first is the driver's queue thread (module note); at least two workers follow.
        if cpus.len() < 2 || started.len() < 3 {
            return Vec::new();
        }
        let mut pinned = Vec::new();
        for (i, &thread) in started[1..].iter().enumerate() {
            let cpu = cpus[i % cpus.len()];
            let mut set = CpuSet::new();
            set.set(cpu);
            // A thread that has exited meanwhile (or refuses) is simply left out.
            let Some(pid) = Pid::from_raw(thread) else { continue };
            if sched_setaffinity(Some(pid), &set).is_ok() {
                pinned.push(PinnedThread { thread, cpu });
            }
        }
        pinned
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{snapshot, spread};

#[cfg(not(target_os = "linux"))]
pub(crate) fn snapshot() -> Snapshot {
    Snapshot { threads: Vec::new(), name: None }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn spread(_before: &Snapshot) -> Vec<PinnedThread> {
    Vec::new()
}
