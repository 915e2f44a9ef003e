//! The I/O half of a compaction: a k-way merge of table runs into new tables.
//!
//! Owns [`merge`]: reads every source run in key order, gathers each key's
//! versions from all sources, reconciles them with
//! [`purge::merge_key`](super::purge::merge_key) (dominated versions
//! dropped, siblings kept, old tombstones purged where no deeper level may
//! hold the key), and writes the survivors to output tables cut at the
//! target size, under the compaction rate limit (lifted while writers wait
//! at a flow-control stop), yielding to foreground work between keys. It changes no shard state: installing the outputs is the
//! caller's single manifest edit.
//!
//! Invariants: output keys strictly increase and every output table holds a
//! disjoint range; on error or stop every output written so far is removed
//! (none is listed anywhere yet), so a failed merge leaves nothing behind.

use super::picker::{key_may_exist_below, TableInfo};
use super::purge::{merge_key, MergeOutcome, PurgeRule};
use super::rate::RateLimiter;
use crate::engine::table::{RunScan, TableWriter};
use crate::engine::EngineError;
use crate::model::Version;
use crate::storage::manifest::{table_file_name, TableMeta};
use bytes::Bytes;
use std::cell::Cell;
use std::path::Path;

/// Purged keys remembered one by one for cache invalidation; past this
/// the merge reports an overflow and the shard clears its cache instead.
pub(crate) const PURGED_KEYS_TRACKED_MAX: usize = 65_536;

/// What a merge needs besides its sources.
pub(crate) struct MergeSpec<'a> {
    pub dir: &'a Path,
    pub output_level: u8,
    /// Every table of the shard (for "may a deeper level hold this key").
    pub all_tables: &'a [TableInfo],
    pub block_bytes: usize,
    pub table_target_bytes: u64,
    pub now_unix_ms: i64,
    pub tombstone_grace_ms: i64,
    /// True once the shard stops its compactor: the merge gives up
    /// between keys.
    pub stopping: &'a dyn Fn() -> bool,
    /// Writers waiting at a stop threshold: while any wait, the rate limit
    /// is lifted so compaction frees them as fast as the disk allows.
    pub writers_waiting: &'a Cell<usize>,
    /// Hands out fresh table file numbers.
    pub next_file_no: &'a dyn Fn() -> u64,
}

/// What a finished merge produced.
#[derive(Debug, Default)]
pub(crate) struct MergeOutput {
    pub tables: Vec<TableMeta>,
    /// Keys whose tombstones were purged (their cached versions must go),
    /// copied out of their blocks, at most [`PURGED_KEYS_TRACKED_MAX`].
    pub purged_keys: Vec<Bytes>,
    /// More keys were purged than tracked: the whole cache must go.
    pub purged_overflow: bool,
    pub purged_count: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub keys_in: u64,
    pub keys_out: u64,
}

/// Merges `sources` (each a run in key order) into tables at
/// `spec.output_level`. See the module invariants.
pub(crate) async fn merge(
    spec: &MergeSpec<'_>,
    mut sources: Vec<RunScan>,
    limiter: &mut RateLimiter,
) -> Result<MergeOutput, EngineError> {
    let mut out = MergeOutput::default();
    let mut writer: Option<TableWriter> = None;
    let result = merge_into(spec, &mut sources, limiter, &mut out, &mut writer).await;
    match result {
        Ok(()) => Ok(out),
        Err(e) => {
            if let Some(w) = writer.take() {
                w.abandon().await;
            }
            remove_outputs(spec.dir, &out.tables).await;
            Err(e)
        }
    }
}

/// Removes output tables no manifest lists (a merge or install that
/// failed); best effort: a file left behind is removed at the next start.
pub(crate) async fn remove_outputs(dir: &Path, tables: &[TableMeta]) {
    for t in tables {
        let path = dir.join(table_file_name(t.file_no));
        if let Err(e) = crate::storage::disk::remove(&path).await {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove an uninstalled compaction output");
        }
    }
}

async fn merge_into(
    spec: &MergeSpec<'_>,
    sources: &mut [RunScan],
    limiter: &mut RateLimiter,
    out: &mut MergeOutput,
    writer: &mut Option<TableWriter>,
) -> Result<(), EngineError> {
    for s in sources.iter_mut() {
        let n = s.fill().await?;
        out.bytes_read += n;
        throttle(spec, limiter, n).await;
    }
    loop {
        if (spec.stopping)() {
            return Err(EngineError::Internal {
                what: "compaction stopped: the shard is closing".into(),
            });
        }
        let Some(key) = sources
            .iter()
            .filter_map(|s| s.peek().map(|(k, _)| k))
            .min()
            .cloned()
        else {
            break;
        };
        let mut versions = Vec::new();
        let mut found_in = 0;
        for s in sources.iter_mut() {
            if s.peek().is_some_and(|(k, _)| *k == key) {
                if let Some((_, vs)) = s.take() {
                    versions.extend(vs);
                }
                found_in += 1;
                out.keys_in += 1;
                let n = s.fill().await?;
                out.bytes_read += n;
                throttle(spec, limiter, n).await;
            }
        }
        let has_tombstone = versions.iter().any(Version::is_tombstone);
        let outcome = if found_in == 1 && !has_tombstone {
            // One table's set is already reconciled, and with no tombstone
            // nothing can be purged: keep it as it is.
            MergeOutcome::Keep(versions)
        } else {
            let rule = PurgeRule {
                now_unix_ms: spec.now_unix_ms,
                tombstone_grace_ms: spec.tombstone_grace_ms,
                bottommost_for_key: has_tombstone
                    && !key_may_exist_below(spec.all_tables, spec.output_level, &key),
            };
            merge_key(versions, &rule)
        };
        match outcome {
            MergeOutcome::Purge => {
                out.purged_count += 1;
                if out.purged_keys.len() < PURGED_KEYS_TRACKED_MAX {
                    // A copy: the key is a slice of its whole input block.
                    out.purged_keys.push(Bytes::copy_from_slice(&key));
                } else {
                    out.purged_overflow = true;
                }
            }
            MergeOutcome::Keep(kept) => {
                if writer
                    .as_ref()
                    .is_some_and(|w| w.estimated_bytes() >= spec.table_target_bytes)
                {
                    if let Some(w) = writer.take() {
                        finish(w, spec, out).await?;
                    }
                }
                if writer.is_none() {
                    let no = (spec.next_file_no)();
                    *writer = Some(TableWriter::create(spec.dir, no, spec.block_bytes).await?);
                }
                if let Some(w) = writer.as_mut() {
                    let n = w.add(&key, &kept).await?;
                    out.bytes_written += n;
                    throttle(spec, limiter, n).await;
                }
                out.keys_out += 1;
            }
        }
        glommio::yield_if_needed().await;
    }
    if let Some(w) = writer.take() {
        finish(w, spec, out).await?;
    }
    Ok(())
}

async fn throttle(spec: &MergeSpec<'_>, limiter: &mut RateLimiter, bytes: u64) {
    if spec.writers_waiting.get() > 0 {
        limiter.restart();
    } else {
        limiter.consume(bytes).await;
    }
}

async fn finish(
    w: TableWriter,
    spec: &MergeSpec<'_>,
    out: &mut MergeOutput,
) -> Result<(), EngineError> {
    if w.entry_count() == 0 {
        w.abandon().await;
        return Ok(());
    }
    let before = w.written_bytes();
    let meta = w.finish(spec.output_level).await?;
    // The tail (last blocks, index, filter, footer) written by finish.
    out.bytes_written += meta.file_bytes.saturating_sub(before);
    out.tables.push(meta);
    Ok(())
}
