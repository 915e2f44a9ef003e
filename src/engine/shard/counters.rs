//! Counters of one shard: requests by route, refusals by the per-key
//! bounds, flushes, flow-control waits and compaction work.
//!
//! Owns the counter cells. Bumped only on the shard's own core (plain
//! `Cell`s, no atomics); they only grow (wrapping at `u64::MAX`), except
//! the two disk-full flags, which say what the last attempt found. The
//! duration histograms (flushes, compactions) live here too.

use crate::histogram::DurationHistogram;
use std::cell::Cell;

/// Request counters, bumped by the router on this core.
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub requests_local: Cell<u64>,
    pub requests_forwarded_out: Cell<u64>,
    pub requests_forwarded_in: Cell<u64>,
    /// Puts refused by a per-key bound (Write/Delete past any bound,
    /// Repair past the hard ceiling).
    pub puts_refused_by_bounds: Cell<u64>,
    /// Replica puts accepted that left their key past a soft bound.
    pub replica_puts_past_bounds: Cell<u64>,
    pub flushes: Cell<u64>,
    pub flush_bytes: Cell<u64>,
    /// Flush attempts that failed (each is retried).
    pub flush_failures: Cell<u64>,
    /// How long each stored flush took (table written, manifest edited).
    pub flush_latency: DurationHistogram,
    /// Writes that waited at a stop threshold, and the time they waited.
    pub write_stalls: Cell<u64>,
    pub write_stall_micros: Cell<u64>,
    /// Writes delayed past a slowdown threshold, and the delay given.
    pub write_slowdowns: Cell<u64>,
    pub write_slowdown_micros: Cell<u64>,
    pub compactions: Cell<u64>,
    pub compaction_trivial_moves: Cell<u64>,
    pub compaction_bytes_read: Cell<u64>,
    pub compaction_bytes_written: Cell<u64>,
    pub compaction_micros: Cell<u64>,
    pub compaction_throttled_micros: Cell<u64>,
    pub compaction_keys_purged: Cell<u64>,
    pub compaction_failures: Cell<u64>,
    /// How long each merge took (trivial moves are not counted).
    pub compaction_latency: DurationHistogram,
    /// The last flush (compaction) failed for lack of disk space; cleared
    /// by the next one that succeeds.
    pub flush_disk_full: Cell<bool>,
    pub compaction_disk_full: Cell<bool>,
    /// Keys cleanups removed (ranges no longer owned).
    pub cleanup_keys_removed: Cell<u64>,
    /// CPU time of the compaction and flush task queues and of the whole
    /// executor, accumulated from glommio's reset-on-read figures.
    pub compaction_cpu_micros: Cell<u64>,
    pub flush_cpu_micros: Cell<u64>,
    pub executor_cpu_micros: Cell<u64>,
}

impl ShardCounters {
    pub(crate) fn bump(cell: &Cell<u64>) {
        Self::add(cell, 1);
    }

    pub(crate) fn add(cell: &Cell<u64>, n: u64) {
        cell.set(cell.get().wrapping_add(n));
    }
}
