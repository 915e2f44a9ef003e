//! Per-core server state shared by every connection on that core.
//!
//! Owns the core's admission counters (open connections, requests in flight,
//! request and answer bytes held for calls in flight), the registry of open connections (for evicting
//! the longest-idle one when a new client finds the connection limit
//! reached) and the shutdown latch. Everything here is touched only by its
//! own core. Invariant: each counter is raised only through a guard that
//! lowers it again on drop, so counts never leak on error paths.

use super::router::Router;
use crate::cluster::MemberView;
use crate::config::Config;
use glommio::sync::Semaphore;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// How long a new connection waits at the connection limit for an evicted
/// idle connection to free its slot.
const EVICTION_WAIT: Duration = Duration::from_millis(200);

/// One open connection as the core sees it: its streams in flight, since
/// when it has had none, and the latch that asks it to close.
pub(crate) struct ConnState {
    streams: Cell<usize>,
    idle_since: Cell<Option<Instant>>,
    evict: Semaphore,
    evicted: Cell<bool>,
}

impl ConnState {
    /// Marks a stream open until the guard drops.
    pub(crate) fn stream_started(self: &Rc<Self>) -> StreamGuard {
        self.streams.set(self.streams.get() + 1);
        self.idle_since.set(None);
        StreamGuard(Rc::clone(self))
    }

    /// Returns once the core asks this connection to close (eviction).
    pub(crate) async fn wait_evicted(&self) {
        while self.evict.acquire(1).await.is_ok() {}
    }
}

/// An open stream of a connection; the connection is idle from when the
/// last one drops.
pub(crate) struct StreamGuard(Rc<ConnState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let left = self.0.streams.get().saturating_sub(1);
        self.0.streams.set(left);
        if left == 0 {
            self.0.idle_since.set(Some(Instant::now()));
        }
    }
}

impl CoreContext {
    /// The advertised gRPC address of `node_id` when it is a live member of
    /// this node's cluster.
    pub(crate) fn live_member_addr(&self, node_id: &str) -> Option<String> {
        self.members.is_alive(node_id)
    }

    /// `cluster.stream_targets_allowed`.
    pub(crate) fn stream_targets_allowed(&self) -> &[String] {
        &self.config.cluster.stream_targets_allowed
    }
}

pub(crate) struct CoreContext {
    pub config: Config,
    pub router: Rc<Router>,
    pub started: Instant,
    /// This core's view of the gossip membership (live members and their
    /// gRPC addresses), kept current by core 0.
    pub members: Rc<MemberView>,
    connections: Cell<usize>,
    /// Every open connection (dead entries pruned on each scan).
    open: RefCell<Vec<Weak<ConnState>>>,
    inflight_requests: Cell<usize>,
    inflight_bytes: Cell<usize>,
    /// Closed when the node begins shutting down; waiting on it returns then.
    shutdown: Semaphore,
}

/// Lowers a counter by `amount` when dropped.
pub(crate) struct Admission<'a> {
    cell: &'a Cell<usize>,
    amount: usize,
}

impl Admission<'_> {
    /// Raises the admitted amount by `more` (within the same guard).
    pub(crate) fn grow(&mut self, more: usize) {
        self.cell.set(self.cell.get() + more);
        self.amount += more;
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.cell.set(self.cell.get() - self.amount);
    }
}

/// Answers up to this size are always sent, even past the byte budget: a
/// write's acknowledgement must not be lost after the write is done. Only
/// larger answers (reads, key ranges) can be refused, and refusing them
/// changes nothing. At most `inflight_requests_max_per_core` of them are held.
pub(crate) const SMALL_ANSWER_BYTES: usize = 64 * 1024;

/// Whether an answer of `answer` bytes may be held for its client while
/// the core already holds `held` request and answer bytes, under `max`.
pub(crate) fn answer_fits(held: usize, answer: usize, max: usize) -> bool {
    answer <= SMALL_ANSWER_BYTES || held.saturating_add(answer) <= max
}

fn admit(cell: &Cell<usize>, amount: usize, max: usize) -> Option<Admission<'_>> {
    let now = cell.get();
    if now + amount > max {
        return None;
    }
    cell.set(now + amount);
    Some(Admission { cell, amount })
}

impl CoreContext {
    pub(crate) fn new(
        config: Config,
        router: Rc<Router>,
        started: Instant,
        members: Rc<MemberView>,
    ) -> Self {
        Self {
            config,
            router,
            started,
            members,
            connections: Cell::new(0),
            open: RefCell::new(Vec::new()),
            inflight_requests: Cell::new(0),
            inflight_bytes: Cell::new(0),
            shutdown: Semaphore::new(0),
        }
    }

    /// Admits a connection, or `None` at `connections_max_per_core`.
    pub(crate) fn admit_connection(&self) -> Option<Admission<'_>> {
        admit(
            &self.connections,
            1,
            self.config.limits.connections_max_per_core,
        )
    }

    /// Admits a connection. At `connections_max_per_core`, asks the
    /// connection idle the longest (no streams in flight) to close and waits
    /// up to [`EVICTION_WAIT`] for its slot, so idle connections can never
    /// lock new clients out; `None` when every connection is busy.
    pub(crate) async fn admit_connection_evicting(&self) -> Option<(Admission<'_>, Rc<ConnState>)> {
        let deadline = Instant::now() + EVICTION_WAIT;
        let mut evicted = false;
        loop {
            if let Some(slot) = self.admit_connection() {
                let state = Rc::new(ConnState {
                    streams: Cell::new(0),
                    idle_since: Cell::new(Some(Instant::now())),
                    evict: Semaphore::new(0),
                    evicted: Cell::new(false),
                });
                let mut open = self.open.borrow_mut();
                open.retain(|w| w.strong_count() > 0);
                open.push(Rc::downgrade(&state));
                return Some((slot, state));
            }
            if !evicted {
                evicted = self.evict_idlest();
                if !evicted {
                    return None;
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Asks the longest-idle open connection to close; `false` if none is
    /// idle.
    fn evict_idlest(&self) -> bool {
        let mut open = self.open.borrow_mut();
        open.retain(|w| w.strong_count() > 0);
        let idlest = open
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| !c.evicted.get())
            .filter_map(|c| c.idle_since.get().map(|t| (t, c)))
            .min_by_key(|(t, _)| *t);
        match idlest {
            Some((since, c)) => {
                tracing::info!(
                    idle_ms = since.elapsed().as_millis() as u64,
                    limit = self.config.limits.connections_max_per_core,
                    "connection limit reached: closing the longest-idle connection for a new one"
                );
                c.evicted.set(true);
                c.evict.close();
                true
            }
            None => false,
        }
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.get()
    }

    /// Admits a request, or `None` at `inflight_requests_max_per_core`.
    pub(crate) fn admit_request(&self) -> Option<Admission<'_>> {
        admit(
            &self.inflight_requests,
            1,
            self.config.limits.inflight_requests_max_per_core,
        )
    }

    /// Admits `bytes` more of buffered request body into `guard`, or `false`
    /// past `inflight_bytes_max_per_core`.
    pub(crate) fn admit_bytes<'a>(
        &'a self,
        guard: &mut Option<Admission<'a>>,
        bytes: usize,
    ) -> bool {
        let max = self.config.limits.inflight_bytes_max_per_core;
        if self.inflight_bytes.get() + bytes > max {
            return false;
        }
        match guard {
            Some(g) => g.grow(bytes),
            None => *guard = admit(&self.inflight_bytes, bytes, max),
        }
        true
    }

    /// Counts an answer of `bytes` into the call's `guard` until the call
    /// ends, or `false` when it does not fit the core's
    /// `inflight_bytes_max_per_core` (see [`answer_fits`]).
    pub(crate) fn admit_answer<'a>(
        &'a self,
        guard: &mut Option<Admission<'a>>,
        bytes: usize,
    ) -> bool {
        let max = self.config.limits.inflight_bytes_max_per_core;
        if !answer_fits(self.inflight_bytes.get(), bytes, max) {
            return false;
        }
        match guard {
            Some(g) => g.grow(bytes),
            None => {
                self.inflight_bytes.set(self.inflight_bytes.get() + bytes);
                *guard = Some(Admission {
                    cell: &self.inflight_bytes,
                    amount: bytes,
                });
            }
        }
        true
    }

    /// Starts shutdown on this core: every `wait_shutdown` returns.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.close();
    }

    /// Returns once shutdown has begun.
    pub(crate) async fn wait_shutdown(&self) {
        // A closed semaphore fails every acquire: that is the signal.
        while self.shutdown.acquire(1).await.is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::{answer_fits, SMALL_ANSWER_BYTES};

    #[test]
    fn small_answers_always_fit_and_large_ones_only_within_the_budget() {
        let max = 1 << 20;
        // A write's acknowledgement is sent even with the budget spent.
        assert!(answer_fits(max, 100, max));
        assert!(answer_fits(2 * max, SMALL_ANSWER_BYTES, max));
        // A large answer needs room.
        assert!(answer_fits(0, max, max));
        assert!(answer_fits(max / 2, max / 2, max));
        assert!(!answer_fits(max / 2 + 1, max / 2, max));
        assert!(!answer_fits(max, SMALL_ANSWER_BYTES + 1, max));
        assert!(!answer_fits(usize::MAX, SMALL_ANSWER_BYTES + 1, max));
    }
}
