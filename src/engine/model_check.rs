//! Property test of a shard against a simple model: a `BTreeMap` from key to
//! the version set the contract's rules give. Random writes (blind and with
//! clocks), deletes, repairs, flushes, clean restarts and crash restarts
//! (the shard dropped without closing) run on a real shard inside a glommio
//! executor on a temporary directory; after every step the answers and, at
//! the end, every key's versions (clock and value, ignoring the wall-clock
//! timestamps) must equal the model's. Values up to 12 KB against a 64 KiB
//! memtable make the write path rotate memtables by itself too.

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
    Flush,
    Restart {
        clean: bool,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let clock = proptest::option::of(proptest::collection::vec((0u8..3, 1i64..4), 1..3));
    prop_oneof![
        8 => (0..KEYS.len(), proptest::option::of((any::<u8>(), 1usize..12_000)), clock)
            .prop_map(|(key, value, clock)| Op::Write { key, value, clock }),
        1 => Just(Op::Flush),
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
    StorageConfig {
        memtable_bytes_max: 64 * 1024,
        wal_segment_bytes_max: 256 * 1024,
        ..StorageConfig::default()
    }
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
            Op::Flush => shard.flush(Duration::from_secs(10)).await.unwrap(),
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
        let reply = shard
            .execute(ShardOp::Get {
                key: KeyRef::new("t", name),
            })
            .await;
        let ShardReply::Get { versions } = reply else {
            panic!("{reply:?}")
        };
        let expected = model.get(&i).cloned().unwrap_or_default();
        assert_eq!(canon(&versions), canon(&expected), "key {name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn shard_matches_model(ops in proptest::collection::vec(arb_op(), 1..60)) {
        super::shard::tests::with_executor(move |dir| run_case(dir, ops));
    }
}
