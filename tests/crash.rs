//! Crash consistency: acknowledged writes survive `kill -9`, whether the node
//! is only logging and flushing, or compacting at the moment it dies.
//!
//! One node (2 shards) runs on a data directory on a real disk (under
//! `CARGO_TARGET_TMPDIR`; tmpfs has no O_DIRECT). Sixteen writer tasks, each
//! on its own HTTP/2 connection, issue blind writes (small and 4-64 KiB
//! values) and blind deletes to 50 keys of their own. Every writer remembers,
//! per key, the last acknowledged outcome with its `updated_vector_clock` and
//! the attempts sent after it that were never acknowledged. While the writers
//! run, the node gets SIGKILL after a random delay; it is restarted on the
//! same data directory and every key is read back:
//!
//! - a value must be the last acknowledged write of that key or one of its
//!   later unacknowledged attempts, byte for byte, as a single version;
//! - a key last acknowledged as deleted reads KEY_NOT_FOUND unless a later
//!   unacknowledged write to it is visible (and vice versa: KEY_NOT_FOUND for
//!   a key acknowledged as written needs a later unacknowledged delete);
//! - the read clock descends the last acknowledged clock (and equals it when
//!   the acknowledged value itself is read back).
//!
//! What a read shows after a restart is recovered state, so it becomes the
//! key's baseline for the next cycle. The cycles (5, or `PAIRDB_CRASH_CYCLES`)
//! keep the keys and their state; a final round ends with SIGTERM (exit 0)
//! instead and is checked the same way. `PAIRDB_CRASH_DURATION_S=N` bounds
//! the run by time: no kill cycle starts once N seconds have passed since the
//! test began (at least one always runs); without `PAIRDB_CRASH_CYCLES` the
//! cycles then go on until that time, with it the run stops at whichever
//! comes first. The final SIGTERM round follows either way. The RNG seed is
//! printed; set `PAIRDB_CRASH_SEED` to repeat a run's choices (timing still
//! varies).
//!
//! The second test runs the same cycles on a node configured to compact all
//! the time (256 KiB memtables, L0 trigger 2, 1 MiB L1, compaction limited to
//! 4 MB/s so each merge lasts long enough to be killed in the middle). Just
//! before each kill it samples `shard.N.compaction_running`; at least one
//! kill must land during a compaction, and compactions must have moved data
//! below L0. Writers answered MEMORY_PRESSURE (flow control) back off and
//! retry, counting the attempt as unacknowledged.
//!
//! This file holds the test's parameters and the kill/restart/verify cycles;
//! its parts live in `tests/crash/`: `model.rs` (what each key may hold),
//! `workload.rs` (the writers and the write phase), `verify.rs` (reading
//! every key back against the model) and `probes.rs` (starting the node on
//! its data directory, the figures read from HealthCheck).

mod common;
#[path = "crash/model.rs"]
mod model;
#[path = "crash/probes.rs"]
mod probes;
#[path = "crash/verify.rs"]
mod verify;
#[path = "crash/workload.rs"]
mod workload;

use common::*;
use model::{KeyModel, Writer};
use probes::{replayed_records, start_on, tables_below_l0};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use verify::{assert_clean, verify_all};
use workload::write_phase;

const TENANT: &str = "crash";
const SHARDS: usize = 2;
const WRITERS: usize = 16;
const KEYS_PER_WRITER: usize = 50;
const DEFAULT_CYCLES: usize = 5;
/// Acknowledged writes a cycle waits for before its kill timer starts, so
/// every cycle kills a node that is really taking writes.
const ACKS_BEFORE_KILL: u64 = 32;
/// Kill delay range after those first acknowledgements (milliseconds).
const KILL_DELAY_MS: (u64, u64) = (200, 1500);
/// Generous limits for a noisy 2-core box.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const FIRST_ACKS_TIMEOUT: Duration = Duration::from_secs(30);
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A number from the environment variable `name`, if it is set.
fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
    )
}

/// A node configured to compact constantly (see the module doc).
const COMPACTING_CONFIG: &str = r#"
[storage]
memtable_bytes_max = 262144

[storage.compaction]
l0_trigger_tables = 2
level1_target_bytes = 1048576
level_size_multiplier = 4
sstable_target_bytes = 262144
rate_mb_s = 4

[storage.flow_control]
l0_slowdown_tables = 8
l0_stop_tables = 16
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    run_cycles(None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_during_compaction() {
    run_cycles(Some(COMPACTING_CONFIG.to_string()), true).await;
}

/// The kill/restart/verify cycles on a node started with `config`; with
/// `expect_compaction`, some kill must land during a compaction.
async fn run_cycles(config: Option<String>, expect_compaction: bool) {
    let test_started = Instant::now();
    let seed = env_u64("PAIRDB_CRASH_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let duration = env_u64("PAIRDB_CRASH_DURATION_S").map(Duration::from_secs);
    let cycles = match (env_u64("PAIRDB_CRASH_CYCLES"), duration) {
        (Some(n), _) => n.max(1) as usize,
        (None, Some(_)) => usize::MAX,
        (None, None) => DEFAULT_CYCLES,
    };
    let budget = match duration {
        Some(d) => format!(", until {d:?} have passed"),
        None => String::new(),
    };
    let count = match cycles {
        usize::MAX => "kill -9 cycles".to_string(),
        n => format!("up to {n} kill -9 cycles"),
    };
    println!("crash test: seed {seed} (PAIRDB_CRASH_SEED={seed} repeats it), {count}{budget}");
    let mut rng = fastrand::Rng::with_seed(seed);

    let base = tempfile::Builder::new()
        .prefix("crash-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under CARGO_TARGET_TMPDIR");
    let data_dir = base.path().join("data");
    let opts = NodeOptions {
        shards: SHARDS,
        node_id: "node-crash".into(),
        config,
    };
    let mut node = start_on(&opts, &data_dir, free_port(), "first start").await;
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|id| Writer {
            id,
            next_seq: 0,
            keys: vec![KeyModel::default(); KEYS_PER_WRITER],
        })
        .collect();

    let mut total_acks = 0u64;
    let mut total_checked = 0usize;
    let mut replay_seen = 0u64;
    let mut kills_during_compaction = 0usize;
    let mut kills = 0usize;
    for cycle in 1.. {
        // At least one kill; then no new one once the count or the
        // duration is reached: the final round ends with SIGTERM.
        let out_of_time = duration.is_some_and(|d| test_started.elapsed() >= d);
        let last = kills >= cycles || (kills > 0 && out_of_time);
        let (label, signal) = if last {
            ("final SIGTERM round".to_string(), libc::SIGTERM)
        } else if cycles == usize::MAX {
            (format!("kill -9 cycle {cycle}"), libc::SIGKILL)
        } else {
            (format!("kill -9 cycle {cycle}/{cycles}"), libc::SIGKILL)
        };
        let delay = Duration::from_millis(rng.u64(KILL_DELAY_MS.0..=KILL_DELAY_MS.1));
        println!("{label}: signal {delay:?} after the first {ACKS_BEFORE_KILL} acks");
        let (back, acks, anomalies, compacting) =
            write_phase(&mut node, writers, seed, cycle, delay, signal).await;
        total_acks += acks;
        if compacting && !last {
            kills_during_compaction += 1;
        }
        let port = node.addr.port();
        drop(node);
        node = start_on(&opts, &data_dir, port, &format!("{label}: restart")).await;
        let replayed = replayed_records(&node).await;
        replay_seen = replay_seen.max(replayed);
        let (checked_writers, v) = verify_all(&node, back, &label).await;
        writers = checked_writers;
        println!(
            "{label}: replayed {replayed} WAL records; checked {} keys ({} with an acknowledged \
             state, {} found, {} not found, {} showing an unacknowledged attempt), {} wrong",
            v.checked,
            v.with_acked_state,
            v.found,
            v.not_found,
            v.unacked_visible,
            v.failures.len()
        );
        assert_clean(&label, seed, &v, &anomalies, &node);
        assert!(
            v.checked > 0 && v.with_acked_state > 0,
            "{label}: nothing checked"
        );
        total_checked += v.checked;
        if last {
            break;
        }
        kills += 1;
    }

    assert!(total_acks > 0 && total_checked > 0);
    if expect_compaction {
        let below = tables_below_l0(&node).await;
        println!(
            "{kills_during_compaction} kills landed during a compaction; {below} tables below L0"
        );
        assert!(
            kills_during_compaction > 0,
            "no kill landed during a compaction (seed {seed})"
        );
        assert!(
            below > 0,
            "compaction never moved data below L0 (seed {seed})"
        );
    }
    assert!(
        replay_seen > 0,
        "shard.N.wal_replayed_records stayed 0 after every restart (seed {seed})"
    );
    node.signal(libc::SIGTERM);
    let status = node
        .wait_exit_async(EXIT_TIMEOUT)
        .await
        .expect("node exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", node.stderr());
    println!(
        "crash test done in {:?}: seed {seed}, {kills} kill -9 cycles, {total_acks} acknowledged \
         writes, {total_checked} key checks, up to {replay_seen} WAL records replayed",
        test_started.elapsed()
    );
}
