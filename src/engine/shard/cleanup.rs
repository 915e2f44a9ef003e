//! Cleanup: dropping every stored version in given token ranges (data a
//! node no longer owns after a range move), and range digests.
//!
//! Owns [`Shard::cleanup`] and [`Shard::digest`]. A cleanup first flushes
//! the memtables, then hands a job to the compactor task, which runs it
//! between compactions (so no merge races it): every table holding a key in
//! the ranges is rewritten without those keys, at its own level, and all
//! replacements are installed in one manifest edit; the cache is cleared.
//! Invariants: a rewritten table holds a subset of its old keys, so the
//! level invariants hold; outputs are durable before the edit and removed
//! if it fails; versions written into the ranges while the cleanup runs
//! may remain (the node no longer owns them, so none should arrive).

use super::version::TreeVersion;
use super::{Shard, ShardCounters};
use crate::config::LEVELS;
use crate::engine::compaction::merge;
use crate::engine::ops::ScanFilter;
use crate::engine::table::{RunScan, Table, TableWriter};
use crate::engine::EngineError;
use crate::model::{RangeDigest, TokenRanges};
use crate::storage::manifest::TableMeta;
use futures_channel::oneshot;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// What a cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cleaned {
    pub keys: u64,
    pub versions: u64,
    pub tables_rewritten: u64,
}

/// A cleanup waiting for the compactor.
pub(crate) struct CleanupJob {
    ranges: Arc<TokenRanges>,
    done: oneshot::Sender<Result<Cleaned, EngineError>>,
}

/// How long a cleanup waits for the memtables to flush.
const CLEANUP_FLUSH_MAX: Duration = Duration::from_secs(60);

impl Shard {
    /// Drops every version in `ranges` (see the module documentation).
    pub(crate) async fn cleanup(&self, ranges: Arc<TokenRanges>) -> Result<Cleaned, EngineError> {
        self.flush(CLEANUP_FLUSH_MAX).await?;
        let (done, answer) = oneshot::channel();
        self.cleanups
            .borrow_mut()
            .push_back(CleanupJob { ranges, done });
        self.compactor.wake();
        answer.await.map_err(|_| EngineError::Internal {
            what: "cleanup abandoned: the shard is closing".into(),
        })?
    }

    /// Runs the cleanups waiting (on the compactor task).
    pub(super) async fn run_cleanups(&self) {
        loop {
            let job = self.cleanups.borrow_mut().pop_front();
            let Some(job) = job else {
                return;
            };
            let result = self.compactor.job(self.clean(&job.ranges)).await;
            self.progress.notify();
            let _ = job.done.send(result);
        }
    }

    async fn clean(&self, ranges: &TokenRanges) -> Result<Cleaned, EngineError> {
        let filter = ScanFilter::Tokens(Arc::new(ranges.clone()));
        // What is removed, counted once per key (a key may be in several
        // tables): the reconciled view before the rewrite.
        let removing = self.digest(&filter).await?;
        let version = self.tree.current();
        let mut replaced = HashSet::new();
        let mut outputs: Vec<Vec<Rc<Table>>> = (0..LEVELS).map(|_| Vec::new()).collect();
        let mut written: Vec<TableMeta> = Vec::new();
        let mut cleaned = Cleaned::default();
        let result = async {
            for (level, table) in version.tables_by_level() {
                let mut scan = RunScan::new(vec![Rc::clone(table)]);
                let mut writer: Option<TableWriter> = None;
                let mut dropped = 0u64;
                scan.fill().await?;
                while let Some((key, versions)) = scan.take() {
                    if filter.keeps(&key) {
                        dropped += 1;
                    } else {
                        if writer.is_none() {
                            let no = self.tree.allocate_file_no();
                            writer = Some(
                                TableWriter::create(&self.dir, no, self.config.sstable_block_bytes)
                                    .await?,
                            );
                        }
                        if let Some(w) = writer.as_mut() {
                            w.add(&key, &versions).await?;
                        }
                    }
                    scan.fill().await?;
                    glommio::yield_if_needed().await;
                }
                if dropped == 0 {
                    if let Some(w) = writer.take() {
                        w.abandon().await;
                    }
                    continue;
                }
                replaced.insert(table.file_no());
                cleaned.tables_rewritten += 1;
                if let Some(w) = writer.take() {
                    let meta = w.finish(level).await?;
                    written.push(meta.clone());
                    let t = Table::open(&self.dir, meta).await?;
                    if let Some(slot) = outputs.get_mut(level as usize) {
                        slot.push(Rc::new(t));
                    }
                }
            }
            Ok::<(), EngineError>(())
        }
        .await;
        if let Err(e) = result {
            merge::remove_outputs(&self.dir, &written).await;
            return Err(e);
        }
        if replaced.is_empty() {
            return Ok(cleaned);
        }
        cleaned.keys = removing.keys;
        cleaned.versions = removing.versions;
        let edit = self
            .tree
            .edit(&self.dir, |v: &TreeVersion| {
                let mut next = v.merged(&replaced, &[], 0)?;
                for (level, tables) in outputs.iter().enumerate() {
                    if !tables.is_empty() {
                        next = next.merged(&HashSet::new(), tables, level as u8)?;
                    }
                }
                Ok(next)
            })
            .await;
        let stored = match edit {
            Ok(s) => s,
            Err(e) => {
                merge::remove_outputs(&self.dir, &written).await;
                return Err(e);
            }
        };
        if stored.is_durable() {
            self.graveyard
                .bury(replaced.iter().filter_map(|no| version.table(*no)).cloned());
        }
        self.cache.borrow_mut().clear();
        ShardCounters::add(&self.counters.cleanup_keys_removed, cleaned.keys);
        tracing::info!(
            shard = self.id,
            keys = cleaned.keys,
            versions = cleaned.versions,
            tables = cleaned.tables_rewritten,
            "cleanup removed the versions of ranges no longer owned"
        );
        stored.into_result().map(|()| cleaned)
    }

    /// Count and digest of every version whose key `filter` keeps.
    pub(crate) async fn digest(&self, filter: &ScanFilter) -> Result<RangeDigest, EngineError> {
        use super::scan::ScanRange;
        let mut d = RangeDigest::default();
        let mut start = bytes::Bytes::new();
        loop {
            let range = ScanRange {
                start,
                end: None,
                entries_max: usize::MAX,
                bytes_max: 4 << 20,
                keys_examined_max: 16_384,
            };
            let page = self.scan_page(&range, &|k| filter.keeps(k)).await?;
            for (k, vs) in &page.entries {
                d.add_key(k, vs);
            }
            match page.resume {
                Some(r) => start = r,
                None => return Ok(d),
            }
        }
    }
}
