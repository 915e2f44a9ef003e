//! Which simulated operations fail, and how.
//!
//! Owns the fault plan of a simulated disk: rules that fail the Nth
//! operation of a kind (with an errno, or as a short write), a crash point
//! after which every operation fails with EIO and changes nothing (the
//! machine is gone until the power comes back), and the log of what was
//! injected, printed by failing tests so a seed can be replayed.
//! Invariant: the plan only answers "what happens to this operation"; the
//! disk's contents are the caller's.

use std::fmt;

/// Kinds of operation faults are aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Open,
    Read,
    Write,
    Sync,
    /// A folder sync with nothing renamed in it since the last one.
    SyncDir,
    /// A folder sync that makes a rename in it durable (until one
    /// succeeds).
    SyncRename,
    Rename,
    Remove,
    Allocate,
    Truncate,
    List,
    /// Closing a file handle (close(2) can report EIO).
    Close,
}

/// What an operation meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Fails with this errno, changing nothing.
    Errno(i32),
    /// (Writes only) writes the first half, in whole 512-byte sectors.
    ShortWrite,
}

#[derive(Debug, Clone)]
struct Rule {
    op: Option<Op>,
    skip: u64,
    count: u64,
    fault: Fault,
}

/// The fault plan of one simulated disk.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<Rule>,
    crash_after: Option<u64>,
    crashed: bool,
    ops: u64,
    log: Vec<String>,
}

impl Faults {
    /// After `skip` more operations of kind `op` (any kind when `None`),
    /// the next `count` meet `fault`.
    pub(crate) fn add(&mut self, op: Option<Op>, skip: u64, count: u64, fault: Fault) {
        self.rules.push(Rule {
            op,
            skip,
            count,
            fault,
        });
    }

    /// The power fails just before operation number `ops` from now.
    pub(crate) fn crash_after(&mut self, ops: u64) {
        self.crash_after = Some(self.ops + ops);
    }

    pub(crate) fn crashed(&self) -> bool {
        self.crashed
    }

    /// Operations seen so far.
    pub(crate) fn ops(&self) -> u64 {
        self.ops
    }

    pub(crate) fn log(&self) -> &[String] {
        &self.log
    }

    /// Forgets every rule and the crash (the power came back).
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
        self.crash_after = None;
        self.crashed = false;
    }

    /// What operation `op` on `path` meets.
    pub(crate) fn check(&mut self, op: Op, path: &impl fmt::Display) -> Option<Fault> {
        if self.crashed {
            return Some(Fault::Errno(libc::EIO));
        }
        self.ops += 1;
        if self.crash_after.is_some_and(|at| self.ops > at) {
            self.crashed = true;
            self.log
                .push(format!("power lost before op {} ({op:?} {path})", self.ops));
            return Some(Fault::Errno(libc::EIO));
        }
        for rule in &mut self.rules {
            if rule.count == 0 || rule.op.is_some_and(|o| o != op) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            if rule.fault == Fault::ShortWrite && op != Op::Write {
                continue;
            }
            rule.count -= 1;
            self.log
                .push(format!("op {}: {op:?} {path}: {:?}", self.ops, rule.fault));
            return Some(rule.fault);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_operation_of_a_kind_fails() {
        let mut f = Faults::default();
        f.add(Some(Op::Sync), 2, 1, Fault::Errno(libc::EIO));
        let p = "x";
        assert_eq!(f.check(Op::Write, &p), None);
        assert_eq!(f.check(Op::Sync, &p), None);
        assert_eq!(f.check(Op::Sync, &p), None);
        assert_eq!(f.check(Op::Sync, &p), Some(Fault::Errno(libc::EIO)));
        assert_eq!(f.check(Op::Sync, &p), None);
        assert_eq!(f.log().len(), 1);
    }

    #[test]
    fn after_the_crash_everything_fails_until_cleared() {
        let mut f = Faults::default();
        f.crash_after(2);
        let p = "x";
        assert_eq!(f.check(Op::Read, &p), None);
        assert_eq!(f.check(Op::Read, &p), None);
        assert_eq!(f.check(Op::Read, &p), Some(Fault::Errno(libc::EIO)));
        assert!(f.crashed());
        assert_eq!(f.check(Op::List, &p), Some(Fault::Errno(libc::EIO)));
        f.clear();
        assert_eq!(f.check(Op::Read, &p), None);
    }

    #[test]
    fn short_writes_apply_to_writes_only() {
        let mut f = Faults::default();
        f.add(None, 0, 1, Fault::ShortWrite);
        let p = "x";
        assert_eq!(f.check(Op::Read, &p), None);
        assert_eq!(f.check(Op::Write, &p), Some(Fault::ShortWrite));
    }
}
