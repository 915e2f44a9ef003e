//! The write path of a shard: one put (Write, Delete, Repair) from
//! admission to a durable answer, and memtable rotation.
//!
//! Owns [`Shard::put`], the per-key bound check, and deciding when the
//! active memtable becomes immutable. Order of a put: WAL room, flow
//! control ([`super::flow`]), the key's versions from the tables (async),
//! then in one synchronous step: merge with the memtables and the pending
//! versions, decide (stale, or the stamp of a blind write), check the
//! bounds, queue the WAL record and record the version as pending
//! ([`super::pending`]); once the record is durable, move the version into
//! the memtable of its generation and answer. Invariants: log order is
//! decision order; a refused put changes nothing; a version is readable
//! only once durable, and one whose WAL commit failed is never readable; a
//! put that changes nothing still waits for the WAL to be durable up to
//! that point, so a retried write is never acknowledged before its original
//! is on disk.

use super::immutable::Immutable;
use super::{now_unix_ms, Shard, ShardCounters};
use crate::engine::ops::{PutClock, ShardReply};
use crate::engine::EngineError;
use crate::model::{ApplyOutcome, PutKind, PutOrigin, VectorClock, Version, VersionSet};
use crate::storage::wal::format::Record;
use bytes::Bytes;
use std::rc::Rc;

impl Shard {
    pub(super) async fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        clock: PutClock,
        origin: PutOrigin,
        timestamp_ms: Option<i64>,
    ) -> Result<ShardReply, EngineError> {
        let estimate = key.len() + value.as_ref().map_or(0, |v| v.len()) + 256;
        self.wal.check_room(estimate)?;
        self.admit_write().await?;
        let from_tables = self.table_versions(&key).await?;
        // From here to the WAL submit: no await. The WAL may have failed or
        // closed during the awaits above: check again before changing anything.
        self.wal.check_room(0)?;
        let mut full = self.reconcile(&key, from_tables);
        self.pending.overlay(&key, &mut full);
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
            timestamp_ms: timestamp_ms.unwrap_or_else(now_unix_ms),
            value,
        };
        let mut forward = None;
        let mut pending = None;
        let (stored, ticket, merged) = match full.apply(version.clone()) {
            ApplyOutcome::Stale => (false, self.wal.barrier(), full.merged_clock()),
            ApplyOutcome::Stored { .. } => {
                let merged = full.merged_clock();
                self.check_bounds(&key, &full, &merged, kind)?;
                // Queued first: a record the WAL cannot encode is refused
                // here, before anything changes.
                let ticket = self.wal.submit(Record::Put {
                    key: key.clone(),
                    version: version.clone(),
                })?;
                pending = Some(self.pending.add(&key, version));
                forward = self
                    .observer
                    .borrow()
                    .as_ref()
                    .filter(|o| o.wants())
                    .map(Rc::clone);
                (true, ticket, merged)
            }
        };
        let durable = ticket.wait().await;
        // Taken whatever the outcome: a failed version is dropped unread.
        let version = pending.as_ref().and_then(|p| self.pending.take(p));
        durable?;
        if let (Some(p), Some(version)) = (&pending, version) {
            if let Some(observer) = forward {
                observer.stored(&key, &version);
            }
            self.install_durable(&key, p.generation, version);
        }
        drop(pending);
        if stored && self.memtable_due() {
            self.rotate_memtable_if_room();
        }
        Ok(ShardReply::Put {
            stored,
            clock: merged,
        })
    }

    /// Applies copied versions (see `ShardOp::ApplyBatch`) concurrently;
    /// answers once every one is durable, or the first error.
    pub(super) async fn apply_batch(
        &self,
        entries: Vec<(crate::model::KeyRef, Version)>,
    ) -> Result<ShardReply, EngineError> {
        let puts = entries.into_iter().map(|(key, v)| {
            self.put(
                key.storage_key,
                v.value,
                PutClock::Given(v.clock),
                PutOrigin::Replica,
                Some(v.timestamp_ms),
            )
        });
        let (mut stored, mut stale) = (0, 0);
        for r in crate::engine::join::join_all(puts).await {
            match r? {
                ShardReply::Put { stored: true, .. } => stored += 1,
                _ => stale += 1,
            }
        }
        Ok(ShardReply::Applied { stored, stale })
    }

    /// Checks the per-key bounds on the set a put would leave (`after`,
    /// merged clock `merged`): a refused put changes nothing; a replica put
    /// past a soft bound is accepted, counted and logged.
    fn check_bounds(
        &self,
        key: &[u8],
        after: &VersionSet,
        merged: &VectorClock,
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

    /// The memtable should become immutable: it is full, or the WAL written
    /// since the last rotation (overwrites of the same keys grow the WAL but
    /// not the memtable) passed `wal_bytes_per_memtable_max`, bounding what
    /// a restart replays.
    pub(super) fn memtable_due(&self) -> bool {
        let active = self.tree.active();
        let wal_since = self.wal.submitted_bytes() - self.wal_bytes_at_rotation.get();
        !active.is_empty()
            && (active.bytes() >= self.config.memtable_bytes_max
                || wal_since >= self.config.wal_bytes_per_memtable_max)
    }

    pub(super) fn rotate_memtable_if_room(&self) {
        let room = self.tree.current().immutables().len() < self.config.immutable_memtables_max;
        if room && self.memtable_due() {
            self.rotate_memtable();
        }
    }

    /// Puts a durable version into the memtable of `generation`: the
    /// active one, or the immutable one it became (whose flush waits for
    /// this put, see [`super::pending`]).
    fn install_durable(&self, key: &Bytes, generation: u64, version: Version) {
        if generation == self.pending.generation() {
            self.tree.active_mut().apply(key, version);
            return;
        }
        let current = self.tree.current();
        match current
            .immutables()
            .iter()
            .find(|i| i.generation() == generation)
        {
            Some(imm) => imm.apply_late(key, version),
            // Unreachable while the flush waits for the generation's gate;
            // the newest memtable keeps the version readable regardless
            // (its WAL record is still covered: its segment is not
            // obsolete before that flush).
            None => {
                tracing::error!(
                    shard = self.id,
                    generation,
                    "memtable generation already flushed"
                );
                self.tree.active_mut().apply(key, version);
            }
        }
    }

    /// Makes the memtable immutable and starts a fresh one and a fresh WAL
    /// segment, in one synchronous step.
    pub(super) fn rotate_memtable(&self) {
        let wal_from = self.wal.rotate();
        self.wal_bytes_at_rotation.set(self.wal.submitted_bytes());
        let generation = self.pending.generation();
        let gate = self.pending.rotate();
        let mem = std::mem::take(&mut *self.tree.active_mut());
        let imm = Rc::new(Immutable::rotated(mem, wal_from, generation, gate));
        self.tree.install(self.tree.current().rotated(imm));
        self.flusher.wake();
    }
}
