//! A full memtable waiting to become a level-0 table.
//!
//! Owns the memtable and the WAL segment number from which records are
//! newer than it. Invariant: the memtable holds exactly the records of the
//! WAL segments below that number not yet covered by a table; the number is
//! known once the WAL writer has switched segments (at rotation it is a
//! promise, resolved by the writer).

use crate::engine::memtable::Memtable;
use crate::engine::EngineError;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};

pub(crate) struct Immutable {
    pub(super) mem: Memtable,
    /// Resolved by the WAL committer when it switches segments.
    wal_from_pending: RefCell<Option<oneshot::Receiver<u64>>>,
    /// Known segment number (after start-up replay, or once resolved).
    wal_from_known: Cell<Option<u64>>,
}

impl Immutable {
    /// A memtable rotated out while the WAL switches segments.
    pub(super) fn rotated(mem: Memtable, wal_from: oneshot::Receiver<u64>) -> Self {
        Self {
            mem,
            wal_from_pending: RefCell::new(Some(wal_from)),
            wal_from_known: Cell::new(None),
        }
    }

    /// A memtable rebuilt by start-up replay from segments below `wal_from`.
    pub(super) fn replayed(mem: Memtable, wal_from: u64) -> Self {
        Self {
            mem,
            wal_from_pending: RefCell::new(None),
            wal_from_known: Cell::new(Some(wal_from)),
        }
    }

    /// The first WAL segment holding records newer than this memtable,
    /// waiting for the WAL writer to switch segments if it has not yet.
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
