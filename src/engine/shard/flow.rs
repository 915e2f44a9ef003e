//! Write flow control: how a shard slows writers down when flush or
//! compaction falls behind, instead of growing memory or level 0 without end.
//!
//! Owns the pure decision [`flow_state`] (unit tested), the admission step of
//! the write path ([`Shard::admit_write`]). Writers past a stop threshold
//! wait on the shard's progress signal, which flush and compaction raise.
//! Invariants: a write past a stop
//! threshold changes nothing until it is admitted, and waits at most
//! `write_stall_timeout_ms` before answering MEMORY_PRESSURE; a slowed-down
//! write waits at most 8 x `write_slowdown_delay_us` (and then, if a stop
//! threshold was reached meanwhile, waits as at a stop); a write at a stop
//! whose way out (flush or compaction) is failing on a full disk answers
//! DISK_FULL at once; every wait is
//! counted (count and microseconds) in the shard's figures. While any write
//! waits at a stop, compaction runs without its rate limit.

use super::{Shard, ShardCounters};
use crate::config::StorageConfig;
use crate::engine::EngineError;
use std::time::{Duration, Instant};

/// What flow control does with the next write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum FlowState {
    Open,
    /// Delay the write by this long.
    Slowdown(Duration),
    /// Wait until flush or compaction makes room.
    Stop,
}

/// The flow-control decision from the shard's backlog: `l0_tables` level-0
/// tables, `immutables` memtables waiting for flush, and whether the active
/// memtable is due for rotation.
pub(super) fn flow_state(
    l0_tables: usize,
    immutables: usize,
    memtable_due: bool,
    config: &StorageConfig,
) -> FlowState {
    let f = &config.flow_control;
    let memory_full = immutables >= config.immutable_memtables_max;
    if (memory_full && memtable_due) || l0_tables >= f.l0_stop_tables {
        return FlowState::Stop;
    }
    let base_us = f.write_slowdown_delay_us as f64;
    let mut factor: f64 = 0.0;
    if l0_tables >= f.l0_slowdown_tables {
        let span = (f.l0_stop_tables - f.l0_slowdown_tables).max(1) as f64;
        let over = (l0_tables - f.l0_slowdown_tables) as f64;
        factor = 1.0 + 7.0 * (over / span).min(1.0);
    }
    if memory_full {
        factor = factor.max(1.0);
    }
    if factor == 0.0 || base_us == 0.0 {
        FlowState::Open
    } else {
        FlowState::Slowdown(Duration::from_micros((base_us * factor) as u64))
    }
}

impl Shard {
    /// Level-0 tables now.
    pub(super) fn l0_tables(&self) -> usize {
        self.tree.current().level(0).len()
    }

    fn flow_now(&self) -> FlowState {
        let version = self.tree.current();
        flow_state(
            version.level(0).len(),
            version.immutables().len(),
            self.memtable_due(),
            &self.config,
        )
    }

    /// At a stop threshold, the disk-full error when what would make room
    /// (flush of full memtables, compaction of level 0) is failing for lack
    /// of space: waiting would only end in MEMORY_PRESSURE.
    fn stopped_by_full_disk(&self) -> Option<EngineError> {
        let k = &self.counters;
        let l0_stop = self.l0_tables() >= self.config.flow_control.l0_stop_tables;
        let what = if l0_stop && k.compaction_disk_full.get() {
            "compaction of level 0 waits for disk space"
        } else if !l0_stop && k.flush_disk_full.get() {
            "memtable flushes wait for disk space"
        } else {
            return None;
        };
        Some(EngineError::DiskFull {
            what: format!("shard {}: {what}", self.id),
        })
    }

    /// Admits a write: delays it past a slowdown threshold, makes it wait
    /// for flush or compaction past a stop threshold (up to
    /// `write_stall_timeout_ms`, then [`EngineError::Overloaded`], which
    /// answers MEMORY_PRESSURE).
    pub(super) async fn admit_write(&self) -> Result<(), EngineError> {
        match self.flow_now() {
            FlowState::Open => return Ok(()),
            FlowState::Slowdown(delay) => {
                ShardCounters::bump(&self.counters.write_slowdowns);
                ShardCounters::add(
                    &self.counters.write_slowdown_micros,
                    delay.as_micros() as u64,
                );
                glommio::timer::sleep(delay).await;
                // The backlog may have reached a stop threshold meanwhile.
                if self.flow_now() != FlowState::Stop {
                    return Ok(());
                }
            }
            FlowState::Stop => {}
        }
        if let Some(e) = self.stopped_by_full_disk() {
            return Err(e);
        }
        ShardCounters::bump(&self.counters.write_stalls);
        self.writers_waiting.set(self.writers_waiting.get() + 1);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.config.write_stall_timeout_ms);
        let result = loop {
            if self.flow_now() != FlowState::Stop {
                break Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let l0 = self.l0_tables();
                let why = if l0 >= self.config.flow_control.l0_stop_tables {
                    format!("compaction is behind ({l0} level-0 tables)")
                } else {
                    "memtables are flushing slower than writes arrive".to_string()
                };
                break Err(EngineError::Overloaded {
                    what: format!("shard {}: {why}; retry with backoff", self.id),
                });
            }
            self.progress.wait_at_most(deadline - now).await;
        };
        self.writers_waiting
            .set(self.writers_waiting.get().saturating_sub(1));
        ShardCounters::add(
            &self.counters.write_stall_micros,
            started.elapsed().as_micros() as u64,
        );
        if result.is_ok() {
            self.rotate_memtable_if_room();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StorageConfig {
        StorageConfig::default() // trigger 4, slowdown 12, stop 20, 1000 us, 2 immutables
    }

    #[test]
    fn open_below_every_threshold() {
        assert_eq!(flow_state(11, 1, true, &config()), FlowState::Open);
        assert_eq!(flow_state(0, 0, false, &config()), FlowState::Open);
    }

    #[test]
    fn slowdown_grows_from_one_to_eight_times_the_delay() {
        let c = config();
        assert_eq!(
            flow_state(12, 0, false, &c),
            FlowState::Slowdown(Duration::from_micros(1000))
        );
        assert_eq!(
            flow_state(16, 0, false, &c),
            FlowState::Slowdown(Duration::from_micros(4500))
        );
        assert_eq!(
            flow_state(19, 0, false, &c),
            FlowState::Slowdown(Duration::from_micros(7125))
        );
    }

    #[test]
    fn full_immutable_slots_slow_down_then_stop_when_the_memtable_is_due() {
        let c = config();
        assert_eq!(
            flow_state(0, 2, false, &c),
            FlowState::Slowdown(Duration::from_micros(1000))
        );
        assert_eq!(flow_state(0, 2, true, &c), FlowState::Stop);
        assert_eq!(flow_state(0, 1, true, &c), FlowState::Open);
    }

    #[test]
    fn stop_at_the_l0_stop_threshold() {
        assert_eq!(flow_state(20, 0, false, &config()), FlowState::Stop);
        assert_eq!(flow_state(500, 0, false, &config()), FlowState::Stop);
    }

    #[test]
    fn zero_delay_disables_slowdown_but_not_stop() {
        let mut c = config();
        c.flow_control.write_slowdown_delay_us = 0;
        assert_eq!(flow_state(15, 2, false, &c), FlowState::Open);
        assert_eq!(flow_state(20, 0, false, &c), FlowState::Stop);
    }
}
