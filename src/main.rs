//! `pairdb-storage`: the command line of the storage node.
//!
//! Loads the configuration (the embedded shards.toml unless `--config` names
//! a file), applies command-line overrides, resolves relative paths (the
//! config file, the data directory) once against the working directory,
//! installs logging and signal handling, and runs the node until
//! SIGINT/SIGTERM.
//!
//! Exit codes:
//! - 0: graceful shutdown after SIGINT/SIGTERM.
//! - 2: start-up refused because of the configuration or the environment:
//!   a configuration error (file, key, reason), an unusable data directory
//!   (not a directory, no permission), a data directory locked by another
//!   process, a META mismatch (shard count, format, partitioning), a node id
//!   other than the one the data directory records (without
//!   `--allow-node-id-change`), a listen or gossip address another live
//!   process serves (or that stays busy), a wildcard listen address without
//!   `--advertise`, or an advertise host that does not resolve. Restarting
//!   unchanged fails the same way.
//! - 1: runtime failure after start (executors, a shard that cannot open or
//!   a core that cannot bind, a failed signal handler install).

use clap::Parser;
use pairdb_storage::config::{absolute_path, Config};
use pairdb_storage::runtime::{self, RunOptions, ShutdownFlags, EXIT_FAILURE, EXIT_REFUSED};
use std::path::PathBuf;
use std::process::ExitCode;

/// The node's allocator: per-thread heaps suit one thread per core.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// PairDB storage node: a thread-per-core key-value store answering the
/// PairDB storage gRPC contract.
#[derive(Debug, Parser)]
#[command(name = "pairdb-storage", version)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded default (the
    /// repository's shards.toml) is used. A relative path (here and in
    /// --data-dir or node.data_dir) resolves against the working directory.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// gRPC listen address, overriding node.listen (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Data directory, overriding node.data_dir.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Number of shards (one executor per shard), overriding node.shards.
    /// Default: one per CPU this process may run on.
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Node id stamped into blind writes' vector clocks, overriding node.node_id.
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// Accept a node id other than the one the data directory records, and
    /// record the new one. Without it such a start is refused, since blind
    /// writes stamped with a new id can break causality.
    #[arg(long)]
    allow_node_id_change: bool,
    /// Gossip addresses of nodes to join through, comma-separated,
    /// overriding cluster.seeds (an empty value clears them).
    #[arg(long, value_name = "HOST:PORT,...")]
    seeds: Option<String>,
    /// The gRPC address other nodes should use for this node, overriding
    /// cluster.advertise. Required with a wildcard listen address.
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Prometheus endpoint address, overriding metrics.listen: HOST:PORT,
    /// "auto" (the gRPC host, port + 1000) or "off".
    #[arg(long, value_name = "HOST:PORT|auto|off")]
    metrics_listen: Option<String>,
}

/// The configuration to run and where it came from (for the log).
struct Loaded {
    config: Config,
    source: String,
}

fn load_config(cli: &Cli) -> Result<Loaded, String> {
    let cwd = std::env::current_dir().map_err(|e| {
        format!("cannot read the working directory, against which relative paths resolve: {e}")
    })?;
    let config_path = cli.config.as_deref().map(|p| absolute_path(&cwd, p));
    let (loaded, source) = match &config_path {
        Some(path) => (Config::load(path), path.display().to_string()),
        None => (Config::embedded_default(), "<embedded shards.toml>".into()),
    };
    let mut config = loaded.map_err(|e| e.to_string())?;
    if let Some(v) = &cli.listen {
        config.node.listen = v.clone();
    }
    if let Some(v) = &cli.data_dir {
        config.node.data_dir = v.clone();
    }
    if let Some(v) = cli.shards {
        config.node.shards = v;
    }
    if let Some(v) = &cli.node_id {
        config.node.node_id = v.clone();
    }
    if let Some(v) = &cli.seeds {
        config.cluster.seeds = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
    }
    if let Some(v) = &cli.advertise {
        config.cluster.advertise = v.clone();
    }
    if let Some(v) = &cli.metrics_listen {
        config.metrics.listen = v.clone();
    }
    config.validate("command line").map_err(|e| e.to_string())?;
    config.resolve_paths(&cwd);
    Ok(Loaded { config, source })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Loaded { config, source } = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pairdb-storage: {e}");
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    if let Err(e) = pairdb_storage::telemetry::init(&config.logging) {
        eprintln!("pairdb-storage: {e}");
        return ExitCode::from(EXIT_REFUSED);
    }
    tracing::info!(config = %source, data_dir = %config.node.data_dir.display(),
        "configuration loaded");
    let flags = ShutdownFlags::default();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while shutting down exits at once.
        let registered =
            signal_hook::flag::register_conditional_shutdown(signal, 1, flags.requested.clone())
                .and_then(|_| signal_hook::flag::register(signal, flags.requested.clone()));
        if let Err(e) = registered {
            eprintln!("pairdb-storage: cannot install the signal handler: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    }
    let options = RunOptions {
        allow_node_id_change: cli.allow_node_id_change,
    };
    match runtime::run(config, options, flags) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = e.exit_code();
            if code == EXIT_REFUSED {
                tracing::error!(error = %e, "start-up refused");
            } else {
                tracing::error!(error = %e, "node failed");
            }
            eprintln!("pairdb-storage: {e}");
            ExitCode::from(code)
        }
    }
}
