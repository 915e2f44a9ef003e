//! One benchmark run: the closed request
//! loops and their per-phase statistics, the progress line, and `run`, which
//! does what the flags ask for (readiness, health, preload and warm-read
//! passes, warm-up, the measured window) and returns the summary to report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::cli::{Args, Distribution, Workload};
use crate::context::Ctx;
use crate::keys::{key_name, KeyChooser, KeyTracker};
use crate::poller::{spawn_compaction_poller, POLL_TIMEOUT};
use crate::preload::{key_pass, Pass};
use crate::proto::HealthCheckRequest;
use crate::report::{check_targets, CompactionSplit, OpStats, PhaseSummary, RunSummary};
use crate::rpc::{do_read, do_write, wait_ready, Client, Outcome, MAX_MESSAGE_BYTES};
use crate::server_cost::spawn_window_sampler;
use crate::shard_route::{self, ShardRoute};
use crate::values::ValueSource;
use crate::BoxError;

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
/// Where a worker sends its requests.
enum Route {
    /// One connection to the node's address.
    One(Client),
    /// The owning shard's port, per key.
    ByShard(ShardRoute),
}

impl Route {
    fn client(&mut self, tenant: &str, key: &str) -> &mut Client {
        match self {
            Route::One(c) => c,
            Route::ByShard(r) => r.client_for(tenant, key),
        }
    }
}

async fn worker(mut route: Route, ctx: Arc<Ctx>, seed: u64) -> [OpPair; 2] {
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
        let client = route.client(&args.tenant, &key);
        let outcome = match value {
            None => do_read(client, &args.tenant, key).await,
            Some(value) => do_write(client, &args.tenant, key, value).await,
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
pub async fn run(args: Args) -> Result<Option<RunSummary>, BoxError> {
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

    let sampler = match args.server_pid {
        Some(pid) => {
            let ch = args.endpoint()?.timeout(POLL_TIMEOUT).connect().await?;
            Some(spawn_window_sampler(
                pid,
                Client::new(ch),
                ctx.measure_start,
                ctx.end,
            ))
        }
        None => None,
    };
    let shard_routes = if args.shard_aware {
        Some(shard_route::connect(&args, args.connections).await?)
    } else {
        None
    };
    let mut tasks = Vec::with_capacity(args.connections * args.streams);
    for (c, client) in clients.iter().enumerate() {
        for s in 0..args.streams {
            let task_seed = seed.wrapping_add((c * args.streams + s) as u64 + 1);
            let route = match &shard_routes {
                Some(routes) => Route::ByShard(routes[c].clone()),
                None => Route::One(client.clone()),
            };
            tasks.push(tokio::spawn(worker(route, ctx.clone(), task_seed)));
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
    let server = match sampler {
        Some(s) => s.await?.cost(total_ops),
        None => None,
    };
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
        server,
        split,
        targets,
        latency_us: vec![("write", all.write.hist), ("read", all.read.hist)],
    }))
}
