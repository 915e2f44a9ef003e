//! `pairdb-admin`: the operator's command line for one storage node.
//!
//! Owns running a parsed command line: it reads a put's value, makes the
//! node's own gRPC client ([`crate::client`]) inside a glommio executor on
//! this thread, runs the command, prints its report (text, or one JSON
//! document with `--json`) and says the exit code. One file per idea:
//! - [`args`]: the command line (clap) and the help text;
//! - [`ranges`], [`clock`], [`value`]: parsing and showing token ranges,
//!   vector clocks and stored values (pure);
//! - [`output`]: reports and text tables (pure); [`status`]: the status
//!   report from HealthCheck's figures (pure);
//! - [`error`]: failures and exit codes; [`call`]: calls to the node;
//! - [`maintenance`], [`data`], [`probe`]: the commands.
//!
//! Invariants: the node is never called before the command line and its
//! input are valid; every error printed names the node and the cause;
//! exit codes are those of [`error`] (0, 1, 2, 3).

pub mod args;
pub mod call;
pub mod clock;
pub mod data;
pub mod error;
pub mod maintenance;
pub mod output;
pub mod probe;
pub mod ranges;
pub mod status;
pub mod value;

pub use args::{Cli, Command};
pub use error::{AdminError, EXIT_NODE_ERROR, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE};

use call::NodeCalls;
use output::Report;
use std::io::Write;
use std::time::Duration;

/// Runs `cli`, prints its outcome, and answers the exit code.
pub fn run(cli: Cli) -> u8 {
    let outcome = execute(
        cli.command,
        &cli.node,
        Duration::from_millis(cli.timeout_ms),
    );
    match outcome {
        Ok(report) => {
            let shown = if cli.json {
                format!("{}\n", report.json)
            } else {
                report.text.clone()
            };
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(shown.as_bytes());
            let _ = out.flush();
            match report.failure {
                None => EXIT_OK,
                Some(cause) => {
                    eprintln!("pairdb-admin: {cause}");
                    EXIT_NODE_ERROR
                }
            }
        }
        Err(e) => {
            eprintln!("pairdb-admin: {e}");
            e.exit_code()
        }
    }
}

/// Runs one command against `node` on a glommio executor made here.
fn execute(command: Command, node: &str, timeout: Duration) -> Result<Report, AdminError> {
    // A put's value is read before anything is called.
    let value = match &command {
        Command::Put {
            value, value_file, ..
        } => Some(data::read_value(value.as_deref(), value_file.as_deref())?),
        _ => None,
    };
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 * 1024)
        .make()
        .map_err(|e| AdminError::Unreachable {
            node: node.to_string(),
            cause: format!("the client runtime could not start: {e}"),
        })?;
    executor.run(async move {
        let calls = NodeCalls::new(node, timeout)?;
        match command {
            Command::Status => maintenance::status(&calls).await,
            Command::Flush => maintenance::flush(&calls).await,
            Command::Compact { level } => maintenance::compact(&calls, level).await,
            Command::Drain { wait_s, no_wait } => maintenance::drain(&calls, wait_s, no_wait).await,
            Command::Undrain => maintenance::undrain(&calls).await,
            Command::Streams => maintenance::streams(&calls).await,
            Command::Digest { ranges } => maintenance::digest(&calls, &ranges).await,
            Command::Cleanup { ranges } => maintenance::cleanup(&calls, &ranges).await,
            Command::Get { tenant, key } => data::get(&calls, &tenant, &key).await,
            Command::Put {
                tenant, key, clock, ..
            } => {
                let value = value.unwrap_or_default();
                data::put(&calls, &tenant, &key, value, clock).await
            }
            Command::Delete { tenant, key, clock } => {
                data::delete(&calls, &tenant, &key, clock).await
            }
            Command::Probe { service } => probe::probe(&calls, &service).await,
        }
    })
}
