//! `pairdb-admin`: operator commands for one PairDB storage node over gRPC
//! (status, flush, compact, drain, streams, digest, cleanup, get/put/delete,
//! probe). The logic is in `pairdb_storage::admin`; exit codes are in
//! `pairdb-admin --help` and docs/operations.md.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(pairdb_storage::admin::run(
        pairdb_storage::admin::Cli::parse(),
    ))
}
