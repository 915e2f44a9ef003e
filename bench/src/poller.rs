//! The compaction-state poller of `--split-by-compaction`: polls
//! HealthCheck on its own connection, keeps the run's "compacting" flag
//! current, counts the polls inside the measured window and keeps a series
//! of the figures worth reporting.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::context::Ctx;
use crate::proto::HealthCheckRequest;
use crate::report::PolledFigure;
use crate::rpc::Client;

/// Deadline of one compaction-state poll.
pub(crate) const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a health figure is one the compaction poller keeps a series of.
fn is_polled_figure(name: &str) -> bool {
    name.ends_with("_cpu_us")
        || name.ends_with(".level.0.tables")
        || name.ends_with(".immutable_memtables")
        || name.ends_with(".compaction_pending_bytes")
}

/// Polls HealthCheck every `--compaction-poll-ms` on its own connection and
/// keeps `ctx.compacting` at whether any shard reports a running compaction.
/// Polls inside the measured window are counted. Ends at the run's end and
/// returns the series of the figures `is_polled_figure` selects.
pub(crate) fn spawn_compaction_poller(
    mut client: Client,
    ctx: Arc<Ctx>,
) -> tokio::task::JoinHandle<BTreeMap<String, PolledFigure>> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(ctx.args.compaction_poll_ms));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut logged = false;
        let mut polled: BTreeMap<String, PolledFigure> = BTreeMap::new();
        loop {
            tick.tick().await;
            let now = Instant::now();
            if now >= ctx.end {
                break;
            }
            let in_window = now >= ctx.measure_start;
            let answer =
                tokio::time::timeout(POLL_TIMEOUT, client.health_check(HealthCheckRequest {}))
                    .await;
            match answer {
                Ok(Ok(r)) => {
                    let metrics = r.into_inner().metrics;
                    let running = metrics
                        .iter()
                        .any(|(k, v)| k.ends_with(".compaction_running") && v.as_str() == "true");
                    for (k, v) in &metrics {
                        if is_polled_figure(k) {
                            if let Ok(v) = v.parse::<u64>() {
                                polled.entry(k.clone()).or_default().observe(v);
                            }
                        }
                    }
                    ctx.compacting.store(running, Ordering::Relaxed);
                    if in_window {
                        ctx.polls.fetch_add(1, Ordering::Relaxed);
                        if running {
                            ctx.polls_compacting.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(Err(status)) => {
                    if in_window {
                        ctx.poll_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if !logged {
                        logged = true;
                        eprintln!(
                            "warning: compaction poll failed ({:?}: {}); keeping the last state",
                            status.code(),
                            status.message()
                        );
                    }
                }
                Err(_) => {
                    if in_window {
                        ctx.poll_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if !logged {
                        logged = true;
                        eprintln!(
                            "warning: compaction poll timed out after {POLL_TIMEOUT:?}; keeping the last state"
                        );
                    }
                }
            }
        }
        polled
    })
}
