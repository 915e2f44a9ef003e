//! `hop-bench`: what one cross-core hop costs, without network or h2.
//!
//! Starts two node cores in this process (each with a real shard under
//! `--dir`, joined by the channel mesh, routed by the node's own router)
//! and, for each concurrency, runs core 1's calls against its own shard
//! (local) and against core 0's (forwarded), each for `--duration-s`.
//! Reports calls per second and this process's CPU time per call (utime +
//! stime, 10 ms resolution) for both, and their difference: the CPU one hop
//! costs. With concurrency 1 both cores park between calls (the hop with a
//! parked peer); with more, both stay busy. `--json` prints one JSON
//! object instead of the table.

use clap::Parser;
use pairdb_bench::server_cost::{own_cpu_ticks, ticks_to_us};
use pairdb_storage::server::hop_bench::{run, HopRun, HopSpec};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "hop-bench", about = "CPU cost of one cross-core hop")]
struct Args {
    /// Where the two shards live (created; must support O_DIRECT, so not
    /// tmpfs). Default: a new directory under the current one, removed at
    /// the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Calls in flight at once, one run pair per value.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    #[arg(long, default_value_t = 3.0)]
    duration_s: f64,
    #[arg(long, default_value_t = 0.5)]
    warmup_s: f64,
    /// runtime.spin_before_park_us of both cores.
    #[arg(long, default_value_t = 0)]
    spin_before_park_us: u64,
    #[arg(long, default_value_t = 1024)]
    mesh_channel_capacity: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Side {
    calls_per_s: f64,
    cpu_us_per_call: f64,
}

#[derive(Debug, Serialize)]
struct Row {
    concurrency: usize,
    local: Side,
    forwarded: Side,
    hop_cpu_us: f64,
}

fn side(r: &HopRun) -> Result<Side, String> {
    let ticks = r.cpu_ticks.ok_or("cannot read /proc/self/stat")?;
    if r.calls == 0 {
        return Err("no call completed in the window".into());
    }
    Ok(Side {
        calls_per_s: r.calls as f64 / r.elapsed.as_secs_f64(),
        cpu_us_per_call: ticks_to_us(ticks) as f64 / r.calls as f64,
    })
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run_all(&args) {
        eprintln!("hop-bench: {e}");
        std::process::exit(1);
    }
}

fn run_all(args: &Args) -> Result<(), String> {
    let secs =
        |s: f64, what: &str| Duration::try_from_secs_f64(s).map_err(|e| format!("--{what}: {e}"));
    let (duration, warmup) = (
        secs(args.duration_s, "duration-s")?,
        secs(args.warmup_s, "warmup-s")?,
    );
    let (root, _owned) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("hop-bench.")
                .tempdir_in(".")
                .map_err(|e| format!("cannot create a directory here: {e}"))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let mut rows = Vec::new();
    for (i, &concurrency) in args.concurrency.iter().enumerate() {
        let mut measured = [None, None];
        for (j, forwarded) in [false, true].into_iter().enumerate() {
            let spec = HopSpec {
                forwarded,
                concurrency,
                warmup,
                duration,
                spin_before_park_us: args.spin_before_park_us,
                mesh_channel_capacity: args.mesh_channel_capacity,
            };
            let dir = root.join(format!("run-{i}-{j}"));
            let r = run(&dir, &spec, own_cpu_ticks)?;
            measured[j] = Some(side(&r)?);
        }
        let [Some(local), Some(forwarded)] = measured else {
            return Err("a run measured nothing".into());
        };
        rows.push(Row {
            concurrency,
            hop_cpu_us: forwarded.cpu_us_per_call - local.cpu_us_per_call,
            local,
            forwarded,
        });
    }
    if args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:>11}  {:>14}  {:>15}  {:>18}  {:>19}  {:>11}",
        "concurrency",
        "local calls/s",
        "local cpu us/op",
        "forwarded calls/s",
        "forwarded cpu us/op",
        "hop cpu us"
    );
    for r in &rows {
        println!(
            "{:>11}  {:>14.0}  {:>15.2}  {:>18.0}  {:>19.2}  {:>11.2}",
            r.concurrency,
            r.local.calls_per_s,
            r.local.cpu_us_per_call,
            r.forwarded.calls_per_s,
            r.forwarded.cpu_us_per_call,
            r.hop_cpu_us
        );
    }
    Ok(())
}
