//! A shard on a full disk (simulated): writes answer DISK_FULL while reads
//! go on, writing resumes by itself once space returns, a shard opens on a
//! full disk, closes without waiting for space, and every acknowledged
//! write survives.

use super::tests::with_sim_executor;
use super::*;
use crate::engine::{EngineError, PutClock, ShardOp, ShardReply};
use crate::model::{KeyRef, PutOrigin};
use crate::storage::disk::sim::SimDisk;
use crate::storage::wal::writer::WalState;
use bytes::Bytes;
use std::path::Path;
use std::time::{Duration, Instant};

fn config() -> StorageConfig {
    StorageConfig {
        wal_segment_bytes_max: 256 * 1024,
        memtable_bytes_max: 64 * 1024,
        wal_bytes_per_memtable_max: 128 * 1024,
        write_stall_timeout_ms: 200,
        ..StorageConfig::default()
    }
}

fn key(i: usize) -> KeyRef {
    KeyRef::new("t", &format!("key-{i:05}"))
}

fn value(i: usize) -> Bytes {
    Bytes::from(format!("{i:05}").repeat(200))
}

async fn write(shard: &Shard, i: usize) -> ShardReply {
    shard
        .execute(ShardOp::Put {
            key: key(i),
            value: Some(value(i)),
            clock: PutClock::Blind,
            origin: PutOrigin::Client,
        })
        .await
}

fn is_disk_full(reply: &ShardReply) -> bool {
    matches!(reply, ShardReply::Failed(EngineError::DiskFull { .. }))
}

async fn read(shard: &Shard, i: usize) -> Option<Bytes> {
    match shard.execute(ShardOp::Get { key: key(i) }).await {
        ShardReply::Get { versions } => versions.visible().and_then(|v| v.value.clone()),
        other => panic!("read of key {i}: {other:?}"),
    }
}

/// Bytes the simulated disk holds now.
fn used_bytes(sim: &SimDisk) -> u64 {
    sim.set_capacity(None);
    let s = crate::storage::disk::space(Path::new("/sim")).unwrap();
    s.total_bytes - s.free_bytes
}

/// Writes keys from `from` until one is refused with DISK_FULL; returns
/// the acknowledged keys.
async fn write_until_full(shard: &Shard, from: usize) -> Vec<usize> {
    let mut acked = Vec::new();
    for i in from..from + 20_000 {
        let reply = write(shard, i).await;
        if is_disk_full(&reply) {
            return acked;
        }
        assert!(
            matches!(reply, ShardReply::Put { .. }),
            "key {i}: {reply:?}"
        );
        acked.push(i);
    }
    panic!("the disk never filled up");
}

/// Retries a write until it is accepted; panics after `max`.
async fn write_once_space_returns(shard: &Shard, i: usize, max: Duration) {
    let deadline = Instant::now() + max;
    loop {
        let reply = write(shard, i).await;
        if matches!(reply, ShardReply::Put { .. }) {
            return;
        }
        assert!(is_disk_full(&reply), "key {i}: {reply:?}");
        assert!(
            Instant::now() < deadline,
            "writes did not resume in {max:?}"
        );
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_all_there(shard: &Shard, acked: &[usize]) {
    for &i in acked {
        assert_eq!(read(shard, i).await, Some(value(i)), "key {i}");
    }
}

#[test]
fn writes_wait_for_space_while_reads_go_on_and_resume_by_themselves() {
    with_sim_executor(11, |sim, dir| async move {
        sim.set_capacity(Some(2 * 1024 * 1024));
        let shard = Shard::open(&dir, 0, "n1".into(), &config()).await.unwrap();
        let mut acked = write_until_full(&shard, 0).await;
        assert!(acked.len() > 100, "only {} writes before full", acked.len());
        // Refused at once from now on, with nothing changed; reads go on.
        assert!(is_disk_full(&write(&shard, 999_999).await));
        assert_eq!(read(&shard, 999_999).await, None);
        assert_all_there(&shard, &acked).await;
        let stats = shard.stats();
        assert!(
            stats.write_state == "disk_full" || stats.flush_disk_full,
            "{stats:?}"
        );
        // Space returns: nobody touches the shard, writes resume.
        sim.set_capacity(None);
        write_once_space_returns(&shard, 30_000, Duration::from_secs(20)).await;
        acked.push(30_000);
        assert_eq!(shard.wal.state(), WalState::Writing);
        for i in 30_001..30_200 {
            assert!(matches!(write(&shard, i).await, ShardReply::Put { .. }));
            acked.push(i);
        }
        assert!(shard.stats().wal.disk_full_events >= 1);
        shard.halt().await;
        let shard = Shard::open(&dir, 0, "n1".into(), &config()).await.unwrap();
        assert_all_there(&shard, &acked).await;
        shard.halt().await;
    });
}

#[test]
fn a_shard_opens_on_a_full_disk_serves_reads_and_closes_without_waiting() {
    with_sim_executor(12, |sim, dir| async move {
        let shard = Shard::open(&dir, 0, "n1".into(), &config()).await.unwrap();
        let mut acked = Vec::new();
        for i in 0..50 {
            assert!(matches!(write(&shard, i).await, ShardReply::Put { .. }));
            acked.push(i);
        }
        shard.halt().await;
        // Full to the last block: not even a WAL segment fits.
        let used = used_bytes(&sim);
        sim.set_capacity(Some(used));
        let shard = Shard::open(&dir, 0, "n1".into(), &config()).await.unwrap();
        assert_eq!(shard.wal.state(), WalState::DiskFull);
        assert_all_there(&shard, &acked).await;
        assert!(is_disk_full(&write(&shard, 100).await));
        // A clean shutdown does not wait for space that never comes: what
        // is not flushed stays in the WAL.
        let started = Instant::now();
        assert!(shard.close().await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "close took {:?}",
            started.elapsed()
        );
        // Open again, still full, then space returns.
        let shard = Shard::open(&dir, 0, "n1".into(), &config()).await.unwrap();
        assert_all_there(&shard, &acked).await;
        sim.set_capacity(None);
        write_once_space_returns(&shard, 100, Duration::from_secs(20)).await;
        acked.push(100);
        shard.close().await.unwrap();
        let shard = Shard::open(&dir, 0, "n1".into(), &config()).await.unwrap();
        assert_all_there(&shard, &acked).await;
        assert_eq!(shard.recovery.records, 0, "a clean close flushed all");
        shard.halt().await;
    });
}

#[test]
fn a_new_wal_segment_leaves_the_flush_reserve_free() {
    with_sim_executor(13, |sim, dir| async move {
        let c = config();
        // Room for the first segment but one block short of it and the
        // reserve (opening first writes the 4 KiB SENTINEL file).
        let used = used_bytes(&sim);
        let reserve = crate::storage::space::flush_reserve_bytes(&c, 1);
        let sentinel = 4096;
        sim.set_capacity(Some(
            used + sentinel + c.wal_segment_bytes_max + reserve - 4096,
        ));
        let shard = Shard::open(&dir, 0, "n1".into(), &c).await.unwrap();
        assert_eq!(shard.wal.state(), WalState::DiskFull);
        let reply = write(&shard, 1).await;
        let ShardReply::Failed(EngineError::DiskFull { what }) = &reply else {
            panic!("{reply:?}");
        };
        assert!(what.contains("free for flushes"), "{what}");
        shard.halt().await;
    });
}

#[test]
fn a_compaction_waits_rather_than_take_the_flush_reserve() {
    with_sim_executor(14, |sim, dir| async move {
        let mut c = config();
        // Four level-0 tables, no compaction yet.
        c.compaction.l0_trigger_tables = 100;
        let shard = Shard::open(&dir, 0, "n1".into(), &c).await.unwrap();
        let mut acked = Vec::new();
        for round in 0..4 {
            for i in round * 20..round * 20 + 20 {
                assert!(matches!(write(&shard, i).await, ShardReply::Put { .. }));
                acked.push(i);
            }
            shard.flush(Duration::from_secs(10)).await.unwrap();
        }
        shard.close().await.unwrap();
        // Exactly the reserve free (plus the SENTINEL's block): any merge
        // would eat into it.
        let reserve = crate::storage::space::flush_reserve_bytes(&c, 1);
        let used = used_bytes(&sim);
        sim.set_capacity(Some(used + reserve));
        c.compaction.l0_trigger_tables = 2;
        let shard = Shard::open(&dir, 0, "n1".into(), &c).await.unwrap();
        glommio::timer::sleep(Duration::from_millis(300)).await;
        let stats = shard.stats();
        assert!(stats.compaction_disk_full, "{stats:?}");
        assert_eq!(stats.levels[0].tables, 4, "nothing merged");
        assert_all_there(&shard, &acked).await;
        // Space returns: the compactor's retry merges level 0.
        sim.set_capacity(None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while shard.stats().levels[0].tables >= 2 || shard.stats().compaction_disk_full {
            assert!(Instant::now() < deadline, "{:?}", shard.stats());
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
        assert_all_there(&shard, &acked).await;
        shard.halt().await;
    });
}

#[test]
fn a_requested_compaction_keeps_the_flush_reserve_too() {
    with_sim_executor(15, |sim, dir| async move {
        let c = config();
        let shard = Shard::open(&dir, 0, "n1".into(), &c).await.unwrap();
        let mut acked = Vec::new();
        for round in 0..2 {
            for i in round * 20..round * 20 + 20 {
                assert!(matches!(write(&shard, i).await, ShardReply::Put { .. }));
                acked.push(i);
            }
            shard.flush(Duration::from_secs(10)).await.unwrap();
        }
        assert_eq!(shard.stats().levels[0].tables, 2);
        let reserve = crate::storage::space::flush_reserve_bytes(&c, 1);
        let used = used_bytes(&sim);
        sim.set_capacity(Some(used + reserve));
        let reply = shard.execute(ShardOp::Compact { level: Some(0) }).await;
        assert!(is_disk_full(&reply), "{reply:?}");
        assert_eq!(shard.stats().levels[0].tables, 2, "nothing merged");
        assert_all_there(&shard, &acked).await;
        sim.set_capacity(None);
        let reply = shard.execute(ShardOp::Compact { level: Some(0) }).await;
        let ShardReply::Compacted(done) = reply else {
            panic!("{reply:?}");
        };
        assert_eq!(done.merges, 1, "{done:?}");
        assert_eq!(shard.stats().levels[0].tables, 0);
        assert_all_there(&shard, &acked).await;
        shard.halt().await;
    });
}
