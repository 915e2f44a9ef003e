//! A broadcast signal on one core: tasks wait for the next time something
//! happens (a flush or compaction finished), without polling.
//!
//! Owns the registered wakers of the tasks waiting now. Invariants: a wait
//! started before a [`Signal::notify`] completes (it compares generations,
//! so a notify between two polls is never missed); a wait that is dropped
//! (timed out, cancelled) removes its waker, so the list holds only live
//! waiters.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

#[derive(Default)]
pub(super) struct Signal {
    generation: Cell<u64>,
    next_waiter_id: Cell<u64>,
    waiters: RefCell<Vec<(u64, Waker)>>,
}

impl Signal {
    /// Wakes every task waiting now.
    pub(super) fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    /// Completes at the next [`Signal::notify`].
    pub(super) fn next(&self) -> Next<'_> {
        let id = self.next_waiter_id.get();
        self.next_waiter_id.set(id.wrapping_add(1));
        Next {
            signal: self,
            generation: self.generation.get(),
            id,
        }
    }

    /// Waits for the next notify or until `max` passes, whichever is first.
    pub(super) async fn wait_at_most(&self, max: Duration) {
        futures_lite::future::or(self.next(), glommio::timer::sleep(max)).await;
    }

    fn forget(&self, id: u64) {
        self.waiters.borrow_mut().retain(|(i, _)| *i != id);
    }
}

/// The future of [`Signal::next`].
pub(super) struct Next<'a> {
    signal: &'a Signal,
    generation: u64,
    id: u64,
}

impl Future for Next<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut waiters = self.signal.waiters.borrow_mut();
        match waiters.iter_mut().find(|(i, _)| *i == self.id) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => waiters.push((self.id, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Next<'_> {
    fn drop(&mut self) {
        self.signal.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_notify_wakes_every_waiter_and_dropped_waits_leave_nothing() {
        crate::engine::shard::tests::with_executor(|_| async move {
            let signal = Rc::new(Signal::default());
            let mut tasks = Vec::new();
            for _ in 0..3 {
                let s = Rc::clone(&signal);
                tasks.push(glommio::spawn_local(async move { s.next().await }));
            }
            glommio::yield_if_needed().await;
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(signal.waiters.borrow().len(), 3);
            signal.notify();
            for t in tasks {
                t.await;
            }
            assert!(signal.waiters.borrow().is_empty());
            signal.wait_at_most(Duration::from_millis(1)).await;
            assert!(
                signal.waiters.borrow().is_empty(),
                "a timed-out wait is forgotten"
            );
        });
    }

    #[test]
    fn a_notify_between_creating_and_polling_a_wait_is_not_missed() {
        crate::engine::shard::tests::with_executor(|_| async move {
            let signal = Signal::default();
            let wait = signal.next();
            signal.notify();
            wait.await;
        });
    }
}
