//! `pairdb-bench`: a closed-loop gRPC load generator for the
//! `storage.StorageNodeService` contract. It opens C separate HTTP/2
//! connections with S request loops each, runs write / read / mixed
//! workloads over uniform or zipfian keys, records per-operation latency in
//! HDR histograms after a warm-up, and prints a table (or one JSON object)
//! with throughput, percentiles and the seed's targets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};
use tonic::transport::{Channel, Endpoint};

use pairdb_bench::keys::{key_name, KeyChooser};
use pairdb_bench::proto::storage_node_service_client::StorageNodeServiceClient;
use pairdb_bench::proto::{ErrorCode, HealthCheckRequest, ReadRequest, WriteRequest};
use pairdb_bench::report::{check_targets, OpStats, RunSummary};

type Client = StorageNodeServiceClient<Channel>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest response the client accepts (values plus sibling copies).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How many individual error messages are echoed to stderr.
const MAX_LOGGED_ERRORS: u64 = 5;

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
    /// Print the server's HealthCheck metrics as one JSON object, then exit.
    #[arg(long)]
    health: bool,
    /// No live progress line on stderr.
    #[arg(long)]
    quiet: bool,
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
    Err(String),
}

/// Shared, read-only run parameters and live counters.
struct Ctx {
    args: Args,
    chooser: KeyChooser,
    value: Bytes,
    measure_start: Instant,
    end: Instant,
    /// Operations finished (any phase), for the progress line.
    completed: AtomicU64,
    /// Operations started inside the measured window and finished.
    measured: AtomicU64,
    errors: AtomicU64,
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

/// One closed request loop; returns (write stats, read stats) of the
/// measured window.
async fn worker(mut client: Client, ctx: Arc<Ctx>, seed: u64) -> (OpStats, OpStats) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut writes = OpStats::new();
    let mut reads = OpStats::new();
    let args = &ctx.args;
    loop {
        let is_read = match args.workload {
            Workload::Write => false,
            Workload::Read => true,
            Workload::Mixed => rng.gen_bool(args.read_ratio),
        };
        let key = key_name(ctx.chooser.next(&mut rng));
        let start = Instant::now();
        if start >= ctx.end {
            break;
        }
        let outcome = if is_read {
            do_read(&mut client, &args.tenant, key).await
        } else {
            do_write(&mut client, &args.tenant, key, ctx.value.clone()).await
        };
        let us = start.elapsed().as_micros() as u64;
        ctx.completed.fetch_add(1, Ordering::Relaxed);
        let stats = if is_read { &mut reads } else { &mut writes };
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
            Outcome::Err(msg) => {
                ctx.note_error(&msg);
                if measuring {
                    stats.errors += 1;
                }
            }
        }
    }
    (writes, reads)
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

/// Writes every key once with all connections and streams.
async fn preload(clients: &[Client], ctx: Arc<Ctx>) -> Result<u64, BoxError> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..ctx.args.streams {
            let (mut client, ctx) = (client.clone(), ctx.clone());
            let (next, done, failed) = (next.clone(), done.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ctx.args.keys {
                        break;
                    }
                    let outcome = do_write(
                        &mut client,
                        &ctx.args.tenant,
                        key_name(i),
                        ctx.value.clone(),
                    )
                    .await;
                    if let Outcome::Err(msg) = outcome {
                        failed.fetch_add(1, Ordering::Relaxed);
                        ctx.note_error(&format!("preload: {msg}"));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    let quiet = ctx.args.quiet;
    let total = ctx.args.keys;
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                if !quiet {
                    let d = done.load(Ordering::Relaxed);
                    eprintln!(
                        "[preload {:>4.0}s] {d}/{total} keys, {:.0} writes/s",
                        started.elapsed().as_secs_f64(),
                        d as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        })
    };
    for t in tasks {
        t.await?;
    }
    progress.abort();
    let failed = failed.load(Ordering::Relaxed);
    if !quiet {
        eprintln!(
            "preload: {total} keys in {:.2} s ({failed} failed)",
            started.elapsed().as_secs_f64()
        );
    }
    if failed > 0 {
        return Err(format!("preload: {failed} of {total} writes failed").into());
    }
    Ok(total)
}

/// Prints ops/s once per second until aborted.
fn spawn_progress(ctx: Arc<Ctx>, started: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = 0u64;
        loop {
            tick.tick().await;
            let now = Instant::now();
            let done = ctx.completed.load(Ordering::Relaxed);
            let errors = ctx.errors.load(Ordering::Relaxed);
            let since = now.saturating_duration_since(ctx.measure_start);
            let phase = if now < ctx.measure_start {
                "warm-up".to_string()
            } else if since < Duration::from_millis(500) {
                "measuring".to_string()
            } else {
                let secs = since.as_secs_f64();
                let measured = ctx.measured.load(Ordering::Relaxed);
                format!("measuring, avg {:.0} ops/s", measured as f64 / secs)
            };
            eprintln!(
                "[{:>4.0}s] {:>9} ops/s  ({phase}; {done} ops, {errors} errors)",
                now.duration_since(started).as_secs_f64(),
                done - last
            );
            last = done;
        }
    })
}

/// Runs what the flags ask for; None when there is no result to report
/// (--ready-only, --preload-only).
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
        let metrics: std::collections::BTreeMap<_, _> = r.metrics.into_iter().collect();
        println!("{}", serde_json::to_string(&metrics)?);
        return Ok(None);
    }
    let chooser = match args.distribution {
        Distribution::Uniform => KeyChooser::uniform(args.keys),
        Distribution::Zipfian => KeyChooser::zipfian(args.keys, args.zipf_theta)?,
    };
    let seed = args.seed.unwrap_or_else(|| rand::thread_rng().next_u64());
    let mut value = vec![0u8; args.value_bytes];
    StdRng::seed_from_u64(seed ^ 0x5eed).fill_bytes(&mut value);

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
        value: Bytes::from(value),
        measure_start: Instant::now(),
        end: Instant::now(),
        completed: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    };
    let preloaded = if args.preload_only || (args.preload && args.workload != Workload::Write) {
        let shared = Arc::new(ctx);
        let n = preload(&clients, shared.clone()).await?;
        ctx = Arc::try_unwrap(shared).map_err(|_| "preload tasks still hold the context")?;
        ctx.errors.store(0, Ordering::Relaxed);
        n
    } else {
        0
    };
    if args.preload_only {
        return Ok(None);
    }

    let started = Instant::now();
    ctx.measure_start = started + Duration::from_secs_f64(args.warmup_s);
    ctx.end = ctx.measure_start + Duration::from_secs_f64(args.duration_s);
    let ctx = Arc::new(ctx);
    let progress = (!args.quiet).then(|| spawn_progress(ctx.clone(), started));

    let mut tasks = Vec::with_capacity(args.connections * args.streams);
    for (c, client) in clients.iter().enumerate() {
        for s in 0..args.streams {
            let task_seed = seed.wrapping_add((c * args.streams + s) as u64 + 1);
            tasks.push(tokio::spawn(worker(client.clone(), ctx.clone(), task_seed)));
        }
    }
    let mut writes = OpStats::new();
    let mut reads = OpStats::new();
    for t in tasks {
        let (w, r) = t.await?;
        writes.merge(&w);
        reads.merge(&r);
    }
    if let Some(p) = progress {
        p.abort();
    }

    let secs = args.duration_s;
    let write = writes.summarize(secs);
    let read = reads.summarize(secs);
    let total_ops = write.as_ref().map_or(0, |o| o.ops) + read.as_ref().map_or(0, |o| o.ops);
    let errors = writes.errors + reads.errors;
    let targets = check_targets(write.as_ref(), read.as_ref());
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
        write,
        read,
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
