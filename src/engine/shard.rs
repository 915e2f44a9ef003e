//! One shard: the slice of the token ring a single core owns.
//!
//! Owns the shard's memtable and counters and executes [`ShardOp`]s against
//! them. A shard is touched only by its own core (it is `!Send`, held in an
//! `Rc`), so interior mutability through `RefCell`/`Cell` is enough; no borrow
//! is ever held across an `.await`. `execute` is async so that durable storage
//! (WAL group commit, SSTable reads) slots in under it without changing the
//! request path above.

use super::memtable::Memtable;
use super::ops::{PutClock, ShardOp, ShardReply, ShardStats};
use crate::model::{ApplyOutcome, Version};
use std::cell::{Cell, RefCell};
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
    pub fn new(id: usize, node_id: String) -> Self {
        Self {
            id,
            node_id,
            memtable: RefCell::new(Memtable::new()),
            counters: ShardCounters::default(),
        }
    }

    pub fn id(&self) -> usize {
        self.id
    }

    /// Executes one operation on this shard.
    pub async fn execute(&self, op: ShardOp) -> ShardReply {
        match op {
            ShardOp::Put { key, value, clock } => {
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
                let (outcome, set) = mem.apply(&key.storage_key, version);
                ShardReply::Put {
                    stored: matches!(outcome, ApplyOutcome::Stored { .. }),
                    clock: set.merged_clock(),
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

    pub fn stats(&self) -> ShardStats {
        let mem = self.memtable.borrow();
        ShardStats {
            shard: self.id,
            keys: mem.len() as u64,
            memtable_bytes: mem.bytes() as u64,
            requests_local: self.counters.requests_local.get(),
            requests_forwarded_out: self.counters.requests_forwarded_out.get(),
            requests_forwarded_in: self.counters.requests_forwarded_in.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyRef, VectorClock};
    use bytes::Bytes;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        futures_lite::future::block_on(f)
    }

    #[test]
    fn blind_writes_overwrite_and_stamp_node_id() {
        let shard = Shard::new(0, "n1".into());
        let key = KeyRef::new("t", "k");
        let put = |v: &'static str| ShardOp::Put {
            key: key.clone(),
            value: Some(Bytes::from_static(v.as_bytes())),
            clock: PutClock::Blind,
        };
        let ShardReply::Put { clock: c1, .. } = run(shard.execute(put("a"))) else {
            panic!()
        };
        let ShardReply::Put { clock: c2, .. } = run(shard.execute(put("b"))) else {
            panic!()
        };
        assert_eq!(c1.get("n1"), 1);
        assert_eq!(c2.get("n1"), 2);
        let ShardReply::Get { versions } = run(shard.execute(ShardOp::Get { key })) else {
            panic!()
        };
        assert_eq!(versions.len(), 1);
        assert_eq!(versions.versions()[0].value.as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn given_clock_is_never_stamped() {
        let shard = Shard::new(0, "n1".into());
        let key = KeyRef::new("t", "k");
        let clock = VectorClock::from_entries([("c".to_string(), 4)], 8).unwrap();
        let op = ShardOp::Put {
            key,
            value: None,
            clock: PutClock::Given(clock.clone()),
        };
        let ShardReply::Put {
            stored,
            clock: answered,
        } = run(shard.execute(op))
        else {
            panic!()
        };
        assert!(stored);
        assert_eq!(answered, clock);
    }
}
