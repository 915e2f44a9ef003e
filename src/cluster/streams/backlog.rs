//! The bounded queue of live forwards of one stream on one shard.
//!
//! Pure. Owns [`Backlog`]: versions stored locally in a streamed range,
//! waiting to be sent to the target. Invariants: the queue never holds more
//! than `bytes_max` bytes (a forward that does not fit is dropped and
//! counted, and the caller schedules another copy pass, which sends what
//! was dropped since it is stored locally); sequence numbers rise by one
//! per forward accepted, so "every forward accepted before X" is a number.

use crate::model::Version;
use bytes::Bytes;
use std::collections::VecDeque;

/// One version to forward: its storage key and the version as stored.
#[derive(Debug, Clone)]
pub(crate) struct Forward {
    pub key: Bytes,
    pub version: Version,
    pub seq: u64,
    bytes: usize,
}

#[derive(Debug)]
pub(crate) struct Backlog {
    queue: VecDeque<Forward>,
    bytes: usize,
    bytes_max: usize,
    /// Sequence number of the last forward accepted (0: none yet).
    last_seq: u64,
}

/// What a forward costs the backlog.
fn charge(key: &[u8], v: &Version) -> usize {
    64 + key.len() + v.heap_bytes()
}

impl Backlog {
    pub(crate) fn new(bytes_max: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            bytes: 0,
            bytes_max,
            last_seq: 0,
        }
    }

    /// Queues a forward; `false` (nothing queued) when it does not fit.
    pub(crate) fn push(&mut self, key: Bytes, version: Version) -> bool {
        let bytes = charge(&key, &version);
        if self.bytes + bytes > self.bytes_max {
            return false;
        }
        self.last_seq += 1;
        self.bytes += bytes;
        self.queue.push_back(Forward {
            key,
            version,
            seq: self.last_seq,
            bytes,
        });
        true
    }

    /// The oldest forwards, up to about `bytes_target` bytes (at least one).
    pub(crate) fn take(&mut self, bytes_target: usize) -> Vec<Forward> {
        let mut out = Vec::new();
        let mut taken = 0;
        while let Some(f) = self.queue.front() {
            if !out.is_empty() && taken + f.bytes > bytes_target {
                break;
            }
            let Some(f) = self.queue.pop_front() else {
                break;
            };
            taken += f.bytes;
            self.bytes -= f.bytes;
            out.push(f);
        }
        out
    }

    /// Drops every queued forward (a copy pass will send their keys).
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VectorClock;

    fn v(n: usize) -> Version {
        Version {
            clock: VectorClock::from_entries([("a".to_string(), 1)], 4).unwrap(),
            timestamp_ms: 1,
            value: Some(Bytes::from(vec![0u8; n])),
        }
    }

    #[test]
    fn bounded_in_bytes_and_sequenced() {
        let mut b = Backlog::new(1000);
        assert!(b.push(Bytes::from_static(b"k1"), v(300)));
        assert!(b.push(Bytes::from_static(b"k2"), v(300)));
        assert!(!b.push(Bytes::from_static(b"k3"), v(600)), "over the bound");
        assert_eq!(b.last_seq(), 2);
        let got = b.take(1);
        assert_eq!(got.len(), 1, "at least one, even past the target");
        assert_eq!(got[0].seq, 1);
        let got = b.take(10_000);
        assert_eq!(got.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![2]);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
        assert!(b.push(Bytes::from_static(b"k3"), v(600)));
        assert_eq!(b.last_seq(), 3);
    }
}
