//! The node's serving state, one copy per core: serving, draining (writes
//! refused with NODE_DRAINING, reads and streams go on) or drained (also
//! every memtable flushed).
//!
//! Owns [`NodeState`] and the count of puts in flight on its core. A drain
//! is set on every core by the router (so the core that takes a write
//! refuses it without asking another); a put checks the state and counts
//! itself in one synchronous step, so once every core is draining the
//! in-flight counts only fall. Invariants: the state is only changed by a
//! drain, its completion, or an undrain (or a restart); a write admitted
//! before the drain finishes normally.

use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeMode {
    Serving,
    Draining,
    Drained,
}

impl NodeMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            NodeMode::Serving => "serving",
            NodeMode::Draining => "draining",
            NodeMode::Drained => "drained",
        }
    }
}

/// An operation on a core's serving state (the router carries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeOp {
    /// Refuse writes from now on.
    Drain,
    /// Puts in flight on the core (a drain waits for 0).
    Inflight,
    /// The drain finished (memtables flushed).
    Drained,
    Undrain,
}

#[derive(Debug)]
pub(crate) struct NodeState {
    state: Cell<NodeMode>,
    puts_in_flight: Cell<u64>,
}

/// A put in flight; the count falls when it drops.
pub(crate) struct PutGuard<'a>(&'a NodeState);

impl Drop for PutGuard<'_> {
    fn drop(&mut self) {
        self.0
            .puts_in_flight
            .set(self.0.puts_in_flight.get().saturating_sub(1));
    }
}

impl NodeState {
    pub(crate) fn new() -> Self {
        Self {
            state: Cell::new(NodeMode::Serving),
            puts_in_flight: Cell::new(0),
        }
    }

    pub(crate) fn state(&self) -> NodeMode {
        self.state.get()
    }

    /// Admits a put (`None` while draining or drained).
    pub(crate) fn admit_put(&self) -> Option<PutGuard<'_>> {
        if self.state.get() != NodeMode::Serving {
            return None;
        }
        self.puts_in_flight.set(self.puts_in_flight.get() + 1);
        Some(PutGuard(self))
    }

    /// Applies `op`; answers the puts in flight here.
    pub(crate) fn apply(&self, op: NodeOp) -> u64 {
        match op {
            NodeOp::Drain => {
                if self.state.get() == NodeMode::Serving {
                    self.state.set(NodeMode::Draining);
                }
            }
            NodeOp::Drained => {
                if self.state.get() == NodeMode::Draining {
                    self.state.set(NodeMode::Drained);
                }
            }
            NodeOp::Undrain => self.state.set(NodeMode::Serving),
            NodeOp::Inflight => {}
        }
        self.puts_in_flight.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_refuses_new_puts_and_counts_those_in_flight() {
        let s = NodeState::new();
        let g = s.admit_put().unwrap();
        assert_eq!(s.apply(NodeOp::Drain), 1);
        assert!(s.admit_put().is_none());
        drop(g);
        assert_eq!(s.apply(NodeOp::Inflight), 0);
        s.apply(NodeOp::Drained);
        assert_eq!(s.state(), NodeMode::Drained);
        s.apply(NodeOp::Drain);
        assert_eq!(s.state(), NodeMode::Drained, "a second drain keeps drained");
        s.apply(NodeOp::Undrain);
        assert!(s.admit_put().is_some());
    }

    #[test]
    fn drained_only_follows_draining() {
        let s = NodeState::new();
        s.apply(NodeOp::Drained);
        assert_eq!(s.state(), NodeMode::Serving);
    }
}
