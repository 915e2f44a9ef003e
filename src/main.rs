//! `pairdb-storage`: the command line of the storage node.
//!
//! Loads the configuration (the embedded shards.toml unless `--config` names
//! a file), applies command-line overrides, installs logging and signal
//! handling, and runs the node until SIGINT/SIGTERM. Exit codes: 0 after a
//! graceful shutdown, 2 for a configuration error, 1 for a runtime failure.

use clap::Parser;
use pairdb_storage::config::Config;
use pairdb_storage::runtime::{self, ShutdownFlags};
use std::path::PathBuf;
use std::process::ExitCode;

/// PairDB storage node: a thread-per-core key-value store answering the
/// PairDB storage gRPC contract.
#[derive(Debug, Parser)]
#[command(name = "pairdb-storage", version)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded default (the
    /// repository's shards.toml) is used.
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
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path),
        None => Config::embedded_default(),
    }
    .map_err(|e| e.to_string())?;
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
    config.validate("command line").map_err(|e| e.to_string())?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pairdb-storage: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = pairdb_storage::telemetry::init(&config.logging) {
        eprintln!("pairdb-storage: {e}");
        return ExitCode::from(2);
    }
    let flags = ShutdownFlags::default();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal while shutting down exits at once.
        let registered =
            signal_hook::flag::register_conditional_shutdown(signal, 1, flags.requested.clone())
                .and_then(|_| signal_hook::flag::register(signal, flags.requested.clone()));
        if let Err(e) = registered {
            eprintln!("pairdb-storage: cannot install the signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    match runtime::run(config, flags) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "node failed");
            eprintln!("pairdb-storage: {e}");
            ExitCode::from(1)
        }
    }
}
