//! The operations a shard executes and what it answers.
//!
//! These values cross cores over the channel mesh, so they hold only owned,
//! `Send` data (`Bytes`, `String`), already validated and decoded by the core
//! that received the request: the owning core never re-parses protobuf.

use super::shard::scan::{ScanPage, ScanRange};
use crate::histogram::DurationSnapshot;
use crate::model::{KeyRef, PutOrigin, TokenRanges, VectorClock, Version, VersionSet};
use bytes::Bytes;
use std::sync::Arc;

/// The clock a put carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PutClock {
    /// Empty clock on Write/Delete: the shard stamps a clock that descends
    /// every stored version.
    Blind,
    /// The caller's clock, applied by dominance and never stamped.
    Given(VectorClock),
}

/// One request for a shard.
#[derive(Debug, Clone)]
pub(crate) enum ShardOp {
    /// Write, Delete (value `None`) and Repair all reconcile one version.
    Put {
        key: KeyRef,
        value: Option<Bytes>,
        clock: PutClock,
        /// Client puts are checked against every per-key bound, replica
        /// puts (Repair) only against the hard ceiling.
        origin: PutOrigin,
    },
    Get {
        key: KeyRef,
    },
    /// Versions copied from another node (range moves): each applied as a
    /// repair (never stamped, reconciled by dominance) keeping its own
    /// timestamp, tombstones included; all at once, so they share WAL
    /// commits.
    ApplyBatch {
        entries: Vec<(KeyRef, Version)>,
    },
    /// Count and digest of every version whose key the filter keeps.
    Digest {
        filter: ScanFilter,
    },
    /// Drop every version in the ranges (data no longer owned).
    Cleanup {
        ranges: Arc<TokenRanges>,
    },
    /// Make every memtable a table, waiting at most `max`.
    Flush {
        max: std::time::Duration,
    },
    /// Compact `level` into the next one, or every level (`None`), whatever
    /// their scores, on the shard's compactor.
    Compact {
        level: Option<usize>,
    },
    /// One page of a range read.
    Scan {
        range: ScanRange,
        filter: ScanFilter,
    },
    Stats,
}

/// Which keys of a range a scan keeps.
#[derive(Debug, Clone)]
pub(crate) enum ScanFilter {
    All,
    /// Keys whose ring token lies in one of the ranges.
    Tokens(Arc<TokenRanges>),
}

impl ScanFilter {
    /// True when the scan keeps `storage_key`.
    pub(crate) fn keeps(&self, storage_key: &[u8]) -> bool {
        match self {
            ScanFilter::All => true,
            ScanFilter::Tokens(ranges) => crate::model::key::decode_storage_key(storage_key)
                .is_some_and(|(t, k)| ranges.contains(crate::model::ring_token(t, k))),
        }
    }
}

/// Per-shard figures for HealthCheck.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShardStats {
    pub shard: usize,
    pub keys: u64,
    pub memtable_bytes: u64,
    pub immutable_memtables: u64,
    pub immutable_bytes: u64,
    pub sstables: u64,
    pub sstable_bytes: u64,
    /// Memory the open tables hold (indexes and filters).
    pub sstable_memory_bytes: u64,
    pub flushes: u64,
    pub flush_bytes: u64,
    /// Durations of the flushes stored.
    pub flush_latency: DurationSnapshot,
    /// Tables and bytes per level, L0 first.
    pub levels: Vec<LevelFigures>,
    pub compaction: CompactionFigures,
    pub flow: FlowFigures,
    pub cache: CacheFigures,
    /// Requests received on this core and executed here.
    pub requests_local: u64,
    /// Requests received on this core and sent to the owning core.
    pub requests_forwarded_out: u64,
    /// Requests another core received and this core executed.
    pub requests_forwarded_in: u64,
    /// Puts refused by a per-key bound (Write/Delete past any bound,
    /// Repair past the hard ceiling).
    pub puts_refused_by_bounds: u64,
    /// Replica puts accepted that left their key past a soft bound.
    pub replica_puts_past_bounds: u64,
    pub wal: WalFigures,
    /// What writes meet now: "writing", "disk_full" (the WAL waits for
    /// space), "failed" (until restart) or "closed".
    pub write_state: &'static str,
    /// Flush attempts that failed (each is retried).
    pub flush_failures: u64,
    /// The last flush (compaction) failed for lack of disk space.
    pub flush_disk_full: bool,
    pub compaction_disk_full: bool,
    /// The most requested keys since start, most requested first (empty
    /// when `storage.hot_keys_tracked` is 0).
    pub hot_keys: Vec<HotKey>,
}

/// One of a shard's most requested keys, from its Space-Saving sketch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HotKey {
    /// The storage key (`u16 BE tenant length | tenant | key`), copied out
    /// of the shard.
    pub storage_key: Vec<u8>,
    /// Requests counted for it since start: never below the true number,
    /// above it by at most N / k (N: requests the sketch observed, k: its
    /// counters).
    pub requests: u64,
}

/// One level of a shard's LSM tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LevelFigures {
    pub tables: u64,
    pub bytes: u64,
    /// The level's byte target (0: none, for L0 and the last level).
    pub target_bytes: u64,
}

/// Compaction work of one shard since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CompactionFigures {
    pub compactions: u64,
    pub trivial_moves: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Estimated bytes compaction must still rewrite to bring every level
    /// under its target.
    pub pending_bytes: u64,
    pub micros: u64,
    /// Durations of the merges (trivial moves not counted).
    pub latency: DurationSnapshot,
    /// Time compactions slept for the I/O rate limit.
    pub throttled_micros: u64,
    pub keys_purged: u64,
    pub failures: u64,
    pub running: bool,
    /// CPU time of the compaction and flush task queues, and of the whole
    /// core's executor, since start (microseconds).
    pub cpu_micros: u64,
    pub flush_cpu_micros: u64,
    pub executor_cpu_micros: u64,
}

/// Write flow control of one shard: thresholds and what writers waited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FlowFigures {
    pub l0_slowdown_tables: u64,
    pub l0_stop_tables: u64,
    pub immutable_memtables_max: u64,
    pub write_slowdowns: u64,
    pub write_slowdown_micros: u64,
    pub write_stalls: u64,
    pub write_stall_micros: u64,
}

/// The shard's read cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheFigures {
    pub capacity_bytes: u64,
    pub bytes: u64,
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

/// WAL figures of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WalFigures {
    pub bytes_written: u64,
    pub fsyncs: u64,
    pub fsync_micros_total: u64,
    pub fsync_micros_max: u64,
    pub fsync_latency: DurationSnapshot,
    pub records: u64,
    pub batches: u64,
    pub replayed_records: u64,
    pub replayed_bytes: u64,
    pub replay_micros: u64,
    /// Times the WAL found the disk full and waited for space.
    pub disk_full_events: u64,
}

/// A shard's answer.
#[derive(Debug, Clone)]
pub(crate) enum ShardReply {
    /// After a put: whether it was stored, and the merged clock of every
    /// version the key keeps.
    Put {
        // The wire answer carries only the clock; the engine's tests check
        // whether a put was stored or found stale.
        #[cfg_attr(not(test), allow(dead_code))]
        stored: bool,
        clock: VectorClock,
    },
    /// Every stored version of the key (tombstones included).
    Get {
        versions: VersionSet,
    },
    /// After a batch of copied versions, all durable.
    Applied {
        stored: u64,
        stale: u64,
    },
    Flushed,
    Scan(ScanPage),
    Digest(crate::model::RangeDigest),
    Cleaned(super::shard::Cleaned),
    Compacted(super::shard::Compacted),
    Stats(Box<ShardStats>),
    Failed(super::EngineError),
}
