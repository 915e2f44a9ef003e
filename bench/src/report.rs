//! Results of a load run: per-operation latency histograms and counters
//! (`OpStats`), their JSON-serializable summary (`RunSummary`), the split of
//! the same figures by whether the server was compacting when each operation
//! started (`CompactionSplit`), the series of selected health figures seen by
//! that poller (`PolledFigure`), the seed's performance targets with met /
//! not-met verdicts, and the human-readable table printed at the end of a run.
//! A summary also carries the merged histograms themselves (`latency_us`,
//! not serialized) for `--hdr-out`.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track, in microseconds (60 s); slower
/// operations saturate at this value.
const MAX_TRACKED_US: u64 = 60_000_000;

/// Latencies and counters of one operation type, from one task or merged.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency in microseconds of every answered operation (hits and misses).
    pub hist: Histogram<u64>,
    /// Successful answers (for reads: the key was found).
    pub ok: u64,
    /// Reads answered KEY_NOT_FOUND (not errors, not in `ok`).
    pub misses: u64,
    /// gRPC status errors and `success = false` answers (other than misses
    /// and MEMORY_PRESSURE).
    pub errors: u64,
    /// `success = false` answers with error code MEMORY_PRESSURE (the node's
    /// flow control refused the operation after waiting); not in `errors`,
    /// latency not recorded.
    pub memory_pressure: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        Self::new()
    }
}

impl OpStats {
    /// Empty stats, 3 significant digits from 1 µs to 60 s.
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
            .expect("static histogram bounds are valid");
        OpStats {
            hist,
            ok: 0,
            misses: 0,
            errors: 0,
            memory_pressure: 0,
        }
    }

    /// Records one answered operation's latency.
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, MAX_TRACKED_US));
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &OpStats) {
        // Same bounds on both sides, so `add` cannot fail; saturate anyway.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.ok += other.ok;
        self.misses += other.misses;
        self.errors += other.errors;
        self.memory_pressure += other.memory_pressure;
    }

    /// Summary over a measurement window of `secs` seconds, or None when no
    /// operation of this type was attempted.
    pub fn summarize(&self, secs: f64) -> Option<OpSummary> {
        let answered = self.ok + self.misses;
        if answered + self.errors + self.memory_pressure == 0 {
            return None;
        }
        let h = &self.hist;
        let q = |p: f64| {
            if answered == 0 {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        Some(OpSummary {
            ops: answered,
            ops_per_s: if secs > 0.0 {
                answered as f64 / secs
            } else {
                0.0
            },
            ok: self.ok,
            misses: self.misses,
            errors: self.errors,
            memory_pressure: self.memory_pressure,
            mean_us: if answered == 0 { 0.0 } else { h.mean() },
            p50_us: q(0.50),
            p95_us: q(0.95),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if answered == 0 { 0 } else { h.max() },
        })
    }
}

/// Latency and throughput of one operation type over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    /// Answered operations (hits + misses).
    pub ops: u64,
    /// Answered operations per second.
    pub ops_per_s: f64,
    pub ok: u64,
    pub misses: u64,
    pub errors: u64,
    /// MEMORY_PRESSURE answers (not in `errors`, not in the percentiles).
    pub memory_pressure: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Write and read figures of one phase of a run.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    pub write: Option<OpSummary>,
    pub read: Option<OpSummary>,
}

/// The measured operations split by the server's compaction state at each
/// operation's start, as last seen by a HealthCheck poller.
#[derive(Debug, Clone, Serialize)]
pub struct CompactionSplit {
    /// Poll period, milliseconds.
    pub poll_interval_ms: u64,
    /// Answered polls inside the measured window.
    pub polls: u64,
    /// Of those, polls where at least one shard reported
    /// `compaction_running = true`.
    pub polls_compacting: u64,
    /// Polls that failed (the previous state was kept).
    pub poll_errors: u64,
    /// `polls_compacting / polls`: the estimated share of the measured
    /// window with a compaction running; the phases' ops/s divide by their
    /// share of the window.
    pub compacting_fraction: f64,
    /// Operations started while a compaction ran.
    pub compacting: PhaseSummary,
    /// Operations started while no compaction ran.
    pub idle: PhaseSummary,
    /// Selected numeric health figures over all answered polls of the run
    /// (warm-up included), by metric name: the `*_cpu_us` figures,
    /// `level.0.tables`, `immutable_memtables`, `compaction_pending_bytes`.
    pub polled: BTreeMap<String, PolledFigure>,
}

/// One numeric health figure as a series of polls.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolledFigure {
    pub polls: u64,
    pub first: u64,
    pub last: u64,
    pub max: u64,
    /// Sum of every polled value. For a figure the server resets on every
    /// read (a "since the last HealthCheck" figure), this is its total from
    /// the read before the first poll to the last poll.
    pub sum: u64,
    /// Whether the value ever fell between two polls: a cumulative counter
    /// never does, a reset-on-read figure under load does.
    pub decreased: bool,
}

impl PolledFigure {
    /// Adds one polled value.
    pub fn observe(&mut self, v: u64) {
        if self.polls == 0 {
            self.first = v;
        } else if v < self.last {
            self.decreased = true;
        }
        self.polls += 1;
        self.last = v;
        self.max = self.max.max(v);
        self.sum = self.sum.saturating_add(v);
    }
}

/// One of the seed's performance targets and the verdict for this run.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub name: String,
    /// Human-readable threshold, e.g. "< 10 ms".
    pub threshold: String,
    /// Measured value in the threshold's unit, None when the run had no
    /// operation of that type.
    pub measured: Option<f64>,
    pub unit: String,
    /// None when not applicable (operation not exercised).
    pub met: Option<bool>,
}

/// Everything one run reports; printed as JSON with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub label: String,
    pub target: String,
    pub workload: String,
    pub read_ratio: f64,
    pub distribution: String,
    pub zipf_theta: f64,
    pub keys: u64,
    pub value_bytes: usize,
    pub tenant: String,
    pub connections: usize,
    pub streams: usize,
    pub concurrency: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// Actual length of the measured window, seconds.
    pub measured_s: f64,
    pub preloaded_keys: u64,
    /// Answered operations of all types per second.
    pub ops_per_s: f64,
    pub total_ops: u64,
    pub errors: u64,
    /// MEMORY_PRESSURE answers of all types in the measured window.
    pub memory_pressure: u64,
    /// Fraction of each value that is a run of zeros (0: incompressible).
    pub value_compressibility: f64,
    /// Distinct keys acknowledged by writes over the whole run (preload,
    /// warm-up and measured window); None when the key count is too large
    /// to track.
    pub distinct_keys_written: Option<u64>,
    pub write: Option<OpSummary>,
    pub read: Option<OpSummary>,
    /// Present with `--split-by-compaction`.
    pub split: Option<CompactionSplit>,
    /// Present with `--server-pid`.
    pub server: Option<crate::server_cost::ServerCost>,
    pub targets: Vec<TargetCheck>,
    /// The measured window's latency histograms (microseconds) by operation
    /// name ("write", "read"), every phase merged; for --hdr-out, not
    /// serialized.
    #[serde(skip)]
    pub latency_us: Vec<(&'static str, Histogram<u64>)>,
}

fn latency_target(name: &str, limit_ms: f64, op: Option<&OpSummary>) -> TargetCheck {
    let measured = op.filter(|o| o.ops > 0).map(|o| o.p95_us as f64 / 1000.0);
    TargetCheck {
        name: name.into(),
        threshold: format!("< {limit_ms} ms"),
        measured,
        unit: "ms".into(),
        met: measured.map(|m| m < limit_ms),
    }
}

fn throughput_target(name: &str, min_per_s: f64, op: Option<&OpSummary>) -> TargetCheck {
    let measured = op.map(|o| o.ops_per_s);
    TargetCheck {
        name: name.into(),
        threshold: format!(">= {min_per_s:.0} ops/s"),
        measured,
        unit: "ops/s".into(),
        met: measured.map(|m| m >= min_per_s),
    }
}

/// The seed's targets checked against a run: write p95 < 10 ms, read p95 <
/// 5 ms (served from cache) and < 20 ms (served from SSTables) — both rows
/// judge the same measured read p95 — and 50k writes/s, 100k reads/s per node.
pub fn check_targets(write: Option<&OpSummary>, read: Option<&OpSummary>) -> Vec<TargetCheck> {
    vec![
        latency_target("write p95", 10.0, write),
        latency_target("read p95 (from cache)", 5.0, read),
        latency_target("read p95 (from SSTables)", 20.0, read),
        throughput_target("writes/s per node", 50_000.0, write),
        throughput_target("reads/s per node", 100_000.0, read),
    ]
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// Header of the per-operation rows, after a `first`-column title.
fn op_header(first: &str) -> String {
    format!(
        "{:<17} {:>10} {:>11} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        first,
        "ops",
        "ops/s",
        "errors",
        "misses",
        "mem-press",
        "mean ms",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    )
}

/// One per-operation row.
fn op_row(name: &str, o: &OpSummary) -> String {
    format!(
        "{:<17} {:>10} {:>11.0} {:>8} {:>8} {:>9} {:>9.3} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        name,
        o.ops,
        o.ops_per_s,
        o.errors,
        o.misses,
        o.memory_pressure,
        o.mean_us / 1000.0,
        ms(o.p50_us),
        ms(o.p95_us),
        ms(o.p99_us),
        ms(o.p999_us),
        ms(o.max_us)
    )
}

impl RunSummary {
    /// The human-readable report: setup, per-operation table, targets.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.label)
        };
        out.push_str(&format!("== pairdb-bench{label} ==\n"));
        let workload = if self.workload == "mixed" {
            format!("mixed ({:.0}% reads)", self.read_ratio * 100.0)
        } else {
            self.workload.clone()
        };
        let dist = if self.distribution == "zipfian" {
            format!("zipfian(theta={})", self.zipf_theta)
        } else {
            self.distribution.clone()
        };
        out.push_str(&format!(
            "target {}  workload {}  keys {} {}  value {} B  tenant {:?}\n",
            self.target, workload, self.keys, dist, self.value_bytes, self.tenant
        ));
        out.push_str(&format!(
            "concurrency {} ({} connections x {} streams)  measured {:.2} s after {} s warm-up{}\n\n",
            self.concurrency,
            self.connections,
            self.streams,
            self.measured_s,
            self.warmup_s,
            if self.preloaded_keys > 0 {
                format!("  preloaded {} keys", self.preloaded_keys)
            } else {
                String::new()
            }
        ));
        out.push_str(&op_header("op"));
        for (name, op) in [("write", &self.write), ("read", &self.read)] {
            if let Some(o) = op {
                out.push_str(&op_row(name, o));
            }
        }
        out.push_str(&format!(
            "{:<17} {:>10} {:>11.0} {:>8} {:>8} {:>9}\n",
            "total", self.total_ops, self.ops_per_s, self.errors, "", self.memory_pressure
        ));
        if let Some(n) = self.distinct_keys_written {
            out.push_str(&format!(
                "distinct keys written over the run: {n} of {}\n",
                self.keys
            ));
        }
        if let Some(s) = &self.server {
            let forwarded = s.forwarded_share.map_or(String::new(), |f| {
                format!(", {:.1}% of requests forwarded between cores", f * 100.0)
            });
            out.push_str(&format!(
                "server (pid {}): {:.1} us CPU per operation ({:.2} s CPU in the window){forwarded}\n",
                s.pid,
                s.cpu_us_per_op,
                s.cpu_us as f64 / 1e6
            ));
        }
        out.push('\n');
        if let Some(split) = &self.split {
            out.push_str(&split.render());
            out.push('\n');
        }
        out.push_str("seed targets (single node, this run's concurrency)\n");
        out.push_str(&format!(
            "{:<26} {:>18} {:>14}  {}\n",
            "target", "threshold", "measured", "verdict"
        ));
        for t in &self.targets {
            let measured = match t.measured {
                Some(m) if t.unit == "ms" => format!("{m:.3} ms"),
                Some(m) => format!("{m:.0} ops/s"),
                None => "-".into(),
            };
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "n/a",
            };
            out.push_str(&format!(
                "{:<26} {:>18} {:>14}  {}\n",
                t.name, t.threshold, measured, verdict
            ));
        }
        out
    }
}

impl CompactionSplit {
    /// The split rows: each operation type while compacting and while idle.
    pub fn render(&self) -> String {
        let mut out = format!(
            "split by compaction (HealthCheck every {} ms; compaction running in {:.1}% of {} polls, {} poll errors)\n",
            self.poll_interval_ms,
            self.compacting_fraction * 100.0,
            self.polls,
            self.poll_errors
        );
        out.push_str(&op_header("phase / op"));
        for (phase, p) in [("compacting", &self.compacting), ("idle", &self.idle)] {
            for (name, op) in [("write", &p.write), ("read", &p.read)] {
                match op {
                    Some(o) => out.push_str(&op_row(&format!("{phase} {name}"), o)),
                    None => out.push_str(&format!("{:<17} {:>10}\n", format!("{phase} {name}"), 0)),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_targets() {
        let mut a = OpStats::new();
        for us in 1..=1000 {
            a.record_us(us);
            a.ok += 1;
        }
        let mut b = OpStats::new();
        b.errors = 3;
        b.memory_pressure = 2;
        b.merge(&a);
        let s = b.summarize(1.0).expect("ops");
        assert_eq!(s.ops, 1000);
        assert_eq!(s.errors, 3);
        assert_eq!(s.memory_pressure, 2);
        assert!((949..=951).contains(&s.p95_us), "p95 {}", s.p95_us);
        let t = check_targets(Some(&s), None);
        assert_eq!(t[0].met, Some(true));
        assert_eq!(t[1].met, None);
        assert_eq!(t[3].met, Some(false));
        assert!(OpStats::new().summarize(1.0).is_none());
        let mut f = PolledFigure::default();
        for v in [5, 7, 7] {
            f.observe(v);
        }
        assert!(!f.decreased);
        f.observe(2);
        assert_eq!((f.first, f.last, f.max, f.sum, f.polls), (5, 2, 7, 21, 4));
        assert!(f.decreased);
        let mut p = OpStats::new();
        p.memory_pressure = 1;
        assert_eq!(p.summarize(1.0).map(|o| o.ops), Some(0));
    }
}
