//! The command line of `pairdb-bench`: the flags, their defaults and help
//! text, and the checks a run's flags must pass before anything connects.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tonic::transport::Endpoint;

use crate::BoxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Write,
    Read,
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    Uniform,
    Zipfian,
}

/// Closed-loop load generator for a PairDB storage node (or any server of the
/// storage.StorageNodeService contract).
#[derive(Debug, Clone, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Something other than a load run (see `plot --help`).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// gRPC endpoint, e.g. http://127.0.0.1:50051
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,
    /// Operation mix.
    #[arg(long, value_enum, default_value_t = Workload::Write)]
    pub workload: Workload,
    /// Fraction of reads in the mixed workload.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Value size of writes, bytes.
    #[arg(long, default_value_t = 1024)]
    pub value_bytes: usize,
    /// Fraction of each value that is a run of zeros, in [0, 1); 0 makes
    /// values incompressible. Every write gets a different value either way.
    #[arg(long, default_value_t = 0.0)]
    pub value_compressibility: f64,
    /// Key popularity.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Zipfian skew, in (0, 1).
    #[arg(long, default_value_t = 0.99)]
    pub zipf_theta: f64,
    /// HTTP/2 connections (each its own tonic Channel).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Concurrent in-flight requests per connection.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Measured duration, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Warm-up before measuring, seconds (load runs, nothing is recorded).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_s: f64,
    /// Tenant id of every request.
    #[arg(long, default_value = "bench")]
    pub tenant: String,
    /// Write every key once before a read or mixed workload, so reads hit.
    #[arg(long)]
    pub preload: bool,
    /// Print one JSON object with the results instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Free text printed in the output.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Retry HealthCheck for up to this many seconds before starting (0: no wait).
    #[arg(long, default_value_t = 0.0)]
    pub wait_ready_s: f64,
    /// Per-request deadline, milliseconds; a timeout counts as an error.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Client runtime worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// RNG seed for key choice and values (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Only wait for readiness (see --wait-ready-s), then exit.
    #[arg(long)]
    pub ready_only: bool,
    /// Only write every key once (as --preload does), then exit.
    #[arg(long)]
    pub preload_only: bool,
    /// Read every key once, in key order with all connections and streams,
    /// before the warm-up (e.g. to fill a read cache); not measured.
    #[arg(long)]
    pub warm_read: bool,
    /// Only read every key once (as --warm-read does), then exit.
    #[arg(long)]
    pub warm_read_only: bool,
    /// Print the server's HealthCheck metrics as one JSON object, then exit.
    #[arg(long)]
    pub health: bool,
    /// No live progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 1.0)]
    pub progress_interval_s: f64,
    /// Poll HealthCheck and record every operation also by whether any shard
    /// reported `compaction_running = true` at the operation's start.
    #[arg(long)]
    pub split_by_compaction: bool,
    /// Poll period of --split-by-compaction, milliseconds.
    #[arg(long, default_value_t = 250)]
    pub compaction_poll_ms: u64,
    /// The server's process id (on this machine): report its CPU time per
    /// operation over the measured window, and, for a PairDB node, the
    /// share of requests forwarded between cores.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Send each request to the port of the shard owning its key (from the
    /// node's GetShardMap; needs node.shard_port_base). Each connection
    /// becomes one connection per shard.
    #[arg(long)]
    pub shard_aware: bool,
    /// Write each operation's measured latency distribution to this
    /// directory (created if missing): `<op>.hgrm`, HdrHistogram percentile
    /// text in milliseconds, and `<op>.svg`, its percentile plot.
    #[arg(long, value_name = "DIR")]
    pub hdr_out: Option<PathBuf>,
}

/// Commands other than a load run.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Draw `.hgrm` percentile distributions (as --hdr-out writes them) on
    /// one SVG chart, one line per input, e.g. `pairdb-bench plot --out
    /// reads.svg --title "reads 4x16" pairdb=ours/read.hgrm
    /// reference=ref/read.hgrm`.
    Plot(PlotArgs),
}

/// The flags of `pairdb-bench plot`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    /// The SVG file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Chart title.
    #[arg(long, default_value = "latency by percentile")]
    pub title: String,
    /// One line per input: its legend label and `.hgrm` file.
    #[arg(required = true, value_name = "LABEL=PATH")]
    pub inputs: Vec<String>,
}

impl Args {
    pub fn validate(&self) -> Result<(), String> {
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

    pub fn endpoint(&self) -> Result<Endpoint, BoxError> {
        Ok(Endpoint::from_shared(self.target.clone())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_millis(self.request_timeout_ms)))
    }
}
