//! Unit tests of a shard inside a glommio executor on a temp directory.

use super::*;
use crate::engine::{EngineError, PutClock, ShardOp, ShardReply};
use crate::model::VersionSet;
use crate::model::{KeyRef, VectorClock};
use crate::storage::disk::sim::{Fault, Op};
use bytes::Bytes;
use std::rc::Rc;
use std::time::Duration;

/// Runs `f` on a fresh glommio executor (io_uring) with a temp directory
/// on the project's disk (tmpfs has no O_DIRECT).
pub(crate) fn with_executor<F, Fut>(f: F)
where
    F: FnOnce(std::path::PathBuf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let dir = crate::storage::test_dir();
    let path = dir.path().to_path_buf();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 * 1024)
        .spawn(move || f(path))
        .unwrap()
        .join()
        .unwrap();
}

pub(crate) use crate::storage::disk::sim::with_sim_executor;

fn put(key: &KeyRef, v: Option<&'static str>, clock: PutClock) -> ShardOp {
    ShardOp::Put {
        key: key.clone(),
        value: v.map(|s| Bytes::from_static(s.as_bytes())),
        clock,
        origin: crate::model::PutOrigin::Client,
    }
}

#[test]
fn blind_writes_overwrite_and_stamp_node_id() {
    with_executor(|dir| async move {
        let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
            .await
            .unwrap();
        let key = KeyRef::new("t", "k");
        let ShardReply::Put { clock: c1, .. } =
            shard.execute(put(&key, Some("a"), PutClock::Blind)).await
        else {
            panic!()
        };
        let ShardReply::Put { clock: c2, .. } =
            shard.execute(put(&key, Some("b"), PutClock::Blind)).await
        else {
            panic!()
        };
        assert_eq!(c1.get("n1"), 1);
        assert_eq!(c2.get("n1"), 2);
        let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key }).await else {
            panic!()
        };
        assert_eq!(versions.len(), 1);
        assert_eq!(versions.versions()[0].value.as_deref(), Some(&b"b"[..]));
        assert_eq!(shard.stats().wal.records, 2);
    });
}

#[test]
fn puts_and_gets_are_counted_as_hot_keys_unless_disabled() {
    with_executor(|dir| async move {
        let hot = KeyRef::new("t", "hot");
        let cold = KeyRef::new("t", "cold");
        for (sub, tracked) in [("on", 4), ("off", 0)] {
            let dir = dir.join(sub);
            std::fs::create_dir_all(&dir).unwrap();
            let config = StorageConfig {
                hot_keys_tracked: tracked,
                ..StorageConfig::default()
            };
            let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
            shard.execute(put(&hot, Some("a"), PutClock::Blind)).await;
            shard.execute(put(&hot, None, PutClock::Blind)).await;
            for _ in 0..5 {
                shard.execute(ShardOp::Get { key: hot.clone() }).await;
            }
            shard.execute(put(&cold, Some("c"), PutClock::Blind)).await;
            let figures: Vec<_> = shard
                .stats()
                .hot_keys
                .into_iter()
                .map(|h| (h.storage_key, h.requests))
                .collect();
            if tracked == 0 {
                assert!(figures.is_empty(), "{figures:?}");
            } else {
                assert_eq!(
                    figures,
                    vec![
                        (hot.storage_key.to_vec(), 7),
                        (cold.storage_key.to_vec(), 1)
                    ]
                );
            }
            shard.close().await.unwrap();
        }
    });
}

#[test]
fn a_record_the_wal_cannot_encode_is_refused_before_anyone_sees_it() {
    with_executor(|dir| async move {
        let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
            .await
            .unwrap();
        let key = KeyRef::new("t", "k");
        // A counter past i64::MAX: the WAL format cannot carry it.
        let mut past = VectorClock::from_entries([("a".to_string(), i64::MAX)], 8).unwrap();
        past.increment("a");
        let reply = shard
            .execute(put(&key, Some("never"), PutClock::Given(past)))
            .await;
        let ShardReply::Failed(EngineError::Invalid { what }) = &reply else {
            panic!("{reply:?}")
        };
        assert!(what.contains("cannot be stored"), "{what}");
        // Not served, and the WAL still takes writes of every key.
        let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key: key.clone() }).await
        else {
            panic!()
        };
        assert!(versions.is_empty(), "{versions:?}");
        let reply = shard.execute(put(&key, Some("ok"), PutClock::Blind)).await;
        assert!(
            matches!(reply, ShardReply::Put { stored: true, .. }),
            "{reply:?}"
        );
        shard.close().await.unwrap();
    });
}

#[test]
fn client_puts_past_a_per_key_bound_change_nothing_and_repairs_are_counted() {
    with_executor(|dir| async move {
        let bounds = crate::model::KeyBounds {
            versions_per_key_max: 2,
            versions_per_key_hard_max: 3,
            ..Default::default()
        };
        let shard = Shard::open_sharded(&dir, 0, "n1".into(), &StorageConfig::default(), 1, bounds)
            .await
            .unwrap();
        let key = KeyRef::new("t", "k");
        let given = |id: &str| {
            PutClock::Given(VectorClock::from_entries([(id.to_string(), 1)], 8).unwrap())
        };
        for id in ["a", "b"] {
            let r = shard.execute(put(&key, Some("v"), given(id))).await;
            assert!(matches!(r, ShardReply::Put { stored: true, .. }), "{r:?}");
        }
        let r = shard.execute(put(&key, Some("v"), given("c"))).await;
        assert!(
            matches!(&r, ShardReply::Failed(EngineError::Invalid { what }) if what.contains("versions_per_key_max (2)")),
            "{r:?}"
        );
        let mut repair = put(&key, Some("r"), given("c"));
        if let ShardOp::Put { origin, .. } = &mut repair {
            *origin = crate::model::PutOrigin::Replica;
        }
        let r = shard.execute(repair).await;
        assert!(matches!(r, ShardReply::Put { stored: true, .. }), "{r:?}");
        let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key: key.clone() }).await
        else {
            panic!()
        };
        assert_eq!(versions.len(), 3);
        let stats = shard.stats();
        assert_eq!(stats.puts_refused_by_bounds, 1);
        assert_eq!(stats.replica_puts_past_bounds, 1);
        assert_eq!(stats.wal.records, 3, "the refused put reached no WAL");
        shard.close().await.unwrap();
    });
}

#[test]
fn blind_write_past_the_counter_limit_is_refused_and_the_shard_keeps_working() {
    with_executor(|dir| async move {
        let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
            .await
            .unwrap();
        let key = KeyRef::new("t", "k");
        let top = VectorClock::from_entries([("n1".to_string(), i64::MAX)], 8).unwrap();
        let reply = shard
            .execute(put(&key, Some("a"), PutClock::Given(top)))
            .await;
        assert!(
            matches!(reply, ShardReply::Put { stored: true, .. }),
            "{reply:?}"
        );
        let reply = shard.execute(put(&key, Some("b"), PutClock::Blind)).await;
        assert!(
            matches!(reply, ShardReply::Failed(EngineError::Invalid { .. })),
            "{reply:?}"
        );
        let other = KeyRef::new("t", "other");
        let reply = shard.execute(put(&other, Some("c"), PutClock::Blind)).await;
        assert!(
            matches!(reply, ShardReply::Put { stored: true, .. }),
            "{reply:?}"
        );
        shard.flush(Duration::from_secs(10)).await.unwrap();
    });
}

#[test]
fn given_clock_is_never_stamped() {
    with_executor(|dir| async move {
        let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
            .await
            .unwrap();
        let key = KeyRef::new("t", "k");
        let clock = VectorClock::from_entries([("c".to_string(), 4)], 8).unwrap();
        let reply = shard
            .execute(put(&key, None, PutClock::Given(clock.clone())))
            .await;
        let ShardReply::Put {
            stored,
            clock: answered,
        } = reply
        else {
            panic!()
        };
        assert!(stored);
        assert_eq!(answered, clock);
    });
}

#[test]
fn reopening_replays_the_wal() {
    with_executor(|dir| async move {
        let config = StorageConfig::default();
        let key = KeyRef::new("t", "k");
        {
            let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
            for v in ["a", "b", "c"] {
                shard.execute(put(&key, Some(v), PutClock::Blind)).await;
            }
            let other = KeyRef::new("t", "gone");
            shard.execute(put(&other, Some("x"), PutClock::Blind)).await;
            shard.execute(put(&other, None, PutClock::Blind)).await;
        }
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key }).await else {
            panic!()
        };
        assert_eq!(versions.len(), 1);
        assert_eq!(versions.versions()[0].value.as_deref(), Some(&b"c"[..]));
        assert_eq!(versions.merged_clock().get("n1"), 3);
        let gone = KeyRef::new("t", "gone");
        let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key: gone }).await else {
            panic!()
        };
        assert!(versions.visible().is_none());
        assert_eq!(shard.stats().wal.replayed_records, 5);
    });
}

fn small_config() -> StorageConfig {
    StorageConfig {
        wal_segment_bytes_max: 256 * 1024,
        ..StorageConfig::default()
    }
}

fn files_with_prefix(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn corrupt_table_block_answers_corrupted_never_data() {
    with_executor(|dir| async move {
        let key = KeyRef::new("t", "k");
        {
            let shard = Shard::open(&dir, 0, "n1".into(), &small_config())
                .await
                .unwrap();
            shard
                .execute(put(&key, Some("value"), PutClock::Blind))
                .await;
            shard.close().await.unwrap();
        }
        let tables = files_with_prefix(&dir, "sst-");
        assert_eq!(tables.len(), 1);
        // The first data block starts at offset 0; flip a payload byte.
        let mut raw = std::fs::read(&tables[0]).unwrap();
        raw[30] ^= 0x20;
        std::fs::write(&tables[0], raw).unwrap();
        let shard = Shard::open(&dir, 0, "n1".into(), &small_config())
            .await
            .unwrap();
        let reply = shard.execute(ShardOp::Get { key: key.clone() }).await;
        let ShardReply::Failed(e) = reply else {
            panic!("corruption served as data: {reply:?}")
        };
        assert!(e.is_corruption(), "{e}");
        // A write to the key needs its versions, so it fails the same way.
        let reply = shard.execute(put(&key, Some("x"), PutClock::Blind)).await;
        assert!(
            matches!(reply, ShardReply::Failed(ref e) if e.is_corruption()),
            "{reply:?}"
        );
    });
}

/// Writes keys k0..k{n-1}, stops the shard as a crash would, and returns
/// the WAL segment holding the records (the next one is a spare).
async fn write_keys_and_halt(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let shard = Shard::open(dir, 0, "n1".into(), &small_config())
        .await
        .unwrap();
    for i in 0..n {
        let key = KeyRef::new("t", &format!("k{i}"));
        shard.execute(put(&key, Some("v"), PutClock::Blind)).await;
    }
    shard.halt().await;
    files_with_prefix(dir, "wal-").swap_remove(0)
}

#[test]
fn wal_corruption_before_the_tail_stops_open_naming_file_and_offset() {
    with_executor(|dir| async move {
        let seg = &write_keys_and_halt(&dir, 5).await;
        let mut raw = std::fs::read(seg).unwrap();
        raw[4096 + 45] ^= 0x01; // inside the first batch's payload
        std::fs::write(seg, raw).unwrap();
        let Err(err) = Shard::open(&dir, 0, "n1".into(), &small_config()).await else {
            panic!("open succeeded over a corrupt WAL")
        };
        let text = err.to_string();
        assert!(err.is_corruption(), "{text}");
        assert!(
            text.contains(seg.file_name().unwrap().to_str().unwrap()),
            "{text}"
        );
        assert!(text.contains("4096"), "{text}");
        // The documented escape hatch skips the damaged segment's rest.
        let skip = StorageConfig {
            wal_replay_skip_corruption: true,
            ..small_config()
        };
        assert!(Shard::open(&dir, 0, "n1".into(), &skip).await.is_ok());
    });
}

#[test]
fn torn_wal_tail_is_truncated_and_earlier_writes_survive() {
    with_executor(|dir| async move {
        let seg = &write_keys_and_halt(&dir, 3).await;
        let mut raw = std::fs::read(seg).unwrap();
        // Zero the tail end of the last batch: a write cut short.
        let end = raw.iter().rposition(|b| *b != 0).unwrap();
        for b in &mut raw[end - 3..=end] {
            *b = 0;
        }
        std::fs::write(seg, raw).unwrap();
        let shard = Shard::open(&dir, 0, "n1".into(), &small_config())
            .await
            .unwrap();
        for (i, expect_found) in [(0, true), (1, true), (2, false)] {
            let key = KeyRef::new("t", &format!("k{i}"));
            let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key }).await else {
                panic!()
            };
            assert_eq!(versions.visible().is_some(), expect_found, "k{i}");
        }
    });
}

#[test]
fn flushed_tables_serve_reads_and_wal_is_released() {
    with_executor(|dir| async move {
        let config = StorageConfig {
            memtable_bytes_max: 64 * 1024,
            ..small_config()
        };
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        let big: &'static str = Box::leak("x".repeat(2000).into_boxed_str());
        for i in 0..200 {
            let key = KeyRef::new("t", &format!("k{i:03}"));
            shard.execute(put(&key, Some(big), PutClock::Blind)).await;
        }
        shard.flush(Duration::from_secs(10)).await.unwrap();
        let stats = shard.stats();
        assert!(stats.sstables >= 2, "{stats:?}");
        assert_eq!(stats.immutable_memtables, 0);
        // 200 keys in 2 KiB blocks: an index entry per block with its key,
        // and a filter fingerprint per key at least.
        assert!(stats.sstable_memory_bytes >= 200, "{stats:?}");
        for i in 0..200 {
            let key = KeyRef::new("t", &format!("k{i:03}"));
            let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key }).await else {
                panic!()
            };
            assert_eq!(versions.len(), 1, "k{i}");
            assert_eq!(
                versions.visible().unwrap().value.as_deref(),
                Some(big.as_bytes())
            );
        }
        // Only the segment written after the last rotation remains (and
        // the spare being prepared for the next switch).
        assert!(files_with_prefix(&dir, "wal-").len() <= 2);
        shard.close().await.unwrap();
        drop(shard);
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        assert_eq!(
            shard.stats().wal.replayed_records,
            0,
            "a clean shutdown leaves nothing to replay"
        );
    });
}

fn compacting_config() -> StorageConfig {
    let mut c = StorageConfig {
        memtable_bytes_max: 64 * 1024,
        ..small_config()
    };
    c.compaction.l0_trigger_tables = 2;
    c.compaction.level1_target_bytes = 128 * 1024;
    c.compaction.level_size_multiplier = 2;
    c.compaction.sstable_target_bytes = 64 * 1024;
    c.compaction.rate_mb_s = 0;
    c
}

async fn get(shard: &Shard, key: &KeyRef) -> VersionSet {
    let ShardReply::Get { versions } = shard.execute(ShardOp::Get { key: key.clone() }).await
    else {
        panic!()
    };
    versions
}

#[test]
fn compaction_moves_data_down_and_deletes_replaced_files() {
    with_executor(|dir| async move {
        let config = compacting_config();
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        let big: &'static str = Box::leak("y".repeat(1500).into_boxed_str());
        // Several rounds of overwrites of 300 keys: many flushes.
        for round in 0..4 {
            for i in 0..300 {
                let key = KeyRef::new("t", &format!("k{i:04}"));
                let v: &'static str = if round == 3 { big } else { "old" };
                shard.execute(put(&key, Some(v), PutClock::Blind)).await;
            }
        }
        shard.flush(Duration::from_secs(10)).await.unwrap();
        shard
            .compact_until_idle(Duration::from_secs(30))
            .await
            .unwrap();
        shard.check_levels().unwrap();
        let stats = shard.stats();
        assert!(stats.compaction.compactions >= 1, "{stats:?}");
        assert!(stats.levels[0].tables < 2, "{stats:?}");
        assert!(
            stats.levels[1..].iter().map(|l| l.tables).sum::<u64>() >= 1,
            "{stats:?}"
        );
        for i in 0..300 {
            let key = KeyRef::new("t", &format!("k{i:04}"));
            let versions = get(&shard, &key).await;
            assert_eq!(versions.len(), 1, "k{i}");
            assert_eq!(versions.merged_clock().get("n1"), 4, "k{i}");
            assert_eq!(
                versions.visible().unwrap().value.as_deref(),
                Some(big.as_bytes())
            );
        }
        // Only listed tables remain on disk once readers are gone.
        shard
            .compact_until_idle(Duration::from_secs(10))
            .await
            .unwrap();
        shard.graveyard.reap().await;
        let on_disk = files_with_prefix(&dir, "sst-").len() as u64;
        assert_eq!(on_disk, shard.stats().sstables);
        shard.close().await.unwrap();
        drop(shard);
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        shard.check_levels().unwrap();
        let key = KeyRef::new("t", "k0042");
        assert_eq!(get(&shard, &key).await.merged_clock().get("n1"), 4);
    });
}

#[test]
fn expired_tombstones_are_purged_at_the_last_level_holding_the_key() {
    with_executor(|dir| async move {
        let mut config = compacting_config();
        config.compaction.tombstone_grace_s = 0;
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        let keep = KeyRef::new("t", "keep");
        let gone = KeyRef::new("t", "gone");
        shard.execute(put(&keep, Some("v"), PutClock::Blind)).await;
        shard.execute(put(&gone, Some("v"), PutClock::Blind)).await;
        shard.flush(Duration::from_secs(10)).await.unwrap();
        shard.execute(put(&gone, None, PutClock::Blind)).await;
        shard.flush(Duration::from_secs(10)).await.unwrap();
        // Two L0 tables: the trigger merges them into L1, the last level
        // holding the keys, and the tombstone (older than 0 s) goes.
        glommio::timer::sleep(Duration::from_millis(5)).await;
        shard
            .compact_until_idle(Duration::from_secs(10))
            .await
            .unwrap();
        let stats = shard.stats();
        assert_eq!(stats.compaction.keys_purged, 1, "{stats:?}");
        assert!(get(&shard, &gone).await.is_empty());
        assert_eq!(get(&shard, &keep).await.len(), 1);
        shard.close().await.unwrap();
    });
}

#[test]
fn tombstones_within_grace_survive_compaction() {
    with_executor(|dir| async move {
        let config = compacting_config(); // 10 days of grace
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        let gone = KeyRef::new("t", "gone");
        shard.execute(put(&gone, Some("v"), PutClock::Blind)).await;
        shard.flush(Duration::from_secs(10)).await.unwrap();
        shard.execute(put(&gone, None, PutClock::Blind)).await;
        shard.flush(Duration::from_secs(10)).await.unwrap();
        shard
            .compact_until_idle(Duration::from_secs(10))
            .await
            .unwrap();
        let stats = shard.stats();
        assert!(stats.compaction.compactions >= 1, "{stats:?}");
        assert_eq!(stats.compaction.keys_purged, 0);
        let versions = get(&shard, &gone).await;
        assert_eq!(versions.len(), 1);
        assert!(versions.visible().is_none());
        assert_eq!(versions.merged_clock().get("n1"), 2);
    });
}

#[test]
fn cache_serves_table_reads_and_never_a_dominated_version() {
    with_executor(|dir| async move {
        let config = compacting_config();
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        let key = KeyRef::new("t", "hot");
        shard.execute(put(&key, Some("v1"), PutClock::Blind)).await;
        shard.flush(Duration::from_secs(10)).await.unwrap();
        for _ in 0..5 {
            assert_eq!(get(&shard, &key).await.len(), 1);
        }
        assert!(shard.stats().cache.hits >= 3, "{:?}", shard.stats().cache);
        // A newer write (memtable) dominates the cached version at once.
        shard.execute(put(&key, Some("v2"), PutClock::Blind)).await;
        let versions = get(&shard, &key).await;
        assert_eq!(versions.len(), 1);
        assert_eq!(
            versions.visible().unwrap().value.as_deref(),
            Some(&b"v2"[..])
        );
        // ...and after it is flushed (the cached entry is dropped).
        shard.flush(Duration::from_secs(10)).await.unwrap();
        shard
            .compact_until_idle(Duration::from_secs(10))
            .await
            .unwrap();
        for _ in 0..3 {
            let versions = get(&shard, &key).await;
            assert_eq!(versions.len(), 1);
            assert_eq!(
                versions.visible().unwrap().value.as_deref(),
                Some(&b"v2"[..])
            );
            assert_eq!(versions.merged_clock().get("n1"), 2);
        }
    });
}

#[test]
fn l0_past_the_stop_threshold_answers_memory_pressure() {
    with_executor(|dir| async move {
        let mut config = compacting_config();
        config.compaction.l0_trigger_tables = 2;
        config.flow_control.l0_slowdown_tables = 3;
        config.flow_control.l0_stop_tables = 4;
        config.write_stall_timeout_ms = 50;
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        // Hold compaction off so L0 grows.
        shard.stop_compaction().await;
        for i in 0..4 {
            let key = KeyRef::new("t", &format!("k{i}"));
            shard.execute(put(&key, Some("v"), PutClock::Blind)).await;
            shard.flush(Duration::from_secs(10)).await.unwrap();
        }
        assert_eq!(shard.l0_tables(), 4);
        let key = KeyRef::new("t", "late");
        let reply = shard.execute(put(&key, Some("v"), PutClock::Blind)).await;
        assert!(
            matches!(reply, ShardReply::Failed(EngineError::Overloaded { .. })),
            "{reply:?}"
        );
        assert!(get(&shard, &key).await.is_empty(), "nothing changed");
        let flow = shard.stats().flow;
        assert_eq!(flow.write_stalls, 1);
        assert!(flow.write_stall_micros >= 50_000, "{flow:?}");
    });
}

/// A compaction whose manifest rename happened but whose directory sync
/// failed: the node goes on, and whichever manifest a crash leaves (the new
/// one, or the old one if the rename did not reach the disk) opens with
/// every value.
fn manifest_sync_failure_during_compaction(old_manifest_comes_back: bool) {
    with_sim_executor(5, move |sim, dir| async move {
        let config = compacting_config(); // L0 trigger 2
        let key = |i: usize| KeyRef::new("t", &format!("k{i:03}"));
        let old_manifest;
        {
            let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
            // Two flushes store the manifest twice; the compaction they
            // trigger is the third store, and its directory sync fails.
            sim.fail(Some(Op::SyncRename), 2, 3, Fault::Errno(libc::EIO));
            for round in 0..2 {
                for i in 0..50 {
                    let v: &'static str = if round == 0 { "a" } else { "b" };
                    shard.execute(put(&key(i), Some(v), PutClock::Blind)).await;
                }
                shard.flush(Duration::from_secs(10)).await.unwrap();
            }
            // No await since the flush: the compaction has not stored yet.
            old_manifest = sim.contents(&dir.join("MANIFEST")).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while shard.stats().compaction.failures == 0 {
                assert!(std::time::Instant::now() < deadline, "no failed compaction");
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            sim.clear_faults();
            assert!(shard.stats().levels[1].tables > 0, "the edit is installed");
            for i in 0..50 {
                let versions = get(&shard, &key(i)).await;
                assert_eq!(
                    versions.visible().unwrap().value.as_deref(),
                    Some(&b"b"[..])
                );
            }
            shard.halt().await;
        }
        if old_manifest_comes_back {
            sim.set_contents(&dir.join("MANIFEST"), old_manifest);
        }
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        shard.check_levels().unwrap();
        for i in 0..50 {
            let versions = get(&shard, &key(i)).await;
            assert_eq!(versions.len(), 1, "k{i}");
            assert_eq!(
                versions.visible().unwrap().value.as_deref(),
                Some(&b"b"[..])
            );
        }
    });
}

#[test]
fn compaction_manifest_sync_failure_then_crash_with_the_new_manifest() {
    manifest_sync_failure_during_compaction(false);
}

#[test]
fn compaction_manifest_sync_failure_then_crash_with_the_old_manifest() {
    manifest_sync_failure_during_compaction(true);
}

#[test]
fn a_read_that_spans_a_rotation_and_its_flush_still_sees_the_flushed_write() {
    with_executor(|dir| async move {
        let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
            .await
            .unwrap();
        let key = KeyRef::new("t", "k");
        // The read's table step runs on a version with no table and no
        // memtable holding the key.
        let read = shard.table_versions(&key.storage_key).await.unwrap();
        // Meanwhile: a write, a rotation and the flush that moves the
        // write into a table the read never looked at.
        shard.execute(put(&key, Some("v"), PutClock::Blind)).await;
        shard.flush(Duration::from_secs(10)).await.unwrap();
        assert!(shard.tree.current().immutables().is_empty());
        assert!(shard.tree.active().is_empty());
        // The read's memtable step follows the versions installed since.
        let set = shard.reconcile(&key.storage_key, read);
        assert_eq!(set.versions().len(), 1, "{set:?}");
        assert_eq!(set.versions()[0].value.as_deref(), Some(&b"v"[..]));
        shard.close().await.unwrap();
    });
}

#[test]
fn range_pages_cover_a_tenant_range_in_key_order_across_memtable_and_tables() {
    use super::scan::ScanRange;
    use crate::engine::ops::ScanFilter;
    use crate::model::key::encode_storage_key as sk;
    use crate::model::{TokenRange, TokenRanges};
    with_executor(|dir| async move {
        let shard = Shard::open(&dir, 0, "n1".into(), &compacting_config())
            .await
            .unwrap();
        let mut expected = Vec::new();
        for i in 0..400 {
            let key = format!("k{i:04}");
            for tenant in ["a", "b"] {
                let k = KeyRef::new(tenant, &key);
                let ShardReply::Put { .. } =
                    shard.execute(put(&k, Some("v"), PutClock::Blind)).await
                else {
                    panic!()
                };
            }
            if i == 150 {
                shard.flush(Duration::from_secs(10)).await.unwrap();
            }
            if (100..300).contains(&i) {
                expected.push(sk("b", &key));
            }
        }
        // A tombstone stays a stored version: a scan returns it.
        let gone = KeyRef::new("b", "k0120");
        let ShardReply::Put { .. } = shard.execute(put(&gone, None, PutClock::Blind)).await else {
            panic!()
        };
        let mut start = sk("b", "k0100");
        let end = sk("b", "k0300");
        let mut seen = Vec::new();
        loop {
            let range = ScanRange {
                start: start.clone(),
                end: Some(end.clone()),
                entries_max: 7,
                bytes_max: usize::MAX,
                keys_examined_max: 1000,
            };
            let ShardReply::Scan(page) = shard
                .execute(ShardOp::Scan {
                    range,
                    filter: ScanFilter::All,
                })
                .await
            else {
                panic!()
            };
            for (k, versions) in &page.entries {
                if k == &gone.storage_key {
                    assert!(versions.iter().all(|v| v.is_tombstone()));
                }
                seen.push(k.clone());
            }
            match page.resume {
                Some(next) => start = next,
                None => break,
            }
        }
        assert_eq!(seen, expected);

        // A token filter keeps exactly the keys whose token is in range.
        let ranges = TokenRanges::new(vec![TokenRange::new(u64::MAX / 2, u64::MAX / 4)]);
        let range = ScanRange {
            start: Bytes::new(),
            end: None,
            entries_max: usize::MAX,
            bytes_max: usize::MAX,
            keys_examined_max: usize::MAX,
        };
        let ShardReply::Scan(page) = shard
            .execute(ShardOp::Scan {
                range,
                filter: ScanFilter::Tokens(std::sync::Arc::new(ranges.clone())),
            })
            .await
        else {
            panic!()
        };
        assert!(page.resume.is_none());
        let mut want = 0;
        for i in 0..400 {
            for tenant in ["a", "b"] {
                if ranges.contains(crate::model::ring_token(tenant, &format!("k{i:04}"))) {
                    want += 1;
                }
            }
        }
        assert_eq!(page.entries.len(), want);
        assert!(want > 100 && want < 700, "{want}");
    });
}

#[test]
fn an_applied_version_keeps_its_timestamp_and_loses_to_a_descendant() {
    with_executor(|dir| async move {
        let shard = Shard::open(&dir, 0, "n1".into(), &StorageConfig::default())
            .await
            .unwrap();
        let key = KeyRef::new("t", "k");
        let clock = |n: i64| VectorClock::from_entries([("src".to_string(), n)], 8).unwrap();
        let v2 = Version {
            clock: clock(2),
            timestamp_ms: 1234,
            value: Some(Bytes::from_static(b"new")),
        };
        let ShardReply::Applied {
            stored: 1,
            stale: 0,
        } = shard
            .execute(ShardOp::ApplyBatch {
                entries: vec![(key.clone(), v2)],
            })
            .await
        else {
            panic!()
        };
        let older = Version {
            clock: clock(1),
            timestamp_ms: 9999,
            value: None,
        };
        let ShardReply::Applied {
            stored: 0,
            stale: 1,
        } = shard
            .execute(ShardOp::ApplyBatch {
                entries: vec![(key.clone(), older)],
            })
            .await
        else {
            panic!()
        };
        let versions = get(&shard, &key).await;
        assert_eq!(versions.len(), 1);
        assert_eq!(versions.versions()[0].timestamp_ms, 1234);
        assert_eq!(versions.versions()[0].value.as_deref(), Some(&b"new"[..]));
    });
}

#[test]
fn cleanup_drops_exactly_the_keys_of_its_ranges_and_survives_a_restart() {
    use crate::engine::ops::ScanFilter;
    use crate::model::{TokenRange, TokenRanges};
    use std::sync::Arc;
    with_executor(|dir| async move {
        let config = compacting_config();
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        let keys: Vec<KeyRef> = (0..400)
            .map(|i| KeyRef::new("t", &format!("k{i}")))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let ShardReply::Put { .. } = shard.execute(put(k, Some("v"), PutClock::Blind)).await
            else {
                panic!()
            };
            if i == 200 {
                shard.flush(Duration::from_secs(10)).await.unwrap();
                shard
                    .compact_until_idle(Duration::from_secs(10))
                    .await
                    .unwrap();
            }
        }
        let gone = Arc::new(TokenRanges::new(vec![TokenRange::new(0, u64::MAX / 3)]));
        let everything = ScanFilter::All;
        let before = shard.digest(&everything).await.unwrap();
        assert_eq!(before.keys, 400);
        let in_range = shard
            .digest(&ScanFilter::Tokens(Arc::clone(&gone)))
            .await
            .unwrap();
        assert!(in_range.keys > 50, "{in_range:?}");
        let ShardReply::Cleaned(c) = shard
            .execute(ShardOp::Cleanup {
                ranges: Arc::clone(&gone),
            })
            .await
        else {
            panic!()
        };
        assert_eq!(c.keys, in_range.keys);
        let check = |shard: Rc<Shard>| {
            let gone = Arc::clone(&gone);
            let keys = keys.clone();
            async move {
                let d = shard
                    .digest(&ScanFilter::Tokens(gone.clone()))
                    .await
                    .unwrap();
                assert_eq!(d.keys, 0);
                let all = shard.digest(&ScanFilter::All).await.unwrap();
                assert_eq!(all.keys, before.keys - in_range.keys);
                assert_eq!(all.sum, before.sum.wrapping_sub(in_range.sum));
                for k in &keys {
                    let present = !get(&shard, k).await.is_empty();
                    assert_eq!(present, !gone.contains(k.token), "{k:?}");
                }
                shard.check_levels().unwrap();
            }
        };
        check(Rc::clone(&shard)).await;
        shard.close().await.unwrap();
        drop(shard);
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        check(Rc::clone(&shard)).await;
    });
}

/// A put whose WAL commit fails is answered with the error and never read,
/// on the running shard; what was there before stays readable.
#[test]
fn a_version_whose_wal_commit_failed_is_never_read() {
    with_sim_executor(7, |sim, dir| async move {
        let config = StorageConfig {
            wal_segment_bytes_max: 256 * 1024,
            ..StorageConfig::default()
        };
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        let key = KeyRef::new("t", "k");
        let reply = shard.execute(put(&key, Some("old"), PutClock::Blind)).await;
        assert!(matches!(reply, ShardReply::Put { .. }), "{reply:?}");
        sim.fail(Some(Op::Sync), 0, 1, Fault::Errno(libc::EIO));
        let reply = shard.execute(put(&key, Some("new"), PutClock::Blind)).await;
        assert!(matches!(reply, ShardReply::Failed(_)), "{reply:?}");
        let versions = get(&shard, &key).await;
        assert_eq!(versions.len(), 1, "{versions:?}");
        assert_eq!(
            versions.visible().unwrap().value.as_deref(),
            Some(&b"old"[..])
        );
        assert_eq!(shard.pending.len(), 0, "nothing is left pending");
        shard.halt().await;
    });
}

#[test]
fn a_requested_compaction_takes_levels_under_their_targets_down() {
    with_executor(|dir| async move {
        let config = StorageConfig::default();
        let shard = Shard::open(&dir, 0, "n1".into(), &config).await.unwrap();
        for round in 0..3 {
            for i in 0..100 {
                let key = KeyRef::new("t", &format!("k{i:04}"));
                let v = if round == 2 { "new" } else { "old" };
                shard.execute(put(&key, Some(v), PutClock::Blind)).await;
            }
            shard.flush(Duration::from_secs(10)).await.unwrap();
        }
        assert_eq!(shard.stats().levels[0].tables, 3, "under the L0 trigger");
        // The last level is never an input.
        let last = crate::config::LEVELS - 1;
        let reply = shard.execute(ShardOp::Compact { level: Some(last) }).await;
        assert!(
            matches!(reply, ShardReply::Failed(EngineError::Invalid { .. })),
            "{reply:?}"
        );
        // An empty level: nothing to do.
        let reply = shard.execute(ShardOp::Compact { level: Some(2) }).await;
        let ShardReply::Compacted(done) = reply else {
            panic!("{reply:?}");
        };
        assert_eq!(done, Compacted::default());
        // Every level: all of it ends in the last level, one merge for L0
        // then trivial moves.
        let reply = shard.execute(ShardOp::Compact { level: None }).await;
        let ShardReply::Compacted(done) = reply else {
            panic!("{reply:?}");
        };
        assert_eq!(done.merges, 1, "{done:?}");
        assert_eq!(done.trivial_moves as usize, last - 1, "{done:?}");
        shard.check_levels().unwrap();
        let stats = shard.stats();
        let tables: Vec<u64> = stats.levels.iter().map(|l| l.tables).collect();
        assert_eq!(tables.iter().sum::<u64>(), 1, "{tables:?}");
        assert_eq!(tables[last], 1, "{tables:?}");
        for i in 0..100 {
            let key = KeyRef::new("t", &format!("k{i:04}"));
            let versions = get(&shard, &key).await;
            assert_eq!(versions.len(), 1, "k{i}");
            assert_eq!(
                versions.visible().unwrap().value.as_deref(),
                Some(&b"new"[..])
            );
        }
        shard.close().await.unwrap();
    });
}
