//! A background task of a shard (the flusher, the compactor) and its
//! lifecycle: its own task queue, a wake-up channel, and a glommio [`Gate`]
//! that the task runs under.
//!
//! Owns starting the task, waking it, knowing whether it is between the
//! first and last step of a job ([`Worker::busy`]), and stopping it.
//! Invariants: the task runs only while the gate is open; [`Worker::stop`]
//! closes the wake-up channel (an idle task returns at once), closes the
//! gate (a task in a job sees [`Worker::stopping`] and returns at its next
//! check) and returns only when the task has ended; a stopped worker never
//! starts again.

use crate::engine::EngineError;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::Gate;
use glommio::{Latency, Shares, TaskQueueHandle};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::Duration;

pub(super) struct Worker {
    name: &'static str,
    queue: TaskQueueHandle,
    gate: Gate,
    wake: RefCell<Option<LocalSender<()>>>,
    busy: Cell<bool>,
}

/// The receiving end of a worker's wake-up channel, held by its task.
pub(super) struct Wakeups(LocalReceiver<()>);

impl Worker {
    /// A worker whose task will run in a new task queue of `shares`.
    pub(super) fn new(name: &'static str, shares: usize) -> (Self, Wakeups) {
        let queue = glommio::executor().create_task_queue(
            Shares::Static(shares),
            Latency::NotImportant,
            name,
        );
        let (tx, rx) = local_channel::new_bounded(1);
        let worker = Self {
            name,
            queue,
            gate: Gate::new(),
            wake: RefCell::new(Some(tx)),
            busy: Cell::new(false),
        };
        (worker, Wakeups(rx))
    }

    /// Starts the task under the gate.
    pub(super) fn start(
        &self,
        task: impl Future<Output = ()> + 'static,
    ) -> Result<(), EngineError> {
        self.gate
            .spawn_into(task, self.queue)
            .map_err(|e| EngineError::Internal {
                what: format!("cannot start the {}: {e}", self.name),
            })?
            .detach();
        Ok(())
    }

    /// The task queue (for its CPU figures).
    pub(super) fn queue(&self) -> TaskQueueHandle {
        self.queue
    }

    /// Asks the task to look for work.
    pub(super) fn wake(&self) {
        if let Some(tx) = self.wake.borrow().as_ref() {
            let _ = tx.try_send(());
        }
    }

    /// The worker is stopping or stopped: the task must return.
    pub(super) fn stopping(&self) -> bool {
        !self.gate.is_open()
    }

    /// The task is between the first and last step of a job.
    pub(super) fn busy(&self) -> bool {
        self.busy.get()
    }

    /// Runs one job, [`Worker::busy`] meanwhile.
    pub(super) async fn job<T>(&self, job: impl Future<Output = T>) -> T {
        struct Busy<'a>(&'a Cell<bool>);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        self.busy.set(true);
        let _busy = Busy(&self.busy);
        job.await
    }

    /// Stops the task and waits until it has ended (see the module
    /// invariants).
    pub(super) async fn stop(&self) {
        drop(self.wake.borrow_mut().take());
        if self.gate.is_open() {
            let _ = self.gate.close().await;
        }
    }
}

impl Wakeups {
    /// Waits for a wake-up; false once the worker stops.
    pub(super) async fn next(&self) -> bool {
        self.0.recv().await.is_some()
    }

    /// Waits for a wake-up or until `max` passes; false once the worker
    /// stops.
    pub(super) async fn next_or_after(&self, max: Duration) -> bool {
        futures_lite::future::or(self.next(), async {
            glommio::timer::sleep(max).await;
            true
        })
        .await
    }
}
