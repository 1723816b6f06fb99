//! Stopping a run cleanly: the first SIGINT (Ctrl-C) or SIGTERM asks the training loop to stop
//! after the step in flight, save and exit with 130 or 143; a second signal exits at once with
//! that status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// The signals a run stops on, with the exit status a shell gives a process they end.
const SIGNALS: [(i32, i32, &str); 2] = [(SIGINT, 130, "SIGINT"), (SIGTERM, 143, "SIGTERM")];

/// Whether a stop was asked for, and by which signal.
pub struct Interrupt {
    requested: Arc<AtomicBool>,
    status: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Installs the handlers (for the rest of the process).
    pub fn install() -> Result<Interrupt> {
        let requested = Arc::new(AtomicBool::new(false));
        let status = Arc::new(AtomicUsize::new(0));
        for (signal, code, name) in SIGNALS {
            // The shutdown goes first: it fires only when an earlier signal set the flag.
            (|| {
                flag::register_conditional_shutdown(signal, code, Arc::clone(&requested))?;
                flag::register_usize(signal, Arc::clone(&status), code as usize)?;
                flag::register(signal, Arc::clone(&requested))
            })()
            .with_context(|| format!("installing a handler for {name}"))?;
        }
        Ok(Interrupt { requested, status })
    }

    /// The signal that asked the run to stop, if one did.
    pub fn requested(&self) -> Option<Interrupted> {
        if !self.requested.load(Ordering::SeqCst) {
            return None;
        }
        let status = self.status.load(Ordering::SeqCst) as i32;
        let signal = SIGNALS.iter().find(|s| s.1 == status).map_or("a signal", |s| s.2);
        Some(Interrupted { status, signal })
    }
}

/// How a run stopped by a signal ends: `main` exits with `status` (130 for SIGINT, 143 for
/// SIGTERM) after printing the message.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted {
    /// The exit status.
    pub status: i32,
    /// The signal's name.
    pub signal: &'static str,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", self.signal)
    }
}

impl std::error::Error for Interrupted {}
