//! The flusher: how a memtable waiting for flush becomes a level-0 table.
//!
//! Owns the flusher task (a [`super::worker::Worker`] in its own task
//! queue): it writes the oldest memtable waiting for flush as a table,
//! installs it with one manifest edit ([`TreeVersion::flushed`]), and
//! deletes the WAL segments the edit made obsolete. Invariants: see the
//! shard module; in particular the table is installed and the memtable
//! dropped in one synchronous step after the manifest is durable, and a
//! WAL segment is deleted only after that.

use super::immutable::Immutable;
use super::version::TreeVersion;
use super::worker::Wakeups;
use super::{Shard, ShardCounters};
use crate::engine::table::Table;
use crate::engine::EngineError;
use crate::storage::manifest;
use crate::storage::wal::writer::segment_file_name;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long the flusher waits after a failed flush before trying again.
const FLUSH_RETRY: Duration = Duration::from_secs(1);

impl Shard {
    pub(super) async fn flush_loop(self: Rc<Self>, wakeups: Wakeups) {
        loop {
            if self.flusher.stopping() {
                return;
            }
            let next = self.tree.current().immutables().first().cloned();
            let Some(imm) = next else {
                // Nothing waits for a flush: a past lack of space no longer
                // holds anything up.
                self.counters.flush_disk_full.set(false);
                if !wakeups.next().await {
                    return;
                }
                continue;
            };
            let result = self.flusher.job(self.flush_one(&imm)).await;
            self.counters
                .flush_disk_full
                .set(matches!(result, Err(EngineError::DiskFull { .. })));
            self.progress.notify();
            if let Err(e) = result {
                ShardCounters::bump(&self.counters.flush_failures);
                tracing::error!(shard = self.id, error = %e, "flush failed; retrying in 1 s");
                if !wakeups.next_or_after(FLUSH_RETRY).await {
                    return;
                }
            }
        }
    }

    /// Writes `imm` as a table, records it in the manifest, installs it,
    /// then deletes the WAL segments it covered.
    #[allow(clippy::await_holding_refcell_ref)] // see the memtable borrow below
    async fn flush_one(&self, imm: &Rc<Immutable>) -> Result<(), EngineError> {
        let started = Instant::now();
        let wal_from = imm.wal_from().await?;
        imm.writes_done().await;
        let file_no = self.tree.allocate_file_no();
        let staged = async {
            if imm.mem().is_empty() {
                return Ok(None);
            }
            // Held across the writes: after `writes_done` nothing borrows
            // the memtable mutably (see `Immutable::apply_late`).
            let meta = {
                let mem = imm.mem();
                Table::write(
                    &self.dir,
                    file_no,
                    mem.iter(),
                    self.config.sstable_block_bytes,
                )
                .await?
            };
            Ok::<_, EngineError>(Some(Rc::new(Table::open(&self.dir, meta).await?)))
        };
        let table = match staged.await {
            Ok(t) => t,
            Err(e) => {
                // No manifest names this file yet: do not leave it behind
                // (a retry takes a new number).
                let path = self.dir.join(manifest::table_file_name(file_no));
                let _ = crate::storage::disk::remove(&path).await;
                return Err(e);
            }
        };
        // Cached table versions of these keys are about to be incomplete;
        // no read refills them while `imm` waits for flush (see `cache_fill`).
        if !self.cache.borrow().is_empty() {
            let keys: Vec<bytes::Bytes> = imm.mem().iter().map(|(k, _)| k.clone()).collect();
            for key in keys {
                self.cache.borrow_mut().remove(&key);
                glommio::yield_if_needed().await;
            }
        }
        // Not stored: the table file is unlisted (removed at the next start)
        // and the memtable stays for a retry. Stored but unsynced: installed,
        // but the WAL segments stay, which the previous manifest needs if a
        // crash brings it back.
        let bytes = table.as_ref().map_or(0, |t| t.file_bytes());
        let stored = self
            .tree
            .edit(&self.dir, |v: &TreeVersion| {
                v.flushed(imm, table.clone(), wal_from)
            })
            .await?;
        self.compactor.wake();
        ShardCounters::bump(&self.counters.flushes);
        ShardCounters::add(&self.counters.flush_bytes, bytes);
        self.counters.flush_latency.record(started.elapsed());
        stored.into_result()?;
        self.remove_wal_segments_below(wal_from).await;
        tracing::debug!(
            shard = self.id,
            file_no,
            bytes,
            micros = started.elapsed().as_micros() as u64,
            "flushed"
        );
        Ok(())
    }

    /// Deletes the WAL segments numbered below `floor` that may still be
    /// on disk (numbers are consecutive; one already gone is skipped). A
    /// segment that cannot be deleted is left for start-up, which deletes
    /// every segment below the manifest's floor.
    async fn remove_wal_segments_below(&self, floor: u64) {
        let from = self.wal_segments_from.get();
        for no in from..floor {
            let path = self.dir.join(segment_file_name(no));
            if let Err(e) = crate::storage::disk::remove(&path).await {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove an obsolete WAL segment");
            }
        }
        self.wal_segments_from.set(from.max(floor));
    }
}
