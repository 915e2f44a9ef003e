//! The WAL writer on a simulated disk that runs out of space at a segment
//! switch: records before the switch stay acknowledged, records after it
//! fail with a disk-full error, the rotation is still answered, and writing
//! resumes once space returns.

use super::format::Record;
use super::replay;
use super::writer::{WalStart, WalState, WalWriter};
use crate::config::StorageConfig;
use crate::model::{VectorClock, Version};
use crate::storage::disk::{self, sim};
use bytes::Bytes;
use std::path::PathBuf;
use std::rc::Rc;
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

#[test]
fn a_failed_segment_switch_fails_only_the_records_after_it() {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(|| async move {
            let sim = sim::SimDisk::new(21);
            let _installed = sim::install(Rc::clone(&sim));
            let dir = PathBuf::from("/sim/shard-000");
            disk::create_dir_all(&dir).unwrap();
            // Room for one segment, not two.
            sim.set_capacity(Some(SEGMENT_BYTES + 64 * 1024));
            let config = StorageConfig {
                wal_segment_bytes_max: SEGMENT_BYTES,
                ..StorageConfig::default()
            };
            let start = WalStart {
                next_segment_no: 1,
                next_seq: 1,
            };
            let wal = WalWriter::start(dir.clone(), 0, &config, start, 0)
                .await
                .unwrap();
            // One batch: a record, a rotation, a record.
            let first = wal.submit(record(1)).unwrap();
            let rotation = wal.rotate();
            let second = wal.submit(record(2)).unwrap();
            assert!(first.wait().await.is_ok(), "durable before the switch");
            let e = second.wait().await.unwrap_err();
            assert!(e.is_disk_full(), "{e}");
            // Answered with the number the next segment will get.
            assert_eq!(rotation.await, Ok(2));
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
            let mut seen = Vec::new();
            replay::replay_dir(&dir, 0, &config, |_, v| seen.push(v.timestamp_ms))
                .await
                .unwrap();
            assert_eq!(seen, vec![1, 4]);
        })
        .unwrap()
        .join()
        .unwrap();
}
