//! `reconcile-bench`: how long one key holds its core at the per-key bounds.
//!
//! Times, with the node's own model and wire code, the synchronous work a
//! shard and a core do for one request on a key with n siblings: a put
//! (reconcile the tables' set with the memtable's versions, apply the new
//! version, merge the clocks, check the per-key bounds) and a read (reconcile,
//! build the ReadResponse, encode it). Each sibling carries a clock of
//! `--clock-ids` entries (ids shared by all siblings plus one of its own, the
//! shape a key reaches at `limits.key_clock_ids_max`) and a value of
//! `--value-bytes`. Also times the former quadratic rebuild of a set
//! (`from_versions`) for comparison. Prints percentiles per n from an HDR
//! histogram, in microseconds.

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use pairdb_storage::model::{KeyBounds, PutOrigin, VectorClock, Version, VersionSet};
use pairdb_storage::server::convert::read_response;
use prost::Message;
use std::time::Instant;

#[derive(Debug, Parser)]
#[command(name = "reconcile-bench")]
struct Args {
    /// Sibling counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50,100,400,1000")]
    siblings: Vec<usize>,
    /// Entries of each sibling's clock.
    #[arg(long, default_value_t = 62)]
    clock_ids: usize,
    /// Bytes of each sibling's value.
    #[arg(long, default_value_t = 64 * 1024)]
    value_bytes: usize,
    /// Timed repetitions per figure.
    #[arg(long, default_value_t = 200)]
    rounds: u32,
}

/// `n` pairwise concurrent versions: `clock_ids - 1` shared ids with
/// counter 1, and one id of its own.
fn siblings(n: usize, clock_ids: usize, value_bytes: usize) -> Vec<Version> {
    (0..n)
        .map(|i| {
            let shared =
                (0..clock_ids.saturating_sub(1)).map(|j| (format!("coordinator-{j:03}"), 1));
            let own = std::iter::once((format!("sibling-{i:05}"), 1));
            Version {
                clock: VectorClock::from_entries(shared.chain(own), usize::MAX).unwrap_or_default(),
                timestamp_ms: 1_700_000_000_000 + i as i64,
                value: Some(Bytes::from(vec![(i % 251) as u8; value_bytes])),
            }
        })
        .collect()
}

fn time_us(h: &mut Histogram<u64>, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    let _ = h.record(start.elapsed().as_nanos().div_ceil(1000).max(1) as u64);
}

fn row(name: &str, n: usize, h: &Histogram<u64>) {
    println!(
        "{name:<22} {n:>6} {:>9} {:>9} {:>9} {:>9}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.95),
        h.value_at_quantile(0.99),
        h.max()
    );
}

fn main() {
    let args = Args::parse();
    let bounds = KeyBounds {
        versions_per_key_max: usize::MAX / 2,
        versions_per_key_hard_max: usize::MAX / 2,
        key_clock_ids_max: usize::MAX / 2,
        clock_entries_max: usize::MAX / 2,
        answer_bytes_max: usize::MAX / 2,
    };
    println!(
        "clock ids per sibling {}, value {} bytes, {} rounds; microseconds",
        args.clock_ids, args.value_bytes, args.rounds
    );
    println!(
        "{:<22} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "operation", "n", "p50", "p95", "p99", "max"
    );
    for &n in &args.siblings {
        let stored = siblings(n, args.clock_ids, args.value_bytes);
        // The put: a new sibling concurrent with every stored one.
        let incoming = siblings(n + 1, args.clock_ids, args.value_bytes)
            .pop()
            .unwrap_or_else(|| stored[0].clone());
        let new = || Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!());
        let (mut put, mut read, mut rebuild) = (new(), new(), new());
        for _ in 0..args.rounds {
            let table_set = stored.clone();
            let v = incoming.clone();
            time_us(&mut put, || {
                let mut set = VersionSet::from_reconciled(table_set);
                set.apply(v);
                let merged = set.merged_clock();
                let verdict = bounds.check(&set, &merged, 16, PutOrigin::Client);
                let _ = std::hint::black_box((verdict, merged));
            });
            let table_set = stored.clone();
            time_us(&mut read, || {
                let set = VersionSet::from_reconciled(table_set);
                let answer = read_response("tenant", "key-0000000001", &set);
                std::hint::black_box(answer.encode_to_vec());
            });
            if n <= 1000 {
                let table_set = stored.clone();
                time_us(&mut rebuild, || {
                    std::hint::black_box(VersionSet::from_versions(table_set));
                });
            }
        }
        row("put (reconcile+bounds)", n, &put);
        row("read (reconcile+encode)", n, &read);
        row("from_versions rebuild", n, &rebuild);
    }
}
