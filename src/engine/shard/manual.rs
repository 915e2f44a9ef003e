//! Compactions an operator asks for (the admin service's Compact): one
//! level merged into the next, or every level top down, whatever their
//! scores.
//!
//! Owns [`Shard::compact_levels`] and [`Compacted`]. A request is queued
//! for the compactor task, which runs it between its own compactions (as
//! it runs cleanups), so no two compactions of a shard ever run at once.
//! Each step is an ordinary [`CompactionPlan`](crate::engine::compaction::picker::CompactionPlan)
//! run by the same code as background compactions: the same disk-space
//! reserve for flushes (a step without room fails with `DiskFull` and the
//! request stops there, answered rather than waiting for space), the same
//! manifest edits and invariants.
//! Invariants: level 0 is taken once (tables flushed meanwhile wait for
//! the next compaction); a level below is walked once, table by table, in
//! key order; the last level is never an input; a request ends when the
//! shard closes.

use super::{Shard, ShardCounters};
use crate::config::LEVELS;
use crate::engine::compaction::picker;
use crate::engine::EngineError;
use bytes::Bytes;
use futures_channel::oneshot;

/// What a requested compaction did on one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Compacted {
    /// Plans that rewrote tables.
    pub merges: u64,
    /// Plans that only moved a table down a level.
    pub trivial_moves: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub keys_purged: u64,
}

/// A requested compaction waiting for the compactor.
pub(crate) struct CompactJob {
    /// `None`: every level.
    level: Option<usize>,
    done: oneshot::Sender<Result<Compacted, EngineError>>,
}

/// The counters a compaction moves, read before and after.
fn snapshot(c: &ShardCounters) -> Compacted {
    Compacted {
        merges: c.compactions.get(),
        trivial_moves: c.compaction_trivial_moves.get(),
        bytes_read: c.compaction_bytes_read.get(),
        bytes_written: c.compaction_bytes_written.get(),
        keys_purged: c.compaction_keys_purged.get(),
    }
}

impl Compacted {
    fn since(self, before: Compacted) -> Compacted {
        Compacted {
            merges: self.merges.wrapping_sub(before.merges),
            trivial_moves: self.trivial_moves.wrapping_sub(before.trivial_moves),
            bytes_read: self.bytes_read.wrapping_sub(before.bytes_read),
            bytes_written: self.bytes_written.wrapping_sub(before.bytes_written),
            keys_purged: self.keys_purged.wrapping_sub(before.keys_purged),
        }
    }
}

impl Shard {
    /// Compacts `level` into the next one, or every level when `None` (see
    /// the module documentation). A level at or past the last is refused.
    pub(crate) async fn compact_levels(
        &self,
        level: Option<usize>,
    ) -> Result<Compacted, EngineError> {
        if let Some(l) = level {
            if l + 1 >= LEVELS {
                return Err(EngineError::Invalid {
                    what: format!(
                        "level {l}: levels 0 to {} can be compacted (the last, {}, is never an input)",
                        LEVELS - 2,
                        LEVELS - 1
                    ),
                });
            }
        }
        let (done, answer) = oneshot::channel();
        self.compactions_asked
            .borrow_mut()
            .push_back(CompactJob { level, done });
        self.compactor.wake();
        answer.await.map_err(|_| EngineError::Internal {
            what: "compaction abandoned: the shard is closing".into(),
        })?
    }

    /// Runs the requested compactions waiting (on the compactor task).
    pub(super) async fn run_compactions_asked(&self) {
        loop {
            let job = self.compactions_asked.borrow_mut().pop_front();
            let Some(job) = job else {
                return;
            };
            let before = snapshot(&self.counters);
            let result = match job.level {
                Some(l) => self.compact_level(l).await,
                None => {
                    let mut r = Ok(());
                    for l in 0..LEVELS - 1 {
                        r = self.compact_level(l).await;
                        if r.is_err() {
                            break;
                        }
                    }
                    r
                }
            };
            // A step without room fails the request (answered DISK_FULL)
            // rather than wait: nothing waits for space, so the
            // compaction_disk_full figure is left to background work.
            self.progress.notify();
            let done = snapshot(&self.counters).since(before);
            tracing::info!(shard = self.id, level = ?job.level, merges = done.merges,
                moves = done.trivial_moves, ok = result.is_ok(), "requested compaction done");
            let _ = job.done.send(result.map(|()| done));
        }
    }

    /// Every table of `level` merged (or moved) into the next level.
    async fn compact_level(&self, level: usize) -> Result<(), EngineError> {
        let mut after: Option<Bytes> = None;
        loop {
            if self.compactor.stopping() {
                return Err(EngineError::Internal {
                    what: format!("shard {}: closing during a compaction", self.id),
                });
            }
            let Some(plan) = picker::plan_level(
                &self.table_infos(),
                &self.picker_config(),
                level,
                after.as_ref(),
            ) else {
                return Ok(());
            };
            self.compactor.job(self.compact(&plan)).await?;
            if level == 0 {
                return Ok(());
            }
            after = plan.next_cursor;
            glommio::yield_if_needed().await;
        }
    }
}
