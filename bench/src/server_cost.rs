//! What the measured window cost the server (`--server-pid`): its CPU time
//! (utime + stime from `/proc/<pid>/stat`, sampled when the window opens and
//! when it closes) and, for a PairDB node, the share of requests a core
//! received for a shard it does not own (HealthCheck's per-shard
//! `requests_local` and `requests_forwarded_out` counters, read at the same
//! two moments).
//!
//! Invariants: both samples are taken by one task at the window's edges, so
//! warm-up and preload work is never counted; a server whose HealthCheck has
//! no such counters (the reference) reports no forwarded share.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::proto::HealthCheckRequest;
use crate::rpc::Client;

/// Units of the CPU times in `/proc/<pid>/stat` (USER_HZ, 100 on every
/// Linux architecture the node runs on).
const TICKS_PER_S: u64 = 100;
/// Deadline of the HealthCheck read at each edge.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The server's cost over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCost {
    pub pid: u32,
    /// CPU time the server used in the window, microseconds (10 ms
    /// resolution).
    pub cpu_us: u64,
    /// `cpu_us` over the operations answered in the window.
    pub cpu_us_per_op: f64,
    /// Requests received by a core for another core's shard, over all keyed
    /// requests the node counted in the window; None for a server without
    /// these counters.
    pub forwarded_share: Option<f64>,
}

/// utime + stime, in ticks, from the text of `/proc/<pid>/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start after the last ')'. Field 3 is index 0 there,
    // utime (field 14) index 11 and stime (field 15) index 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&text)
}

/// This process's utime + stime, in ticks (`TICKS_PER_S` a second).
pub fn own_cpu_ticks() -> Option<u64> {
    cpu_ticks(std::process::id())
}

/// Ticks of [`own_cpu_ticks`] as microseconds.
pub fn ticks_to_us(ticks: u64) -> u64 {
    ticks * 1_000_000 / TICKS_PER_S
}

/// (local, forwarded) request counts summed over the shards, if the server
/// reports them.
pub fn forward_counts<'a>(
    metrics: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Option<(u64, u64)> {
    let (mut local, mut forwarded, mut seen) = (0u64, 0u64, false);
    for (k, v) in metrics {
        let Some(rest) = k.strip_prefix("shard.") else {
            continue;
        };
        let n: u64 = v.parse().unwrap_or(0);
        if rest.ends_with(".requests_local") {
            local += n;
            seen = true;
        } else if rest.ends_with(".requests_forwarded_out") {
            forwarded += n;
            seen = true;
        }
    }
    seen.then_some((local, forwarded))
}

async fn counts(client: &mut Client) -> Option<(u64, u64)> {
    let answer = tokio::time::timeout(HEALTH_TIMEOUT, client.health_check(HealthCheckRequest {}))
        .await
        .ok()?
        .ok()?;
    forward_counts(&answer.into_inner().metrics)
}

/// The two edge samples; turned into a [`ServerCost`] once the operation
/// count is known.
pub struct WindowSamples {
    pid: u32,
    ticks: Option<(u64, u64)>,
    counts: Option<((u64, u64), (u64, u64))>,
}

impl WindowSamples {
    pub fn cost(&self, ops: u64) -> Option<ServerCost> {
        let (t0, t1) = self.ticks?;
        let cpu_us = ticks_to_us(t1.saturating_sub(t0));
        let forwarded_share = self.counts.and_then(|((l0, f0), (l1, f1))| {
            let (local, forwarded) = (l1.saturating_sub(l0), f1.saturating_sub(f0));
            let all = local + forwarded;
            (all > 0).then(|| forwarded as f64 / all as f64)
        });
        Some(ServerCost {
            pid: self.pid,
            cpu_us,
            cpu_us_per_op: if ops > 0 {
                cpu_us as f64 / ops as f64
            } else {
                0.0
            },
            forwarded_share,
        })
    }
}

/// Samples `pid` (and the server's counters over `client`) at `start` and
/// at `end`.
pub fn spawn_window_sampler(
    pid: u32,
    mut client: Client,
    start: Instant,
    end: Instant,
) -> tokio::task::JoinHandle<WindowSamples> {
    tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let t0 = cpu_ticks(pid);
        let c0 = counts(&mut client).await;
        tokio::time::sleep_until(end.into()).await;
        let t1 = cpu_ticks(pid);
        let c1 = counts(&mut client).await;
        WindowSamples {
            pid,
            ticks: t0.zip(t1),
            counts: c0.zip(c1),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_come_after_the_last_parenthesis() {
        let stat = "4242 (pairdb (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 \
                    250 75 0 0 20 0 3 0 100 1000 10 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn forwarded_share_from_shard_counters() {
        let m: Vec<(String, String)> = [
            ("shard.0.requests_local", "60"),
            ("shard.0.requests_forwarded_out", "40"),
            ("shard.1.requests_local", "50"),
            ("shard.1.requests_forwarded_out", "50"),
            ("keys", "7"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            forward_counts(m.iter().map(|(k, v)| (k, v))),
            Some((110, 90))
        );
        let none: Vec<(String, String)> = vec![("keys".into(), "1".into())];
        assert_eq!(forward_counts(none.iter().map(|(k, v)| (k, v))), None);
        let w = WindowSamples {
            pid: 1,
            ticks: Some((100, 300)),
            counts: Some(((10, 0), (110, 90))),
        };
        let c = w.cost(1000).unwrap();
        assert_eq!(c.cpu_us, 2_000_000);
        assert_eq!(c.cpu_us_per_op, 2000.0);
        assert_eq!(c.forwarded_share, Some(90.0 / 190.0));
    }
}
