//! `reference-server`: runs the in-memory reference implementation of the
//! storage node contract (see `pairdb_bench::reference`) on a loopback or
//! other address, as the baseline for `pairdb-bench` comparisons.

use std::net::SocketAddr;

use clap::Parser;

/// In-memory reference server for the storage.StorageNodeService contract.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50061")]
    listen: SocketAddr,
    /// Coordinator id this server stamps blind writes with.
    #[arg(long, default_value = "reference")]
    node_id: String,
    /// Tokio worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("reference-server: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!("reference-server: listening on {}", args.listen);
    match rt.block_on(pairdb_bench::reference::serve(args.listen, args.node_id)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reference-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
