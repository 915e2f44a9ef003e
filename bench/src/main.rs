//! `pairdb-bench`: a closed-loop gRPC load generator for the
//! `storage.StorageNodeService` contract. It opens C separate HTTP/2
//! connections with S request loops each, runs write / read / mixed
//! workloads over uniform or zipfian keys with a distinct value per write,
//! records per-operation latency in HDR histograms after a warm-up, and
//! prints a table (or one JSON object) with throughput, percentiles and the
//! seed's targets. Optionally a HealthCheck poller tracks whether the server
//! is compacting, and every operation is also recorded by that state
//! (`--split-by-compaction`). MEMORY_PRESSURE answers (flow control) are
//! counted apart from errors, and the run keeps going. Before a run it can
//! write every key once (`--preload`) or read every key once (`--warm-read`,
//! e.g. to fill the server's read cache).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use tokio::time::MissedTickBehavior;
use tonic::transport::{Channel, Endpoint};

use pairdb_bench::keys::{key_name, KeyChooser, KeyTracker};
use pairdb_bench::proto::storage_node_service_client::StorageNodeServiceClient;
use pairdb_bench::proto::{ErrorCode, HealthCheckRequest, ReadRequest, WriteRequest};
use pairdb_bench::report::{
    check_targets, CompactionSplit, OpStats, PhaseSummary, PolledFigure, RunSummary,
};
use pairdb_bench::values::ValueSource;

type Client = StorageNodeServiceClient<Channel>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest response the client accepts (values plus sibling copies).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How many individual error messages are echoed to stderr.
const MAX_LOGGED_ERRORS: u64 = 5;
/// Deadline of one compaction-state poll.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before a preload write refused with MEMORY_PRESSURE is retried.
const PRELOAD_BACKOFF: Duration = Duration::from_millis(20);
/// Retries of one preload write refused with MEMORY_PRESSURE.
const PRELOAD_MAX_RETRIES: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    Write,
    Read,
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Distribution {
    Uniform,
    Zipfian,
}

/// Closed-loop load generator for a PairDB storage node (or any server of the
/// storage.StorageNodeService contract).
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
struct Args {
    /// gRPC endpoint, e.g. http://127.0.0.1:50051
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Operation mix.
    #[arg(long, value_enum, default_value_t = Workload::Write)]
    workload: Workload,
    /// Fraction of reads in the mixed workload.
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Value size of writes, bytes.
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// Fraction of each value that is a run of zeros, in [0, 1); 0 makes
    /// values incompressible. Every write gets a different value either way.
    #[arg(long, default_value_t = 0.0)]
    value_compressibility: f64,
    /// Key popularity.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// Zipfian skew, in (0, 1).
    #[arg(long, default_value_t = 0.99)]
    zipf_theta: f64,
    /// HTTP/2 connections (each its own tonic Channel).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Concurrent in-flight requests per connection.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Measured duration, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Warm-up before measuring, seconds (load runs, nothing is recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Tenant id of every request.
    #[arg(long, default_value = "bench")]
    tenant: String,
    /// Write every key once before a read or mixed workload, so reads hit.
    #[arg(long)]
    preload: bool,
    /// Print one JSON object with the results instead of the table.
    #[arg(long)]
    json: bool,
    /// Free text printed in the output.
    #[arg(long, default_value = "")]
    label: String,
    /// Retry HealthCheck for up to this many seconds before starting (0: no wait).
    #[arg(long, default_value_t = 0.0)]
    wait_ready_s: f64,
    /// Per-request deadline, milliseconds; a timeout counts as an error.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Client runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// RNG seed for key choice and values (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Only wait for readiness (see --wait-ready-s), then exit.
    #[arg(long)]
    ready_only: bool,
    /// Only write every key once (as --preload does), then exit.
    #[arg(long)]
    preload_only: bool,
    /// Read every key once, in key order with all connections and streams,
    /// before the warm-up (e.g. to fill a read cache); not measured.
    #[arg(long)]
    warm_read: bool,
    /// Only read every key once (as --warm-read does), then exit.
    #[arg(long)]
    warm_read_only: bool,
    /// Print the server's HealthCheck metrics as one JSON object, then exit.
    #[arg(long)]
    health: bool,
    /// No live progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 1.0)]
    progress_interval_s: f64,
    /// Poll HealthCheck and record every operation also by whether any shard
    /// reported `compaction_running = true` at the operation's start.
    #[arg(long)]
    split_by_compaction: bool,
    /// Poll period of --split-by-compaction, milliseconds.
    #[arg(long, default_value_t = 250)]
    compaction_poll_ms: u64,
}

impl Args {
    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err("--read-ratio must be within [0, 1]".into());
        }
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if self.connections == 0 || self.streams == 0 {
            return Err("--connections and --streams must be at least 1".into());
        }
        if !self.duration_s.is_finite()
            || self.duration_s <= 0.0
            || self.warmup_s < 0.0
            || self.wait_ready_s < 0.0
        {
            return Err("--duration-s must be > 0, --warmup-s and --wait-ready-s >= 0".into());
        }
        if !(0.0..1.0).contains(&self.value_compressibility) {
            return Err("--value-compressibility must be within [0, 1)".into());
        }
        if !self.progress_interval_s.is_finite() || self.progress_interval_s < 0.05 {
            return Err("--progress-interval-s must be at least 0.05".into());
        }
        if self.compaction_poll_ms == 0 {
            return Err("--compaction-poll-ms must be at least 1".into());
        }
        if !self.target.starts_with("http://") && !self.target.starts_with("https://") {
            return Err("--target must be a URI like http://127.0.0.1:50051".into());
        }
        Ok(())
    }

    fn endpoint(&self) -> Result<Endpoint, BoxError> {
        Ok(Endpoint::from_shared(self.target.clone())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_millis(self.request_timeout_ms)))
    }
}

/// What one request came back with.
enum Outcome {
    Ok,
    Miss,
    /// `success = false` with MEMORY_PRESSURE: the node's flow control
    /// refused the operation.
    MemoryPressure,
    Err(String),
}

/// Shared, read-only run parameters and live counters.
struct Ctx {
    args: Args,
    chooser: KeyChooser,
    values: ValueSource,
    /// Keys acknowledged by writes, when the key count is small enough.
    written: Option<KeyTracker>,
    measure_start: Instant,
    end: Instant,
    /// Operations finished (any phase), for the progress line.
    completed: AtomicU64,
    /// Operations started inside the measured window and finished.
    measured: AtomicU64,
    errors: AtomicU64,
    /// MEMORY_PRESSURE answers (any phase), for the progress line.
    memory_pressure: AtomicU64,
    /// Whether the last compaction-state poll saw a compaction running.
    compacting: AtomicBool,
    /// Poll counters inside the measured window.
    polls: AtomicU64,
    polls_compacting: AtomicU64,
    poll_errors: AtomicU64,
}

impl Ctx {
    fn note_error(&self, msg: &str) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < MAX_LOGGED_ERRORS {
            eprintln!("error: {msg}");
        } else if n == MAX_LOGGED_ERRORS {
            eprintln!("error: (further errors are only counted)");
        }
    }
}

async fn do_write(client: &mut Client, tenant: &str, key: String, value: Bytes) -> Outcome {
    let req = WriteRequest {
        tenant_id: tenant.to_string(),
        key,
        value,
        vector_clock: None,
        idempotency_key: String::new(),
    };
    match client.write(req).await {
        Ok(r) => {
            let r = r.into_inner();
            if r.success {
                Outcome::Ok
            } else if r.error_code == ErrorCode::MemoryPressure as i32 {
                Outcome::MemoryPressure
            } else {
                Outcome::Err(format!(
                    "write success=false code={} {}",
                    r.error_code, r.error_message
                ))
            }
        }
        Err(s) => Outcome::Err(format!("write status {:?}: {}", s.code(), s.message())),
    }
}

async fn do_read(client: &mut Client, tenant: &str, key: String) -> Outcome {
    let req = ReadRequest {
        tenant_id: tenant.to_string(),
        key,
    };
    match client.read(req).await {
        Ok(r) => {
            let r = r.into_inner();
            if r.success {
                Outcome::Ok
            } else if r.error_code == ErrorCode::KeyNotFound as i32 {
                Outcome::Miss
            } else if r.error_code == ErrorCode::MemoryPressure as i32 {
                Outcome::MemoryPressure
            } else {
                Outcome::Err(format!(
                    "read success=false code={} {}",
                    r.error_code, r.error_message
                ))
            }
        }
        Err(s) => Outcome::Err(format!("read status {:?}: {}", s.code(), s.message())),
    }
}

/// Write and read stats of one phase (idle or compacting).
#[derive(Default)]
struct OpPair {
    write: OpStats,
    read: OpStats,
}

impl OpPair {
    fn merge(&mut self, other: &OpPair) {
        self.write.merge(&other.write);
        self.read.merge(&other.read);
    }
}

/// Index of the idle phase in a worker's `[OpPair; 2]`.
const IDLE: usize = 0;
/// Index of the compacting phase.
const COMPACTING: usize = 1;

/// One closed request loop; returns its measured-window stats per phase
/// (`IDLE`, `COMPACTING`; everything is `IDLE` without
/// --split-by-compaction).
async fn worker(mut client: Client, ctx: Arc<Ctx>, seed: u64) -> [OpPair; 2] {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut phases = [OpPair::default(), OpPair::default()];
    let args = &ctx.args;
    loop {
        let is_read = match args.workload {
            Workload::Write => false,
            Workload::Read => true,
            Workload::Mixed => rng.f64() < args.read_ratio,
        };
        let index = ctx.chooser.next(&mut rng);
        let key = key_name(index);
        let value = (!is_read).then(|| ctx.values.next(&mut rng));
        let start = Instant::now();
        if start >= ctx.end {
            break;
        }
        let phase = if ctx.compacting.load(Ordering::Relaxed) {
            COMPACTING
        } else {
            IDLE
        };
        let outcome = match value {
            None => do_read(&mut client, &args.tenant, key).await,
            Some(value) => do_write(&mut client, &args.tenant, key, value).await,
        };
        let us = start.elapsed().as_micros() as u64;
        ctx.completed.fetch_add(1, Ordering::Relaxed);
        if !is_read && matches!(outcome, Outcome::Ok) {
            if let Some(t) = &ctx.written {
                t.mark(index);
            }
        }
        let pair = &mut phases[phase];
        let stats = if is_read {
            &mut pair.read
        } else {
            &mut pair.write
        };
        let measuring = start >= ctx.measure_start;
        if measuring {
            ctx.measured.fetch_add(1, Ordering::Relaxed);
        }
        match outcome {
            Outcome::Ok | Outcome::Miss if measuring => {
                stats.record_us(us);
                if matches!(outcome, Outcome::Ok) {
                    stats.ok += 1;
                } else {
                    stats.misses += 1;
                }
            }
            Outcome::Ok | Outcome::Miss => {}
            Outcome::MemoryPressure => {
                ctx.memory_pressure.fetch_add(1, Ordering::Relaxed);
                if measuring {
                    stats.memory_pressure += 1;
                }
            }
            Outcome::Err(msg) => {
                ctx.note_error(&msg);
                if measuring {
                    stats.errors += 1;
                }
            }
        }
    }
    phases
}

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
fn spawn_compaction_poller(
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

/// An error with its sources, e.g. "transport error: Connection refused".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Retries HealthCheck on fresh connections until it answers healthy or
/// `wait_s` runs out.
async fn wait_ready(args: &Args) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs_f64(args.wait_ready_s);
    loop {
        let attempt = async {
            let ch = args
                .endpoint()?
                .timeout(Duration::from_secs(1))
                .connect()
                .await?;
            let r = Client::new(ch).health_check(HealthCheckRequest {}).await?;
            let r = r.into_inner();
            if r.healthy {
                Ok::<(), BoxError>(())
            } else {
                Err(format!("unhealthy: {}", r.status).into())
            }
        };
        let last = match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) => error_chain(e.as_ref()),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{} not ready after {} s: {last}",
                args.target, args.wait_ready_s
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a pass over every key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Write every key once (--preload).
    Write,
    /// Read every key once (--warm-read).
    Read,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::Write => "preload",
            Pass::Read => "warm-read",
        }
    }
}

/// One operation of a pass on key `i`; a write refused with MEMORY_PRESSURE
/// is retried after a pause, up to `PRELOAD_MAX_RETRIES` times.
async fn pass_op(
    client: &mut Client,
    ctx: &Ctx,
    pass: Pass,
    i: u64,
    rng: &mut fastrand::Rng,
) -> Outcome {
    let mut retries = 0;
    loop {
        let outcome = match pass {
            Pass::Write => {
                let value = ctx.values.next(rng);
                do_write(client, &ctx.args.tenant, key_name(i), value).await
            }
            Pass::Read => do_read(client, &ctx.args.tenant, key_name(i)).await,
        };
        if !matches!(outcome, Outcome::MemoryPressure) {
            return outcome;
        }
        ctx.memory_pressure.fetch_add(1, Ordering::Relaxed);
        retries += 1;
        if retries > PRELOAD_MAX_RETRIES {
            return Outcome::Err(format!(
                "MEMORY_PRESSURE {PRELOAD_MAX_RETRIES} times in a row"
            ));
        }
        tokio::time::sleep(PRELOAD_BACKOFF).await;
    }
}

/// Writes (or reads) every key once, in key order, with all connections and
/// streams. Fails when any operation failed; misses of a read pass are
/// counted and reported, not failures.
async fn key_pass(
    clients: &[Client],
    ctx: Arc<Ctx>,
    seed: u64,
    pass: Pass,
) -> Result<u64, BoxError> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for s in 0..ctx.args.streams {
            let (mut client, ctx) = (client.clone(), ctx.clone());
            let (next, done) = (next.clone(), done.clone());
            let (failed, missed) = (failed.clone(), missed.clone());
            let task_seed = seed ^ (((c * ctx.args.streams + s) as u64) << 32);
            let mut rng = fastrand::Rng::with_seed(task_seed);
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ctx.args.keys {
                        break;
                    }
                    match pass_op(&mut client, &ctx, pass, i, &mut rng).await {
                        Outcome::Err(msg) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            ctx.note_error(&format!("{}: {msg}", pass.name()));
                        }
                        Outcome::Miss => {
                            missed.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            if let (Pass::Write, Some(t)) = (pass, &ctx.written) {
                                t.mark(i);
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    let quiet = ctx.args.quiet;
    let total = ctx.args.keys;
    let progress = {
        let (done, ctx) = (done.clone(), ctx.clone());
        tokio::spawn(async move {
            let period = Duration::from_secs_f64(ctx.args.progress_interval_s);
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                if !quiet {
                    let d = done.load(Ordering::Relaxed);
                    let secs = started.elapsed().as_secs_f64();
                    let pressure = ctx.memory_pressure.load(Ordering::Relaxed);
                    eprintln!(
                        "[{} {secs:>4.0}s] {d}/{total} keys, {:.0} ops/s, {pressure} MEMORY_PRESSURE retries",
                        pass.name(),
                        d as f64 / secs
                    );
                }
            }
        })
    };
    for t in tasks {
        t.await?;
    }
    progress.abort();
    // Wait until the aborted task has dropped its handle on the context.
    let _ = progress.await;
    let failed = failed.load(Ordering::Relaxed);
    let missed = missed.load(Ordering::Relaxed);
    if !quiet {
        eprintln!(
            "{}: {total} keys in {:.2} s ({failed} failed, {missed} not found)",
            pass.name(),
            started.elapsed().as_secs_f64()
        );
    }
    if failed > 0 {
        return Err(format!("{}: {failed} of {total} operations failed", pass.name()).into());
    }
    Ok(total)
}

/// Prints a progress line every `--progress-interval-s` until aborted.
fn spawn_progress(ctx: Arc<Ctx>, started: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(ctx.args.progress_interval_s));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = 0u64;
        let mut last_at = Instant::now();
        let total_s = ctx.args.duration_s;
        loop {
            tick.tick().await;
            let now = Instant::now();
            let done = ctx.completed.load(Ordering::Relaxed);
            let errors = ctx.errors.load(Ordering::Relaxed);
            let pressure = ctx.memory_pressure.load(Ordering::Relaxed);
            let since = now.saturating_duration_since(ctx.measure_start);
            let phase = if now < ctx.measure_start {
                "warm-up".to_string()
            } else if since < Duration::from_millis(500) {
                "measuring".to_string()
            } else {
                let secs = since.as_secs_f64();
                let measured = ctx.measured.load(Ordering::Relaxed);
                format!(
                    "measuring {:.0}/{total_s:.0} s, avg {:.0} ops/s",
                    secs.min(total_s),
                    measured as f64 / secs.min(total_s)
                )
            };
            let compaction = if ctx.args.split_by_compaction {
                if ctx.compacting.load(Ordering::Relaxed) {
                    "; compacting"
                } else {
                    "; idle"
                }
            } else {
                ""
            };
            let interval = now.duration_since(last_at).as_secs_f64().max(1e-3);
            eprintln!(
                "[{:>5.0}s] {:>9.0} ops/s  ({phase}; {done} ops, {errors} errors, {pressure} MEMORY_PRESSURE{compaction})",
                now.duration_since(started).as_secs_f64(),
                (done - last) as f64 / interval
            );
            last = done;
            last_at = now;
        }
    })
}

/// Summaries of one phase over `secs` seconds.
fn phase_summary(p: &OpPair, secs: f64) -> PhaseSummary {
    PhaseSummary {
        write: p.write.summarize(secs),
        read: p.read.summarize(secs),
    }
}

/// Runs what the flags ask for; None when there is no result to report
/// (--ready-only, --preload-only, --warm-read-only).
async fn run(args: Args) -> Result<Option<RunSummary>, BoxError> {
    if args.wait_ready_s > 0.0 {
        wait_ready(&args).await?;
        if !args.quiet {
            eprintln!("{} is ready", args.target);
        }
    }
    if args.ready_only {
        return Ok(None);
    }
    if args.health {
        let ch = args.endpoint()?.connect().await?;
        let r = Client::new(ch)
            .health_check(HealthCheckRequest {})
            .await?
            .into_inner();
        let metrics: BTreeMap<_, _> = r.metrics.into_iter().collect();
        println!("{}", serde_json::to_string(&metrics)?);
        return Ok(None);
    }
    let chooser = match args.distribution {
        Distribution::Uniform => KeyChooser::uniform(args.keys),
        Distribution::Zipfian => KeyChooser::zipfian(args.keys, args.zipf_theta)?,
    };
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let values = ValueSource::new(args.value_bytes, args.value_compressibility, seed ^ 0x5eed)?;

    // One Endpoint::connect per connection: C distinct HTTP/2 connections.
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let ch = args.endpoint()?.connect().await?;
        clients.push(
            Client::new(ch)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    }

    let mut ctx = Ctx {
        args: args.clone(),
        chooser,
        values,
        written: KeyTracker::new(args.keys),
        measure_start: Instant::now(),
        end: Instant::now(),
        completed: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        memory_pressure: AtomicU64::new(0),
        compacting: AtomicBool::new(false),
        polls: AtomicU64::new(0),
        polls_compacting: AtomicU64::new(0),
        poll_errors: AtomicU64::new(0),
    };
    let preloaded = if args.preload_only || (args.preload && args.workload != Workload::Write) {
        let shared = Arc::new(ctx);
        let n = key_pass(&clients, shared.clone(), seed, Pass::Write).await?;
        ctx = Arc::try_unwrap(shared).map_err(|_| "preload tasks still hold the context")?;
        n
    } else {
        0
    };
    if args.preload_only {
        return Ok(None);
    }
    if args.warm_read || args.warm_read_only {
        let shared = Arc::new(ctx);
        key_pass(&clients, shared.clone(), seed, Pass::Read).await?;
        ctx = Arc::try_unwrap(shared).map_err(|_| "warm-read tasks still hold the context")?;
    }
    if args.warm_read_only {
        return Ok(None);
    }
    ctx.errors.store(0, Ordering::Relaxed);
    ctx.memory_pressure.store(0, Ordering::Relaxed);

    let started = Instant::now();
    ctx.measure_start = started + Duration::from_secs_f64(args.warmup_s);
    ctx.end = ctx.measure_start + Duration::from_secs_f64(args.duration_s);
    let ctx = Arc::new(ctx);
    let progress = (!args.quiet).then(|| spawn_progress(ctx.clone(), started));
    let poller = if args.split_by_compaction {
        let ch = args.endpoint()?.timeout(POLL_TIMEOUT).connect().await?;
        Some(spawn_compaction_poller(Client::new(ch), ctx.clone()))
    } else {
        None
    };

    let mut tasks = Vec::with_capacity(args.connections * args.streams);
    for (c, client) in clients.iter().enumerate() {
        for s in 0..args.streams {
            let task_seed = seed.wrapping_add((c * args.streams + s) as u64 + 1);
            tasks.push(tokio::spawn(worker(client.clone(), ctx.clone(), task_seed)));
        }
    }
    let mut phases = [OpPair::default(), OpPair::default()];
    for t in tasks {
        for (into, from) in phases.iter_mut().zip(t.await?.iter()) {
            into.merge(from);
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    // The poller stops by itself at the run's end (within one period plus
    // one poll deadline).
    let polled = match poller {
        Some(p) => p.await?,
        None => BTreeMap::new(),
    };
    let mut all = OpPair::default();
    all.merge(&phases[IDLE]);
    all.merge(&phases[COMPACTING]);

    let secs = args.duration_s;
    let write = all.write.summarize(secs);
    let read = all.read.summarize(secs);
    let total_ops = write.as_ref().map_or(0, |o| o.ops) + read.as_ref().map_or(0, |o| o.ops);
    let errors = all.write.errors + all.read.errors;
    let memory_pressure = all.write.memory_pressure + all.read.memory_pressure;
    let targets = check_targets(write.as_ref(), read.as_ref());
    let split = args.split_by_compaction.then(|| {
        let polls = ctx.polls.load(Ordering::Relaxed);
        let polls_compacting = ctx.polls_compacting.load(Ordering::Relaxed);
        let fraction = if polls > 0 {
            polls_compacting as f64 / polls as f64
        } else {
            0.0
        };
        CompactionSplit {
            poll_interval_ms: args.compaction_poll_ms,
            polls,
            polls_compacting,
            poll_errors: ctx.poll_errors.load(Ordering::Relaxed),
            compacting_fraction: fraction,
            compacting: phase_summary(&phases[COMPACTING], secs * fraction),
            idle: phase_summary(&phases[IDLE], secs * (1.0 - fraction)),
            polled,
        }
    });
    Ok(Some(RunSummary {
        label: args.label.clone(),
        target: args.target.clone(),
        workload: format!("{:?}", args.workload).to_lowercase(),
        read_ratio: match args.workload {
            Workload::Write => 0.0,
            Workload::Read => 1.0,
            Workload::Mixed => args.read_ratio,
        },
        distribution: format!("{:?}", args.distribution).to_lowercase(),
        zipf_theta: args.zipf_theta,
        keys: args.keys,
        value_bytes: args.value_bytes,
        tenant: args.tenant.clone(),
        connections: args.connections,
        streams: args.streams,
        concurrency: args.connections * args.streams,
        warmup_s: args.warmup_s,
        duration_s: args.duration_s,
        measured_s: secs,
        preloaded_keys: preloaded,
        ops_per_s: total_ops as f64 / secs,
        total_ops,
        errors,
        memory_pressure,
        value_compressibility: args.value_compressibility,
        distinct_keys_written: ctx.written.as_ref().map(KeyTracker::count),
        write,
        read,
        split,
        targets,
    }))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("pairdb-bench: {e}");
        return std::process::ExitCode::from(2);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pairdb-bench: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json = args.json;
    match rt.block_on(run(args)) {
        Ok(None) => std::process::ExitCode::SUCCESS,
        Ok(Some(summary)) => {
            if json {
                match serde_json::to_string(&summary) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("pairdb-bench: cannot encode JSON: {e}");
                        return std::process::ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", summary.render_table());
            }
            if summary.total_ops == 0 {
                eprintln!("pairdb-bench: no operation was answered");
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pairdb-bench: {}", error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
