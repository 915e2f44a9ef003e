//! A full memtable waiting to become a level-0 table.
//!
//! Owns the memtable and the WAL segment number from which records are
//! newer than it. Invariant: the memtable holds exactly the records of the
//! WAL segments below that number not yet covered by a table; the number is
//! known once the WAL writer has switched segments (at rotation it is a
//! promise, resolved by the writer).

use crate::engine::memtable::Memtable;
use crate::engine::EngineError;
use crate::model::Version;
use bytes::Bytes;
use futures_channel::oneshot;
use glommio::sync::Gate;
use std::cell::{Cell, Ref, RefCell};
use std::rc::Rc;

pub(crate) struct Immutable {
    /// Written only by puts of its generation that were queued before the
    /// rotation and became durable after it (see `pending`); the gate
    /// says when none is left.
    mem: RefCell<Memtable>,
    generation: u64,
    gate: Option<Rc<Gate>>,
    /// Resolved by the WAL committer when it switches segments.
    wal_from_pending: RefCell<Option<oneshot::Receiver<u64>>>,
    /// Known segment number (after start-up replay, or once resolved).
    wal_from_known: Cell<Option<u64>>,
}

impl Immutable {
    /// A memtable rotated out while the WAL switches segments.
    pub(super) fn rotated(
        mem: Memtable,
        wal_from: oneshot::Receiver<u64>,
        generation: u64,
        gate: Rc<Gate>,
    ) -> Self {
        Self {
            mem: RefCell::new(mem),
            generation,
            gate: Some(gate),
            wal_from_pending: RefCell::new(Some(wal_from)),
            wal_from_known: Cell::new(None),
        }
    }

    /// A memtable rebuilt by start-up replay from segments below `wal_from`.
    pub(super) fn replayed(mem: Memtable, wal_from: u64) -> Self {
        Self {
            mem: RefCell::new(mem),
            generation: u64::MAX,
            gate: None,
            wal_from_pending: RefCell::new(None),
            wal_from_known: Cell::new(Some(wal_from)),
        }
    }

    /// The first WAL segment holding records newer than this memtable,
    /// waiting for the WAL writer to switch segments if it has not yet.
    /// The memtable (borrowed for reading; no await may hold it while
    /// puts of this generation are pending).
    pub(super) fn mem(&self) -> Ref<'_, Memtable> {
        self.mem.borrow()
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Adds a version that became durable after the rotation.
    pub(super) fn apply_late(&self, key: &Bytes, version: Version) {
        self.mem.borrow_mut().apply(key, version);
    }

    /// Waits until no put of this generation is pending: from then on the
    /// memtable does not change.
    pub(super) async fn writes_done(&self) {
        if let Some(gate) = &self.gate {
            let _ = gate.close().await;
        }
    }

    pub(super) async fn wal_from(&self) -> Result<u64, EngineError> {
        if let Some(n) = self.wal_from_known.get() {
            return Ok(n);
        }
        let rx = self.wal_from_pending.borrow_mut().take();
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
        self.wal_from_known.set(Some(n));
        Ok(n)
    }
}
