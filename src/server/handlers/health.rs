//! HealthCheck: the node's figures as a string map.
//!
//! Owns the metric names the contract's HealthCheck answers (node, every
//! shard's engine figures and hot keys). Nothing here changes state.

use super::CoreContext;
use crate::engine::ShardStats;
use crate::model::key::display_storage_key;
use crate::proto;
use std::collections::HashMap;

pub(super) async fn health(core: &CoreContext) -> proto::HealthResponse {
    let mut metrics = HashMap::new();
    metrics.insert("node_id".to_string(), core.config.node.node_id.clone());
    metrics.insert("shards".to_string(), core.router.shards().to_string());
    metrics.insert(
        "uptime_s".to_string(),
        core.started.elapsed().as_secs().to_string(),
    );
    crate::cluster::insert_health_metrics(&core.members, &mut metrics);
    insert_stream_figures(core, &mut metrics).await;
    metrics.insert(
        "node.state".to_string(),
        core.router.node.state().name().to_string(),
    );
    metrics.insert(
        "served_by_shard".to_string(),
        core.router.local_shard().id().to_string(),
    );
    match core.router.all_stats().await {
        Ok(stats) => {
            let total_keys: u64 = stats.iter().map(|s| s.keys).sum();
            metrics.insert("keys".to_string(), total_keys.to_string());
            let disk_full = stats.iter().any(|s| {
                s.write_state == "disk_full" || s.flush_disk_full || s.compaction_disk_full
            });
            metrics.insert("disk_full".to_string(), disk_full.to_string());
            insert_volume_figures(core, &mut metrics);
            for s in stats {
                let p = format!("shard.{}.", s.shard);
                metrics.insert(format!("{p}keys"), s.keys.to_string());
                metrics.insert(format!("{p}memtable_bytes"), s.memtable_bytes.to_string());
                metrics.insert(format!("{p}requests_local"), s.requests_local.to_string());
                metrics.insert(
                    format!("{p}requests_forwarded_out"),
                    s.requests_forwarded_out.to_string(),
                );
                metrics.insert(
                    format!("{p}requests_forwarded_in"),
                    s.requests_forwarded_in.to_string(),
                );
                metrics.insert(
                    format!("{p}puts_refused_by_bounds"),
                    s.puts_refused_by_bounds.to_string(),
                );
                metrics.insert(
                    format!("{p}replica_puts_past_bounds"),
                    s.replica_puts_past_bounds.to_string(),
                );
                metrics.insert(
                    format!("{p}immutable_memtables"),
                    s.immutable_memtables.to_string(),
                );
                metrics.insert(format!("{p}immutable_bytes"), s.immutable_bytes.to_string());
                metrics.insert(format!("{p}sstables"), s.sstables.to_string());
                metrics.insert(format!("{p}sstable_bytes"), s.sstable_bytes.to_string());
                metrics.insert(
                    format!("{p}sstable_memory_bytes"),
                    s.sstable_memory_bytes.to_string(),
                );
                metrics.insert(format!("{p}flushes"), s.flushes.to_string());
                metrics.insert(format!("{p}flush_bytes"), s.flush_bytes.to_string());
                insert_engine_figures(&mut metrics, &p, &s);
                let w = &s.wal;
                metrics.insert(format!("{p}wal_bytes_written"), w.bytes_written.to_string());
                metrics.insert(format!("{p}wal_fsyncs"), w.fsyncs.to_string());
                metrics.insert(format!("{p}wal_records"), w.records.to_string());
                let per_fsync = if w.fsyncs > 0 {
                    w.records as f64 / w.fsyncs as f64
                } else {
                    0.0
                };
                metrics.insert(
                    format!("{p}wal_writes_per_fsync"),
                    format!("{per_fsync:.2}"),
                );
                let avg = w.fsync_micros_total.checked_div(w.fsyncs).unwrap_or(0);
                metrics.insert(format!("{p}wal_fsync_avg_us"), avg.to_string());
                metrics.insert(
                    format!("{p}wal_fsync_max_us"),
                    w.fsync_micros_max.to_string(),
                );
                metrics.insert(
                    format!("{p}wal_replayed_records"),
                    w.replayed_records.to_string(),
                );
                metrics.insert(
                    format!("{p}wal_replayed_bytes"),
                    w.replayed_bytes.to_string(),
                );
                metrics.insert(format!("{p}wal_replay_us"), w.replay_micros.to_string());
                insert_write_state(&mut metrics, &p, &s);
                insert_hot_keys(&mut metrics, &p, &s);
            }
            proto::HealthResponse {
                healthy: true,
                status: "SERVING".into(),
                metrics,
            }
        }
        Err(e) => {
            metrics.insert("error".to_string(), e.to_string());
            proto::HealthResponse {
                healthy: false,
                status: "DEGRADED".into(),
                metrics,
            }
        }
    }
}

/// Size and free space of the data volume (`data_volume_bytes`,
/// `data_volume_free_bytes`), or `data_volume_error`.
fn insert_volume_figures(core: &CoreContext, metrics: &mut HashMap<String, String>) {
    match crate::storage::disk::space(&core.config.node.data_dir) {
        Ok(space) => {
            metrics.insert("data_volume_bytes".into(), space.total_bytes.to_string());
            metrics.insert(
                "data_volume_free_bytes".into(),
                space.free_bytes.to_string(),
            );
        }
        Err(e) => {
            metrics.insert("data_volume_error".into(), e.to_string());
        }
    }
}

/// Levels, compaction, flow control and cache figures of one shard, under
/// the prefix `p` (`shard.N.`).
fn insert_engine_figures(metrics: &mut HashMap<String, String>, p: &str, s: &ShardStats) {
    let mut put = |k: &str, v: String| {
        metrics.insert(format!("{p}{k}"), v);
    };
    for (i, l) in s.levels.iter().enumerate() {
        put(&format!("level.{i}.tables"), l.tables.to_string());
        put(&format!("level.{i}.bytes"), l.bytes.to_string());
        put(
            &format!("level.{i}.target_bytes"),
            l.target_bytes.to_string(),
        );
    }
    let c = &s.compaction;
    put("compactions", c.compactions.to_string());
    put("compaction_trivial_moves", c.trivial_moves.to_string());
    put("compaction_bytes_read", c.bytes_read.to_string());
    put("compaction_bytes_written", c.bytes_written.to_string());
    put("compaction_pending_bytes", c.pending_bytes.to_string());
    put("compaction_us", c.micros.to_string());
    put("compaction_throttled_us", c.throttled_micros.to_string());
    put("compaction_keys_purged", c.keys_purged.to_string());
    put("compaction_failures", c.failures.to_string());
    put("compaction_running", c.running.to_string());
    put("compaction_cpu_us", c.cpu_micros.to_string());
    put("flush_cpu_us", c.flush_cpu_micros.to_string());
    put("executor_cpu_us", c.executor_cpu_micros.to_string());
    let f = &s.flow;
    put("l0_slowdown_tables", f.l0_slowdown_tables.to_string());
    put("l0_stop_tables", f.l0_stop_tables.to_string());
    put(
        "immutable_memtables_max",
        f.immutable_memtables_max.to_string(),
    );
    put("write_slowdowns", f.write_slowdowns.to_string());
    put("write_slowdown_us", f.write_slowdown_micros.to_string());
    put("write_stalls", f.write_stalls.to_string());
    put("write_stall_us", f.write_stall_micros.to_string());
    let k = &s.cache;
    put("cache_capacity_bytes", k.capacity_bytes.to_string());
    put("cache_bytes", k.bytes.to_string());
    put("cache_entries", k.entries.to_string());
    put("cache_hits", k.hits.to_string());
    put("cache_misses", k.misses.to_string());
    put("cache_evictions", k.evictions.to_string());
    let lookups = k.hits + k.misses;
    let ratio = if lookups > 0 {
        k.hits as f64 / lookups as f64
    } else {
        0.0
    };
    put("cache_hit_ratio", format!("{ratio:.4}"));
}

/// What writes meet on the shard (its WAL's state, and whether flush or
/// compaction waits for disk space), under the prefix `p`.
fn insert_write_state(metrics: &mut HashMap<String, String>, p: &str, s: &ShardStats) {
    let mut put = |k: &str, v: String| {
        metrics.insert(format!("{p}{k}"), v);
    };
    put("wal_disk_full_events", s.wal.disk_full_events.to_string());
    put("write_state", s.write_state.to_string());
    put("flush_failures", s.flush_failures.to_string());
    put("flush_disk_full", s.flush_disk_full.to_string());
    put("compaction_disk_full", s.compaction_disk_full.to_string());
}

/// `hot_key.<rank>` = `<requests> <storage key shown>` for each key the
/// shard reports, rank 1 the most requested, under the prefix `p`.
fn insert_hot_keys(metrics: &mut HashMap<String, String>, p: &str, s: &ShardStats) {
    for (i, h) in s.hot_keys.iter().enumerate() {
        metrics.insert(
            format!("{p}hot_key.{}", i + 1),
            format!("{} {}", h.requests, display_storage_key(&h.storage_key)),
        );
    }
}

/// `stream.<source>.<target>.<figure>` for every stream this node sends,
/// summed over its shards.
async fn insert_stream_figures(core: &CoreContext, metrics: &mut HashMap<String, String>) {
    use crate::cluster::streams::status;
    let by_stream = core.router.streams_by_id().await;
    metrics.insert("streams".to_string(), by_stream.len().to_string());
    for (id, parts) in by_stream {
        for (name, value) in status::figures(&parts) {
            metrics.insert(format!("stream.{}.{}.{name}", id.source, id.target), value);
        }
    }
}
