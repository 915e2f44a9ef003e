//! Streams between two real shards in one glommio executor: the target is
//! a second shard behind an in-process [`Target`], so copy passes, live
//! forwards, retries, backlog overflow, stop and resume are checked end to
//! end without a network.

use super::status::Phase;
use super::target::{LocalFuture, SendError, Target};
use super::{CoreStreams, StreamSettings};
use crate::config::StorageConfig;
use crate::engine::ops::ScanFilter;
use crate::engine::shard::scan::ScanRange;
use crate::engine::{PutClock, Shard, ShardOp, ShardReply};
use crate::model::{KeyRef, PutOrigin, TokenRange, TokenRanges, VectorClock, Version};
use crate::proto;
use crate::storage::streams_file::{self, StreamRecord};
use bytes::Bytes;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A target shard in the same executor; fails the first `failures` calls
/// (retryably), as a down target would.
struct LocalTarget {
    shard: Rc<Shard>,
    failures: Cell<u32>,
    calls: Cell<u32>,
}

impl Target for LocalTarget {
    fn apply(
        &self,
        req: proto::ApplyVersionsRequest,
    ) -> LocalFuture<'_, Result<proto::ApplyVersionsResponse, SendError>> {
        Box::pin(async move {
            self.calls.set(self.calls.get() + 1);
            if self.failures.get() > 0 {
                self.failures.set(self.failures.get() - 1);
                return Err(SendError {
                    retryable: true,
                    message: "connection refused".into(),
                });
            }
            let entries = req
                .versions
                .into_iter()
                .map(|e| {
                    let clock = VectorClock::from_entries(
                        e.vector_clock
                            .unwrap()
                            .entries
                            .into_iter()
                            .map(|c| (c.coordinator_node_id, c.logical_timestamp)),
                        64,
                    )
                    .unwrap();
                    let version = Version {
                        clock,
                        timestamp_ms: e.timestamp,
                        value: (!e.is_tombstone).then_some(e.value),
                    };
                    (KeyRef::new(&e.tenant_id, &e.key), version)
                })
                .collect();
            match self.shard.execute(ShardOp::ApplyBatch { entries }).await {
                ShardReply::Applied { .. } => Ok(proto::ApplyVersionsResponse {
                    success: true,
                    ..Default::default()
                }),
                other => panic!("{other:?}"),
            }
        })
    }
}

fn settings(backlog_bytes_max: usize) -> StreamSettings {
    StreamSettings {
        node_id: "src".into(),
        batch_bytes: 8 * 1024,
        backlog_bytes_max,
        rate_mb_s: 0,
    }
}

fn record(ranges: Vec<(u64, u64)>) -> StreamRecord {
    StreamRecord {
        source_node_id: "src".into(),
        target_node_id: "dst".into(),
        target_addr: "in-process".into(),
        started_unix_ms: 1,
        ranges,
    }
}

async fn put(shard: &Shard, tenant: &str, key: &str, value: Option<&str>, clock: PutClock) {
    let reply = shard
        .execute(ShardOp::Put {
            key: KeyRef::new(tenant, key),
            value: value.map(|v| Bytes::from(v.to_string())),
            clock,
            origin: PutOrigin::Client,
        })
        .await;
    assert!(matches!(reply, ShardReply::Put { .. }), "{reply:?}");
}

type Contents = BTreeMap<Bytes, Vec<(Vec<(crate::model::NodeId, u64)>, i64, Option<Bytes>)>>;

/// Every key the filter keeps, with each version's clock, timestamp, value.
async fn contents(shard: &Shard, filter: ScanFilter) -> Contents {
    let mut out = BTreeMap::new();
    let mut start = Bytes::new();
    loop {
        let range = ScanRange {
            start,
            end: None,
            entries_max: 100,
            bytes_max: usize::MAX,
            keys_examined_max: 1000,
        };
        let ShardReply::Scan(page) = shard
            .execute(ShardOp::Scan {
                range,
                filter: filter.clone(),
            })
            .await
        else {
            panic!()
        };
        for (k, vs) in page.entries {
            let mut vs: Vec<_> = vs
                .into_iter()
                .map(|v| (v.clock.entries().to_vec(), v.timestamp_ms, v.value))
                .collect();
            vs.sort();
            out.insert(k, vs);
        }
        match page.resume {
            Some(r) => start = r,
            None => return out,
        }
    }
}

async fn wait_phase(streams: &CoreStreams, want: Phase) {
    let id = super::spec::StreamId {
        source: "src".into(),
        target: "dst".into(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = streams.status(&id).expect("stream present");
        if s.phase == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {s:?}");
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the target holds exactly the source's versions in the
/// stream's ranges (forwards queued after a pass ended may still be on
/// their way when it completes).
async fn converge(src: &Shard, dst: &Shard, filter: &ScanFilter) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let want = contents(src, filter.clone()).await;
        let got = contents(dst, ScanFilter::All).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the target differs: {} keys, the source {}",
            got.len(),
            want.len()
        );
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes keys 0..n with values, some siblings, some tombstones.
async fn write_mix(shard: &Shard, from: usize, n: usize, tag: &str) {
    for i in from..from + n {
        let key = format!("k{i:05}");
        put(
            shard,
            "t",
            &key,
            Some(&format!("{tag}-{i}")),
            PutClock::Blind,
        )
        .await;
        if i % 7 == 0 {
            let c = VectorClock::from_entries([("other".to_string(), i as i64 + 1)], 8).unwrap();
            put(shard, "t", &key, Some("sibling"), PutClock::Given(c)).await;
        }
        if i % 11 == 0 {
            put(shard, "t", &key, None, PutClock::Blind).await;
        }
    }
}

fn run(backlog: usize, failures: u32, ranges: Vec<(u64, u64)>) {
    crate::engine::shard::tests::with_executor(move |dir| async move {
        let config = StorageConfig {
            memtable_bytes_max: 32 * 1024,
            ..StorageConfig::default()
        };
        let (src_dir, dst_dir) = (dir.join("src"), dir.join("dst"));
        std::fs::create_dir_all(&src_dir).unwrap();
        std::fs::create_dir_all(&dst_dir).unwrap();
        let src = Shard::open(&src_dir, 0, "src".into(), &config)
            .await
            .unwrap();
        let dst = Shard::open(&dst_dir, 0, "dst".into(), &config)
            .await
            .unwrap();
        write_mix(&src, 0, 600, "a").await;
        src.flush(Duration::from_secs(10)).await.unwrap();
        write_mix(&src, 300, 200, "b").await;
        let target = Rc::new(LocalTarget {
            shard: Rc::clone(&dst),
            failures: Cell::new(failures),
            calls: Cell::new(0),
        });
        let connect: super::Connect = {
            let target = Rc::clone(&target);
            Rc::new(move |_r: &StreamRecord| Rc::clone(&target) as Rc<dyn Target>)
        };
        let streams = CoreStreams::open(
            Rc::clone(&src),
            1,
            src_dir.clone(),
            settings(backlog),
            Rc::clone(&connect),
        )
        .unwrap();
        let rec = record(ranges.clone());
        assert_eq!(streams.start(rec.clone()).await, Ok(super::Started::New));
        assert_eq!(
            streams.start(rec.clone()).await,
            Ok(super::Started::Existing)
        );
        assert_eq!(streams_file::load(&src_dir).unwrap(), vec![rec.clone()]);
        // Writes while the copy runs: forwarded, or copied, or both.
        write_mix(&src, 550, 300, "c").await;
        // A burst of concurrent writes, durable in one group commit: their
        // forwards arrive at once (past a small backlog, whatever the
        // machine's speed).
        let burst = (0..200).map(|i| {
            let src = Rc::clone(&src);
            async move {
                let key = format!("k{i:05}");
                put(&src, "t", &key, Some("burst"), PutClock::Blind).await;
            }
        });
        crate::engine::join::join_all(burst).await;
        wait_phase(&streams, Phase::Completed).await;
        let filter = ScanFilter::Tokens(Arc::new(TokenRanges::new(
            ranges
                .iter()
                .map(|(a, b)| TokenRange::new(*a, *b))
                .collect(),
        )));
        assert!(!contents(&src, filter.clone()).await.is_empty());
        converge(&src, &dst, &filter).await;
        // After completion every new version still reaches the target.
        write_mix(&src, 0, 50, "d").await;
        wait_phase(&streams, Phase::Completed).await;
        converge(&src, &dst, &filter).await;
        let id = super::spec::StreamId::of(&rec);
        let status = streams.status(&id).unwrap();
        if failures > 0 {
            assert!(status.send_retries >= failures as u64, "{status:?}");
        }
        if backlog < 64 * 1024 {
            assert!(status.forwards_dropped > 0, "{status:?}");
            assert!(status.passes > 1, "{status:?}");
        }
        // A restart resumes the listed stream with a fresh pass.
        streams.halt();
        let again = CoreStreams::open(
            Rc::clone(&src),
            1,
            src_dir.clone(),
            settings(backlog),
            connect,
        )
        .unwrap();
        wait_phase(&again, Phase::Completed).await;
        assert!(again.status(&id).unwrap().passes >= 1);
        assert_eq!(again.stop(&id).await, Ok(true));
        assert_eq!(again.stop(&id).await, Ok(false));
        assert!(again.status(&id).is_none());
        assert!(streams_file::load(&src_dir).unwrap().is_empty());
        src.close().await.unwrap();
        dst.close().await.unwrap();
    });
}

#[test]
fn a_stream_copies_and_forwards_until_the_target_holds_the_same_versions() {
    run(1 << 20, 0, vec![(0, 0)]);
}

#[test]
fn a_stream_of_some_ranges_sends_only_their_keys() {
    run(
        1 << 20,
        0,
        vec![(u64::MAX / 3, u64::MAX / 2), (u64::MAX - 1000, 1 << 60)],
    );
}

#[test]
fn a_target_that_fails_at_first_is_retried_until_it_takes_the_batches() {
    run(1 << 20, 5, vec![(0, 0)]);
}

#[test]
fn forwards_past_the_backlog_are_made_good_by_another_copy_pass() {
    run(2 * 1024, 0, vec![(0, 0)]);
}
