//! Every numeric figure of a shard's [`ShardStats`] as Prometheus samples
//! with a `shard` label: totals as `_total` counters, levels and sizes as
//! gauges, durations in seconds, states as `_info` gauges.
//!
//! Owns the mapping from HealthCheck's per-shard figures to metric names.
//! Invariant: a HealthCheck ratio or average (`cache_hit_ratio`,
//! `wal_writes_per_fsync`, `wal_fsync_avg_us`) appears only as the counters
//! it is computed from (hits and misses; records and fsyncs; the fsync
//! histogram's sum and count), so PromQL can rate them over any window.
//! Hot keys stay in HealthCheck only: a key as a label value would make
//! the series count unbounded and expose tenants' keys to every scraper.

use super::families::Families;
use crate::engine::ShardStats;

/// A counter of a shard figure: (name, help, value).
type Figure = (&'static str, &'static str, fn(&ShardStats) -> u64);

/// Figures that only grow while the node runs.
const COUNTERS: &[Figure] = &[
    (
        "pairdb_requests_local_total",
        "Requests received on this shard's core and executed there.",
        |s| s.requests_local,
    ),
    (
        "pairdb_requests_forwarded_out_total",
        "Requests received on this shard's core and sent to the owning core.",
        |s| s.requests_forwarded_out,
    ),
    (
        "pairdb_requests_forwarded_in_total",
        "Requests another core received and this shard executed.",
        |s| s.requests_forwarded_in,
    ),
    (
        "pairdb_puts_refused_by_bounds_total",
        "Puts refused by a per-key bound.",
        |s| s.puts_refused_by_bounds,
    ),
    (
        "pairdb_replica_puts_past_bounds_total",
        "Replica puts accepted that left their key past a soft bound.",
        |s| s.replica_puts_past_bounds,
    ),
    (
        "pairdb_flushes_total",
        "Memtables flushed to SSTables.",
        |s| s.flushes,
    ),
    (
        "pairdb_flush_bytes_total",
        "Bytes of SSTables written by flushes.",
        |s| s.flush_bytes,
    ),
    (
        "pairdb_flush_failures_total",
        "Flush attempts that failed (each is retried).",
        |s| s.flush_failures,
    ),
    (
        "pairdb_compactions_total",
        "Compactions that merged tables.",
        |s| s.compaction.compactions,
    ),
    (
        "pairdb_compaction_trivial_moves_total",
        "Compactions that moved a table down a level without rewriting it.",
        |s| s.compaction.trivial_moves,
    ),
    (
        "pairdb_compaction_read_bytes_total",
        "Bytes compactions read.",
        |s| s.compaction.bytes_read,
    ),
    (
        "pairdb_compaction_written_bytes_total",
        "Bytes compactions wrote.",
        |s| s.compaction.bytes_written,
    ),
    (
        "pairdb_compaction_keys_purged_total",
        "Keys compactions dropped (expired tombstones and versions).",
        |s| s.compaction.keys_purged,
    ),
    (
        "pairdb_compaction_failures_total",
        "Compactions that failed.",
        |s| s.compaction.failures,
    ),
    (
        "pairdb_write_slowdowns_total",
        "Writes delayed past a flow-control slowdown threshold.",
        |s| s.flow.write_slowdowns,
    ),
    (
        "pairdb_write_stalls_total",
        "Writes that waited at a flow-control stop threshold.",
        |s| s.flow.write_stalls,
    ),
    (
        "pairdb_cache_hits_total",
        "Read cache lookups that found the key.",
        |s| s.cache.hits,
    ),
    (
        "pairdb_cache_misses_total",
        "Read cache lookups that did not find the key.",
        |s| s.cache.misses,
    ),
    (
        "pairdb_cache_evictions_total",
        "Entries the read cache evicted.",
        |s| s.cache.evictions,
    ),
    (
        "pairdb_wal_written_bytes_total",
        "Bytes appended to the write-ahead log.",
        |s| s.wal.bytes_written,
    ),
    (
        "pairdb_wal_fsyncs_total",
        "Syncs of the write-ahead log: durable (O_DSYNC) batch writes.",
        |s| s.wal.fsyncs,
    ),
    (
        "pairdb_wal_records_total",
        "Records appended to the write-ahead log.",
        |s| s.wal.records,
    ),
    (
        "pairdb_wal_batches_total",
        "Group-commit batches written to the write-ahead log.",
        |s| s.wal.batches,
    ),
    (
        "pairdb_wal_disk_full_events_total",
        "Times the write-ahead log found the disk full and waited for space.",
        |s| s.wal.disk_full_events,
    ),
];

/// Durations that only grow, in microseconds, exposed in seconds.
const SECONDS_COUNTERS: &[Figure] = &[
    (
        "pairdb_compaction_seconds_total",
        "Time spent compacting.",
        |s| s.compaction.micros,
    ),
    (
        "pairdb_compaction_throttled_seconds_total",
        "Time compactions slept for the I/O rate limit.",
        |s| s.compaction.throttled_micros,
    ),
    (
        "pairdb_compaction_cpu_seconds_total",
        "CPU time of the compaction task queue.",
        |s| s.compaction.cpu_micros,
    ),
    (
        "pairdb_flush_cpu_seconds_total",
        "CPU time of the flush task queue.",
        |s| s.compaction.flush_cpu_micros,
    ),
    (
        "pairdb_executor_cpu_seconds_total",
        "CPU time of the shard's core executor, all task queues.",
        |s| s.compaction.executor_cpu_micros,
    ),
    (
        "pairdb_write_slowdown_seconds_total",
        "Delay given to writes past a slowdown threshold.",
        |s| s.flow.write_slowdown_micros,
    ),
    (
        "pairdb_write_stall_seconds_total",
        "Time writes waited at a stop threshold.",
        |s| s.flow.write_stall_micros,
    ),
];

/// Levels and sizes.
const GAUGES: &[Figure] = &[
    ("pairdb_keys", "Keys the shard holds (memtable and SSTable entries; an upper bound until compaction merges duplicates).", |s| s.keys),
    ("pairdb_memtable_bytes", "Bytes of the active memtable.", |s| s.memtable_bytes),
    ("pairdb_immutable_memtables", "Memtables waiting to be flushed.", |s| s.immutable_memtables),
    ("pairdb_immutable_memtable_bytes", "Bytes of the memtables waiting to be flushed.", |s| s.immutable_bytes),
    ("pairdb_sstables", "SSTables of the shard.", |s| s.sstables),
    ("pairdb_sstable_bytes", "Bytes of the shard's SSTable files.", |s| s.sstable_bytes),
    ("pairdb_sstable_memory_bytes", "Memory the open SSTables hold (indexes and filters).", |s| s.sstable_memory_bytes),
    ("pairdb_compaction_pending_bytes", "Estimated bytes compaction must still rewrite to bring every level under its target.", |s| s.compaction.pending_bytes),
    ("pairdb_compaction_running", "1 while a compaction runs.", |s| u64::from(s.compaction.running)),
    ("pairdb_l0_slowdown_tables", "L0 table count at which writes slow down.", |s| s.flow.l0_slowdown_tables),
    ("pairdb_l0_stop_tables", "L0 table count at which writes stop.", |s| s.flow.l0_stop_tables),
    ("pairdb_immutable_memtables_max", "Memtables waiting for flush at which writes stop.", |s| s.flow.immutable_memtables_max),
    ("pairdb_cache_capacity_bytes", "Capacity of the read cache.", |s| s.cache.capacity_bytes),
    ("pairdb_cache_bytes", "Bytes the read cache holds.", |s| s.cache.bytes),
    ("pairdb_cache_entries", "Entries the read cache holds.", |s| s.cache.entries),
    ("pairdb_wal_replayed_records", "Records replayed from the write-ahead log at start-up.", |s| s.wal.replayed_records),
    ("pairdb_wal_replayed_bytes", "Bytes replayed from the write-ahead log at start-up.", |s| s.wal.replayed_bytes),
    ("pairdb_flush_disk_full", "1 while the last flush failed for lack of disk space.", |s| u64::from(s.flush_disk_full)),
    ("pairdb_compaction_disk_full", "1 while compaction waits for disk space.", |s| u64::from(s.compaction_disk_full)),
];

/// Adds the samples of one shard.
pub(crate) fn add(f: &mut Families, s: &ShardStats) {
    let shard = s.shard.to_string();
    let labels: &[(&str, &str)] = &[("shard", &shard)];
    for (name, help, get) in COUNTERS {
        f.counter(name, help, labels, get(s) as f64);
    }
    for (name, help, get) in SECONDS_COUNTERS {
        f.counter(name, help, labels, get(s) as f64 / 1e6);
    }
    for (name, help, get) in GAUGES {
        f.gauge(name, help, labels, get(s) as f64);
    }
    f.gauge(
        "pairdb_wal_replay_seconds",
        "Time the write-ahead log replay took at start-up.",
        labels,
        s.wal.replay_micros as f64 / 1e6,
    );
    f.gauge(
        "pairdb_wal_fsync_max_seconds",
        "Longest write-ahead log sync (a durable batch write) since start.",
        labels,
        s.wal.fsync_micros_max as f64 / 1e6,
    );
    for (i, l) in s.levels.iter().enumerate() {
        let level = i.to_string();
        let labels: &[(&str, &str)] = &[("shard", &shard), ("level", &level)];
        f.gauge(
            "pairdb_level_tables",
            "SSTables per level.",
            labels,
            l.tables as f64,
        );
        f.gauge(
            "pairdb_level_bytes",
            "Bytes per level.",
            labels,
            l.bytes as f64,
        );
        f.gauge(
            "pairdb_level_target_bytes",
            "Byte target per level (0: none, for L0 and the last level).",
            labels,
            l.target_bytes as f64,
        );
    }
    f.info(
        "pairdb_write_state_info",
        "What writes meet on the shard: writing, disk_full (waiting for space), failed (until restart) or closed.",
        &[("shard", &shard), ("state", s.write_state)],
    );
    f.histogram(
        "pairdb_wal_fsync_duration_seconds",
        "Write-ahead log sync latency (each durable batch write).",
        labels,
        &s.wal.fsync_latency,
    );
    f.histogram(
        "pairdb_flush_duration_seconds",
        "Duration of each stored flush (table written, manifest edited).",
        labels,
        &s.flush_latency,
    );
    f.histogram(
        "pairdb_compaction_duration_seconds",
        "Duration of each merging compaction.",
        labels,
        &s.compaction.latency,
    );
}
