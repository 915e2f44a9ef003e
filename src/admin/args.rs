//! The command line of `pairdb-admin` (clap derive).
//!
//! Owns [`Cli`], [`Command`] and the help text, exit codes included.
//! Invariants: ranges and clocks are parsed here, so bad ones are usage
//! errors (exit 2) before any call; `--timeout-ms` is at least 1.

use super::clock::parse_clock;
use super::ranges::{parse_range, RangeArg};
use crate::proto;
use clap::{ArgGroup, Parser, Subcommand};
use std::path::PathBuf;

/// The exit codes, as `--help` shows them.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the node answered an error (a gRPC status such as UNIMPLEMENTED, or
     success = false with an error code); probe: the service is not SERVING;
     get: the key is not found
  2  usage error: bad arguments, a bad range or clock, an unreadable value file
  3  the node could not be reached or did not answer within --timeout-ms

Errors go to stderr and name the node and the cause; with --json, stdout
holds one JSON document whenever the node answered.";

/// Operator tool for one PairDB storage node, over its gRPC port.
#[derive(Debug, Parser)]
#[command(name = "pairdb-admin", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The node's gRPC address.
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:50051"
    )]
    pub node: String,
    /// Longest a call may take, connecting included (flush and compact
    /// may need more than the default on a large node).
    #[arg(long, global = true, value_name = "MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Health, node state, members, streams and a table of every shard
    /// (keys, memtable, levels, cache, write state), from HealthCheck.
    Status,
    /// Make every memtable an SSTable; answers once durable.
    Flush,
    /// Compact one level into the next (--level), or every level.
    Compact {
        /// The input level (0 to the last level but one).
        #[arg(long)]
        level: Option<u32>,
    },
    /// Refuse writes from now on (reads and streams go on) and wait for
    /// the drain to finish (memtables flushed).
    Drain {
        /// Longest wait for the drain to finish, seconds.
        #[arg(long, default_value_t = 60, value_name = "S")]
        wait_s: u32,
        /// Answer at once ("draining"); the drain goes on in the node.
        #[arg(long)]
        no_wait: bool,
    },
    /// End a drain: writes are accepted again.
    Undrain,
    /// Every stream the node sends, with ranges, state and progress.
    Streams,
    /// Key and version counts and the digest of token ranges.
    Digest {
        /// Token ranges START:END, (start, end], wrapping; decimal or
        /// 0x-hex u64; START == END is the whole ring.
        #[arg(required = true, value_name = "START:END", value_parser = parse_range)]
        ranges: Vec<RangeArg>,
    },
    /// Drop every stored version in token ranges the node no longer owns.
    Cleanup {
        /// Token ranges START:END, as for digest.
        #[arg(required = true, value_name = "START:END", value_parser = parse_range)]
        ranges: Vec<RangeArg>,
    },
    /// Read one key: its value, or every version (siblings, tombstones)
    /// with their vector clocks.
    Get {
        #[arg(long)]
        tenant: String,
        key: String,
    },
    /// Write one key: blind (the node stamps a clock descending every
    /// stored version), or with --clock.
    #[command(group(ArgGroup::new("input").required(true).args(["value", "value_file"])))]
    Put {
        #[arg(long)]
        tenant: String,
        key: String,
        /// The value, as UTF-8 text.
        value: Option<String>,
        /// Read the value from a file, byte for byte ("-": stdin).
        #[arg(long, value_name = "FILE")]
        value_file: Option<PathBuf>,
        /// The version's clock NODE:COUNTER,..., written as given (as a
        /// coordinator writes): to replace what get shows, pass its clock
        /// with one counter increased; an equal or older clock changes
        /// nothing, a concurrent one makes a sibling. Without it the write
        /// is blind.
        #[arg(long, value_parser = parse_clock)]
        clock: Option<proto::VectorClock>,
    },
    /// Delete one key (a tombstone): blind, or with --clock as for put.
    Delete {
        #[arg(long)]
        tenant: String,
        key: String,
        /// The tombstone's clock, as for put.
        #[arg(long, value_parser = parse_clock)]
        clock: Option<proto::VectorClock>,
    },
    /// gRPC health check (grpc.health.v1.Health/Check): exit 0 when
    /// SERVING, 1 otherwise, 3 when unreachable.
    Probe {
        /// The service to ask about ("": the whole server).
        #[arg(long, default_value = "")]
        service: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_ranges_and_missing_values_are_usage_errors() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        let e = parse(&["pairdb-admin", "digest", "1:x"]).expect_err("bad range");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("not a u64"), "{e}");
        let e = parse(&["pairdb-admin", "put", "--tenant", "t", "k"]).expect_err("no value");
        assert_eq!(e.exit_code(), 2);
        let e = parse(&["pairdb-admin", "--timeout-ms", "0", "status"]).expect_err("zero");
        assert_eq!(e.exit_code(), 2);
        let ok = parse(&["pairdb-admin", "digest", "0:0", "0x10:20", "--json"]).expect("valid");
        assert!(ok.json);
        assert_eq!(ok.node, "127.0.0.1:50051");
        let Command::Digest { ranges } = ok.command else {
            panic!("digest expected");
        };
        assert_eq!(ranges.len(), 2);
    }
}
