//! The WAL writer on a simulated disk whose segment switch fails.
//!
//! Out of space at the switch: records before it stay acknowledged, records
//! after it fail with a disk-full error, the rotation is still answered,
//! and writing resumes once space returns. A new segment whose creation
//! handle cannot be closed: the segment is removed; the switch falls back
//! from the spare prepared ahead to a segment created on the spot, and when
//! that fails too the WAL refuses writes until restart, with only the
//! acknowledged records on disk.

use super::format::Record;
use super::replay;
use super::writer::{segment_file_name, WalStart, WalState, WalWriter};
use crate::config::StorageConfig;
use crate::model::{VectorClock, Version};
use crate::storage::disk::sim::{Fault, Op};
use crate::storage::disk::{self, sim};
use crate::storage::error::StorageError;
use bytes::Bytes;
use std::time::{Duration, Instant};

const SEGMENT_BYTES: u64 = 256 * 1024;

fn record(i: u8) -> Record {
    Record::Put {
        key: Bytes::from(vec![0, 1, b't', i]),
        version: Version {
            clock: VectorClock::new(),
            timestamp_ms: i64::from(i),
            value: Some(Bytes::from(vec![i; 100])),
        },
    }
}

fn segment_config() -> StorageConfig {
    StorageConfig {
        wal_segment_bytes_max: SEGMENT_BYTES,
        ..StorageConfig::default()
    }
}

async fn start_wal(dir: &std::path::Path, config: &StorageConfig) -> WalWriter {
    let start = WalStart {
        next_segment_no: 1,
        next_seq: 1,
    };
    WalWriter::start(dir.to_path_buf(), 0, config, start, 0)
        .await
        .unwrap()
}

/// One batch of a record, a rotation and a record. The first record must
/// be durable; answers the second's outcome and what the rotation answered.
async fn record_switch_record(wal: &WalWriter) -> (Result<(), StorageError>, u64) {
    let first = wal.submit(record(1)).unwrap();
    let rotation = wal.rotate();
    let second = wal.submit(record(2)).unwrap();
    assert!(first.wait().await.is_ok(), "durable before the switch");
    let second = second.wait().await;
    (second, rotation.await.unwrap())
}

/// The timestamps of the records replay finds in `dir`.
async fn replayed(dir: &std::path::Path, config: &StorageConfig) -> Vec<i64> {
    let mut seen = Vec::new();
    replay::replay_dir(dir, 0, config, |_, v| seen.push(v.timestamp_ms))
        .await
        .unwrap();
    seen
}

/// Segment 1 is made at start; the next `failed_closes` closes of a
/// segment's creation handle then fail with EIO. The spare (segment 2,
/// prepared in the background) meets the first; a segment made on the spot
/// at the switch meets the second. Runs a record, a rotation and a record,
/// and hands over the two tickets' outcomes and what the rotation answered.
fn switch_with_failed_closes(
    seed: u64,
    failed_closes: u64,
    then: impl FnOnce(&WalWriter, Result<(), String>, u64) + Send + 'static,
) {
    sim::with_sim_executor(seed, move |sim, dir| async move {
        sim.fail(Some(Op::Close), 1, failed_closes, Fault::Errno(libc::EIO));
        let config = segment_config();
        let wal = start_wal(&dir, &config).await;
        let (second, answered) = record_switch_record(&wal).await;
        then(&wal, second.map_err(|e| e.to_string()), answered);
        let log = sim.fault_log();
        assert_eq!(log.len() as u64, failed_closes, "{log:?}");
        assert!(log.iter().all(|f| f.contains("Close")), "{log:?}");
        let state = wal.state();
        let closed = wal.close().await;
        // Closing reports a poisoned WAL's failure.
        assert_eq!(closed.is_ok(), state == WalState::Writing, "{closed:?}");
        let mut files = disk::list_dir(&dir).unwrap();
        files.sort();
        let acknowledged: Vec<i64> = if state == WalState::Writing {
            // Segments 1 and 2, and perhaps the next spare.
            assert_eq!(
                files.get(..2),
                Some(&[segment_file_name(1), segment_file_name(2)][..]),
            );
            vec![1, 2]
        } else {
            // No half-made segment is left behind.
            assert_eq!(files, vec![segment_file_name(1)]);
            vec![1]
        };
        assert_eq!(replayed(&dir, &config).await, acknowledged);
    });
}

#[test]
fn a_spare_segment_that_cannot_be_closed_is_replaced_at_the_switch() {
    switch_with_failed_closes(22, 1, |wal, second, answered| {
        assert_eq!(second, Ok(()), "written to a segment made on the spot");
        assert_eq!(answered, 2);
        assert_eq!(wal.state(), WalState::Writing);
    });
}

#[test]
fn a_segment_switch_whose_close_fails_refuses_writes_until_restart() {
    switch_with_failed_closes(23, 2, |wal, second, answered| {
        let e = second.unwrap_err();
        assert!(e.contains("close"), "{e}");
        // The number the next segment gets: 2 was never made.
        assert_eq!(answered, 2);
        assert_eq!(wal.state(), WalState::Failed);
        assert!(wal.submit(record(3)).is_err(), "refused until restart");
    });
}

#[test]
fn a_failed_segment_switch_fails_only_the_records_after_it() {
    sim::with_sim_executor(21, |sim, dir| async move {
        // Room for one segment, not two.
        sim.set_capacity(Some(SEGMENT_BYTES + 64 * 1024));
        let config = segment_config();
        let wal = start_wal(&dir, &config).await;
        let (second, answered) = record_switch_record(&wal).await;
        let e = second.unwrap_err();
        assert!(e.is_disk_full(), "{e}");
        // Answered with the number the next segment will get.
        assert_eq!(answered, 2);
        assert_eq!(wal.state(), WalState::DiskFull);
        match wal.submit(record(3)) {
            Err(e) => assert!(e.is_disk_full(), "{e}"),
            Ok(_) => panic!("a record was taken while the WAL waits for space"),
        }
        // Space returns: the committer finds it by itself.
        sim.set_capacity(None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while wal.state() != WalState::Writing {
            assert!(Instant::now() < deadline, "never resumed");
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        let fourth = wal.submit(record(4)).unwrap();
        assert!(fourth.wait().await.is_ok());
        wal.close().await.unwrap();
        // Replay: the acknowledged records, and nothing else.
        assert_eq!(replayed(&dir, &config).await, vec![1, 4]);
    });
}
