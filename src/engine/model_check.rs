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
type Canon = (Vec<(String, u64)>, Option<Bytes>);

fn canon(set: &VersionSet) -> Vec<Canon> {
    let mut v: Vec<_> = set
        .versions()
        .iter()
        .map(|v| (v.clock.entries().to_vec(), v.value.clone()))
        .collect();
    v.sort();
    v
}

fn config() -> StorageConfig {
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
