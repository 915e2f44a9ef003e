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
//! e.g. to fill the server's read cache). With `--hdr-out DIR` it also
//! writes each operation's full latency distribution (`<op>.hgrm`) and its
//! percentile plot (`<op>.svg`); `pairdb-bench plot` draws several such
//! distributions on one chart.
//!
//! This file is the front end: it parses the flags, starts the runtime and
//! prints the result; the run itself is in the `pairdb_bench` library
//! (`cli`, `driver`, `preload`, `poller`, `rpc`, `report`, `hdr_out`,
//! `plot_cmd`).

use clap::Parser;

use pairdb_bench::cli::{Args, Command};
use pairdb_bench::driver::run;
use pairdb_bench::report::RunSummary;
use pairdb_bench::rpc::error_chain;
use pairdb_bench::{hdr_out, plot_cmd};

/// Writes the --hdr-out files of a finished run into `dir`.
fn write_hdr_out(dir: &std::path::Path, args: &Args, summary: &RunSummary) -> Result<(), String> {
    let run = if args.label.is_empty() {
        args.target.as_str()
    } else {
        args.label.as_str()
    };
    for (op, hist) in &summary.latency_us {
        let title = format!(
            "{op} latency: {run} ({} x {}, {} keys)",
            args.connections, args.streams, args.keys
        );
        for path in hdr_out::write_op(dir, op, &title, hist)? {
            if !args.quiet {
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(Command::Plot(p)) = &args.command {
        return match plot_cmd::run(&p.out, &p.title, &p.inputs) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pairdb-bench plot: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = args.validate() {
        eprintln!("pairdb-bench: {e}");
        return std::process::ExitCode::from(2);
    }
    if let Some(dir) = &args.hdr_out {
        if let Err(e) = hdr_out::prepare(dir) {
            eprintln!("pairdb-bench: {e}");
            return std::process::ExitCode::from(2);
        }
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
    match rt.block_on(run(args.clone())) {
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
            if let Some(dir) = &args.hdr_out {
                if let Err(e) = write_hdr_out(dir, &args, &summary) {
                    eprintln!("pairdb-bench: --hdr-out: {e}");
                    return std::process::ExitCode::FAILURE;
                }
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
