//! Property test of a shard against a simple model: a `BTreeMap` from key to
//! the version set the contract's rules give. Random writes (blind and with
//! clocks), deletes, repairs, reads, flushes, compactions run to completion,
//! clean restarts and crash restarts (background work abandoned wherever it
//! is, the shard dropped without closing) run on a real shard inside a
//! glommio executor on a temporary directory; after every step the answers
//! and, at the end, every key's versions (clock and value, ignoring the
//! wall-clock timestamps) must equal the model's. Values up to 12 KB against
//! a 64 KiB memtable make the write path rotate memtables by itself, and
//! tiny level targets (16 KiB L1, x2 per level, 16 KiB output tables, L0
//! trigger 2) push data through every level, with the cache on so cached
//! entries are checked against flushes and compactions too. Tombstones are
//! kept (a long grace): purging is tested on its own in the shard tests.

use super::shard::Shard;
use super::{PutClock, ShardOp, ShardReply};
use crate::config::StorageConfig;
use crate::model::{KeyRef, VectorClock, Version, VersionSet};
use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

const NODE: &str = "n1";
const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Debug, Clone)]
enum Op {
    Write {
        key: usize,
        value: Option<(u8, usize)>,
        clock: Option<Vec<(u8, i64)>>,
    },
    Read {
        key: usize,
    },
    /// The whole shard read by range pages of at most `page` entries.
    Scan {
        page: usize,
    },
    /// A version copied from another node (timestamp kept).
    Apply {
        key: usize,
        value: Option<(u8, usize)>,
        clock: Vec<(u8, i64)>,
    },
    Flush,
    Compact,
    Restart {
        clean: bool,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let clock = proptest::option::of(proptest::collection::vec((0u8..3, 1i64..4), 1..3));
    prop_oneof![
        8 => (0..KEYS.len(), proptest::option::of((any::<u8>(), 1usize..12_000)), clock)
            .prop_map(|(key, value, clock)| Op::Write { key, value, clock }),
        3 => (0..KEYS.len()).prop_map(|key| Op::Read { key }),
        1 => (1usize..4).prop_map(|page| Op::Scan { page }),
        2 => (0..KEYS.len(), proptest::option::of((any::<u8>(), 1usize..12_000)),
              proptest::collection::vec((0u8..3, 1i64..4), 1..3))
            .prop_map(|(key, value, clock)| Op::Apply { key, value, clock }),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => any::<bool>().prop_map(|clean| Op::Restart { clean }),
    ]
}

fn clock_of(pairs: &[(u8, i64)]) -> VectorClock {
    let mut m = BTreeMap::new();
    for (n, c) in pairs {
        m.insert(format!("c{n}"), *c);
    }
    VectorClock::from_entries(m, 64).unwrap()
}

/// (clock entries, value) pairs, sorted: what must match.
/// A version as compared: clock entries and value.
type Canon = (Vec<(crate::model::NodeId, u64)>, Option<Bytes>);

/// A version set as sorted (clock, value) pairs, comparable with a model's.
pub(super) fn canon(set: &VersionSet) -> Vec<Canon> {
    let mut v: Vec<_> = set
        .versions()
        .iter()
        .map(|v| (v.clock.entries().to_vec(), v.value.clone()))
        .collect();
    v.sort();
    v
}

/// Small memtables, tables and levels, so flushes, compactions and
/// manifest edits happen every few dozen writes (shared with the fault test).
pub(super) fn config() -> StorageConfig {
    let mut c = StorageConfig {
        memtable_bytes_max: 64 * 1024,
        wal_segment_bytes_max: 256 * 1024,
        ..StorageConfig::default()
    };
    c.compaction.l0_trigger_tables = 2;
    c.compaction.level1_target_bytes = 16 * 1024;
    c.compaction.level_size_multiplier = 2;
    c.compaction.sstable_target_bytes = 16 * 1024;
    c.compaction.rate_mb_s = 0;
    c.cache.capacity_bytes_total = 48 * 1024;
    c
}

async fn read(shard: &Shard, key: usize) -> VersionSet {
    let reply = shard
        .execute(ShardOp::Get {
            key: KeyRef::new("t", KEYS[key]),
        })
        .await;
    let ShardReply::Get { versions } = reply else {
        panic!("{reply:?}")
    };
    versions
}

/// Every key of the shard with its versions, read by pages of `page`
/// entries (and at most `page + 1` keys looked at per page).
async fn scan_all(shard: &Shard, page: usize) -> BTreeMap<usize, Vec<Canon>> {
    use super::shard::scan::ScanRange;
    let mut out = BTreeMap::new();
    let mut start = Bytes::new();
    loop {
        let range = ScanRange {
            start: start.clone(),
            end: None,
            entries_max: page,
            bytes_max: usize::MAX,
            keys_examined_max: page + 1,
        };
        let reply = shard
            .execute(ShardOp::Scan {
                range,
                filter: super::ops::ScanFilter::All,
            })
            .await;
        let ShardReply::Scan(got) = reply else {
            panic!("{reply:?}")
        };
        assert!(got.entries.len() <= page);
        for (k, versions) in got.entries {
            let (_, name) = crate::model::key::decode_storage_key(&k).unwrap();
            let i = KEYS.iter().position(|n| *n == name).unwrap();
            let set = VersionSet::from_versions(versions);
            assert!(out.insert(i, canon(&set)).is_none(), "key {name} twice");
        }
        match got.resume {
            Some(next) => {
                assert!(next > start, "a page must move forward");
                start = next;
            }
            None => return out,
        }
    }
}

fn model_contents(model: &BTreeMap<usize, VersionSet>) -> BTreeMap<usize, Vec<Canon>> {
    model
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(k, s)| (*k, canon(s)))
        .collect()
}

async fn run_case(dir: std::path::PathBuf, ops: Vec<Op>) {
    let mut model: BTreeMap<usize, VersionSet> = BTreeMap::new();
    let mut shard = Shard::open(&dir, 0, NODE.into(), &config()).await.unwrap();
    for op in ops {
        match op {
            Op::Write { key, value, clock } => {
                let value = value.map(|(b, len)| Bytes::from(vec![b; len]));
                let set = model.entry(key).or_default();
                let c = match &clock {
                    Some(pairs) => clock_of(pairs),
                    None => set.blind_clock(NODE).unwrap(),
                };
                set.apply(Version {
                    clock: c,
                    timestamp_ms: 0,
                    value: value.clone(),
                });
                let clock = match clock {
                    Some(pairs) if !pairs.is_empty() => PutClock::Given(clock_of(&pairs)),
                    _ => PutClock::Blind,
                };
                let reply = shard
                    .execute(ShardOp::Put {
                        key: KeyRef::new("t", KEYS[key]),
                        value,
                        clock,
                        origin: crate::model::PutOrigin::Client,
                    })
                    .await;
                let ShardReply::Put {
                    clock: answered, ..
                } = reply
                else {
                    panic!("{reply:?}")
                };
                assert_eq!(answered, set.merged_clock());
            }
            Op::Read { key } => {
                let expected = model.get(&key).cloned().unwrap_or_default();
                assert_eq!(
                    canon(&read(&shard, key).await),
                    canon(&expected),
                    "key {key}"
                );
            }
            Op::Scan { page } => {
                assert_eq!(scan_all(&shard, page).await, model_contents(&model));
            }
            Op::Apply { key, value, clock } => {
                let value = value.map(|(b, len)| Bytes::from(vec![b; len]));
                // An old timestamp, but within the tombstone grace: a
                // tombstone past it may be purged, which the model leaves out.
                let version = Version {
                    clock: clock_of(&clock),
                    timestamp_ms: super::shard::now_unix_ms() - 60_000,
                    value,
                };
                model.entry(key).or_default().apply(version.clone());
                let reply = shard
                    .execute(ShardOp::ApplyBatch {
                        entries: vec![(KeyRef::new("t", KEYS[key]), version)],
                    })
                    .await;
                assert!(matches!(reply, ShardReply::Applied { .. }), "{reply:?}");
            }
            Op::Flush => shard.flush(Duration::from_secs(10)).await.unwrap(),
            Op::Compact => {
                shard
                    .compact_until_idle(Duration::from_secs(10))
                    .await
                    .unwrap();
                shard.check_levels().unwrap();
            }
            Op::Restart { clean } => {
                if clean {
                    shard.close().await.unwrap();
                } else {
                    shard.halt().await;
                }
                drop(shard);
                shard = Shard::open(&dir, 0, NODE.into(), &config()).await.unwrap();
            }
        }
    }
    for (i, name) in KEYS.iter().enumerate() {
        let expected = model.get(&i).cloned().unwrap_or_default();
        assert_eq!(
            canon(&read(&shard, i).await),
            canon(&expected),
            "key {name}"
        );
    }
    assert_eq!(scan_all(&shard, 2).await, model_contents(&model));
    shard.check_levels().unwrap();
    let stats = shard.stats();
    assert_eq!(stats.compaction.failures, 0, "{stats:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn shard_matches_model(ops in proptest::collection::vec(arb_op(), 1..100)) {
        super::shard::tests::with_executor(move |dir| run_case(dir, ops));
    }
}
