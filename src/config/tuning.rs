//! The LSM tuning sections of the configuration: compaction, write flow
//! control and the read cache (`[storage.compaction]`,
//! `[storage.flow_control]`, `[storage.cache]` in shards.toml).
//!
//! Owns their schema, defaults and validation rules. Pure: no I/O.
//! Invariants after [`validate`]: the compaction trigger is below the
//! slowdown threshold, which is below the stop threshold; every size and rate
//! is non-zero where zero would disable progress.

use serde::Deserialize;

/// Levels of every shard's LSM tree: L0 (flushed memtables, ranges may
/// overlap) to L4 (the last level; never compacted further).
pub const LEVELS: usize = 5;

/// Leveled compaction (`[storage.compaction]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// L0 is merged into L1 once it holds this many tables.
    pub l0_trigger_tables: usize,
    /// Byte target of L1; each deeper level's target is the one above times
    /// `level_size_multiplier`. A level over its target is compacted down.
    pub level1_target_bytes: u64,
    pub level_size_multiplier: u64,
    /// Compaction output tables are cut at about this size (bytes).
    pub sstable_target_bytes: u64,
    /// Tombstones older than this are dropped when a compaction writes the
    /// last level holding their key (seconds).
    pub tombstone_grace_s: u64,
    /// Bytes per second compaction may read plus write (MB/s, 10^6 bytes);
    /// 0 = unlimited.
    pub rate_mb_s: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            l0_trigger_tables: 4,
            level1_target_bytes: 256 * 1024 * 1024,
            level_size_multiplier: 10,
            sstable_target_bytes: 64 * 1024 * 1024,
            tombstone_grace_s: 864_000,
            rate_mb_s: 200,
        }
    }
}

/// Write flow control (`[storage.flow_control]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowControlConfig {
    /// From this many L0 tables (or with every immutable memtable slot
    /// taken) each write is delayed by `write_slowdown_delay_us`, growing
    /// linearly to 8x at the stop threshold.
    pub l0_slowdown_tables: usize,
    /// From this many L0 tables writes wait for compaction, up to
    /// `storage.write_stall_timeout_ms`, then answer MEMORY_PRESSURE.
    pub l0_stop_tables: usize,
    pub write_slowdown_delay_us: u64,
}

impl Default for FlowControlConfig {
    fn default() -> Self {
        Self {
            l0_slowdown_tables: 12,
            l0_stop_tables: 20,
            write_slowdown_delay_us: 1000,
        }
    }
}

/// The per-shard read cache (`[storage.cache]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bytes of cached versions for the whole node, split evenly between
    /// shards. 0 disables the cache.
    pub capacity_bytes_total: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity_bytes_total: 256 * 1024 * 1024,
        }
    }
}

/// Checks the three sections; `Err((key, reason))` names the first problem.
pub(super) fn validate(
    c: &CompactionConfig,
    f: &FlowControlConfig,
) -> Result<(), (&'static str, String)> {
    if c.l0_trigger_tables < 2 {
        return Err((
            "storage.compaction.l0_trigger_tables",
            "must be at least 2".into(),
        ));
    }
    if c.level1_target_bytes < 1024 * 1024 {
        return Err((
            "storage.compaction.level1_target_bytes",
            "must be at least 1 MiB".into(),
        ));
    }
    if !(2..=100).contains(&c.level_size_multiplier) {
        return Err((
            "storage.compaction.level_size_multiplier",
            "must be between 2 and 100".into(),
        ));
    }
    if c.sstable_target_bytes < 64 * 1024 {
        return Err((
            "storage.compaction.sstable_target_bytes",
            "must be at least 64 KiB".into(),
        ));
    }
    if f.l0_slowdown_tables <= c.l0_trigger_tables {
        return Err((
            "storage.flow_control.l0_slowdown_tables",
            "must be above storage.compaction.l0_trigger_tables".into(),
        ));
    }
    if f.l0_stop_tables <= f.l0_slowdown_tables {
        return Err((
            "storage.flow_control.l0_stop_tables",
            "must be above storage.flow_control.l0_slowdown_tables".into(),
        ));
    }
    if f.write_slowdown_delay_us > 1_000_000 {
        return Err((
            "storage.flow_control.write_slowdown_delay_us",
            "must be at most 1000000 (1 s)".into(),
        ));
    }
    Ok(())
}
