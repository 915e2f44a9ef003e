//! Health figures of one shard: sizes, levels, WAL, compaction, flow
//! control, cache and hot keys, read from the live state and counters.
//!
//! Owns turning the shard's state into a [`ShardStats`] value (owned, `Send`,
//! so it can cross cores). Pure reads; no invariant beyond the shard's.

use super::{Shard, ShardCounters};
use crate::config::LEVELS;
use crate::engine::compaction::picker;
use crate::engine::ops::{
    CacheFigures, CompactionFigures, FlowFigures, HotKey, LevelFigures, ShardStats, WalFigures,
};

/// Hot keys a shard reports, at most.
const HOT_KEYS_REPORTED: usize = 10;

impl Shard {
    pub(super) fn wal_stats(&self) -> WalFigures {
        let w = self.wal.stats();
        WalFigures {
            bytes_written: w.bytes_written.get(),
            fsyncs: w.fsyncs.get(),
            fsync_micros_total: w.fsync_micros_total.get(),
            fsync_micros_max: w.fsync_micros_max.get(),
            fsync_latency: w.fsync_latency.snapshot(),
            records: w.records.get(),
            batches: w.batches.get(),
            replayed_records: self.recovery.records,
            replayed_bytes: self.recovery.bytes,
            replay_micros: self.recovery.micros,
            disk_full_events: w.disk_full_events.get(),
        }
    }

    pub(crate) fn stats(&self) -> ShardStats {
        let cfg = self.picker_config();
        let mut levels = vec![LevelFigures::default(); LEVELS];
        for (i, l) in levels.iter_mut().enumerate() {
            l.target_bytes = picker::level_target_bytes(i, &cfg).unwrap_or(0);
        }
        let version = self.tree.current();
        for (level, t) in version.tables_by_level() {
            let i = (level as usize).min(LEVELS - 1);
            levels[i].tables += 1;
            levels[i].bytes += t.file_bytes();
        }
        let active = self.tree.active();
        ShardStats {
            shard: self.id,
            keys: active.len() as u64 + version.tables().map(|t| t.entries()).sum::<u64>(),
            memtable_bytes: active.bytes() as u64,
            immutable_memtables: version.immutables().len() as u64,
            immutable_bytes: version
                .immutables()
                .iter()
                .map(|i| i.mem().bytes() as u64)
                .sum(),
            sstables: version.tables().count() as u64,
            sstable_bytes: version.tables().map(|t| t.file_bytes()).sum(),
            sstable_memory_bytes: version.tables().map(|t| t.memory_bytes()).sum(),
            flushes: self.counters.flushes.get(),
            flush_bytes: self.counters.flush_bytes.get(),
            flush_latency: self.counters.flush_latency.snapshot(),
            levels,
            compaction: self.compaction_figures(),
            flow: self.flow_figures(),
            cache: self.cache_figures(),
            requests_local: self.counters.requests_local.get(),
            requests_forwarded_out: self.counters.requests_forwarded_out.get(),
            requests_forwarded_in: self.counters.requests_forwarded_in.get(),
            puts_refused_by_bounds: self.counters.puts_refused_by_bounds.get(),
            replica_puts_past_bounds: self.counters.replica_puts_past_bounds.get(),
            wal: self.wal_stats(),
            write_state: self.wal.state().name(),
            flush_failures: self.counters.flush_failures.get(),
            flush_disk_full: self.counters.flush_disk_full.get(),
            compaction_disk_full: self.counters.compaction_disk_full.get(),
            hot_keys: self.hot_key_figures(),
        }
    }

    fn hot_key_figures(&self) -> Vec<HotKey> {
        self.hot_keys
            .borrow()
            .top(HOT_KEYS_REPORTED)
            .into_iter()
            .map(|(key, requests)| HotKey {
                storage_key: key.to_vec(),
                requests,
            })
            .collect()
    }

    fn compaction_figures(&self) -> CompactionFigures {
        let k = &self.counters;
        // glommio hands out these runtimes since its previous read (it
        // resets them), so every read is added to running totals.
        ShardCounters::add(
            &k.compaction_cpu_micros,
            queue_micros(self.compactor.queue()),
        );
        ShardCounters::add(&k.flush_cpu_micros, queue_micros(self.flusher.queue()));
        ShardCounters::add(
            &k.executor_cpu_micros,
            glommio::executor()
                .executor_stats()
                .total_runtime()
                .as_micros() as u64,
        );
        CompactionFigures {
            compactions: k.compactions.get(),
            trivial_moves: k.compaction_trivial_moves.get(),
            bytes_read: k.compaction_bytes_read.get(),
            bytes_written: k.compaction_bytes_written.get(),
            pending_bytes: picker::pending_compaction_bytes(
                &self.table_infos(),
                &self.picker_config(),
            ),
            micros: k.compaction_micros.get(),
            latency: k.compaction_latency.snapshot(),
            throttled_micros: k.compaction_throttled_micros.get(),
            keys_purged: k.compaction_keys_purged.get(),
            failures: k.compaction_failures.get(),
            running: self.compactor.busy(),
            cpu_micros: k.compaction_cpu_micros.get(),
            flush_cpu_micros: k.flush_cpu_micros.get(),
            executor_cpu_micros: k.executor_cpu_micros.get(),
        }
    }

    fn flow_figures(&self) -> FlowFigures {
        let f = &self.config.flow_control;
        let k = &self.counters;
        FlowFigures {
            l0_slowdown_tables: f.l0_slowdown_tables as u64,
            l0_stop_tables: f.l0_stop_tables as u64,
            immutable_memtables_max: self.config.immutable_memtables_max as u64,
            write_slowdowns: k.write_slowdowns.get(),
            write_slowdown_micros: k.write_slowdown_micros.get(),
            write_stalls: k.write_stalls.get(),
            write_stall_micros: k.write_stall_micros.get(),
        }
    }

    fn cache_figures(&self) -> CacheFigures {
        let c = self.cache.borrow().stats();
        CacheFigures {
            capacity_bytes: c.capacity_bytes,
            bytes: c.bytes,
            entries: c.entries,
            hits: c.hits,
            misses: c.misses,
            evictions: c.evictions,
        }
    }
}

/// Time a task queue of this core has run since the previous call (glommio
/// resets it on read), 0 if it is unknown.
fn queue_micros(handle: glommio::TaskQueueHandle) -> u64 {
    glommio::executor()
        .task_queue_stats(handle)
        .map_or(0, |s| s.runtime().as_micros() as u64)
}
