//! One shard: the slice of the token ring a single core owns, stored as an
//! LSM tree.
//!
//! A shard is touched only by its own core (`!Send`, held in an `Rc`), so
//! `RefCell`/`Cell` suffice; no borrow is held across an `.await`. Its parts,
//! one file each:
//! - [`version`]: the immutable [`TreeVersion`](version::TreeVersion)
//!   (tables by level, memtables waiting for flush, WAL floor, next file
//!   number) and its pure transitions; [`tree`]: the current version, the
//!   active memtable, and the one way the version changes;
//! - the request paths: [`read`] (cache, tables, memtables, reconciled) and
//!   [`write`] (flow control from [`flow`], per-key bounds, WAL, memtable,
//!   rotation);
//! - background work, each a [`worker::Worker`] under a glommio gate:
//!   [`flush`] (immutable memtable to level-0 table) and [`compact`]
//!   (leveled compaction, deletion of replaced tables), [`manual`]
//!   (compactions an operator asks for); [`lifecycle`] holds
//!   opening, closing and the shutdown order;
//! - [`stats`] and [`counters`]: health figures; [`hot_keys`]: the most
//!   requested keys (a bounded sketch, observed by every Put and Get).
//!
//! Invariants:
//! - every version a read could need is in the active memtable, a memtable
//!   waiting for flush, or a table of the current version; the version
//!   changes in one synchronous step, after its manifest is durable;
//! - a reader holds the version it started on; whatever moved since is in a
//!   memtable of that version or of a later one (found through the
//!   versions' successor links), so a read never retries;
//! - versions read from tables are merged as sets (clock dominance), so the
//!   order in which tables are consulted never changes an answer;
//! - the cache holds, per key, exactly the versions the tables hold: it is
//!   filled only from a read on the version still current and only for
//!   keys no memtable waiting for flush holds; a flush drops the cached
//!   entries of its keys before its table is installed, a compaction drops
//!   the keys it purged;
//! - a table file replaced by a compaction is deleted only once no reader
//!   holds it (its `Rc` is the graveyard's last);
//! - a memtable waiting for flush holds exactly the records of WAL segments
//!   below the segment number its rotation yielded; those segments are
//!   deleted only after the manifest naming its table is durable;
//! - memory is bounded: at most `immutable_memtables_max` memtables waiting
//!   for flush plus one active memtable of about `memtable_bytes_max`, a
//!   cache of its byte budget, and each open table's index and filter.

mod cleanup;
mod compact;
mod counters;
mod flow;
mod flush;
mod hot_keys;
mod immutable;
mod lifecycle;
mod manual;
mod pending;
mod read;
pub(crate) mod scan;
mod signal;
mod stats;
mod table_files;
mod tree;
mod version;
mod worker;
mod write;

pub(crate) use cleanup::Cleaned;
pub(crate) use counters::ShardCounters;
pub(crate) use manual::Compacted;

use super::cache::AdaptiveCache;
use crate::config::StorageConfig;
use crate::model::{KeyBounds, Version};
use crate::storage::wal::replay;
use crate::storage::wal::writer::WalWriter;
use bytes::Bytes;
use signal::Signal;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};
use table_files::Graveyard;
use tree::Tree;
use worker::Worker;

pub(crate) struct Shard {
    id: usize,
    node_id: String,
    dir: PathBuf,
    config: StorageConfig,
    /// What one key may hold; checked before a put changes anything.
    bounds: KeyBounds,
    tree: Tree,
    wal: WalWriter,
    /// The lowest WAL segment number that may still be on disk: a flush
    /// deletes the segments from here up to its table's WAL floor.
    wal_segments_from: Cell<u64>,
    /// `wal.submitted_bytes()` at the last memtable rotation.
    wal_bytes_at_rotation: Cell<u64>,
    /// Free space a compaction must leave for flushes (see `storage::space`).
    flush_reserve_bytes: u64,
    cache: RefCell<AdaptiveCache<Vec<Version>>>,
    flusher: Worker,
    compactor: Worker,
    /// Raised when a flush or compaction finishes.
    progress: Signal,
    /// Round-robin compaction cursor per level.
    cursors: RefCell<Vec<Option<Bytes>>>,
    graveyard: Graveyard,
    /// Writes waiting at a flow-control stop threshold now.
    writers_waiting: Cell<usize>,
    /// What start-up replayed, for metrics.
    recovery: replay::ReplaySummary,
    pub counters: ShardCounters,
    /// The most requested keys (Put and Get), counted on this core.
    hot_keys: RefCell<hot_keys::HotKeys>,
    /// Cleanups waiting for the compactor task.
    cleanups: RefCell<std::collections::VecDeque<cleanup::CleanupJob>>,
    /// Compactions an operator asked for, waiting for the compactor task.
    compactions_asked: RefCell<std::collections::VecDeque<manual::CompactJob>>,
    /// Told of every version stored, once durable (live forwarding of
    /// streamed ranges).
    observer: RefCell<Option<Rc<dyn PutObserver>>>,
    /// Versions queued in the WAL, not yet durable (not yet readable).
    pending: pending::Pending,
}

/// Learns of each version a put stored, after it is durable, on the
/// shard's core (before the put answers).
pub(crate) trait PutObserver {
    /// Whether it wants versions now (checked before a put copies its
    /// version for it, so a shard with no stream copies nothing).
    fn wants(&self) -> bool;
    fn stored(&self, key: &Bytes, version: &Version);
}

/// Task queue shares of flush and compaction; foreground tasks run in the
/// default queue (1000 shares), so under contention compaction gets about
/// 1/20 of the core.
const FLUSH_SHARES: usize = 200;
const COMPACTION_SHARES: usize = 50;

/// Wall-clock Unix milliseconds (display and tie-break only).
pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Shard {
    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// Sets the observer told of every stored version (see [`PutObserver`]).
    pub(crate) fn set_observer(&self, observer: Rc<dyn PutObserver>) {
        *self.observer.borrow_mut() = Some(observer);
    }

    /// Executes one operation on this shard.
    pub(crate) async fn execute(&self, op: super::ShardOp) -> super::ShardReply {
        use super::{ShardOp, ShardReply};
        let result = match op {
            ShardOp::Put {
                key,
                value,
                clock,
                origin,
            } => {
                self.hot_keys.borrow_mut().observe(&key.storage_key);
                self.put(key.storage_key, value, clock, origin, None).await
            }
            ShardOp::ApplyBatch { entries } => self.apply_batch(entries).await,
            ShardOp::Scan { range, filter } => self
                .scan_page(&range, &|k| filter.keeps(k))
                .await
                .map(ShardReply::Scan),
            ShardOp::Get { key } => {
                self.hot_keys.borrow_mut().observe(&key.storage_key);
                self.get(&key.storage_key)
                    .await
                    .map(|versions| ShardReply::Get { versions })
            }
            ShardOp::Flush { max } => self.flush(max).await.map(|()| ShardReply::Flushed),
            ShardOp::Compact { level } => {
                self.compact_levels(level).await.map(ShardReply::Compacted)
            }
            ShardOp::Digest { filter } => self.digest(&filter).await.map(ShardReply::Digest),
            ShardOp::Cleanup { ranges } => self.cleanup(ranges).await.map(ShardReply::Cleaned),
            ShardOp::Stats => Ok(ShardReply::Stats(Box::new(self.stats()))),
        };
        result.unwrap_or_else(ShardReply::Failed)
    }

    #[cfg(test)]
    /// Checks the invariants of the current tree version (tests and the
    /// model test call it after compactions).
    pub(crate) fn check_levels(&self) -> Result<(), String> {
        self.tree.current().check()
    }
}

#[cfg(test)]
mod disk_full_tests;
#[cfg(test)]
pub(crate) mod tests;
