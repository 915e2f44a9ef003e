//! Foca's timer events, held until they are due.
//!
//! Owns the queue behind foca's `Runtime::submit_after`: every event is kept
//! until its deadline and then handed back, earliest deadline first and, for
//! equal deadlines, in the order submitted (foca expects its events in
//! order, and every one of them delivered). The gossip loop sleeps on a
//! glommio timer until [`TimerQueue::next_deadline`]. Pure.
//!
//! Invariant: nothing pushed is lost or duplicated; `pop_due` never returns
//! an event before its deadline.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

struct Scheduled<T> {
    at: Instant,
    seq: u64,
    event: T,
}

impl<T> PartialEq for Scheduled<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Scheduled<T> {}

impl<T> PartialOrd for Scheduled<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Scheduled<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Events by deadline.
pub(crate) struct TimerQueue<T> {
    heap: BinaryHeap<Reverse<Scheduled<T>>>,
    seq: u64,
}

impl<T> TimerQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Holds `event` until `at`.
    pub(crate) fn push(&mut self, at: Instant, event: T) {
        self.seq += 1;
        self.heap.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// When the earliest event is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(s)| s.at)
    }

    /// The earliest event if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(s)| s.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_come_back_by_deadline_then_submission_order() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = TimerQueue::new();
        q.push(t0 + ms(30), "c");
        q.push(t0 + ms(10), "a1");
        q.push(t0 + ms(20), "b");
        q.push(t0 + ms(10), "a2");
        assert_eq!(q.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(q.pop_due(t0), None, "nothing due yet");
        let mut got = Vec::new();
        while let Some(e) = q.pop_due(t0 + ms(20)) {
            got.push(e);
        }
        assert_eq!(got, ["a1", "a2", "b"]);
        assert_eq!(q.next_deadline(), Some(t0 + ms(30)));
        assert_eq!(q.pop_due(t0 + ms(30)), Some("c"));
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.pop_due(t0 + ms(100)), None);
    }
}
