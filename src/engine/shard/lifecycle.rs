//! Opening and closing a shard, and the order its tasks start and stop in.
//!
//! Owns start-up (manifest, tables, WAL replay, WAL writer, then the
//! background workers) and every way background work ends. The shutdown
//! order, in one place:
//!
//! | step | [`Shard::close`] (clean) | [`Shard::halt`] (as a crash would, tests) |
//! |---|---|---|
//! | 1 | stop the compactor: a running merge is abandoned between keys, its outputs removed | stop the flusher: a running flush finishes, none starts |
//! | 2 | delete replaced tables no reader holds | stop the compactor (as in close) |
//! | 3 | rotate the memtable and wait until every memtable is a table (the flusher still runs) | stop the WAL: what it holds is committed |
//! | 4 | stop the flusher | |
//! | 5 | stop the WAL: what it holds is committed | |
//!
//! Requests still executing after close fail with the WAL's "closed"
//! error (nothing is half-applied: the memtable is changed only after the
//! WAL accepts a record). Invariants: a stopped worker never restarts; a
//! closed shard replays nothing at its next start (everything is in
//! tables); a halted one replays its WAL.

use super::hot_keys::HotKeys;
use super::immutable::Immutable;
use super::table_files::{remove_unlisted_tables, Graveyard};
use super::tree::Tree;
use super::version::TreeVersion;
use super::worker::Worker;
use super::{Shard, ShardCounters, Signal, COMPACTION_SHARES, FLUSH_SHARES};
use crate::config::{StorageConfig, LEVELS};
use crate::engine::cache::AdaptiveCache;
use crate::engine::memtable::Memtable;
use crate::engine::table::Table;
use crate::engine::EngineError;
use crate::model::KeyBounds;
use crate::storage::disk;
use crate::storage::manifest;
use crate::storage::wal::replay;
use crate::storage::wal::writer::{WalStart, WalWriter};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

impl Shard {
    #[cfg(test)]
    /// Opens the shard stored in `dir`: manifest, SSTables, then replay of the
    /// WAL segments not yet covered by SSTables. A non-empty replayed
    /// memtable is handed to the flusher at once. Must run on the shard's
    /// own executor.
    pub(crate) async fn open(
        dir: &Path,
        id: usize,
        node_id: String,
        config: &StorageConfig,
    ) -> Result<Rc<Self>, EngineError> {
        Self::open_sharded(dir, id, node_id, config, 1, KeyBounds::default()).await
    }

    /// [`Shard::open`] for one of `shards` shards (the cache gets its share
    /// of `storage.cache.capacity_bytes_total`) under the per-key `bounds`.
    pub(crate) async fn open_sharded(
        dir: &Path,
        id: usize,
        node_id: String,
        config: &StorageConfig,
        shards: usize,
        bounds: KeyBounds,
    ) -> Result<Rc<Self>, EngineError> {
        crate::storage::sentinel::touch(dir).await?;
        let manifest = manifest::load(dir, id as u32)?;
        remove_unlisted_tables(dir, &manifest).await?;
        let mut tables = Vec::with_capacity(manifest.tables.len());
        for meta in &manifest.tables {
            tables.push(Rc::new(Table::open(dir, meta.clone()).await?));
        }
        for (no, path) in replay::list_segments(dir)? {
            if no < manifest.wal_min_segment {
                disk::remove(&path).await?;
            }
        }
        let mut memtable = Memtable::new();
        let recovery = replay::replay_dir(dir, id as u32, config, |key, version| {
            memtable.apply(&key, version);
        })
        .await?;
        if recovery.records == 0 {
            // Nothing to replay: the segments (empty, or a prepared spare)
            // are obsolete; without this every restart would leave two.
            for (_, path) in replay::list_segments(dir)? {
                disk::remove(&path).await?;
            }
        }
        let next_segment_no = recovery.next_segment_no.max(manifest.wal_min_segment);
        let start = WalStart {
            next_segment_no,
            next_seq: recovery.next_seq,
        };
        let reserve_bytes = crate::storage::space::flush_reserve_bytes(config, shards);
        let wal =
            WalWriter::start(dir.to_path_buf(), id as u32, config, start, reserve_bytes).await?;
        let mut immutables = Vec::new();
        if !memtable.is_empty() {
            // Everything replayed lives in segments below the fresh one.
            immutables.push(Rc::new(Immutable::replayed(memtable, next_segment_no)));
        }
        let version = TreeVersion::open(&manifest, tables, immutables).map_err(|e| {
            EngineError::Corrupted {
                what: format!("shard {id}: the manifest's tables: {e}"),
            }
        })?;
        version.check().map_err(|e| EngineError::Corrupted {
            what: format!("shard {id}: the manifest's levels: {e}"),
        })?;
        let (flusher, flush_wakeups) = Worker::new("flush", FLUSH_SHARES);
        let (compactor, compact_wakeups) = Worker::new("compaction", COMPACTION_SHARES);
        let cache_bytes = config.cache.capacity_bytes_total / shards.max(1) as u64;
        let shard = Rc::new(Self {
            id,
            node_id,
            dir: dir.to_path_buf(),
            config: config.clone(),
            bounds,
            wal_segments_from: Cell::new(manifest.wal_min_segment),
            tree: Tree::new(version),
            wal,
            wal_bytes_at_rotation: Cell::new(0),
            flush_reserve_bytes: reserve_bytes,
            pending: super::pending::Pending::new(),
            cache: RefCell::new(AdaptiveCache::new(cache_bytes)),
            flusher,
            compactor,
            progress: Signal::default(),
            cursors: RefCell::new(vec![None; LEVELS]),
            graveyard: Graveyard::default(),
            writers_waiting: Cell::new(0),
            recovery,
            observer: RefCell::new(None),
            cleanups: RefCell::default(),
            compactions_asked: RefCell::default(),
            counters: ShardCounters::default(),
            hot_keys: RefCell::new(HotKeys::new(config.hot_keys_tracked)),
        });
        let s = Rc::clone(&shard);
        shard
            .flusher
            .start(async move { s.flush_loop(flush_wakeups).await })?;
        let s = Rc::clone(&shard);
        shard
            .compactor
            .start(async move { s.compact_loop(compact_wakeups).await })?;
        shard.flusher.wake();
        shard.compactor.wake();
        Ok(shard)
    }

    /// Clean shutdown, in the order of the module table: nothing is lost,
    /// and a restart replays nothing.
    pub(crate) async fn close(&self) -> Result<(), EngineError> {
        self.stop_compaction().await;
        let flushed = self.flush_until(Duration::from_secs(60), true).await;
        self.flusher.stop().await;
        let closed = self.wal.close().await;
        flushed.and(closed.map_err(EngineError::from))
    }

    #[cfg(test)]
    /// Stops background work as a crash would, at a point between flushes
    /// (see the module table). Used by tests that reopen a shard in the
    /// same process.
    pub(crate) async fn halt(&self) {
        self.flusher.stop().await;
        self.compactor.stop().await;
        let _ = self.wal.close().await;
    }

    /// Stops the compactor (a running compaction is abandoned between keys:
    /// its outputs are removed and its inputs stay listed, so nothing is
    /// lost) and deletes replaced tables no reader holds.
    pub(super) async fn stop_compaction(&self) {
        self.compactor.stop().await;
        self.graveyard.reap().await;
    }

    /// Makes the memtable immutable and waits (up to `max`) until every
    /// memtable waiting for flush is a table.
    pub(crate) async fn flush(&self, max: Duration) -> Result<(), EngineError> {
        self.flush_until(max, false).await
    }

    /// [`Shard::flush`]; with `give_up_on_failure` (shutdown), stops
    /// waiting at the first failed flush (a full disk, a failed WAL): what
    /// is not flushed stays in the WAL, which the next start replays.
    async fn flush_until(
        &self,
        max: Duration,
        give_up_on_failure: bool,
    ) -> Result<(), EngineError> {
        let failures = self.counters.flush_failures.get();
        if !self.tree.active().is_empty() {
            self.rotate_memtable();
        }
        let deadline = Instant::now() + max;
        while !self.tree.current().immutables().is_empty() || self.flusher.busy() {
            if give_up_on_failure && self.counters.flush_failures.get() != failures {
                return Err(EngineError::Internal {
                    what: format!(
                        "shard {}: flush failed; what is not flushed stays in the WAL",
                        self.id
                    ),
                });
            }
            let now = Instant::now();
            if now >= deadline || self.flusher.stopping() {
                return Err(EngineError::Internal {
                    what: format!("shard {}: flush did not finish in {max:?}", self.id),
                });
            }
            self.progress.wait_at_most(deadline - now).await;
        }
        Ok(())
    }

    #[cfg(test)]
    /// Wakes the compactor and waits until it has nothing left to do, or
    /// `max` passes (tests and tools; the compactor runs by itself).
    pub(crate) async fn compact_until_idle(&self, max: Duration) -> Result<(), EngineError> {
        let deadline = Instant::now() + max;
        loop {
            let busy = self.compactor.busy() || self.next_plan().is_some();
            if !busy {
                return Ok(());
            }
            let now = Instant::now();
            if self.compactor.stopping() || now >= deadline {
                return Err(EngineError::Internal {
                    what: format!("shard {}: compaction did not settle in {max:?}", self.id),
                });
            }
            self.compactor.wake();
            self.progress.wait_at_most(deadline - now).await;
        }
    }
}
