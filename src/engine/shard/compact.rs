//! Running and installing compactions of one shard.
//!
//! Owns the compactor task (its own low-share glommio task queue): it asks
//! the pure picker what to compact, performs the merge (or a trivial move),
//! installs the result with one manifest edit, drops purged keys from the
//! cache, and deletes replaced table files once no reader holds them.
//! Invariants: one compaction at a time per shard; outputs are durable
//! before the manifest edit that lists them; the edit removes exactly the
//! plan's inputs and overlaps (tables flushed meanwhile stay); a crash at any
//! point leaves either the old or the new manifest, and start-up removes the
//! files the surviving manifest does not list.

use super::edit::Stored;
use super::{Shard, ShardCounters};
use crate::config::LEVELS;
use crate::engine::compaction::merge::{self, MergeSpec};
use crate::engine::compaction::picker::{self, CompactionPlan, PickerConfig, TableInfo};
use crate::engine::compaction::rate::RateLimiter;
use crate::engine::table::{RunScan, Table};
use crate::engine::EngineError;
use glommio::channels::local_channel::LocalReceiver;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often replaced table files are looked at again while readers hold
/// them.
const GRAVEYARD_RECHECK: Duration = Duration::from_secs(1);

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
        self.state
            .borrow()
            .tables
            .iter()
            .map(|t| TableInfo {
                file_no: t.meta.file_no,
                level: t.level(),
                file_bytes: t.meta.file_bytes,
                smallest: t.meta.smallest.clone(),
                largest: t.meta.largest.clone(),
            })
            .collect()
    }

    /// What the picker would compact now.
    fn next_plan(&self) -> Option<CompactionPlan> {
        picker::pick(
            &self.table_infos(),
            &self.cursors.borrow(),
            &self.picker_config(),
        )
    }

    /// Stops the compactor: a running compaction is abandoned between keys
    /// (its outputs removed; nothing is lost, the inputs stay listed).
    pub(super) async fn stop_compaction(&self) {
        self.stopping.set(true);
        let _ = self.compact_wake.try_send(());
        while self.compacting.get() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        // Replaced files no reader holds any more go now, not at the next
        // start.
        self.reap_graveyard().await;
    }

    /// Wakes the compactor and waits until it has nothing left to do, or
    /// `max` passes (tests and tools; the compactor runs by itself).
    pub async fn compact_until_idle(&self, max: Duration) -> Result<(), EngineError> {
        let deadline = Instant::now() + max;
        loop {
            let busy = self.compacting.get() || self.next_plan().is_some();
            if !busy {
                return Ok(());
            }
            let now = Instant::now();
            if self.stopping.get() || now >= deadline {
                return Err(EngineError::Internal {
                    what: format!("shard {}: compaction did not settle in {max:?}", self.id),
                });
            }
            let _ = self.compact_wake.try_send(());
            self.wait_progress((deadline - now).min(Duration::from_millis(100)))
                .await;
        }
    }

    /// Checks the level invariants: the live tables are exactly the
    /// manifest's, and below L0 each level's tables have disjoint ranges.
    pub fn check_levels(&self) -> Result<(), String> {
        let st = self.state.borrow();
        let mut live: Vec<(u64, u8)> = st
            .tables
            .iter()
            .map(|t| (t.meta.file_no, t.level()))
            .collect();
        let mut listed: Vec<(u64, u8)> = st
            .manifest
            .tables
            .iter()
            .map(|t| (t.file_no, t.level))
            .collect();
        live.sort_unstable();
        listed.sort_unstable();
        if live != listed {
            return Err(format!(
                "live tables {live:?} differ from the manifest's {listed:?}"
            ));
        }
        let mut infos = self.table_infos();
        infos.sort_by(|a, b| (a.level, &a.smallest).cmp(&(b.level, &b.smallest)));
        for pair in infos.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.level > 0 && a.level == b.level && a.largest >= b.smallest {
                return Err(format!(
                    "level {} tables {} and {} overlap",
                    a.level, a.file_no, b.file_no
                ));
            }
        }
        Ok(())
    }

    pub(super) async fn compact_loop(self: Rc<Self>, woken: LocalReceiver<()>) {
        loop {
            self.reap_graveyard().await;
            if self.stopping.get() {
                return;
            }
            let Some(plan) = self.next_plan() else {
                let closed = if self.graveyard.borrow().is_empty() {
                    woken.recv().await.is_none()
                } else {
                    // Replaced files wait for their readers: look again
                    // soon even if nothing else happens.
                    futures_lite::future::or(async { woken.recv().await.is_none() }, async {
                        glommio::timer::sleep(GRAVEYARD_RECHECK).await;
                        false
                    })
                    .await
                };
                if closed {
                    return;
                }
                continue;
            };
            self.compacting.set(true);
            let result = self.compact(&plan).await;
            self.compacting.set(false);
            self.notify_progress();
            if let Err(e) = result {
                if self.stopping.get() {
                    return;
                }
                ShardCounters::bump(&self.counters.compaction_failures);
                tracing::error!(shard = self.id, error = %e, "compaction failed; retrying in 1 s");
                glommio::timer::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Runs one plan to completion and installs it.
    async fn compact(&self, plan: &CompactionPlan) -> Result<(), EngineError> {
        let started = Instant::now();
        if plan.is_trivial_move() {
            return self.install_move(plan).await;
        }
        let (inputs, overlaps) = {
            let st = self.state.borrow();
            let find = |infos: &[TableInfo]| -> Result<Vec<Rc<Table>>, EngineError> {
                let mut out = Vec::with_capacity(infos.len());
                for info in infos {
                    let t = st
                        .tables
                        .iter()
                        .find(|t| t.meta.file_no == info.file_no)
                        .ok_or_else(|| EngineError::Internal {
                            what: format!("compaction input {} is not live", info.file_no),
                        })?;
                    out.push(Rc::clone(t));
                }
                Ok(out)
            };
            (find(&plan.inputs)?, find(&plan.overlaps)?)
        };
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
        let next_file_no = || self.allocate_file_no();
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
            stop: &self.stopping,
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

    /// One manifest edit: `replaced` out, `outputs` in, mirrored in the live
    /// tables. `Err`: nothing changed (the outputs are the caller's to
    /// remove). Stored but unsynced: installed, but the replaced files stay
    /// on disk (start-up removes them once the new manifest is read; the old
    /// one still needs them if a crash brings it back).
    async fn install(
        &self,
        replaced: &HashSet<u64>,
        outputs: Vec<Rc<Table>>,
        plan: &CompactionPlan,
    ) -> Result<Stored, EngineError> {
        let listed: Vec<_> = outputs.iter().map(|t| t.meta.clone()).collect();
        let stored = self
            .edit_manifest(
                |next| {
                    next.tables.retain(|t| !replaced.contains(&t.file_no));
                    next.tables.extend(listed);
                },
                |st, stored| {
                    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.tables)
                        .into_iter()
                        .partition(|t| replaced.contains(&t.meta.file_no));
                    st.tables = kept;
                    st.tables.extend(outputs);
                    if stored.is_durable() {
                        self.graveyard.borrow_mut().extend(gone);
                    }
                },
            )
            .await?;
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
            .edit_manifest(
                |next| {
                    for t in next
                        .tables
                        .iter_mut()
                        .filter(|t| t.file_no == input.file_no)
                    {
                        t.level = plan.output_level;
                    }
                },
                |st, _| {
                    for t in st.tables.iter().filter(|t| t.meta.file_no == input.file_no) {
                        t.set_level(plan.output_level);
                    }
                },
            )
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

    /// Deletes the files of replaced tables no reader holds any more.
    pub(super) async fn reap_graveyard(&self) {
        let ready: Vec<Rc<Table>> = {
            let mut g = self.graveyard.borrow_mut();
            let (ready, wait): (Vec<_>, Vec<_>) =
                g.drain(..).partition(|t| Rc::strong_count(t) == 1);
            *g = wait;
            ready
        };
        for t in ready {
            let path = t.path().to_path_buf();
            drop(t);
            if let Err(e) = glommio::io::remove(&path).await {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove a compacted table");
            }
        }
    }
}
