//! Running and installing compactions of one shard.
//!
//! Owns the compactor task (a [`super::worker::Worker`] in its own
//! low-share task queue): it asks the pure picker what to compact, performs
//! the merge (or a trivial move), installs the result with one manifest edit
//! ([`TreeVersion::merged`] or [`TreeVersion::moved`]), drops purged keys
//! from the cache, and deletes replaced table files once no reader holds
//! them (the graveyard).
//! Invariants: one compaction at a time per shard; outputs are durable
//! before the manifest edit that lists them; the edit removes exactly the
//! plan's inputs and overlaps (tables flushed meanwhile stay); a crash at any
//! point leaves either the old or the new manifest, and start-up removes the
//! files the surviving manifest does not list.

use super::tree::Stored;
use super::version::TreeVersion;
use super::worker::Wakeups;
use super::{Shard, ShardCounters};
use crate::config::LEVELS;
use crate::engine::compaction::merge::{self, MergeSpec};
use crate::engine::compaction::picker::{self, CompactionPlan, PickerConfig, TableInfo};
use crate::engine::compaction::rate::RateLimiter;
use crate::engine::table::{RunScan, Table};
use crate::engine::EngineError;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often replaced table files are looked at again while readers hold
/// them.
const GRAVEYARD_RECHECK: Duration = Duration::from_secs(1);

/// How long the compactor waits after a failed compaction before trying
/// again.
const COMPACTION_RETRY: Duration = Duration::from_secs(1);

impl Shard {
    pub(super) fn picker_config(&self) -> PickerConfig {
        let c = &self.config.compaction;
        PickerConfig {
            levels: LEVELS,
            l0_trigger_tables: c.l0_trigger_tables,
            level1_target_bytes: c.level1_target_bytes,
            level_size_multiplier: c.level_size_multiplier,
        }
    }

    /// The picker's view of every live table.
    pub(super) fn table_infos(&self) -> Vec<TableInfo> {
        self.tree.current().table_infos()
    }

    /// What the picker would compact now.
    pub(super) fn next_plan(&self) -> Option<CompactionPlan> {
        picker::pick(
            &self.table_infos(),
            &self.cursors.borrow(),
            &self.picker_config(),
        )
    }

    pub(super) async fn compact_loop(self: Rc<Self>, wakeups: Wakeups) {
        loop {
            self.graveyard.reap().await;
            if self.compactor.stopping() {
                return;
            }
            self.run_cleanups().await;
            self.run_compactions_asked().await;
            let Some(plan) = self.next_plan() else {
                self.counters.compaction_disk_full.set(false);
                let woken = if self.graveyard.is_empty() {
                    wakeups.next().await
                } else {
                    // Replaced files wait for their readers: look again
                    // soon even if nothing else happens.
                    wakeups.next_or_after(GRAVEYARD_RECHECK).await
                };
                if !woken {
                    return;
                }
                continue;
            };
            let result = self.compactor.job(self.compact(&plan)).await;
            self.counters
                .compaction_disk_full
                .set(matches!(result, Err(EngineError::DiskFull { .. })));
            self.progress.notify();
            if let Err(e) = result {
                if self.compactor.stopping() {
                    return;
                }
                ShardCounters::bump(&self.counters.compaction_failures);
                tracing::error!(shard = self.id, error = %e, "compaction failed; retrying in 1 s");
                if !wakeups.next_or_after(COMPACTION_RETRY).await {
                    return;
                }
            }
        }
    }

    /// Refuses (as a full disk) a merge whose outputs, at most about its
    /// `input_bytes`, would take the space kept free for flushes: a flush
    /// frees WAL segments, a compaction only frees space once it is done.
    fn check_room_for_compaction(&self, input_bytes: u64) -> Result<(), EngineError> {
        let space = crate::storage::disk::space(&self.dir)?;
        let need = input_bytes.saturating_add(self.flush_reserve_bytes);
        if space.free_bytes >= need {
            return Ok(());
        }
        Err(EngineError::DiskFull {
            what: format!(
                "shard {}: a compaction of {input_bytes} bytes waits: {} bytes are free and \
                 {} stay free for flushes",
                self.id, space.free_bytes, self.flush_reserve_bytes
            ),
        })
    }

    /// Runs one plan to completion and installs it.
    pub(super) async fn compact(&self, plan: &CompactionPlan) -> Result<(), EngineError> {
        let started = Instant::now();
        if plan.is_trivial_move() {
            return self.install_move(plan).await;
        }
        let (inputs, overlaps) = {
            let version = self.tree.current();
            let find = |infos: &[TableInfo]| -> Result<Vec<Rc<Table>>, EngineError> {
                let mut out = Vec::with_capacity(infos.len());
                for info in infos {
                    let t = version
                        .table(info.file_no)
                        .ok_or_else(|| EngineError::Internal {
                            what: format!("compaction input {} is not live", info.file_no),
                        })?;
                    out.push(Rc::clone(t));
                }
                Ok(out)
            };
            (find(&plan.inputs)?, find(&plan.overlaps)?)
        };
        let input_bytes = inputs.iter().chain(&overlaps).map(|t| t.file_bytes()).sum();
        self.check_room_for_compaction(input_bytes)?;
        let mut sources = Vec::new();
        if plan.input_level == 0 {
            // Level-0 tables may overlap: one run each.
            sources.extend(inputs.into_iter().map(|t| RunScan::new(vec![t])));
        } else {
            sources.push(RunScan::new(inputs));
        }
        if !overlaps.is_empty() {
            // The picker lists overlaps by smallest key: one run.
            sources.push(RunScan::new(overlaps));
        }
        let all_tables = self.table_infos();
        let next_file_no = || self.tree.allocate_file_no();
        let stopping = || self.compactor.stopping();
        let c = &self.config.compaction;
        let spec = MergeSpec {
            dir: &self.dir,
            output_level: plan.output_level,
            all_tables: &all_tables,
            block_bytes: self.config.sstable_block_bytes,
            table_target_bytes: c.sstable_target_bytes,
            now_unix_ms: super::now_unix_ms(),
            tombstone_grace_ms: (c.tombstone_grace_s.saturating_mul(1000)).min(i64::MAX as u64)
                as i64,
            stopping: &stopping,
            writers_waiting: &self.writers_waiting,
            next_file_no: &next_file_no,
        };
        let mut limiter = RateLimiter::new(c.rate_mb_s);
        let out = merge::merge(&spec, sources, &mut limiter).await?;
        // Open the outputs before the edit, so installing cannot fail half-way.
        let mut opened = Vec::with_capacity(out.tables.len());
        for meta in &out.tables {
            match Table::open(&self.dir, meta.clone()).await {
                Ok(t) => opened.push(Rc::new(t)),
                Err(e) => {
                    merge::remove_outputs(&self.dir, &out.tables).await;
                    return Err(e);
                }
            }
        }
        let replaced: HashSet<u64> = plan
            .inputs
            .iter()
            .chain(&plan.overlaps)
            .map(|t| t.file_no)
            .collect();
        let stored = match self.install(&replaced, opened, plan).await {
            Ok(stored) => stored,
            Err(e) => {
                merge::remove_outputs(&self.dir, &out.tables).await;
                return Err(e);
            }
        };
        if out.purged_overflow {
            self.cache.borrow_mut().clear();
        } else if !out.purged_keys.is_empty() {
            let mut cache = self.cache.borrow_mut();
            for key in &out.purged_keys {
                cache.remove(key);
            }
        }
        let k = &self.counters;
        ShardCounters::bump(&k.compactions);
        ShardCounters::add(&k.compaction_bytes_read, out.bytes_read);
        ShardCounters::add(&k.compaction_bytes_written, out.bytes_written);
        ShardCounters::add(&k.compaction_keys_purged, out.purged_count);
        ShardCounters::add(&k.compaction_micros, started.elapsed().as_micros() as u64);
        k.compaction_latency.record(started.elapsed());
        ShardCounters::add(
            &k.compaction_throttled_micros,
            limiter.throttled().as_micros() as u64,
        );
        tracing::debug!(
            shard = self.id,
            from = plan.input_level,
            to = plan.output_level,
            inputs = replaced.len(),
            outputs = out.tables.len(),
            bytes_read = out.bytes_read,
            bytes_written = out.bytes_written,
            keys_in = out.keys_in,
            keys_out = out.keys_out,
            purged = out.purged_count,
            micros = started.elapsed().as_micros() as u64,
            "compacted"
        );
        stored.into_result()
    }

    /// One manifest edit: `replaced` out, `outputs` in. `Err`: nothing
    /// changed (the outputs are the caller's to remove). Stored but
    /// unsynced: installed, but the replaced files stay on disk (start-up
    /// removes them once the new manifest is read; the old one still needs
    /// them if a crash brings it back).
    async fn install(
        &self,
        replaced: &HashSet<u64>,
        outputs: Vec<Rc<Table>>,
        plan: &CompactionPlan,
    ) -> Result<Stored, EngineError> {
        let before = self.tree.current();
        let stored = self
            .tree
            .edit(&self.dir, |v: &TreeVersion| {
                v.merged(replaced, &outputs, plan.output_level)
            })
            .await?;
        if stored.is_durable() {
            self.graveyard
                .bury(replaced.iter().filter_map(|no| before.table(*no)).cloned());
        }
        self.advance_cursor(plan);
        Ok(stored)
    }

    /// A trivial move: the table changes level in the manifest, unchanged.
    /// It deletes nothing, so stored but unsynced counts as done too.
    async fn install_move(&self, plan: &CompactionPlan) -> Result<(), EngineError> {
        let Some(input) = plan.inputs.first() else {
            return Ok(());
        };
        let stored = self
            .tree
            .edit(&self.dir, |v: &TreeVersion| {
                v.moved(input.file_no, plan.output_level)
            })
            .await?;
        self.advance_cursor(plan);
        ShardCounters::bump(&self.counters.compaction_trivial_moves);
        stored.into_result()
    }

    fn advance_cursor(&self, plan: &CompactionPlan) {
        if let Some(slot) = self.cursors.borrow_mut().get_mut(plan.input_level as usize) {
            *slot = plan.next_cursor.clone();
        }
    }
}
