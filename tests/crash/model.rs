//! The crash test's model: what each key may hold. Every write attempt is
//! named by its writer-unique sequence number; a writer remembers, per key,
//! the last acknowledged outcome with its clock and the attempts sent after
//! it that were never acknowledged. Values name the attempt that wrote them,
//! so a read can be traced back to it.

use crate::common::ClockMap;

/// One write attempt. `seq` is unique per writer, so a value names the
/// attempt that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Put { seq: u64, len: usize },
    Delete { seq: u64 },
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put { seq, len } => write!(f, "put n{seq} ({len} B)"),
            Op::Delete { seq } => write!(f, "delete n{seq}"),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct KeyModel {
    /// The last acknowledged outcome and its clock, or the state read back
    /// after the last restart (recovered state is as good as acknowledged).
    pub acked: Option<(Op, ClockMap)>,
    /// Attempts sent after `acked` and never acknowledged, in order.
    pub unacked: Vec<Op>,
}

impl KeyModel {
    pub(crate) fn describe(&self) -> String {
        let acked = match &self.acked {
            Some((op, clock)) => format!("last acknowledged {op} clock {clock:?}"),
            None => "nothing acknowledged".to_string(),
        };
        let unacked: Vec<String> = self.unacked.iter().map(|o| o.to_string()).collect();
        format!("{acked}; unacknowledged after it: [{}]", unacked.join(", "))
    }
}

/// One writer's keys, carried across cycles.
pub(crate) struct Writer {
    pub id: usize,
    pub next_seq: u64,
    pub keys: Vec<KeyModel>,
}

pub(crate) fn key_name(w: usize, k: usize) -> String {
    format!("w{w}-k{k}")
}

pub(crate) fn value_prefix(w: usize, k: usize, seq: u64) -> String {
    format!("w{w}-k{k}-n{seq}|")
}

/// The value of attempt `seq`: a prefix naming it, then a deterministic
/// filler up to `len` bytes (so a torn or mixed-up value is noticed).
pub(crate) fn value_bytes(w: usize, k: usize, seq: u64, len: usize) -> Vec<u8> {
    let mut v = value_prefix(w, k, seq).into_bytes();
    let start = v.len();
    v.extend((start..len.max(start)).map(|i| ((seq as usize * 131 + i * 7 + w) % 251) as u8));
    v
}

/// The attempt sequence number a stored value names, if it is one of ours.
pub(crate) fn parse_seq(w: usize, k: usize, value: &[u8]) -> Option<u64> {
    let bar = value.iter().position(|b| *b == b'|')?;
    let head = std::str::from_utf8(&value[..bar]).ok()?;
    head.strip_prefix(&format!("w{w}-k{k}-n"))?.parse().ok()
}
