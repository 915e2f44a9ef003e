//! Range reads of a shard: the stored versions of the keys in a storage-key
//! range, a bounded page at a time, in key order.
//!
//! Owns [`Shard::scan_page`], which the cluster work builds on (range copy,
//! digests, cleanup) and so do StreamKeys and GetKeyRange. A page merges
//! the memtables (active and waiting for flush) with every table of the
//! tree version current when it starts, each key's versions reconciled as
//! sets. Invariants:
//! - a page holds each key once, keys strictly increasing, and only keys in
//!   `[start, end)` the filter keeps; `resume` is the first key the next
//!   page must start from (`None`: the range is done);
//! - a page is bounded: at most `keys_examined_max` keys looked at, and it
//!   stops once `entries_max` entries or `bytes_max` bytes were taken, so a
//!   page costs bounded memory and time whatever the range;
//! - memtable entries are copied synchronously when the page starts, so a
//!   write during the page's table reads is either in this page or (having
//!   landed after) in a later one, or seen by a later scan; a range scan is
//!   a consistent view of each key, not of the whole range at one instant;
//! - scans never fill or change the cache.

use super::Shard;
use crate::engine::memtable::Memtable;
use crate::engine::table::{RunScan, Table};
use crate::engine::EngineError;
use crate::model::{Version, VersionSet};
use bytes::Bytes;
use std::ops::Bound;
use std::rc::Rc;

/// Which keys a page keeps (besides the range bounds).
pub(crate) type KeyFilter<'a> = &'a dyn Fn(&[u8]) -> bool;

/// A range to read and the page bounds.
#[derive(Debug, Clone)]
pub(crate) struct ScanRange {
    /// Inclusive first storage key.
    pub start: Bytes,
    /// Exclusive end; `None`: to the last key.
    pub end: Option<Bytes>,
    pub entries_max: usize,
    pub bytes_max: usize,
    pub keys_examined_max: usize,
}

/// One page of a range read.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScanPage {
    /// Keys in order with every stored version (tombstones included).
    pub entries: Vec<(Bytes, Vec<Version>)>,
    /// Where the next page starts; `None` once the range is read.
    pub resume: Option<Bytes>,
    /// Keys looked at (kept or not).
    pub keys_examined: u64,
}

/// The smallest storage key greater than `key`.
pub(crate) fn key_after(key: &[u8]) -> Bytes {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    Bytes::from(next)
}

/// A memtable's entries in range, copied: at most `max`, and whether it
/// had more.
fn memtable_slice(
    mem: &Memtable,
    start: &[u8],
    end: Option<&[u8]>,
    max: usize,
) -> (Vec<(Bytes, Vec<Version>)>, bool) {
    let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
    let mut iter = mem.range(Bound::Included(start), upper);
    let taken: Vec<_> = iter
        .by_ref()
        .take(max)
        .map(|(k, s)| (k.clone(), s.versions().to_vec()))
        .collect();
    let more = iter.next().is_some();
    (taken, more)
}

/// Tables overlapping `[start, end)`.
fn overlapping(tables: &[Rc<Table>], start: &[u8], end: Option<&[u8]>) -> Vec<Rc<Table>> {
    tables
        .iter()
        .filter(|t| t.largest()[..] >= *start && end.is_none_or(|e| t.smallest()[..] < *e))
        .cloned()
        .collect()
}

impl Shard {
    /// One page of `range`, keeping the keys `keep` accepts. See the module
    /// invariants.
    pub(crate) async fn scan_page(
        &self,
        range: &ScanRange,
        keep: KeyFilter<'_>,
    ) -> Result<ScanPage, EngineError> {
        let examined_max = range.keys_examined_max.max(1);
        let start = &range.start[..];
        let end = range.end.as_deref();
        let version = self.tree.current();
        // Memtables first, synchronously: each contributes at most
        // `examined_max` keys; when one has more, the page stops at the
        // smallest last key any truncated memtable gave (`mem_cap`).
        let mut mem_lists = Vec::new();
        let mut mem_cap: Option<Bytes> = None;
        {
            let active = self.tree.active();
            let imms: Vec<_> = version.immutables().iter().map(|i| i.mem()).collect();
            let mems = std::iter::once(&*active).chain(imms.iter().map(|m| &**m));
            for mem in mems {
                let (list, more) = memtable_slice(mem, start, end, examined_max);
                if more {
                    if let Some((last, _)) = list.last() {
                        if mem_cap.as_ref().is_none_or(|c| last < c) {
                            mem_cap = Some(last.clone());
                        }
                    }
                }
                mem_lists.push(list.into_iter().peekable());
            }
        }
        let mut runs = Vec::new();
        for t in overlapping(version.level(0), start, end) {
            runs.push(RunScan::from_key(vec![t], range.start.clone()));
        }
        for level in 1..crate::config::LEVELS {
            let tables = overlapping(version.level(level), start, end);
            if !tables.is_empty() {
                runs.push(RunScan::from_key(tables, range.start.clone()));
            }
        }
        drop(version);
        let mut page = ScanPage::default();
        let mut bytes = 0usize;
        for r in runs.iter_mut() {
            r.fill().await?;
        }
        loop {
            let table_min = runs.iter().filter_map(|r| r.peek().map(|(k, _)| k)).min();
            let mem_min = mem_lists
                .iter_mut()
                .filter_map(|l| l.peek().map(|(k, _)| k))
                .min();
            let key = match (table_min, mem_min) {
                (None, None) => None,
                (Some(a), None) | (None, Some(a)) => Some(a.clone()),
                (Some(a), Some(b)) => Some(a.min(b).clone()),
            };
            let Some(key) = key else {
                page.resume = mem_cap.as_deref().map(key_after);
                return Ok(page);
            };
            if end.is_some_and(|e| key[..] >= *e) {
                page.resume = None;
                return Ok(page);
            }
            if mem_cap.as_ref().is_some_and(|c| key > *c) {
                page.resume = Some(key);
                return Ok(page);
            }
            let mut sets = Vec::new();
            for r in runs.iter_mut() {
                if r.peek().is_some_and(|(k, _)| *k == key) {
                    if let Some((_, vs)) = r.take() {
                        sets.push(vs);
                    }
                    r.fill().await?;
                }
            }
            for l in mem_lists.iter_mut() {
                if l.peek().is_some_and(|(k, _)| *k == key) {
                    if let Some((_, vs)) = l.next() {
                        sets.push(vs);
                    }
                }
            }
            page.keys_examined += 1;
            if keep(&key) {
                let versions = VersionSet::merge_reconciled(sets).into_versions();
                if !versions.is_empty() {
                    bytes +=
                        key.len() + versions.iter().map(|v| v.heap_bytes() + 64).sum::<usize>();
                    page.entries.push((key.clone(), versions));
                }
            }
            if page.entries.len() >= range.entries_max.max(1)
                || bytes >= range.bytes_max
                || page.keys_examined >= examined_max as u64
            {
                page.resume = Some(key_after(&key));
                return Ok(page);
            }
            glommio::yield_if_needed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_after;

    #[test]
    fn key_after_is_the_next_key_in_byte_order() {
        let k = b"ab".as_slice();
        let next = key_after(k);
        assert!(next[..] > *k);
        // Nothing lies strictly between: any longer key with prefix "ab"
        // sorts at or after "ab\0".
        assert!(b"ab\x00".as_slice() >= &next[..]);
        assert!(b"ab\x00\x00".as_slice() > &next[..]);
        assert!(b"ac".as_slice() > &next[..]);
    }
}
