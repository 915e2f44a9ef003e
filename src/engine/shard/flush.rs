//! Memtable rotation and flush: how a full memtable becomes a level-0
//! SSTable.
//!
//! Owns deciding when the memtable is due, rotating it (with a WAL segment
//! switch) into the immutable list, and the flusher task that writes the
//! oldest immutable memtable as a table, installs it with a manifest edit,
//! and deletes the WAL segments it covered. Invariants: see the shard
//! module; in particular the table is installed and the immutable memtable
//! dropped in one synchronous step after the manifest is durable.

use super::{Immutable, Shard, ShardCounters};
use crate::engine::table::Table;
use crate::engine::EngineError;
use crate::storage::manifest;
use crate::storage::wal::replay;
use glommio::channels::local_channel::LocalReceiver;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

impl Shard {
    /// The memtable should become immutable: it is full, or the WAL written
    /// since the last rotation (overwrites of the same keys grow the WAL but
    /// not the memtable) passed `wal_bytes_per_memtable_max`, bounding what
    /// a restart replays.
    pub(super) fn memtable_due(&self) -> bool {
        let st = self.state.borrow();
        let wal_since = self.wal.submitted_bytes() - self.wal_bytes_at_rotation.get();
        !st.memtable.is_empty()
            && (st.memtable.bytes() >= self.config.memtable_bytes_max
                || wal_since >= self.config.wal_bytes_per_memtable_max)
    }

    pub(super) fn rotate_memtable_if_room(&self) {
        let room = self.state.borrow().immutables.len() < self.config.immutable_memtables_max;
        if room && self.memtable_due() {
            self.rotate_memtable();
        }
    }

    /// Makes the memtable immutable and starts a fresh one and a fresh WAL
    /// segment, in one synchronous step.
    pub(super) fn rotate_memtable(&self) {
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
    /// the flusher starts nothing new, a running compaction is abandoned,
    /// and the WAL commits what it holds and stops. Used by tests that
    /// reopen a shard in the same process.
    pub async fn halt(&self) {
        self.halted.set(true);
        let _ = self.flush_wake.try_send(());
        self.stop_compaction().await;
        while self.flushing.get() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let _ = self.wal.close().await;
    }

    pub(super) async fn flush_loop(self: Rc<Self>, woken: LocalReceiver<()>) {
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
            self.notify_progress();
            if let Err(e) = result {
                tracing::error!(shard = self.id, error = %e, "flush failed; retrying in 1 s");
                glommio::timer::sleep(Duration::from_secs(1)).await;
            }
        }
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
        let file_no = self.allocate_file_no();
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
        // Cached table versions of these keys are about to be incomplete;
        // no read refills them while `imm` is listed (see `cache_fill`).
        if !self.cache.borrow().is_empty() {
            for (key, _) in imm.mem.iter() {
                self.cache.borrow_mut().remove(key);
                glommio::yield_if_needed().await;
            }
        }
        // Not stored: the table file is unlisted (removed at the next start)
        // and the memtable stays for a retry. Stored but unsynced: installed,
        // but the WAL segments stay, which the previous manifest needs if a
        // crash brings it back.
        let stored = self
            .edit_manifest(
                |next| {
                    if let Some(m) = &meta {
                        next.tables.push(m.clone());
                    }
                    next.wal_min_segment = next.wal_min_segment.max(wal_from);
                },
                |st, _| {
                    if let Some(t) = table {
                        st.tables.insert(0, t);
                    }
                    st.immutables.retain(|i| !Rc::ptr_eq(i, imm));
                },
            )
            .await?;
        let _ = self.compact_wake.try_send(());
        ShardCounters::bump(&self.counters.flushes);
        let bytes = meta.as_ref().map_or(0, |m| m.file_bytes);
        ShardCounters::add(&self.counters.flush_bytes, bytes);
        stored.into_result()?;
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
}
