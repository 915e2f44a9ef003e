//! One stream's part on one shard: its state, its forward backlog and the
//! signals its sender task waits on.
//!
//! Owns [`StreamPart`]. Touched only by its core. Invariants: a forward is
//! queued only while the part is not failed or stopped; a forward that does
//! not fit the backlog sets `recopy` (and the phase back to copying), so a
//! later copy pass sends what was dropped; the sender is woken on every
//! change it must act on (forward queued, recopy, stop).

use super::backlog::Backlog;
use super::spec::StreamId;
use super::status::{Phase, ShardStatus};
use crate::model::{TokenRanges, Version};
use crate::storage::streams_file::StreamRecord;
use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::{Cell, RefCell};

pub(crate) struct StreamPart {
    pub id: StreamId,
    pub record: StreamRecord,
    pub ranges: TokenRanges,
    pub status: RefCell<ShardStatus>,
    pub backlog: RefCell<Backlog>,
    /// Forwards were dropped: another copy pass is due.
    pub recopy: Cell<bool>,
    pub stopped: Cell<bool>,
    wake_tx: LocalSender<()>,
    wake_rx: LocalReceiver<()>,
}

impl StreamPart {
    pub(crate) fn new(record: StreamRecord, backlog_bytes_max: usize) -> Self {
        let (wake_tx, wake_rx) = local_channel::new_bounded(1);
        Self {
            id: StreamId::of(&record),
            ranges: super::spec::ranges_of(&record),
            record,
            status: RefCell::new(ShardStatus::new()),
            backlog: RefCell::new(Backlog::new(backlog_bytes_max)),
            recopy: Cell::new(false),
            stopped: Cell::new(false),
            wake_tx,
            wake_rx,
        }
    }

    /// Wakes the sender (a pending wake-up is enough: this never blocks).
    pub(crate) fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// Waits until woken.
    pub(crate) async fn woken(&self) {
        let _ = self.wake_rx.recv().await;
    }

    pub(crate) fn is_failed(&self) -> bool {
        matches!(self.status.borrow().phase, Phase::Failed(_))
    }

    /// A version stored locally in one of the part's ranges: queue it, or
    /// (backlog full) drop it and ask for another copy pass.
    pub(crate) fn forward(&self, key: &Bytes, version: &Version) {
        if self.stopped.get() || self.is_failed() {
            return;
        }
        if !self.backlog.borrow_mut().push(key.clone(), version.clone()) {
            let mut s = self.status.borrow_mut();
            s.forwards_dropped += 1;
            if !self.recopy.get() {
                tracing::warn!(stream = %self.id, "forward backlog full: dropping forwards, another copy pass will send them");
            }
            self.recopy.set(true);
            s.phase = Phase::Copying;
        }
        self.wake();
    }

    /// Stops the part's sender.
    pub(crate) fn stop(&self) {
        self.stopped.set(true);
        self.wake();
    }
}
