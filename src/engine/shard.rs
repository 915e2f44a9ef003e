//! One shard: the slice of the token ring a single core owns, stored as an
//! LSM tree.
//!
//! Owns the shard's memtable, immutable memtables waiting for flush, open
//! SSTables, manifest, WAL writer, background flusher and counters, and
//! executes [`ShardOp`]s against them. A shard is touched only by its own
//! core (`!Send`, held in an `Rc`), so `RefCell`/`Cell` suffice; no borrow is
//! held across an `.await`.
//!
//! Write path: check WAL room and memtable room (else wait for flush up to
//! `write_stall_timeout_ms`, then MEMORY_PRESSURE, nothing changed); read the
//! key's versions from the SSTables (async), then in one synchronous step
//! merge them with the memtables' versions, decide (stale, or the stamp of a
//! blind write), apply to the memtable and queue the WAL record, so log order
//! is apply order; answer when the record is durable. A write that changes
//! nothing still waits for the WAL to be durable up to that point, so a
//! retried write is never acknowledged before its original is on disk.
//!
//! Invariants:
//! - every version a read could need is in the memtable, an immutable
//!   memtable, or a table listed by the manifest; a flush installs its table
//!   and drops its immutable memtable in one synchronous step, bumping
//!   `epoch`, and readers that crossed an epoch re-read the tables;
//! - an immutable memtable holds exactly the records of WAL segments below
//!   the segment number its rotation yielded; those segments are deleted only
//!   after the manifest naming its table is durable;
//! - memory is bounded: at most `immutable_memtables_max` immutable memtables
//!   plus one active memtable of about `memtable_bytes_max`.

use super::memtable::Memtable;
use super::ops::{PutClock, ShardOp, ShardReply, ShardStats, WalFigures};
use super::table::Table;
use super::EngineError;
use crate::config::StorageConfig;
use crate::model::{ApplyOutcome, Version, VersionSet};
use crate::storage::manifest::{self, Manifest};
use crate::storage::wal::format::Record;
use crate::storage::wal::replay;
use crate::storage::wal::writer::{WalStart, WalWriter};
use bytes::Bytes;
use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
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
    pub flushes: Cell<u64>,
    pub flush_bytes: Cell<u64>,
    pub write_stalls: Cell<u64>,
}

impl ShardCounters {
    pub fn bump(cell: &Cell<u64>) {
        cell.set(cell.get().wrapping_add(1));
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
    /// Newest first.
    tables: Vec<Rc<Table>>,
    manifest: Manifest,
}

pub struct Shard {
    id: usize,
    node_id: String,
    dir: PathBuf,
    config: StorageConfig,
    state: RefCell<State>,
    /// Bumped whenever the set of tables changes.
    epoch: Cell<u64>,
    /// `wal.submitted_bytes()` at the last memtable rotation.
    wal_bytes_at_rotation: Cell<u64>,
    wal: WalWriter,
    flush_wake: LocalSender<()>,
    /// Woken (closed and replaced) when a flush completes.
    flushed: RefCell<Rc<glommio::sync::Semaphore>>,
    /// What start-up replayed, for metrics.
    recovery: replay::ReplaySummary,
    /// Set by `halt`: the flusher starts no new flush.
    halted: Cell<bool>,
    /// A flush is between its first and last step.
    flushing: Cell<bool>,
    pub counters: ShardCounters,
}

/// Wall-clock Unix milliseconds (display and tie-break only).
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal {
        what: format!("{what} {}: {e}", path.display()),
    }
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
        crate::storage::sentinel::touch(dir).await?;
        let manifest = manifest::load(dir, id as u32)?;
        remove_unlisted_tables(dir, &manifest)?;
        let mut tables = Vec::with_capacity(manifest.tables.len());
        for meta in manifest.tables.iter().rev() {
            tables.push(Rc::new(Table::open(dir, meta.clone()).await?));
        }
        for (no, path) in replay::list_segments(dir)? {
            if no < manifest.wal_min_segment {
                std::fs::remove_file(&path).map_err(|e| io(&path, "remove", e))?;
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
                std::fs::remove_file(&path).map_err(|e| io(&path, "remove", e))?;
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
        let shard = Rc::new(Self {
            id,
            node_id,
            dir: dir.to_path_buf(),
            config: config.clone(),
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
            flushed: RefCell::new(Rc::new(glommio::sync::Semaphore::new(0))),
            recovery,
            halted: Cell::new(false),
            flushing: Cell::new(false),
            counters: ShardCounters::default(),
        });
        let tq = glommio::executor().create_task_queue(
            glommio::Shares::Static(200),
            glommio::Latency::NotImportant,
            "flush",
        );
        let flusher = Rc::clone(&shard);
        glommio::spawn_local_into(async move { flusher.flush_loop(flush_woken).await }, tq)
            .map_err(|e| EngineError::Internal {
                what: format!("cannot start the flusher: {e}"),
            })?
            .detach();
        if !shard.state.borrow().immutables.is_empty() {
            let _ = shard.flush_wake.try_send(());
        }
        Ok(shard)
    }

    pub fn id(&self) -> usize {
        self.id
    }

    /// Clean shutdown: flushes every memtable (so a restart replays
    /// nothing), then commits and stops the WAL.
    pub async fn close(&self) -> Result<(), EngineError> {
        let flushed = self.flush(Duration::from_secs(60)).await;
        let closed = self.wal.close().await;
        flushed.and(closed)
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
            self.wait_flush((deadline - now).min(Duration::from_millis(100)))
                .await;
        }
        Ok(())
    }

    /// Executes one operation on this shard.
    pub async fn execute(&self, op: ShardOp) -> ShardReply {
        let result = match op {
            ShardOp::Put { key, value, clock } => self.put(key.storage_key, value, clock).await,
            ShardOp::Get { key } => self
                .get(&key.storage_key)
                .await
                .map(|versions| ShardReply::Get { versions }),
            ShardOp::Stats => Ok(ShardReply::Stats(self.stats())),
        };
        result.unwrap_or_else(ShardReply::Failed)
    }

    /// Versions of `key` in the tables, consistent with the current epoch
    /// when this returns (no await may separate it from the caller's use).
    async fn table_versions(&self, key: &[u8]) -> Result<Vec<Version>, EngineError> {
        loop {
            let epoch = self.epoch.get();
            let tables: Vec<Rc<Table>> = self.state.borrow().tables.clone();
            let mut out = Vec::new();
            for t in tables {
                if let Some(vs) = t.get(key).await? {
                    out.extend(vs);
                }
            }
            if self.epoch.get() == epoch {
                return Ok(out);
            }
        }
    }

    /// Every stored version of `key`, reconciled (memtables and tables).
    fn reconcile(&self, key: &[u8], from_tables: Vec<Version>) -> VersionSet {
        let st = self.state.borrow();
        let mut set = VersionSet::from_versions(from_tables);
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
    ) -> Result<ShardReply, EngineError> {
        let estimate = key.len() + value.as_ref().map_or(0, |v| v.len()) + 256;
        self.wal.check_room(estimate)?;
        self.make_room().await?;
        let from_tables = self.table_versions(&key).await?;
        // From here to the WAL submit: no await. The WAL may have failed or
        // closed during the awaits above: check again before changing anything.
        self.wal.check_room(0)?;
        let mut full = self.reconcile(&key, from_tables);
        let clock = match clock {
            PutClock::Given(c) => c,
            PutClock::Blind => {
                full.blind_clock(&self.node_id)
                    .ok_or_else(|| EngineError::Invalid {
                        what: format!(
                    "vector_clock: this node's counter ({}) is at its maximum, a blind write \
                     cannot supersede the stored versions; write with an explicit clock",
                    self.node_id
                ),
                    })?
            }
        };
        let version = Version {
            clock,
            timestamp_ms: now_unix_ms(),
            value,
        };
        let (stored, ticket) = match full.apply(version.clone()) {
            ApplyOutcome::Stale => (false, self.wal.barrier()),
            ApplyOutcome::Stored { .. } => {
                self.state
                    .borrow_mut()
                    .memtable
                    .apply(&key, version.clone());
                let ticket = self.wal.submit(Record::Put { key, version });
                (true, ticket)
            }
        };
        let merged = full.merged_clock();
        if stored && self.memtable_due() {
            self.rotate_memtable_if_room();
        }
        ticket.wait().await?;
        Ok(ShardReply::Put {
            stored,
            clock: merged,
        })
    }

    /// Waits while the memtable is full and no immutable slot is free.
    async fn make_room(&self) -> Result<(), EngineError> {
        let full = |s: &Self| {
            s.memtable_due()
                && s.state.borrow().immutables.len() >= s.config.immutable_memtables_max
        };
        if !full(self) {
            return Ok(());
        }
        ShardCounters::bump(&self.counters.write_stalls);
        let deadline = Instant::now() + Duration::from_millis(self.config.write_stall_timeout_ms);
        while full(self) {
            let now = Instant::now();
            if now >= deadline {
                return Err(EngineError::Overloaded {
                    what: format!(
                        "shard {} is flushing memtables slower than writes arrive; retry with backoff",
                        self.id
                    ),
                });
            }
            self.wait_flush(deadline - now).await;
        }
        self.rotate_memtable_if_room();
        Ok(())
    }

    async fn wait_flush(&self, max: Duration) {
        let sem = Rc::clone(&self.flushed.borrow());
        futures_lite::future::or(
            async {
                let _ = sem.acquire(1).await;
            },
            glommio::timer::sleep(max),
        )
        .await;
    }

    /// The memtable should become immutable: it is full, or the WAL written
    /// since the last rotation (overwrites of the same keys grow the WAL but
    /// not the memtable) passed `wal_bytes_per_memtable_max`, bounding what
    /// a restart replays.
    fn memtable_due(&self) -> bool {
        let st = self.state.borrow();
        let wal_since = self.wal.submitted_bytes() - self.wal_bytes_at_rotation.get();
        !st.memtable.is_empty()
            && (st.memtable.bytes() >= self.config.memtable_bytes_max
                || wal_since >= self.config.wal_bytes_per_memtable_max)
    }

    fn rotate_memtable_if_room(&self) {
        let room = self.state.borrow().immutables.len() < self.config.immutable_memtables_max;
        if room && self.memtable_due() {
            self.rotate_memtable();
        }
    }

    /// Makes the memtable immutable and starts a fresh one and a fresh WAL
    /// segment, in one synchronous step.
    fn rotate_memtable(&self) {
        let wal_from = self.wal.rotate();
        self.wal_bytes_at_rotation.set(self.wal.submitted_bytes());
        let mut st = self.state.borrow_mut();
        let mem = std::mem::take(&mut st.memtable);
        st.immutables.push(Rc::new(Immutable {
            mem,
            wal_from: RefCell::new(Some(wal_from)),
            wal_from_known: Cell::new(None),
        }));
        drop(st);
        let _ = self.flush_wake.try_send(());
    }

    /// Stops background work as a crash would, at a point between flushes:
    /// the flusher starts nothing new, and the WAL commits what it holds and
    /// stops. Used by tests that reopen a shard in the same process.
    pub async fn halt(&self) {
        self.halted.set(true);
        let _ = self.flush_wake.try_send(());
        while self.flushing.get() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let _ = self.wal.close().await;
    }

    async fn flush_loop(self: Rc<Self>, woken: LocalReceiver<()>) {
        loop {
            if self.halted.get() {
                return;
            }
            let next = self.state.borrow().immutables.first().cloned();
            let Some(imm) = next else {
                if woken.recv().await.is_none() {
                    return;
                }
                continue;
            };
            self.flushing.set(true);
            let result = self.flush_one(&imm).await;
            self.flushing.set(false);
            self.notify_flushed();
            if let Err(e) = result {
                tracing::error!(shard = self.id, error = %e, "flush failed; retrying in 1 s");
                glommio::timer::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Wakes everyone waiting in `wait_flush`.
    fn notify_flushed(&self) {
        let old = std::mem::replace(
            &mut *self.flushed.borrow_mut(),
            Rc::new(glommio::sync::Semaphore::new(0)),
        );
        old.close();
    }

    /// Writes the oldest immutable memtable as a table, records it in the
    /// manifest, installs it, then deletes the WAL segments it covered.
    async fn flush_one(&self, imm: &Rc<Immutable>) -> Result<(), EngineError> {
        let started = Instant::now();
        let wal_from = match imm.wal_from_known.get() {
            Some(n) => n,
            None => {
                let rx = imm.wal_from.borrow_mut().take();
                let n = match rx {
                    Some(rx) => rx.await.map_err(|_| EngineError::Internal {
                        what: "the WAL did not switch segments (WAL failed?)".into(),
                    })?,
                    None => {
                        return Err(EngineError::Internal {
                            what: "flush lost its WAL marker".into(),
                        })
                    }
                };
                imm.wal_from_known.set(Some(n));
                n
            }
        };
        let file_no = {
            let mut st = self.state.borrow_mut();
            let n = st.manifest.next_file_no;
            st.manifest.next_file_no += 1;
            n
        };
        let staged = async {
            if imm.mem.is_empty() {
                return Ok((None, None));
            }
            let meta = Table::write(
                &self.dir,
                file_no,
                imm.mem.iter(),
                self.config.sstable_block_bytes,
            )
            .await?;
            let table = Rc::new(Table::open(&self.dir, meta.clone()).await?);
            Ok::<_, EngineError>((Some(meta), Some(table)))
        };
        let (meta, table) = match staged.await {
            Ok(v) => v,
            Err(e) => {
                // No manifest names this file yet: do not leave it behind
                // (a retry takes a new number).
                let path = self.dir.join(manifest::table_file_name(file_no));
                if path.exists() {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(e);
            }
        };
        let mut next = self.state.borrow().manifest.clone();
        if let Some(m) = &meta {
            next.tables.push(m.clone());
        }
        next.wal_min_segment = next.wal_min_segment.max(wal_from);
        manifest::store(&self.dir, &next).await?;
        {
            let mut st = self.state.borrow_mut();
            if let Some(t) = table {
                st.tables.insert(0, t);
            }
            st.immutables.retain(|i| !Rc::ptr_eq(i, imm));
            next.next_file_no = next.next_file_no.max(st.manifest.next_file_no);
            st.manifest = next;
        }
        self.epoch.set(self.epoch.get() + 1);
        ShardCounters::bump(&self.counters.flushes);
        let bytes = meta.as_ref().map_or(0, |m| m.file_bytes);
        self.counters
            .flush_bytes
            .set(self.counters.flush_bytes.get() + bytes);
        for (no, path) in replay::list_segments(&self.dir)? {
            if no < wal_from {
                if let Err(e) = glommio::io::remove(&path).await {
                    tracing::warn!(file = %path.display(), error = %e, "cannot remove an obsolete WAL segment");
                }
            }
        }
        tracing::debug!(
            shard = self.id,
            file_no,
            bytes,
            micros = started.elapsed().as_micros() as u64,
            "flushed"
        );
        Ok(())
    }

    fn wal_stats(&self) -> WalFigures {
        let w = self.wal.stats();
        WalFigures {
            bytes_written: w.bytes_written.get(),
            fsyncs: w.fsyncs.get(),
            fsync_micros_total: w.fsync_micros_total.get(),
            fsync_micros_max: w.fsync_micros_max.get(),
            records: w.records.get(),
            batches: w.batches.get(),
            replayed_records: self.recovery.records,
            replayed_bytes: self.recovery.bytes,
            replay_micros: self.recovery.micros,
        }
    }

    pub fn stats(&self) -> ShardStats {
        let st = self.state.borrow();
        ShardStats {
            shard: self.id,
            keys: st.memtable.len() as u64 + st.tables.iter().map(|t| t.meta.entries).sum::<u64>(),
            memtable_bytes: st.memtable.bytes() as u64,
            immutable_memtables: st.immutables.len() as u64,
            immutable_bytes: st.immutables.iter().map(|i| i.mem.bytes() as u64).sum(),
            sstables: st.tables.len() as u64,
            sstable_bytes: st.tables.iter().map(|t| t.meta.file_bytes).sum(),
            flushes: self.counters.flushes.get(),
            write_stalls: self.counters.write_stalls.get(),
            requests_local: self.counters.requests_local.get(),
            requests_forwarded_out: self.counters.requests_forwarded_out.get(),
            requests_forwarded_in: self.counters.requests_forwarded_in.get(),
            wal: self.wal_stats(),
        }
    }
}

/// Deletes `sst-*.sst` files the manifest does not list (a flush that
/// crashed before its manifest edit).
fn remove_unlisted_tables(dir: &Path, manifest: &Manifest) -> Result<(), EngineError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, "list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, "list", e))?;
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
                    "removing an SSTable no manifest lists (unfinished flush)"
                );
                std::fs::remove_file(entry.path()).map_err(|e| io(&entry.path(), "remove", e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{KeyRef, VectorClock};
    use bytes::Bytes;
    use std::time::Duration;

    /// Runs `f` on a fresh glommio executor (io_uring) with a temp directory
    /// on the project's disk (tmpfs has no O_DIRECT).
    pub(crate) fn with_executor<F, Fut>(f: F)
    where
        F: FnOnce(std::path::PathBuf) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let dir = crate::storage::test_dir();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 * 1024)
            .spawn(move || f(path))
            .unwrap()
            .join()
            .unwrap();
    }

    fn put(key: &KeyRef, v: Option<&'static str>, clock: PutClock) -> ShardOp {
        ShardOp::Put {
            key: key.clone(),
            value: v.map(|s| Bytes::from_static(s.as_bytes())),
            clock,
        }
    }

    #[test]
    fn blind_writes_overwrite_and_stamp_node_id() {
        with_executor(|dir| async move {
            let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
                .await
                .unwrap();
            let key = KeyRef::new("t", "k");
            let ShardReply::Put { clock: c1, .. } =
                shard.execute(put(&key, Some("a"), PutClock::Blind)).await
            else {
                panic!()
            };
            let ShardReply::Put { clock: c2, .. } =
                shard.execute(put(&key, Some("b"), PutClock::Blind)).await
            else {
                panic!()
            };
            assert_eq!(c1.get("n1"), 1);
            assert_eq!(c2.get("n1"), 2);
            let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key }).await else {
                panic!()
            };
            assert_eq!(versions.len(), 1);
            assert_eq!(versions.versions()[0].value.as_deref(), Some(&b"b"[..]));
            assert_eq!(shard.stats().wal.records, 2);
        });
    }

    #[test]
    fn blind_write_past_the_counter_limit_is_refused_and_the_shard_keeps_working() {
        with_executor(|dir| async move {
            let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
                .await
                .unwrap();
            let key = KeyRef::new("t", "k");
            let top = VectorClock::from_entries([("n1".to_string(), i64::MAX)], 8).unwrap();
            let reply = shard
                .execute(put(&key, Some("a"), PutClock::Given(top)))
                .await;
            assert!(
                matches!(reply, ShardReply::Put { stored: true, .. }),
                "{reply:?}"
            );
            let reply = shard.execute(put(&key, Some("b"), PutClock::Blind)).await;
            assert!(
                matches!(reply, ShardReply::Failed(EngineError::Invalid { .. })),
                "{reply:?}"
            );
            let other = KeyRef::new("t", "other");
            let reply = shard.execute(put(&other, Some("c"), PutClock::Blind)).await;
            assert!(
                matches!(reply, ShardReply::Put { stored: true, .. }),
                "{reply:?}"
            );
            shard.flush(Duration::from_secs(10)).await.unwrap();
        });
    }

    #[test]
    fn given_clock_is_never_stamped() {
        with_executor(|dir| async move {
            let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
                .await
                .unwrap();
            let key = KeyRef::new("t", "k");
            let clock = VectorClock::from_entries([("c".to_string(), 4)], 8).unwrap();
            let reply = shard
                .execute(put(&key, None, PutClock::Given(clock.clone())))
                .await;
            let ShardReply::Put {
                stored,
                clock: answered,
            } = reply
            else {
                panic!()
            };
            assert!(stored);
            assert_eq!(answered, clock);
        });
    }

    #[test]
    fn reopening_replays_the_wal() {
        with_executor(|dir| async move {
            let config = StorageConfig::default();
            let key = KeyRef::new("t", "k");
            {
                let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
                for v in ["a", "b", "c"] {
                    shard.execute(put(&key, Some(v), PutClock::Blind)).await;
                }
                let other = KeyRef::new("t", "gone");
                shard.execute(put(&other, Some("x"), PutClock::Blind)).await;
                shard.execute(put(&other, None, PutClock::Blind)).await;
            }
            let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
            let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key }).await else {
                panic!()
            };
            assert_eq!(versions.len(), 1);
            assert_eq!(versions.versions()[0].value.as_deref(), Some(&b"c"[..]));
            assert_eq!(versions.merged_clock().get("n1"), 3);
            let gone = KeyRef::new("t", "gone");
            let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key: gone }).await
            else {
                panic!()
            };
            assert!(versions.visible().is_none());
            assert_eq!(shard.stats().wal.replayed_records, 5);
        });
    }

    fn small_config() -> StorageConfig {
        StorageConfig {
            wal_segment_bytes_max: 256 * 1024,
            ..StorageConfig::default()
        }
    }

    fn files_with_prefix(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn corrupt_table_block_answers_corrupted_never_data() {
        with_executor(|dir| async move {
            let key = KeyRef::new("t", "k");
            {
                let shard = Shard::open(&dir, 0, "n1".into(), &small_config())
                    .await
                    .unwrap();
                shard
                    .execute(put(&key, Some("value"), PutClock::Blind))
                    .await;
                shard.close().await.unwrap();
            }
            let tables = files_with_prefix(&dir, "sst-");
            assert_eq!(tables.len(), 1);
            // The first data block starts at offset 0; flip a payload byte.
            let mut raw = std::fs::read(&tables[0]).unwrap();
            raw[30] ^= 0x20;
            std::fs::write(&tables[0], raw).unwrap();
            let shard = Shard::open(&dir, 0, "n1".into(), &small_config())
                .await
                .unwrap();
            let reply = shard.execute(ShardOp::Get { key: key.clone() }).await;
            let ShardReply::Failed(e) = reply else {
                panic!("corruption served as data: {reply:?}")
            };
            assert!(e.is_corruption(), "{e}");
            // A write to the key needs its versions, so it fails the same way.
            let reply = shard.execute(put(&key, Some("x"), PutClock::Blind)).await;
            assert!(
                matches!(reply, ShardReply::Failed(ref e) if e.is_corruption()),
                "{reply:?}"
            );
        });
    }

    #[test]
    fn wal_corruption_before_the_tail_stops_open_naming_file_and_offset() {
        with_executor(|dir| async move {
            {
                let shard = Shard::open(&dir, 0, "n1".into(), &small_config())
                    .await
                    .unwrap();
                for i in 0..5 {
                    let key = KeyRef::new("t", &format!("k{i}"));
                    shard.execute(put(&key, Some("v"), PutClock::Blind)).await;
                }
                shard.halt().await;
            }
            // The first segment holds the records (the next one is a spare).
            let segments = files_with_prefix(&dir, "wal-");
            let seg = &segments[0];
            let mut raw = std::fs::read(seg).unwrap();
            raw[4096 + 45] ^= 0x01; // inside the first batch's payload
            std::fs::write(seg, raw).unwrap();
            let err = match Shard::open(&dir, 0, "n1".into(), &small_config()).await {
                Ok(_) => panic!("open succeeded over a corrupt WAL"),
                Err(e) => e,
            };
            let text = err.to_string();
            assert!(err.is_corruption(), "{text}");
            assert!(
                text.contains(seg.file_name().unwrap().to_str().unwrap()),
                "{text}"
            );
            assert!(text.contains("4096"), "{text}");
            // The documented escape hatch skips the damaged segment's rest.
            let skip = StorageConfig {
                wal_replay_skip_corruption: true,
                ..small_config()
            };
            assert!(Shard::open(&dir, 0, "n1".into(), &skip).await.is_ok());
        });
    }

    #[test]
    fn torn_wal_tail_is_truncated_and_earlier_writes_survive() {
        with_executor(|dir| async move {
            {
                let shard = Shard::open(&dir, 0, "n1".into(), &small_config())
                    .await
                    .unwrap();
                for i in 0..3 {
                    let key = KeyRef::new("t", &format!("k{i}"));
                    shard.execute(put(&key, Some("v"), PutClock::Blind)).await;
                }
                shard.halt().await;
            }
            // The first segment holds the records (the next one is a spare).
            let segments = files_with_prefix(&dir, "wal-");
            let seg = &segments[0];
            let mut raw = std::fs::read(seg).unwrap();
            // Zero the tail end of the last batch: a write cut short.
            let end = raw.iter().rposition(|b| *b != 0).unwrap();
            for b in &mut raw[end - 3..=end] {
                *b = 0;
            }
            std::fs::write(seg, raw).unwrap();
            let shard = Shard::open(&dir, 0, "n1".into(), &small_config())
                .await
                .unwrap();
            for (i, expect_found) in [(0, true), (1, true), (2, false)] {
                let key = KeyRef::new("t", &format!("k{i}"));
                let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key }).await else {
                    panic!()
                };
                assert_eq!(versions.visible().is_some(), expect_found, "k{i}");
            }
        });
    }

    #[test]
    fn flushed_tables_serve_reads_and_wal_is_released() {
        with_executor(|dir| async move {
            let config = StorageConfig {
                memtable_bytes_max: 64 * 1024,
                ..small_config()
            };
            let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
            let big: &'static str = Box::leak("x".repeat(2000).into_boxed_str());
            for i in 0..200 {
                let key = KeyRef::new("t", &format!("k{i:03}"));
                shard.execute(put(&key, Some(big), PutClock::Blind)).await;
            }
            shard.flush(Duration::from_secs(10)).await.unwrap();
            let stats = shard.stats();
            assert!(stats.sstables >= 2, "{stats:?}");
            assert_eq!(stats.immutable_memtables, 0);
            for i in 0..200 {
                let key = KeyRef::new("t", &format!("k{i:03}"));
                let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key }).await else {
                    panic!()
                };
                assert_eq!(versions.len(), 1, "k{i}");
                assert_eq!(
                    versions.visible().unwrap().value.as_deref(),
                    Some(big.as_bytes())
                );
            }
            // Only the segment written after the last rotation remains (and
            // the spare being prepared for the next switch).
            assert!(files_with_prefix(&dir, "wal-").len() <= 2);
            shard.close().await.unwrap();
            drop(shard);
            let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
            assert_eq!(
                shard.stats().wal.replayed_records,
                0,
                "a clean shutdown leaves nothing to replay"
            );
        });
    }
}
