//! One shard: the slice of the token ring a single core owns.
//!
//! Owns the shard's memtable, WAL writer and counters and executes
//! [`ShardOp`]s against them. A shard is touched only by its own core (it is
//! `!Send`, held in an `Rc`), so interior mutability through `RefCell`/`Cell`
//! is enough; no borrow is ever held across an `.await`.
//!
//! Write path: check WAL room (else MEMORY_PRESSURE, nothing changed), apply
//! the version to the memtable, queue its WAL record in the same synchronous
//! step (so log order is apply order), then answer only when the record is
//! durable (sync mode permitting). A write that changes nothing (stale or
//! repeated) still waits for the WAL to be durable up to that point, so a
//! retried write is never acknowledged before its original is on disk.

use super::memtable::Memtable;
use super::ops::{PutClock, ShardOp, ShardReply, ShardStats};
use super::EngineError;
use crate::config::StorageConfig;
use crate::model::{ApplyOutcome, Version};
use crate::storage::wal::format::Record;
use crate::storage::wal::replay;
use crate::storage::wal::writer::{WalStart, WalWriter};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Request counters, bumped by the router on this core.
#[derive(Debug, Default)]
pub struct ShardCounters {
    pub requests_local: Cell<u64>,
    pub requests_forwarded_out: Cell<u64>,
    pub requests_forwarded_in: Cell<u64>,
}

impl ShardCounters {
    pub fn bump(cell: &Cell<u64>) {
        cell.set(cell.get().wrapping_add(1));
    }
}

pub struct Shard {
    id: usize,
    node_id: String,
    memtable: RefCell<Memtable>,
    wal: WalWriter,
    /// What start-up replayed, for metrics.
    recovery: replay::ReplaySummary,
    pub counters: ShardCounters,
}

/// Wall-clock Unix milliseconds (display and tie-break only).
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Shard {
    /// Opens the shard stored in `dir`: replays its WAL into a memtable and
    /// starts a fresh WAL segment. Must run on the shard's own executor.
    pub async fn open(
        dir: &Path,
        id: usize,
        node_id: String,
        config: &StorageConfig,
    ) -> Result<Self, EngineError> {
        crate::storage::sentinel::touch(dir).await?;
        let mut memtable = Memtable::new();
        let recovery = replay::replay_dir(dir, id as u32, config, |key, version| {
            memtable.apply(&key, version);
        })
        .await?;
        let start = WalStart {
            next_segment_no: recovery.next_segment_no,
            next_seq: recovery.next_seq,
        };
        let wal = WalWriter::start(dir.to_path_buf(), id as u32, config, start).await?;
        Ok(Self {
            id,
            node_id,
            memtable: RefCell::new(memtable),
            wal,
            recovery,
            counters: ShardCounters::default(),
        })
    }

    /// Commits every queued WAL record and stops the WAL (clean shutdown).
    pub async fn close(&self) -> Result<(), EngineError> {
        self.wal.close().await
    }

    pub fn id(&self) -> usize {
        self.id
    }

    /// Executes one operation on this shard.
    pub async fn execute(&self, op: ShardOp) -> ShardReply {
        match op {
            ShardOp::Put { key, value, clock } => {
                let estimate = key.storage_key.len() + value.as_ref().map_or(0, |v| v.len()) + 256;
                if let Err(e) = self.wal.check_room(estimate) {
                    return ShardReply::Failed(e);
                }
                let (ticket, stored, clock) = {
                    let mut mem = self.memtable.borrow_mut();
                    let clock = match clock {
                        PutClock::Given(c) => c,
                        PutClock::Blind => match mem.get(&key.storage_key) {
                            Some(set) => set.blind_clock(&self.node_id),
                            None => {
                                let mut c = crate::model::VectorClock::new();
                                c.increment(&self.node_id);
                                c
                            }
                        },
                    };
                    let version = Version {
                        clock,
                        timestamp_ms: now_unix_ms(),
                        value,
                    };
                    let logged = version.clone();
                    let (outcome, set) = mem.apply(&key.storage_key, version);
                    let merged = set.merged_clock();
                    let stored = matches!(outcome, ApplyOutcome::Stored { .. });
                    let ticket = if stored {
                        self.wal.submit(Record::Put {
                            key: key.storage_key.clone(),
                            version: logged,
                        })
                    } else {
                        self.wal.barrier()
                    };
                    (ticket, stored, merged)
                };
                match ticket.wait().await {
                    Ok(()) => ShardReply::Put { stored, clock },
                    Err(e) => ShardReply::Failed(e),
                }
            }
            ShardOp::Get { key } => {
                let mem = self.memtable.borrow();
                let versions = mem.get(&key.storage_key).cloned().unwrap_or_default();
                ShardReply::Get { versions }
            }
            ShardOp::Stats => ShardReply::Stats(self.stats()),
        }
    }

    fn wal_stats(&self) -> super::ops::WalFigures {
        let w = self.wal.stats();
        super::ops::WalFigures {
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
        let mem = self.memtable.borrow();
        ShardStats {
            shard: self.id,
            keys: mem.len() as u64,
            memtable_bytes: mem.bytes() as u64,
            requests_local: self.counters.requests_local.get(),
            requests_forwarded_out: self.counters.requests_forwarded_out.get(),
            requests_forwarded_in: self.counters.requests_forwarded_in.get(),
            wal: self.wal_stats(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyRef, VectorClock};
    use bytes::Bytes;

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
}
