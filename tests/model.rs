//! Model-based property test of the vector-clock rules over the wire: random
//! sequences of Write, Delete and Repair (given clocks, blind writes and
//! deletes, stale and concurrent versions) on one key, checked after every
//! step against a reference implementation of the contract: the stored
//! siblings, the answered clocks, not-found for tombstone-only keys and the
//! value a plain read answers.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};

type Clock = ClockMap;

/// The contract's reconciliation rules, written from CONTRACT.md.
#[derive(Debug, Default, Clone)]
struct Model {
    /// Pairwise-concurrent versions: (clock, value or None for a tombstone).
    versions: Vec<(Clock, Option<Vec<u8>>)>,
}

impl Model {
    fn merged(&self) -> Clock {
        merge_maps(self.versions.iter().map(|(clock, _)| clock))
    }

    fn apply(&mut self, clock: Clock, value: Option<Vec<u8>>) {
        if self.versions.iter().any(|(c, _)| descends(c, &clock)) {
            return; // stale or repeated: nothing changes
        }
        self.versions.retain(|(c, _)| !descends(&clock, c));
        self.versions.push((clock, value));
    }

    fn blind_clock(&self, node_id: &str) -> Clock {
        let mut c = self.merged();
        *c.entry(node_id.to_string()).or_insert(0) += 1;
        c
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<(usize, i64)>),
    Delete(Vec<(usize, i64)>),
    Repair(Vec<(usize, i64)>),
}

/// Clock node ids; the last is the node's own id, so given clocks and the
/// node's blind stamps interleave.
const NODES: [&str; 4] = ["a", "b", "c", NODE_ID];
const NODE_ID: &str = "node-model";

fn clock_strategy() -> impl Strategy<Value = Vec<(usize, i64)>> {
    // Distinct node indexes, counters 0..=3 (0 is the same as absent).
    proptest::sample::subsequence(vec![0usize, 1, 2, 3], 0..=3).prop_flat_map(|nodes| {
        let n = nodes.len();
        (Just(nodes), proptest::collection::vec(0i64..=3, n))
            .prop_map(|(nodes, counters)| nodes.into_iter().zip(counters).collect())
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => clock_strategy().prop_map(Op::Write),
        2 => clock_strategy().prop_map(Op::Delete),
        2 => clock_strategy().prop_map(Op::Repair),
    ]
}

fn to_clock(entries: &[(usize, i64)]) -> Clock {
    entries
        .iter()
        .filter(|(_, c)| *c != 0)
        .map(|(n, c)| (NODES[*n].to_string(), *c))
        .collect()
}

fn to_wire(entries: &[(usize, i64)]) -> Option<pb::VectorClock> {
    Some(pb::VectorClock {
        entries: entries
            .iter()
            .map(|(n, c)| pb::VectorClockEntry {
                coordinator_node_id: NODES[*n].to_string(),
                logical_timestamp: *c,
            })
            .collect(),
    })
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond {
        Ok(())
    } else {
        Err(TestCaseError::fail(msg()))
    }
}

/// Compares the node's view of `key` with the model.
async fn check_read(c: &mut Client, key: &str, model: &Model) -> Result<(), TestCaseError> {
    let r = read(c, "model", key).await;
    let listed = read_versions(&r);
    let mut got: Vec<(Clock, Option<Vec<u8>>)> = listed
        .iter()
        .map(|v| {
            let value = (!v.is_tombstone).then(|| v.value.clone());
            (clock_map(&v.vector_clock), value)
        })
        .collect();
    let mut want = model.versions.clone();
    got.sort();
    want.sort();
    check(got == want, || {
        format!("stored versions differ\n node:  {got:?}\n model: {want:?}")
    })?;
    check(clock_map(&r.vector_clock) == model.merged(), || {
        format!(
            "read clock {:?}, model {:?}",
            clock_map(&r.vector_clock),
            model.merged()
        )
    })?;
    let live: Vec<_> = listed.iter().filter(|v| !v.is_tombstone).collect();
    if live.is_empty() {
        check(!r.success && r.error_code == KEY_NOT_FOUND, || {
            format!("no live version must read as KEY_NOT_FOUND: {r:?}")
        })?;
    } else {
        check(r.success, || format!("live versions must read: {r:?}"))?;
        let latest = live.iter().map(|v| v.timestamp).max().unwrap();
        check(r.timestamp == latest, || {
            format!("read answers the latest sibling: {r:?}")
        })?;
        check(
            live.iter()
                .any(|v| v.timestamp == latest && v.value == r.value),
            || format!("read value is not the latest live sibling: {r:?}"),
        )?;
    }
    Ok(())
}

async fn run_case(c: &mut Client, key: &str, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for (i, op) in ops.iter().enumerate() {
        let value = format!("value-{i}").into_bytes();
        match op {
            Op::Write(entries) => {
                let clock = to_clock(entries);
                let applied = if clock.is_empty() {
                    model.blind_clock(NODE_ID)
                } else {
                    clock
                };
                model.apply(applied, Some(value.clone()));
                let w = write(c, "model", key, &value, to_wire(entries)).await;
                check(w.success, || format!("step {i} {op:?}: {w:?}"))?;
                check(clock_map(&w.updated_vector_clock) == model.merged(), || {
                    format!(
                        "step {i} {op:?}: updated_vector_clock {:?}, model {:?}",
                        clock_map(&w.updated_vector_clock),
                        model.merged()
                    )
                })?;
            }
            Op::Delete(entries) => {
                let clock = to_clock(entries);
                let applied = if clock.is_empty() {
                    model.blind_clock(NODE_ID)
                } else {
                    clock
                };
                model.apply(applied, None);
                let d = delete(c, "model", key, to_wire(entries)).await;
                check(d.success, || format!("step {i} {op:?}: {d:?}"))?;
                check(clock_map(&d.updated_vector_clock) == model.merged(), || {
                    format!(
                        "step {i} {op:?}: updated_vector_clock {:?}, model {:?}",
                        clock_map(&d.updated_vector_clock),
                        model.merged()
                    )
                })?;
            }
            Op::Repair(entries) => {
                let clock = to_clock(entries);
                let rp = repair(c, "model", key, &value, to_wire(entries)).await;
                if clock.is_empty() {
                    check(!rp.success && rp.error_code == INVALID_REQUEST, || {
                        format!("step {i} {op:?}: a repair without clock is invalid: {rp:?}")
                    })?;
                } else {
                    model.apply(clock, Some(value.clone()));
                    check(rp.success, || format!("step {i} {op:?}: {rp:?}"))?;
                }
            }
        }
        check_read(c, key, &model)
            .await
            .map_err(|e| TestCaseError::fail(format!("after step {i} ({op:?}): {e}")))?;
    }
    Ok(())
}

#[test]
fn random_operation_sequences_follow_the_clock_rules() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node = rt.block_on(Node::start_with(NodeOptions {
        shards: 2,
        node_id: NODE_ID.into(),
        config: None,
    }));
    let client = rt.block_on(node.client());
    let case = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op_strategy(), 1..14), |ops| {
        let key = format!("case-{}", case.fetch_add(1, Ordering::Relaxed));
        let mut c = client.clone();
        rt.block_on(run_case(&mut c, &key, &ops))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
