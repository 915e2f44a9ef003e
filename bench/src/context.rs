//! The shared context of one benchmark run: the parameters every request
//! loop reads and the live counters they bump (atomics: the loops run on a
//! multi-threaded runtime). Owned by the driver, read by the preload passes
//! and the compaction poller.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::cli::Args;
use crate::keys::{KeyChooser, KeyTracker};
use crate::values::ValueSource;

/// How many individual error messages are echoed to stderr.
const MAX_LOGGED_ERRORS: u64 = 5;

/// Shared, read-only run parameters and live counters.
pub(crate) struct Ctx {
    pub(crate) args: Args,
    pub(crate) chooser: KeyChooser,
    pub(crate) values: ValueSource,
    /// Keys acknowledged by writes, when the key count is small enough.
    pub(crate) written: Option<KeyTracker>,
    pub(crate) measure_start: Instant,
    pub(crate) end: Instant,
    /// Operations finished (any phase), for the progress line.
    pub(crate) completed: AtomicU64,
    /// Operations started inside the measured window and finished.
    pub(crate) measured: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// MEMORY_PRESSURE answers (any phase), for the progress line.
    pub(crate) memory_pressure: AtomicU64,
    /// Whether the last compaction-state poll saw a compaction running.
    pub(crate) compacting: AtomicBool,
    /// Poll counters inside the measured window.
    pub(crate) polls: AtomicU64,
    pub(crate) polls_compacting: AtomicU64,
    pub(crate) poll_errors: AtomicU64,
}

impl Ctx {
    pub(crate) fn note_error(&self, msg: &str) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < MAX_LOGGED_ERRORS {
            eprintln!("error: {msg}");
        } else if n == MAX_LOGGED_ERRORS {
            eprintln!("error: (further errors are only counted)");
        }
    }
}
