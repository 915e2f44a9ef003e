//! The admin service's Flush and Compact: maintenance an operator asks for
//! on every shard.
//!
//! Owns their answers. Invariants: Flush answers success only once every
//! shard's memtables are durable in tables (waiting at most
//! [`FLUSH_MAX`]); Compact runs on each shard's own compactor (never beside
//! another compaction of that shard, keeping the space reserved for
//! flushes) and answers what each shard merged; a failure on any shard
//! makes the answer `success = false` with that shard's error code, and
//! the figures of the shards that answered.

use super::CoreContext;
use crate::engine::{ShardOp, ShardReply, ShardStats};
use crate::proto;
use crate::server::convert;
use std::time::Duration;

/// How long a Flush waits for each shard's memtables.
const FLUSH_MAX: Duration = Duration::from_secs(120);

fn tables_of(s: &ShardStats) -> proto::ShardTables {
    proto::ShardTables {
        shard: u32::try_from(s.shard).unwrap_or(u32::MAX),
        memtable_bytes: s.memtable_bytes,
        immutable_memtables: s.immutable_memtables,
        sstables: s.sstables,
        sstable_bytes: s.sstable_bytes,
        level_tables: s.levels.iter().map(|l| l.tables).collect(),
    }
}

/// Every shard's tables now (empty when the figures cannot be had).
async fn all_tables(core: &CoreContext) -> Vec<proto::ShardTables> {
    match core.router.all_stats().await {
        Ok(stats) => stats.iter().map(tables_of).collect(),
        Err(_) => Vec::new(),
    }
}

pub(super) async fn flush(core: &CoreContext, _req: proto::FlushRequest) -> proto::FlushResponse {
    let replies = core
        .router
        .call_all(|_| ShardOp::Flush { max: FLUSH_MAX })
        .await;
    let mut failure = None;
    for (shard, reply) in replies.into_iter().enumerate() {
        let error = match reply {
            ShardReply::Flushed => continue,
            ShardReply::Failed(e) => (convert::error_code(&e), format!("shard {shard}: {e}")),
            other => (
                proto::ErrorCode::InternalError,
                format!("shard {shard}: unexpected reply {other:?}"),
            ),
        };
        failure.get_or_insert(error);
    }
    let shards = all_tables(core).await;
    match failure {
        None => {
            tracing::info!("flush asked: every memtable is in a table");
            proto::FlushResponse {
                success: true,
                shards,
                ..Default::default()
            }
        }
        Some((code, message)) => proto::FlushResponse {
            success: false,
            shards,
            error_message: message,
            error_code: code as i32,
        },
    }
}

pub(super) async fn compact(
    core: &CoreContext,
    req: proto::CompactRequest,
) -> proto::CompactResponse {
    let level = req.level.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let replies = core.router.call_all(|_| ShardOp::Compact { level }).await;
    let tables = all_tables(core).await;
    let mut answer = proto::CompactResponse {
        success: true,
        ..Default::default()
    };
    for (shard, reply) in replies.into_iter().enumerate() {
        let error = match reply {
            ShardReply::Compacted(c) => {
                answer.shards.push(proto::ShardCompaction {
                    shard: u32::try_from(shard).unwrap_or(u32::MAX),
                    merges: c.merges,
                    trivial_moves: c.trivial_moves,
                    bytes_read: c.bytes_read,
                    bytes_written: c.bytes_written,
                    keys_purged: c.keys_purged,
                    tables: tables.get(shard).cloned(),
                });
                continue;
            }
            ShardReply::Failed(e) => (convert::error_code(&e), format!("shard {shard}: {e}")),
            other => (
                proto::ErrorCode::InternalError,
                format!("shard {shard}: unexpected reply {other:?}"),
            ),
        };
        if answer.success {
            answer.success = false;
            answer.error_code = error.0 as i32;
            answer.error_message = error.1;
        }
    }
    answer
}
