//! A CPU adapter's driver threads, pinned to one CPU each (gconv's cpu_threads.rs): lavapipe's
//! workers otherwise often share one CPU while another idles.

use gconv::{Context, ContextOptions};

/// The CPUs a `Cpus_allowed_list` line of /proc names ("0-1,4").
fn cpu_list(line: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in line.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(lo.parse::<usize>().expect("a CPU")..=hi.parse::<usize>().expect("a CPU"));
    }
    cpus
}

/// A thread's name, as Linux keeps it.
fn comm(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim_end().to_string()
}

/// This process's threads, in the order Linux numbered them (none without /proc).
fn threads() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut ids: Vec<i32> =
        dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    ids.sort_unstable();
    ids
}

/// The CPUs Linux lets a thread of this process run on.
fn allowed(status: &str) -> Vec<usize> {
    let text = std::fs::read_to_string(status).expect("a thread's status");
    let line = text.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("a list");
    cpu_list(line)
}

#[test]
fn a_cpu_adapters_threads_are_spread_over_the_cpus_and_stay_put_when_asked() {
    let options = ContextOptions::default();
    let before = threads();
    let ctx = Context::with_options(&options).expect("context");
    // The threads the driver started, unnamed (this thread's name), first to last.
    let name = |thread: i32| comm(&format!("/proc/self/task/{thread}/comm"));
    let ours = comm("/proc/thread-self/comm");
    let started: Vec<i32> =
        threads().into_iter().filter(|&t| !before.contains(&t) && name(t) == ours).collect();
    if !cfg!(target_os = "linux") || !ctx.is_cpu_adapter() {
        // Only a CPU adapter's threads, and only on Linux.
        assert!(ctx.pinned_threads().is_empty());
        return;
    }
    let cpus = allowed("/proc/thread-self/status");
    let pinned = ctx.pinned_threads();
    if cpus.len() < 2 {
        assert!(pinned.is_empty(), "one CPU: nothing to spread, yet {pinned:?}");
        return;
    }
    // lavapipe starts a worker a CPU and a queue thread; the queue thread stays free.
    assert!(pinned.len() >= 2, "pinned {pinned:?} on CPUs {cpus:?}");
    let queue = started.first().expect("the driver's queue thread");
    assert!(pinned.iter().all(|p| p.thread != *queue), "queue thread {queue} pinned: {pinned:?}");
    assert_eq!(allowed(&format!("/proc/self/task/{queue}/status")), cpus, "queue thread");
    for pair in pinned.windows(2) {
        assert_ne!(pair[0].cpu, pair[1].cpu, "consecutive threads on one CPU: {pinned:?}");
    }
    // Linux says each still runs on its CPU alone. A thread that names itself once it runs
    // (Mesa's disk-cache queue, which also widens its own affinity) may have been pinned
    // before it did; the driver's unnamed threads keep this thread's name.
    let mut checked = 0;
    for p in pinned.iter().filter(|p| name(p.thread) == ours) {
        assert!(cpus.contains(&p.cpu), "{p:?} outside {cpus:?}");
        let on = allowed(&format!("/proc/self/task/{}/status", p.thread));
        assert_eq!(on, [p.cpu], "{p:?} may run on {on:?}; pinned {pinned:?}");
        checked += 1;
    }
    assert!(checked >= 2, "fewer than two unnamed driver threads among {pinned:?}");
    // The context works with its threads pinned.
    let x = gconv::Tensor::from_slice(&ctx, &[1.0, -2.0, 3.0, -4.0], &[4]).expect("tensor");
    assert_eq!(gconv::ops::relu(&x).expect("relu").to_vec().expect("read"), [1.0, 0.0, 3.0, 0.0]);

    let off = Context::with_options(&ContextOptions { pin_cpu_threads: false, ..options })
        .expect("second context");
    assert!(off.pinned_threads().is_empty());
}
