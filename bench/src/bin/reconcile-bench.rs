//! `reconcile-bench`: how long one key holds its core at the per-key bounds.
//!
//! Times, with the node's own model and wire code, the synchronous work a
//! shard and a core do for one request on a key with n siblings: a put
//! (reconcile the tables' set with the memtable's versions, apply the new
//! version, merge the clocks, check the per-key bounds) and a read (reconcile,
//! encode the ReadResponse as the node sends it). Each sibling carries a clock of
//! `--clock-ids` entries and a value of `--value-bytes`; `--shape shared`
//! (every sibling names the same ids, the widest a key gets within
//! `limits.key_clock_ids_max`) or `distinct` (each brings an id of its own,
//! which only Repair can do). Also times merging a key's sets read from two
//! tables (`merge_reconciled`, the read path when the key misses the cache)
//! and, for comparison, the quadratic rebuild from unreconciled versions
//! (`from_versions`) it replaced. Prints percentiles per n from an HDR
//! histogram, in microseconds.

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use pairdb_storage::model::{KeyBounds, PutKind, VectorClock, Version, VersionSet};
use pairdb_storage::server::read_answer;
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
    /// Clock shape of the siblings.
    #[arg(long, value_enum, default_value_t = Shape::Shared)]
    shape: Shape,
    /// Timed repetitions per figure.
    #[arg(long, default_value_t = 200)]
    rounds: u32,
}

/// How the siblings' clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Shape {
    /// Every sibling carries the same `clock_ids` ids; two counters make
    /// them pairwise concurrent. The worst case within
    /// `limits.key_clock_ids_max`.
    Shared,
    /// `clock_ids - 1` shared ids plus one of each sibling's own: the key's
    /// ids grow with its siblings, which only Repair can do (past the soft
    /// bounds, up to `versions_per_key_hard_max`).
    Distinct,
}

/// Sibling `i` of `n` pairwise concurrent ones, with the clock shape `shape`.
fn sibling(i: usize, n: usize, shape: Shape, clock_ids: usize, value_bytes: usize) -> Version {
    let entries: Vec<(String, i64)> = match shape {
        Shape::Shared => (0..clock_ids)
            .map(|j| {
                // The ids that differ sort last, so every comparison
                // walks the whole clock (the slowest case).
                let counter = match clock_ids - j {
                    1 => i as i64 + 1,
                    2 => (n - i) as i64 + 1,
                    _ => 1,
                };
                (format!("coordinator-{j:03}"), counter)
            })
            .collect(),
        Shape::Distinct => (0..clock_ids.saturating_sub(1))
            .map(|j| (format!("coordinator-{j:03}"), 1))
            .chain(std::iter::once((format!("sibling-{i:05}"), 1)))
            .collect(),
    };
    Version {
        clock: VectorClock::from_entries(entries, usize::MAX).unwrap_or_default(),
        timestamp_ms: 1_700_000_000_000 + i as i64,
        value: Some(Bytes::from(vec![(i % 251) as u8; value_bytes])),
    }
}

/// `n` stored siblings and an incoming version concurrent with each of them.
fn siblings(
    n: usize,
    shape: Shape,
    clock_ids: usize,
    value_bytes: usize,
) -> (Vec<Version>, Version) {
    let mut stored: Vec<Version> = (0..=n)
        .map(|i| sibling(i, n + 1, shape, clock_ids, value_bytes))
        .collect();
    let incoming = stored
        .pop()
        .unwrap_or_else(|| sibling(0, 1, shape, clock_ids, value_bytes));
    (stored, incoming)
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
        "clock shape {:?}, {} ids per sibling, value {} bytes, {} rounds; microseconds",
        args.shape, args.clock_ids, args.value_bytes, args.rounds
    );
    println!(
        "{:<22} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "operation", "n", "p50", "p95", "p99", "max"
    );
    for &n in &args.siblings {
        // The put: a new sibling concurrent with every stored one.
        let (stored, incoming) = siblings(n, args.shape, args.clock_ids, args.value_bytes);
        let new = || Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!());
        let (mut put, mut read, mut merge, mut rebuild) = (new(), new(), new(), new());
        for _ in 0..args.rounds {
            let table_set = stored.clone();
            let v = incoming.clone();
            time_us(&mut put, || {
                let mut set = VersionSet::from_reconciled(table_set);
                set.apply(v);
                let merged = set.merged_clock();
                let verdict = bounds.check(&set, &merged, 16, PutKind::Client { ids_before: 0 });
                let _ = std::hint::black_box((verdict, merged));
            });
            let table_set = stored.clone();
            time_us(&mut read, || {
                let set = VersionSet::from_reconciled(table_set);
                let frame = read_answer::encode("tenant", "key-0000000001", &set);
                std::hint::black_box(frame.into_chunks());
            });
            // A key whose siblings span two tables (and miss the cache):
            // what the read path merges, and the quadratic rebuild it
            // replaced.
            let half = stored.len() / 2;
            let tables = vec![stored[..half].to_vec(), stored[half..].to_vec()];
            time_us(&mut merge, || {
                std::hint::black_box(VersionSet::merge_reconciled(tables));
            });
            let table_set = stored.clone();
            time_us(&mut rebuild, || {
                std::hint::black_box(VersionSet::from_versions(table_set));
            });
        }
        row("put (reconcile+bounds)", n, &put);
        row("read (reconcile+encode)", n, &read);
        row("merge of 2 tables' sets", n, &merge);
        row("from_versions rebuild", n, &rebuild);
    }
}
