//! Vector clocks: causality between versions of one key.
//!
//! Owns the clock type and its three questions: does A descend B, how do A and
//! B relate, and what is their merge. Invariants kept by every constructor:
//! entries are sorted by node id, node ids are unique and non-empty, and no
//! entry holds a zero counter (a missing entry *is* zero, so `{a:0}` and `{}`
//! are the same clock and compare equal).

use std::cmp::Ordering;
use std::sync::Arc;

/// A node id in a clock entry: shared, so copying a clock (into the WAL
/// record, the memtable, an answer) copies counters and bumps reference
/// counts instead of allocating every id again.
pub type NodeId = Arc<str>;

/// How two clocks relate causally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Every entry is the same.
    Equal,
    /// `self` happened before `other` (`other` strictly descends `self`).
    Before,
    /// `self` happened after `other` (`self` strictly descends `other`).
    After,
    /// Neither descends the other: the versions are siblings.
    Concurrent,
}

/// Why a clock received from the wire was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockError {
    EmptyNodeId,
    NegativeCounter { node_id: String },
    DuplicateNodeId { node_id: String },
    TooManyEntries { entries: usize, max: usize },
    NodeIdTooLong { bytes: usize, max: usize },
}

impl std::fmt::Display for ClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockError::EmptyNodeId => {
                write!(f, "vector_clock: an entry has an empty coordinator_node_id")
            }
            ClockError::NegativeCounter { node_id } => {
                write!(
                    f,
                    "vector_clock: entry {node_id:?} has a negative logical_timestamp"
                )
            }
            ClockError::DuplicateNodeId { node_id } => {
                write!(
                    f,
                    "vector_clock: coordinator_node_id {node_id:?} appears more than once"
                )
            }
            ClockError::TooManyEntries { entries, max } => {
                write!(f, "vector_clock: {entries} entries, at most {max} allowed")
            }
            ClockError::NodeIdTooLong { bytes, max } => {
                write!(
                    f,
                    "vector_clock: a coordinator_node_id of {bytes} bytes, at most {max} allowed"
                )
            }
        }
    }
}

impl std::error::Error for ClockError {}

/// Longest node id accepted in a clock entry.
pub const NODE_ID_BYTES_MAX: usize = 256;

/// A vector clock: node id -> logical counter, sorted by node id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VectorClock {
    entries: Vec<(NodeId, u64)>,
}

impl VectorClock {
    /// The empty clock (descended by every clock).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a clock from wire entries, refusing malformed input rather than
    /// guessing: duplicate ids, empty ids and negative counters are errors.
    pub fn from_entries<I>(entries: I, entries_max: usize) -> Result<Self, ClockError>
    where
        I: IntoIterator<Item = (String, i64)>,
    {
        let entries: Vec<(String, i64)> = entries.into_iter().collect();
        if entries.len() > entries_max {
            return Err(ClockError::TooManyEntries {
                entries: entries.len(),
                max: entries_max,
            });
        }
        let mut out: Vec<(NodeId, u64)> = Vec::with_capacity(entries.len());
        for (node_id, counter) in entries {
            if node_id.is_empty() {
                return Err(ClockError::EmptyNodeId);
            }
            if node_id.len() > NODE_ID_BYTES_MAX {
                return Err(ClockError::NodeIdTooLong {
                    bytes: node_id.len(),
                    max: NODE_ID_BYTES_MAX,
                });
            }
            let counter = u64::try_from(counter).map_err(|_| ClockError::NegativeCounter {
                node_id: node_id.clone(),
            })?;
            out.push((NodeId::from(node_id), counter));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in out.windows(2) {
            if let [(a, _), (b, _)] = pair {
                if a == b {
                    return Err(ClockError::DuplicateNodeId {
                        node_id: a.to_string(),
                    });
                }
            }
        }
        out.retain(|(_, c)| *c != 0);
        Ok(Self { entries: out })
    }

    /// Entries in node-id order; counters are never zero.
    pub fn entries(&self) -> &[(NodeId, u64)] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counter for `node_id` (zero when absent).
    pub fn get(&self, node_id: &str) -> u64 {
        self.entries
            .binary_search_by(|(n, _)| (**n).cmp(node_id))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map_or(0, |(_, counter)| *counter)
    }

    /// Adds one to `node_id`'s counter (saturating at `u64::MAX`).
    pub fn increment(&mut self, node_id: &str) {
        match self.entries.binary_search_by(|(n, _)| (**n).cmp(node_id)) {
            Ok(i) => {
                if let Some((_, counter)) = self.entries.get_mut(i) {
                    *counter = counter.saturating_add(1);
                }
            }
            Err(i) => self.entries.insert(i, (NodeId::from(node_id), 1)),
        }
    }

    /// Like [`VectorClock::increment`], but refuses (returns `false`, clock
    /// unchanged) when the counter would pass `i64::MAX`, the largest value
    /// the wire and the on-disk formats carry.
    pub fn try_increment(&mut self, node_id: &str) -> bool {
        if self.get(node_id) >= i64::MAX as u64 {
            return false;
        }
        self.increment(node_id);
        true
    }

    /// True when every entry of `other` is <= the same entry of `self`.
    pub fn descends(&self, other: &VectorClock) -> bool {
        matches!(self.compare(other), Causality::Equal | Causality::After)
    }

    /// The causal relation of `self` to `other`, in one merge-walk.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        let (mut self_greater, mut other_greater) = (false, false);
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &other.entries);
        loop {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                    // Same node: the counters decide.
                    Ordering::Equal => {
                        i += 1;
                        j += 1;
                        x.1.cmp(&y.1)
                    }
                    // A node only one side has (the other's counter is zero).
                    Ordering::Less => {
                        i += 1;
                        Ordering::Greater
                    }
                    Ordering::Greater => {
                        j += 1;
                        Ordering::Less
                    }
                },
                (Some(_), None) => {
                    i += 1;
                    Ordering::Greater
                }
                (None, Some(_)) => {
                    j += 1;
                    Ordering::Less
                }
                (None, None) => break,
            };
            match ord {
                Ordering::Greater => self_greater = true,
                Ordering::Less => other_greater = true,
                Ordering::Equal => {}
            }
            if self_greater && other_greater {
                return Causality::Concurrent;
            }
        }
        match (self_greater, other_greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Entry-wise maximum of `self` and `other`, in place: the plain
    /// merge-walk the property tests hold [`VectorClock::merge_all`] to.
    #[cfg(test)]
    pub fn merge(&mut self, other: &VectorClock) {
        let mut out = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &other.entries);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    out.push((x.0.clone(), x.1.max(y.1)));
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    out.push(x.clone());
                    i += 1;
                }
                (Some(_), Some(y)) => {
                    out.push(y.clone());
                    j += 1;
                }
                (Some(x), None) => {
                    out.push(x.clone());
                    i += 1;
                }
                (None, Some(y)) => {
                    out.push(y.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        self.entries = out;
    }

    /// The merge of every clock in `clocks` (empty: the empty clock). In
    /// place while they name the same nodes (one key's siblings, mostly),
    /// else one pass through a hash map: linear in the entries, where
    /// merging pairwise is quadratic when every clock brings a node of its
    /// own.
    pub fn merge_all<'a, I>(clocks: I) -> VectorClock
    where
        I: Iterator<Item = &'a VectorClock> + Clone,
    {
        let Some(widest) = clocks.clone().max_by_key(|c| c.entries.len()) else {
            return VectorClock::new();
        };
        let mut out = widest.clone();
        if clocks.clone().all(|c| out.merge_known(c)) {
            return out;
        }
        let total: usize = clocks.clone().map(|c| c.entries.len()).sum();
        let mut max: ahash::AHashMap<&str, (&NodeId, u64)> = ahash::AHashMap::with_capacity(total);
        for c in clocks {
            for (node, counter) in &c.entries {
                let slot = max.entry(&**node).or_insert((node, 0));
                slot.1 = slot.1.max(*counter);
            }
        }
        let mut entries: Vec<(NodeId, u64)> =
            max.into_values().map(|(n, c)| (Arc::clone(n), c)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        VectorClock { entries }
    }

    /// The in-place half of [`VectorClock::merge_all`]: when every node of
    /// `other` is in `self`, raises counters and answers `true`; otherwise
    /// changes nothing and answers `false`.
    fn merge_known(&mut self, other: &VectorClock) -> bool {
        // Both sides are sorted by node id: one forward walk over `self`
        // per pass. The first pass only checks, so a refusal changes nothing.
        let mut mine = self.entries.iter();
        for (node, _) in &other.entries {
            match mine.find(|(n, _)| n >= node) {
                Some((n, _)) if n == node => {}
                _ => return false,
            }
        }
        let mut mine = self.entries.iter_mut();
        for (node, counter) in &other.entries {
            if let Some((_, mine)) = mine.find(|(n, _)| n == node) {
                *mine = (*mine).max(*counter);
            }
        }
        true
    }

    /// Approximate heap bytes, for memtable accounting.
    pub fn heap_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|(n, _)| n.len() + 16 + std::mem::size_of::<(NodeId, u64)>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vc(pairs: &[(&str, i64)]) -> VectorClock {
        VectorClock::from_entries(pairs.iter().map(|(n, c)| (n.to_string(), *c)), 64).unwrap()
    }

    #[test]
    fn compare_basic_relations() {
        assert_eq!(vc(&[("a", 1)]).compare(&vc(&[("a", 1)])), Causality::Equal);
        assert_eq!(vc(&[("a", 2)]).compare(&vc(&[("a", 1)])), Causality::After);
        assert_eq!(vc(&[("a", 1)]).compare(&vc(&[("a", 2)])), Causality::Before);
        assert_eq!(
            vc(&[("a", 1)]).compare(&vc(&[("b", 1)])),
            Causality::Concurrent
        );
        assert_eq!(
            vc(&[("a", 1), ("b", 1)]).compare(&vc(&[("b", 1)])),
            Causality::After
        );
        assert_eq!(
            VectorClock::new().compare(&vc(&[("a", 1)])),
            Causality::Before
        );
        assert_eq!(
            VectorClock::new().compare(&VectorClock::new()),
            Causality::Equal
        );
    }

    #[test]
    fn zero_entries_are_absent() {
        assert_eq!(vc(&[("a", 0)]), VectorClock::new());
        assert_eq!(vc(&[("a", 0), ("b", 2)]).entries(), &[("b".into(), 2)]);
    }

    #[test]
    fn malformed_clocks_are_refused() {
        let dup = VectorClock::from_entries([("a".into(), 1), ("a".into(), 2)], 64);
        assert_eq!(
            dup,
            Err(ClockError::DuplicateNodeId {
                node_id: "a".into()
            })
        );
        let neg = VectorClock::from_entries([("a".into(), -1)], 64);
        assert_eq!(
            neg,
            Err(ClockError::NegativeCounter {
                node_id: "a".into()
            })
        );
        assert_eq!(
            VectorClock::from_entries([(String::new(), 1)], 64),
            Err(ClockError::EmptyNodeId)
        );
        let many = VectorClock::from_entries((0..3).map(|i| (format!("n{i}"), 1)), 2);
        assert_eq!(many, Err(ClockError::TooManyEntries { entries: 3, max: 2 }));
        // The message names the count sent, not the first one past the limit.
        let err = VectorClock::from_entries((0..80).map(|i| (format!("n{i}"), 1)), 64).unwrap_err();
        assert_eq!(
            err,
            ClockError::TooManyEntries {
                entries: 80,
                max: 64
            }
        );
        assert!(err.to_string().contains("80 entries"), "{err}");
        let long = VectorClock::from_entries([("x".repeat(NODE_ID_BYTES_MAX + 1), 1)], 64);
        assert!(matches!(long, Err(ClockError::NodeIdTooLong { .. })));
    }

    #[test]
    fn try_increment_stops_at_the_wire_limit() {
        let mut c = vc(&[("a", i64::MAX)]);
        assert!(!c.try_increment("a"));
        assert_eq!(c.get("a"), i64::MAX as u64);
        assert!(c.try_increment("b"));
    }

    #[test]
    fn increment_and_get() {
        let mut c = vc(&[("b", 3)]);
        c.increment("a");
        c.increment("b");
        assert_eq!(c.get("a"), 1);
        assert_eq!(c.get("b"), 4);
        assert_eq!(c.get("z"), 0);
        assert_eq!(&*c.entries()[0].0, "a");
    }

    fn arb_clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::btree_map("[a-d]", 0i64..5, 0..4)
            .prop_map(|m| VectorClock::from_entries(m, 64).unwrap())
    }

    proptest! {
        #[test]
        fn compare_is_antisymmetric(a in arb_clock(), b in arb_clock()) {
            let expected = match a.compare(&b) {
                Causality::Equal => Causality::Equal,
                Causality::Before => Causality::After,
                Causality::After => Causality::Before,
                Causality::Concurrent => Causality::Concurrent,
            };
            prop_assert_eq!(b.compare(&a), expected);
        }

        #[test]
        fn compare_matches_entrywise_definition(a in arb_clock(), b in arb_clock()) {
            let names = ["a", "b", "c", "d"];
            let a_ge_b = names.iter().all(|n| a.get(n) >= b.get(n));
            let b_ge_a = names.iter().all(|n| b.get(n) >= a.get(n));
            prop_assert_eq!(a.descends(&b), a_ge_b);
            prop_assert_eq!(b.descends(&a), b_ge_a);
        }

        #[test]
        fn merge_is_least_upper_bound(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            let mut m = a.clone();
            m.merge(&b);
            prop_assert!(m.descends(&a));
            prop_assert!(m.descends(&b));
            // Any clock descending both descends the merge.
            if c.descends(&a) && c.descends(&b) {
                prop_assert!(c.descends(&m));
            }
            let mut m2 = b.clone();
            m2.merge(&a);
            prop_assert_eq!(m, m2);
        }

        #[test]
        fn merge_all_is_the_pairwise_merge(clocks in proptest::collection::vec(arb_clock(), 0..6)) {
            let mut folded = VectorClock::new();
            for c in &clocks {
                folded.merge(c);
            }
            prop_assert_eq!(VectorClock::merge_all(clocks.iter()), folded);
        }

        #[test]
        fn increment_strictly_descends(a in arb_clock(), node in "[a-e]") {
            let mut b = a.clone();
            b.increment(&node);
            prop_assert_eq!(b.compare(&a), Causality::After);
        }
    }
}
