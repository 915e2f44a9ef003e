//! One shard: the slice of the token ring a single core owns, stored as an
//! LSM tree.
//!
//! Owns the shard's memtable, immutable memtables waiting for flush, open
//! SSTables (levels L0 to L4), manifest, WAL writer, read cache, background
//! flusher and compactor, and counters, and executes [`ShardOp`]s against
//! them. A shard is touched only by its own core (`!Send`, held in an `Rc`),
//! so `RefCell`/`Cell` suffice; no borrow is held across an `.await`.
//! The submodules hold one concern each: [`flush`] (memtable rotation and
//! flush), [`compact`] (running and installing compactions), [`edit`]
//! (manifest edits), [`flow`] (write flow control) and [`stats`] (health
//! figures).
//!
//! Write path: flow control first (check WAL room; delay past the slowdown
//! thresholds; wait for flush or compaction past the stop thresholds, up to
//! `write_stall_timeout_ms`, then MEMORY_PRESSURE, nothing changed); read
//! the key's versions from the cache or the SSTables (async), then in one
//! synchronous step merge them with the memtables' versions, decide (stale,
//! or the stamp of a blind write), apply to the memtable and queue the WAL
//! record, so log order is apply order; answer when the record is durable.
//! A write that changes nothing still waits for the WAL to be durable up to
//! that point, so a retried write is never acknowledged before its original
//! is on disk.
//!
//! Invariants:
//! - every version a read could need is in the memtable, an immutable
//!   memtable, or a table listed by the manifest; a flush or compaction
//!   installs its tables and drops what they replace in one synchronous step
//!   after its manifest edit is durable, bumping `epoch`, and readers that
//!   crossed an epoch re-read the tables; manifest edits are serialised by
//!   `manifest_lock`;
//! - versions read from tables are merged as sets (clock dominance), so the
//!   order in which tables are consulted never changes an answer;
//! - the cache holds, per key, exactly the versions the tables hold: it is
//!   filled only from a read consistent with the current epoch and only for
//!   keys no immutable memtable holds; a flush drops the cached entries of
//!   its keys before its table is installed, a compaction drops the keys it
//!   purged;
//! - a table file replaced by a compaction is deleted only once no reader
//!   holds it (its `Rc` is the graveyard's last);
//! - an immutable memtable holds exactly the records of WAL segments below
//!   the segment number its rotation yielded; those segments are deleted only
//!   after the manifest naming its table is durable;
//! - memory is bounded: at most `immutable_memtables_max` immutable memtables
//!   plus one active memtable of about `memtable_bytes_max`, and a cache of
//!   its byte budget.

mod compact;
mod edit;
mod flow;
mod flush;
mod stats;

use super::cache::AdaptiveCache;
use super::memtable::Memtable;
use super::ops::{PutClock, ShardOp, ShardReply};
use super::table::Table;
use super::EngineError;
use crate::config::{StorageConfig, LEVELS};
use crate::model::{ApplyOutcome, KeyBounds, PutKind, PutOrigin, Version, VersionSet};
use crate::storage::manifest::{self, Manifest};
use crate::storage::wal::format::Record;
use crate::storage::wal::replay;
use crate::storage::wal::writer::{WalStart, WalWriter};
use bytes::Bytes;
use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalSender};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Request counters, bumped by the router on this core.
#[derive(Debug, Default)]
pub struct ShardCounters {
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
    /// CPU time of the compaction and flush task queues and of the whole
    /// executor, accumulated from glommio's reset-on-read figures.
    pub compaction_cpu_micros: Cell<u64>,
    pub flush_cpu_micros: Cell<u64>,
    pub executor_cpu_micros: Cell<u64>,
}

impl ShardCounters {
    pub fn bump(cell: &Cell<u64>) {
        Self::add(cell, 1);
    }

    pub fn add(cell: &Cell<u64>, n: u64) {
        cell.set(cell.get().wrapping_add(n));
    }
}

/// A full memtable waiting to become an SSTable.
struct Immutable {
    mem: Memtable,
    /// First WAL segment holding records newer than `mem`; resolved by the
    /// WAL committer when it switches segments.
    wal_from: RefCell<Option<oneshot::Receiver<u64>>>,
    /// Known segment number (after start-up replay).
    wal_from_known: Cell<Option<u64>>,
}

struct State {
    memtable: Memtable,
    /// Oldest first.
    immutables: Vec<Rc<Immutable>>,
    /// Every live table, any level (newest L0 first by convention; answers
    /// do not depend on the order).
    tables: Vec<Rc<Table>>,
    manifest: Manifest,
}

/// The shard's background task queues (for CPU figures).
#[derive(Clone, Copy)]
struct TaskQueues {
    flush: glommio::TaskQueueHandle,
    compaction: glommio::TaskQueueHandle,
}

pub struct Shard {
    id: usize,
    task_queues: TaskQueues,
    node_id: String,
    dir: PathBuf,
    config: StorageConfig,
    /// What one key may hold; checked before a put changes anything.
    bounds: KeyBounds,
    state: RefCell<State>,
    /// Bumped whenever the set of tables changes.
    epoch: Cell<u64>,
    /// `wal.submitted_bytes()` at the last memtable rotation.
    wal_bytes_at_rotation: Cell<u64>,
    wal: WalWriter,
    flush_wake: LocalSender<()>,
    compact_wake: LocalSender<()>,
    /// Woken (closed and replaced) when a flush or compaction completes.
    progress: RefCell<Rc<glommio::sync::Semaphore>>,
    /// Held (one permit) from computing a manifest edit until it is
    /// installed, so concurrent flush and compaction never lose an edit.
    manifest_lock: glommio::sync::Semaphore,
    /// Round-robin compaction cursor per level.
    cursors: RefCell<Vec<Option<Bytes>>>,
    /// Tables replaced by compaction, deleted once no reader holds them.
    graveyard: RefCell<Vec<Rc<Table>>>,
    cache: RefCell<AdaptiveCache<Vec<Version>>>,
    /// What start-up replayed, for metrics.
    recovery: replay::ReplaySummary,
    /// Set by `halt`: the flusher starts no new flush.
    halted: Cell<bool>,
    /// Set by `close` and `halt`: compaction stops between keys.
    stopping: Cell<bool>,
    /// A flush is between its first and last step.
    flushing: Cell<bool>,
    /// A compaction is between its first and last step.
    compacting: Cell<bool>,
    /// Writes waiting at a flow-control stop threshold now.
    writers_waiting: Cell<usize>,
    pub counters: ShardCounters,
}

/// Task queue shares of flush and compaction; foreground tasks run in the
/// default queue (1000 shares), so under contention compaction gets about
/// 1/20 of the core.
const FLUSH_SHARES: usize = 200;
const COMPACTION_SHARES: usize = 50;
/// Bytes charged per cache entry beyond its key and versions.
const CACHE_ENTRY_OVERHEAD_BYTES: usize = 96;

/// Wall-clock Unix milliseconds (display and tie-break only).
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Shard {
    /// Opens the shard stored in `dir`: manifest, SSTables, then replay of the
    /// WAL segments not yet covered by SSTables. A non-empty replayed
    /// memtable is handed to the flusher at once. Must run on the shard's
    /// own executor.
    pub async fn open(
        dir: &Path,
        id: usize,
        node_id: String,
        config: &StorageConfig,
    ) -> Result<Rc<Self>, EngineError> {
        Self::open_sharded(dir, id, node_id, config, 1, KeyBounds::default()).await
    }

    /// [`Shard::open`] for one of `shards` shards (the cache gets its share
    /// of `storage.cache.capacity_bytes_total`) under the per-key `bounds`.
    pub async fn open_sharded(
        dir: &Path,
        id: usize,
        node_id: String,
        config: &StorageConfig,
        shards: usize,
        bounds: KeyBounds,
    ) -> Result<Rc<Self>, EngineError> {
        crate::storage::sentinel::touch(dir).await?;
        let manifest = manifest::load(dir, id as u32)?;
        remove_unlisted_tables(dir, &manifest)?;
        let mut tables = Vec::with_capacity(manifest.tables.len());
        for meta in manifest.tables.iter().rev() {
            tables.push(Rc::new(Table::open(dir, meta.clone()).await?));
        }
        for (no, path) in replay::list_segments(dir)? {
            if no < manifest.wal_min_segment {
                remove_if_present(&path)?;
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
                remove_if_present(&path)?;
            }
        }
        let next_segment_no = recovery.next_segment_no.max(manifest.wal_min_segment);
        let start = WalStart {
            next_segment_no,
            next_seq: recovery.next_seq,
        };
        let wal = WalWriter::start(dir.to_path_buf(), id as u32, config, start).await?;
        let mut immutables = Vec::new();
        if !memtable.is_empty() {
            // Everything replayed lives in segments below the fresh one.
            immutables.push(Rc::new(Immutable {
                mem: memtable,
                wal_from: RefCell::new(None),
                wal_from_known: Cell::new(Some(next_segment_no)),
            }));
        }
        let (flush_wake, flush_woken) = local_channel::new_bounded(1);
        let (compact_wake, compact_woken) = local_channel::new_bounded(1);
        let cache_bytes = config.cache.capacity_bytes_total / shards.max(1) as u64;
        let task_queues = TaskQueues {
            flush: glommio::executor().create_task_queue(
                glommio::Shares::Static(FLUSH_SHARES),
                glommio::Latency::NotImportant,
                "flush",
            ),
            compaction: glommio::executor().create_task_queue(
                glommio::Shares::Static(COMPACTION_SHARES),
                glommio::Latency::NotImportant,
                "compaction",
            ),
        };
        let shard = Rc::new(Self {
            task_queues,
            id,
            node_id,
            dir: dir.to_path_buf(),
            config: config.clone(),
            bounds,
            state: RefCell::new(State {
                memtable: Memtable::new(),
                immutables,
                tables,
                manifest,
            }),
            epoch: Cell::new(0),
            wal_bytes_at_rotation: Cell::new(0),
            wal,
            flush_wake,
            compact_wake,
            progress: RefCell::new(Rc::new(glommio::sync::Semaphore::new(0))),
            manifest_lock: glommio::sync::Semaphore::new(1),
            cursors: RefCell::new(vec![None; LEVELS]),
            graveyard: RefCell::new(Vec::new()),
            cache: RefCell::new(AdaptiveCache::new(cache_bytes)),
            recovery,
            halted: Cell::new(false),
            stopping: Cell::new(false),
            flushing: Cell::new(false),
            compacting: Cell::new(false),
            writers_waiting: Cell::new(0),
            counters: ShardCounters::default(),
        });
        let tq = shard.task_queues.flush;
        let flusher = Rc::clone(&shard);
        glommio::spawn_local_into(async move { flusher.flush_loop(flush_woken).await }, tq)
            .map_err(|e| EngineError::Internal {
                what: format!("cannot start the flusher: {e}"),
            })?
            .detach();
        let tq = shard.task_queues.compaction;
        let compactor = Rc::clone(&shard);
        glommio::spawn_local_into(
            async move { compactor.compact_loop(compact_woken).await },
            tq,
        )
        .map_err(|e| EngineError::Internal {
            what: format!("cannot start the compactor: {e}"),
        })?
        .detach();
        if !shard.state.borrow().immutables.is_empty() {
            let _ = shard.flush_wake.try_send(());
        }
        let _ = shard.compact_wake.try_send(());
        Ok(shard)
    }

    pub fn id(&self) -> usize {
        self.id
    }

    /// Clean shutdown: stops compaction (an unfinished one is abandoned,
    /// losing nothing), flushes every memtable (so a restart replays
    /// nothing), then commits and stops the WAL.
    pub async fn close(&self) -> Result<(), EngineError> {
        self.stop_compaction().await;
        let flushed = self.flush(Duration::from_secs(60)).await;
        let closed = self.wal.close().await;
        flushed.and(closed.map_err(EngineError::from))
    }

    /// Makes the memtable immutable and waits (up to `max`) until every
    /// immutable memtable is an SSTable.
    pub async fn flush(&self, max: Duration) -> Result<(), EngineError> {
        if !self.state.borrow().memtable.is_empty() {
            self.rotate_memtable();
        }
        let deadline = Instant::now() + max;
        while !self.state.borrow().immutables.is_empty() || self.flushing.get() {
            let now = Instant::now();
            if now >= deadline {
                return Err(EngineError::Internal {
                    what: format!("shard {}: flush did not finish in {max:?}", self.id),
                });
            }
            self.wait_progress((deadline - now).min(Duration::from_millis(100)))
                .await;
        }
        Ok(())
    }

    /// Executes one operation on this shard.
    pub async fn execute(&self, op: ShardOp) -> ShardReply {
        let result = match op {
            ShardOp::Put {
                key,
                value,
                clock,
                origin,
            } => self.put(key.storage_key, value, clock, origin).await,
            ShardOp::Get { key } => self
                .get(&key.storage_key)
                .await
                .map(|versions| ShardReply::Get { versions }),
            ShardOp::Stats => Ok(ShardReply::Stats(Box::new(self.stats()))),
        };
        result.unwrap_or_else(ShardReply::Failed)
    }

    /// Versions of `key` in the tables (from the cache when it has them),
    /// consistent with the current epoch when this returns (no await may
    /// separate it from the caller's use).
    async fn table_versions(&self, key: &[u8]) -> Result<Vec<Version>, EngineError> {
        if let Some(cached) = self.cache.borrow_mut().get(key) {
            return Ok(cached.clone());
        }
        loop {
            let epoch = self.epoch.get();
            let tables: Vec<Rc<Table>> = self.state.borrow().tables.clone();
            let mut sets = Vec::new();
            for t in tables {
                if let Some(vs) = t.get(key).await? {
                    sets.push(vs);
                }
            }
            if self.epoch.get() == epoch {
                let holding = sets.len();
                // One table's set is reconciled already; sets from several
                // tables may dominate each other.
                let out = VersionSet::merge_reconciled(sets).into_versions();
                if holding > 0 {
                    self.cache_fill(key, &out);
                }
                return Ok(out);
            }
        }
    }

    /// Caches the tables' versions of `key`, unless an immutable memtable
    /// holds the key (its flush would make the entry incomplete; see the
    /// module invariants).
    fn cache_fill(&self, key: &[u8], versions: &[Version]) {
        let st = self.state.borrow();
        if st.immutables.iter().any(|i| i.mem.get(key).is_some()) {
            return;
        }
        let charge = (key.len() + CACHE_ENTRY_OVERHEAD_BYTES) as u64
            + versions.iter().map(|v| v.heap_bytes() as u64).sum::<u64>();
        // Copies: values read from a table are slices of their whole block,
        // which a cached slice would keep alive beyond its charge.
        let owned = versions
            .iter()
            .map(|v| Version {
                clock: v.clock.clone(),
                timestamp_ms: v.timestamp_ms,
                value: v.value.as_deref().map(Bytes::copy_from_slice),
            })
            .collect();
        self.cache
            .borrow_mut()
            .insert(Bytes::copy_from_slice(key), owned, charge);
    }

    /// Every stored version of `key`, reconciled (memtables and tables).
    fn reconcile(&self, key: &[u8], from_tables: Vec<Version>) -> VersionSet {
        let st = self.state.borrow();
        // `table_versions` answers a reconciled set (one table's, the
        // cache's, or several tables' merged).
        let mut set = VersionSet::from_reconciled(from_tables);
        for imm in &st.immutables {
            if let Some(s) = imm.mem.get(key) {
                for v in s.versions() {
                    set.apply(v.clone());
                }
            }
        }
        if let Some(s) = st.memtable.get(key) {
            for v in s.versions() {
                set.apply(v.clone());
            }
        }
        set
    }

    async fn get(&self, key: &Bytes) -> Result<VersionSet, EngineError> {
        let from_tables = self.table_versions(key).await?;
        Ok(self.reconcile(key, from_tables))
    }

    async fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        clock: PutClock,
        origin: PutOrigin,
    ) -> Result<ShardReply, EngineError> {
        let estimate = key.len() + value.as_ref().map_or(0, |v| v.len()) + 256;
        self.wal.check_room(estimate)?;
        self.admit_write().await?;
        let from_tables = self.table_versions(&key).await?;
        // From here to the WAL submit: no await. The WAL may have failed or
        // closed during the awaits above: check again before changing anything.
        self.wal.check_room(0)?;
        let mut full = self.reconcile(&key, from_tables);
        let (kind, clock) = match (origin, clock) {
            (PutOrigin::Replica, PutClock::Given(c)) => (PutKind::Replica, c),
            (PutOrigin::Client, PutClock::Given(c)) => {
                // The ids the key holds matter only to a clock wider than
                // the bound (is it a write-back adding one id?).
                let ids_before = if c.entries().len() > self.bounds.key_clock_ids_max {
                    full.merged_clock().entries().len()
                } else {
                    0
                };
                (PutKind::Client { ids_before }, c)
            }
            (_, PutClock::Blind) => (PutKind::Blind, {
                full.blind_clock(&self.node_id)
                    .ok_or_else(|| EngineError::Invalid {
                        what: format!(
                    "vector_clock: this node's counter ({}) is at its maximum, a blind write \
                     cannot supersede the stored versions; write with an explicit clock",
                    self.node_id
                ),
                    })?
            }),
        };
        let version = Version {
            clock,
            timestamp_ms: now_unix_ms(),
            value,
        };
        let (stored, ticket, merged) = match full.apply(version.clone()) {
            ApplyOutcome::Stale => (false, self.wal.barrier(), full.merged_clock()),
            ApplyOutcome::Stored { .. } => {
                let merged = full.merged_clock();
                self.check_bounds(&key, &full, &merged, kind)?;
                // Queued first: a record the WAL cannot encode is refused
                // here, before the memtable (and so any reader) sees it.
                let ticket = self.wal.submit(Record::Put {
                    key: key.clone(),
                    version: version.clone(),
                })?;
                self.state.borrow_mut().memtable.apply(&key, version);
                (true, ticket, merged)
            }
        };
        if stored && self.memtable_due() {
            self.rotate_memtable_if_room();
        }
        ticket.wait().await?;
        Ok(ShardReply::Put {
            stored,
            clock: merged,
        })
    }
}

impl Shard {
    /// Checks the per-key bounds on the set a put would leave (`after`,
    /// merged clock `merged`): a refused put changes nothing; a replica put
    /// past a soft bound is accepted, counted and logged.
    fn check_bounds(
        &self,
        key: &[u8],
        after: &VersionSet,
        merged: &crate::model::VectorClock,
        kind: PutKind,
    ) -> Result<(), EngineError> {
        // The storage key is a 2-byte tenant length, then tenant and key.
        let tenant_key_bytes = key.len().saturating_sub(2);
        match self.bounds.check(after, merged, tenant_key_bytes, kind) {
            Ok(None) => Ok(()),
            Ok(Some(past)) => {
                let n = self.counters.replica_puts_past_bounds.get() + 1;
                ShardCounters::bump(&self.counters.replica_puts_past_bounds);
                // The first few, then one in a thousand: a flood of repairs
                // must not flood the log.
                if n <= 10 || n.is_multiple_of(1000) {
                    let identity = crate::model::key::decode_storage_key(key);
                    tracing::warn!(shard = self.id, key = ?identity, count = n, bound = %past,
                        "a repair left a key past a per-key bound (accepted: another replica holds it)");
                }
                Ok(())
            }
            Err(e) => {
                ShardCounters::bump(&self.counters.puts_refused_by_bounds);
                Err(EngineError::Invalid {
                    what: e.to_string(),
                })
            }
        }
    }
}

/// Removes a file start-up found obsolete; one already gone (removed by a
/// task of a shard closed a moment ago, in tests that reopen in-process) is
/// what was wanted.
fn remove_if_present(path: &Path) -> Result<(), EngineError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(EngineError::io(path, "remove", e))
        }
        _ => Ok(()),
    }
}

/// Deletes `sst-*.sst` files the manifest does not list (a flush that
/// crashed before its manifest edit).
fn remove_unlisted_tables(dir: &Path, manifest: &Manifest) -> Result<(), EngineError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, "list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(dir, "list", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let file_no = name
            .strip_prefix("sst-")
            .and_then(|n| n.strip_suffix(".sst"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(no) = file_no {
            if !manifest.tables.iter().any(|t| t.file_no == no) {
                tracing::info!(
                    file = name,
                    "removing an SSTable no manifest lists (an unfinished flush or compaction, or a table a compaction replaced)"
                );
                remove_if_present(&entry.path())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
