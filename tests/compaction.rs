//! Leveled compaction, the read cache and their health metrics, end to end
//! on the real binary: a node configured with tiny levels takes several
//! rounds of overwrites and deletes, compacts them down below L0 by itself,
//! answers every key with its latest value (deleted keys not found), reports
//! the per-level, compaction, flow-control and cache figures, and answers
//! the same after a restart.

mod common;

use common::*;
use std::time::{Duration, Instant};

const TENANT: &str = "compact";
const KEYS: usize = 600;
const ROUNDS: usize = 4;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

const CONFIG: &str = r#"
[storage]
memtable_bytes_max = 131072

[storage.compaction]
l0_trigger_tables = 2
level1_target_bytes = 1048576
level_size_multiplier = 2
sstable_target_bytes = 262144
rate_mb_s = 0

[storage.cache]
capacity_bytes_total = 1048576
"#;

fn value(key: usize, round: usize) -> Vec<u8> {
    let mut v = format!("{key}:{round}:").into_bytes();
    v.resize(900 + key % 200, b'a' + (round % 26) as u8);
    v
}

/// Keys ending in 7 are deleted in the last round.
fn deleted(key: usize) -> bool {
    key % 10 == 7
}

fn shard_sum(m: &std::collections::BTreeMap<String, String>, name: &str) -> u64 {
    (0..2)
        .map(|s| metric_u64(m, &format!("shard.{s}.{name}")))
        .sum()
}

async fn check_all(c: &mut Client) {
    for k in 0..KEYS {
        let r = read(c, TENANT, &format!("k{k}")).await;
        if deleted(k) {
            assert_eq!(r.error_code, KEY_NOT_FOUND, "k{k}: {r:?}");
        } else {
            assert!(r.success, "k{k}: {r:?}");
            assert_eq!(r.value, value(k, ROUNDS - 1), "k{k}");
            assert_eq!(read_versions(&r).len(), 1, "k{k}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_compacts_below_l0_and_reads_stay_exact() {
    let data = tempfile::Builder::new()
        .prefix("compaction-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    let opts = NodeOptions {
        config: Some(CONFIG.to_string()),
        ..NodeOptions::default()
    };
    let mut node = Node::spawn_on_data_dir(&opts, free_port(), data.path());
    node.wait_ready().await.expect("ready");
    let mut c = node.client().await;
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let key = format!("k{k}");
            if round == ROUNDS - 1 && deleted(k) {
                let r = delete(&mut c, TENANT, &key, None).await;
                assert!(r.success, "{key}: {r:?}");
            } else {
                let r = write(&mut c, TENANT, &key, &value(k, round), None).await;
                assert!(r.success, "{key}: {r:?}");
            }
        }
    }
    // Compaction runs by itself; wait until it has nothing left to do.
    let started = Instant::now();
    let m = loop {
        let m = metrics(&mut c).await;
        let busy = (0..2).any(|s| m[&format!("shard.{s}.compaction_running")] == "true");
        let settled = !busy
            && shard_sum(&m, "compaction_pending_bytes") == 0
            && shard_sum(&m, "compactions") > 0
            && shard_sum(&m, "level.0.tables") < 4;
        if settled {
            break m;
        }
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "compaction did not settle: {m:?}\n{}",
            node.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let below: u64 = (1..5)
        .map(|l| shard_sum(&m, &format!("level.{l}.tables")))
        .sum();
    assert!(below > 0, "nothing below L0: {m:?}");
    assert!(shard_sum(&m, "compaction_bytes_written") > 0, "{m:?}");
    assert!(shard_sum(&m, "compaction_bytes_read") > 0, "{m:?}");
    assert_eq!(shard_sum(&m, "compaction_failures"), 0, "{m:?}");
    assert_eq!(metric_u64(&m, "shard.0.l0_stop_tables"), 20);
    assert_eq!(metric_u64(&m, "shard.1.l0_slowdown_tables"), 12);
    assert_eq!(metric_u64(&m, "shard.0.cache_capacity_bytes"), 524_288);
    // Present and numeric on every shard (metric_u64 panics otherwise).
    for name in [
        "write_stalls",
        "write_stall_us",
        "write_slowdowns",
        "compaction_cpu_us",
        "executor_cpu_us",
        "cache_evictions",
        "level.4.bytes",
    ] {
        shard_sum(&m, name);
    }
    check_all(&mut c).await;
    // A second pass is served partly from the cache.
    check_all(&mut c).await;
    let m = metrics(&mut c).await;
    assert!(shard_sum(&m, "cache_hits") > 0, "{m:?}");
    let ratio: f64 = m["shard.0.cache_hit_ratio"].parse().expect("ratio");
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");

    node.signal(libc::SIGTERM);
    let status = node.wait_exit(Duration::from_secs(20)).expect("exit");
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    let mut node = Node::spawn_on_data_dir(&opts, free_port(), data.path());
    node.wait_ready().await.expect("ready after restart");
    let mut c = node.client().await;
    check_all(&mut c).await;
    let m = metrics(&mut c).await;
    let below: u64 = (1..5)
        .map(|l| shard_sum(&m, &format!("level.{l}.tables")))
        .sum();
    assert!(below > 0, "levels lost over a restart: {m:?}");
}
