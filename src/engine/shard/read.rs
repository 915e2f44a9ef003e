//! The read path of a shard: the versions of one key, from the cache or the
//! tables of the current tree version, reconciled with the memtables.
//!
//! Owns [`Shard::get`] and the two steps every request shares:
//! [`Shard::table_versions`] (async: cache, else every table of the version
//! current when the read started) and [`Shard::reconcile`] (synchronous:
//! merge with every memtable a later flush could have moved out of sight).
//! Invariants: see the shard module; in particular a read never retries and
//! fills the cache only while the version it read is still current.

use super::immutable::Immutable;
use super::version::TreeVersion;
use super::Shard;
use crate::engine::EngineError;
use crate::model::{Version, VersionSet};
use bytes::Bytes;
use std::rc::Rc;

/// Bytes charged per cache entry beyond its key and versions.
const CACHE_ENTRY_OVERHEAD_BYTES: usize = 96;

/// What a read took from the tables, and the tree version it read.
pub(super) struct TableRead {
    version: Rc<TreeVersion>,
    /// Reconciled (one table's set, the cache's, or several merged).
    versions: Vec<Version>,
}

impl Shard {
    /// Versions of `key` in the tables of the current version (from the
    /// cache when it has them).
    pub(super) async fn table_versions(&self, key: &[u8]) -> Result<TableRead, EngineError> {
        let version = self.tree.current();
        if let Some(cached) = self.cache.borrow_mut().get(key) {
            return Ok(TableRead {
                version,
                versions: cached.clone(),
            });
        }
        let mut sets = Vec::new();
        for t in version.tables() {
            if let Some(vs) = t.get(key).await? {
                sets.push(vs);
            }
        }
        let holding = sets.len();
        // One table's set is reconciled already; sets from several tables
        // may dominate each other.
        let versions = VersionSet::merge_reconciled(sets).into_versions();
        if holding > 0 && self.tree.is_current(&version) {
            self.cache_fill(&version, key, &versions);
        }
        Ok(TableRead { version, versions })
    }

    /// Caches the tables' versions of `key` read on `current` (the current
    /// version), unless a memtable waiting for flush holds the key (its
    /// flush would make the entry incomplete; see the shard invariants).
    fn cache_fill(&self, current: &TreeVersion, key: &[u8], versions: &[Version]) {
        if current
            .immutables()
            .iter()
            .any(|i| i.mem().get(key).is_some())
        {
            return;
        }
        let charge = (key.len() + CACHE_ENTRY_OVERHEAD_BYTES) as u64
            + versions.iter().map(|v| v.heap_bytes() as u64).sum::<u64>();
        // Copies: values read from a table are slices of their whole block,
        // which a cached slice would keep alive beyond its charge.
        let owned = versions
            .iter()
            .map(|v| Version {
                clock: v.clock.clone(),
                timestamp_ms: v.timestamp_ms,
                value: v.value.as_deref().map(Bytes::copy_from_slice),
            })
            .collect();
        self.cache
            .borrow_mut()
            .insert(Bytes::copy_from_slice(key), owned, charge);
    }

    /// Every stored version of `key`: what `read` took from the tables,
    /// merged with the memtables of the version it read, of every version
    /// installed since (a flush since the read started moved its memtable
    /// into a table the read did not see), and the active memtable.
    pub(super) fn reconcile(&self, key: &[u8], read: TableRead) -> VersionSet {
        let mut set = VersionSet::from_reconciled(read.versions);
        let mut apply = |imm: &Immutable| {
            if let Some(s) = imm.mem().get(key) {
                for v in s.versions() {
                    set.apply(v.clone());
                }
            }
        };
        for imm in read.version.immutables() {
            apply(imm);
        }
        // Rare: only when the version changed during the read.
        let mut seen: Vec<*const Immutable> = Vec::new();
        let mut v: &TreeVersion = &read.version;
        while let Some(next) = v.successor() {
            if seen.is_empty() {
                seen.extend(read.version.immutables().iter().map(Rc::as_ptr));
            }
            for imm in next.immutables() {
                let p = Rc::as_ptr(imm);
                if !seen.contains(&p) {
                    seen.push(p);
                    apply(imm);
                }
            }
            v = next;
        }
        if let Some(s) = self.tree.active().get(key) {
            for v in s.versions() {
                set.apply(v.clone());
            }
        }
        set
    }

    pub(super) async fn get(&self, key: &Bytes) -> Result<VersionSet, EngineError> {
        let read = self.table_versions(key).await?;
        Ok(self.reconcile(key, read))
    }
}
