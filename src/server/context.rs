//! Per-core server state shared by every connection on that core.
//!
//! Owns the core's admission counters (open connections, requests in flight,
//! request bytes buffered) and the shutdown latch. Everything here is touched
//! only by its own core. Invariant: each counter is raised only through a
//! guard that lowers it again on drop, so counts never leak on error paths.

use crate::config::Config;
use crate::runtime::router::Router;
use glommio::sync::Semaphore;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

pub struct CoreContext {
    pub config: Config,
    pub router: Rc<Router>,
    pub started: Instant,
    connections: Cell<usize>,
    inflight_requests: Cell<usize>,
    inflight_bytes: Cell<usize>,
    /// Closed when the node begins shutting down; waiting on it returns then.
    shutdown: Semaphore,
    shutting_down: Cell<bool>,
}

/// Lowers a counter by `amount` when dropped.
pub struct Admission<'a> {
    cell: &'a Cell<usize>,
    amount: usize,
}

impl Admission<'_> {
    /// Raises the admitted amount by `more` (within the same guard).
    pub fn grow(&mut self, more: usize) {
        self.cell.set(self.cell.get() + more);
        self.amount += more;
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.cell.set(self.cell.get() - self.amount);
    }
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
    pub fn new(config: Config, router: Rc<Router>, started: Instant) -> Self {
        Self {
            config,
            router,
            started,
            connections: Cell::new(0),
            inflight_requests: Cell::new(0),
            inflight_bytes: Cell::new(0),
            shutdown: Semaphore::new(0),
            shutting_down: Cell::new(false),
        }
    }

    /// Admits a connection, or `None` at `connections_max_per_core`.
    pub fn admit_connection(&self) -> Option<Admission<'_>> {
        admit(
            &self.connections,
            1,
            self.config.limits.connections_max_per_core,
        )
    }

    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    /// Admits a request, or `None` at `inflight_requests_max_per_core`.
    pub fn admit_request(&self) -> Option<Admission<'_>> {
        admit(
            &self.inflight_requests,
            1,
            self.config.limits.inflight_requests_max_per_core,
        )
    }

    /// Admits `bytes` more of buffered request body into `guard`, or `false`
    /// past `inflight_bytes_max_per_core`.
    pub fn admit_bytes<'a>(&'a self, guard: &mut Option<Admission<'a>>, bytes: usize) -> bool {
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

    /// Starts shutdown on this core: every `wait_shutdown` returns.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        self.shutdown.close();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Returns once shutdown has begun.
    pub async fn wait_shutdown(&self) {
        // A closed semaphore fails every acquire: that is the signal.
        while self.shutdown.acquire(1).await.is_ok() {}
    }
}
