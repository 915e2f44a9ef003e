//! The crash test's workload: writer tasks, each on its own connection,
//! issuing blind writes and deletes to keys of their own and keeping the
//! model of those keys up to date, and the write phase that runs them until
//! the node gets its signal.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::model::{key_name, value_bytes, value_prefix, Op, Writer};
use crate::probes::compaction_running;
use crate::{
    ACKS_BEFORE_KILL, EXIT_TIMEOUT, FIRST_ACKS_TIMEOUT, JOIN_TIMEOUT, KEYS_PER_WRITER, RPC_TIMEOUT,
    TENANT, WRITERS,
};

/// True with probability `percent`/100.
fn chance(rng: &mut fastrand::Rng, percent: u32) -> bool {
    rng.u32(0..100) < percent
}

/// How a writer's phase ended.
#[derive(Debug)]
pub(crate) enum WriterEnd {
    Transport(String),
    AppError(String),
    Timeout,
}

/// Writes until the node stops answering (or answers an error), keeping the
/// model of its own keys up to date. Returns the writer, how it ended, and
/// clock anomalies seen in acknowledgements.
pub(crate) async fn run_writer(
    mut wr: Writer,
    mut client: Client,
    mut rng: fastrand::Rng,
    acks: Arc<AtomicU64>,
) -> (Writer, WriterEnd, Vec<String>) {
    let mut anomalies = Vec::new();
    loop {
        let k = rng.usize(0..KEYS_PER_WRITER);
        let seq = wr.next_seq;
        wr.next_seq += 1;
        let key = key_name(wr.id, k);
        let op = if chance(&mut rng, 20) {
            Op::Delete { seq }
        } else {
            let min = value_prefix(wr.id, k, seq).len();
            let len = if chance(&mut rng, 30) {
                rng.usize((4 << 10)..=(64 << 10))
            } else {
                min + rng.usize(0..=480)
            };
            Op::Put { seq, len }
        };
        // In flight from here on: it may or may not land if the node dies.
        wr.keys[k].unacked.push(op);
        let answer = match op {
            Op::Put { seq, len } => {
                let req = write_req(TENANT, &key, &value_bytes(wr.id, k, seq, len), None);
                tokio::time::timeout(RPC_TIMEOUT, client.write(req))
                    .await
                    .map(|r| {
                        r.map(|r| {
                            let r = r.into_inner();
                            (
                                r.success,
                                r.updated_vector_clock,
                                r.error_code,
                                r.error_message,
                            )
                        })
                    })
            }
            Op::Delete { .. } => {
                let req = pb::DeleteRequest {
                    tenant_id: TENANT.into(),
                    key: key.clone(),
                    vector_clock: None,
                    idempotency_key: String::new(),
                };
                tokio::time::timeout(RPC_TIMEOUT, client.delete(req))
                    .await
                    .map(|r| {
                        r.map(|r| {
                            let r = r.into_inner();
                            (
                                r.success,
                                r.updated_vector_clock,
                                r.error_code,
                                r.error_message,
                            )
                        })
                    })
            }
        };
        match answer {
            Ok(Ok((true, clock, _, _))) => {
                let clock = clock_map(&clock);
                let model = &mut wr.keys[k];
                if let Some((prev, prev_clock)) = &model.acked {
                    if !descends(&clock, prev_clock) || &clock == prev_clock {
                        anomalies.push(format!(
                            "{TENANT}/{key}: {op} acknowledged with clock {clock:?}, which does \
                             not strictly descend the previous state {prev} clock {prev_clock:?}"
                        ));
                    }
                }
                if clock.is_empty() {
                    anomalies.push(format!(
                        "{TENANT}/{key}: {op} acknowledged with an empty clock"
                    ));
                }
                model.acked = Some((op, clock));
                model.unacked.clear();
                acks.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Ok((false, _, code, _))) if code == MEMORY_PRESSURE => {
                // Flow control: nothing was stored; back off and go on.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Ok((false, _, code, message))) => {
                return (
                    wr,
                    WriterEnd::AppError(format!("{key} {op}: error_code {code}: {message}")),
                    anomalies,
                );
            }
            Ok(Err(status)) => {
                return (wr, WriterEnd::Transport(status.to_string()), anomalies);
            }
            Err(_) => return (wr, WriterEnd::Timeout, anomalies),
        }
    }
}

/// Runs the writers against `node` until `stop` (a signal for the node) has
/// been sent `delay` after the first acknowledgements, then collects them.
/// Returns the writers, the acknowledgements of this phase and the writer
/// anomalies; panics (with the node's stderr) if no write gets through.
pub(crate) async fn write_phase(
    node: &mut Node,
    writers: Vec<Writer>,
    seed: u64,
    round: usize,
    delay: Duration,
    signal: i32,
) -> (Vec<Writer>, u64, Vec<String>, bool) {
    let acks = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for wr in writers {
        let client = node.client().await;
        let rng =
            fastrand::Rng::with_seed(seed ^ ((round as u64) << 40) ^ ((wr.id as u64 + 1) << 20));
        tasks.push(tokio::spawn(run_writer(wr, client, rng, Arc::clone(&acks))));
    }
    let started = Instant::now();
    while acks.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
        if started.elapsed() > FIRST_ACKS_TIMEOUT || tasks.iter().all(|t| t.is_finished()) {
            let stderr = node.stderr();
            node.signal(libc::SIGKILL);
            panic!(
                "round {round} (seed {seed}): only {} writes acknowledged after {:?}\n\
                 --- node stderr ---\n{stderr}",
                acks.load(Ordering::SeqCst),
                started.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(delay).await;
    let active = tasks.iter().filter(|t| !t.is_finished()).count();
    let compacting = compaction_running(node).await;
    node.signal(signal);
    let status = node.wait_exit_async(EXIT_TIMEOUT).await.unwrap_or_else(|| {
        panic!(
            "round {round} (seed {seed}): node still running {EXIT_TIMEOUT:?} after signal {signal}"
        )
    });
    if signal == libc::SIGKILL {
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    } else {
        assert_eq!(
            status.code(),
            Some(0),
            "round {round} (seed {seed}): graceful shutdown must exit 0: {status:?}\n{}",
            node.stderr()
        );
    }
    let mut writers = Vec::new();
    let mut anomalies = Vec::new();
    let mut ends: BTreeMap<String, usize> = BTreeMap::new();
    let mut transport_sample: Option<String> = None;
    for t in tasks {
        let (wr, end, mut a) = tokio::time::timeout(JOIN_TIMEOUT, t)
            .await
            .expect("writer ends once the node is gone")
            .expect("writer task");
        let kind = match &end {
            WriterEnd::Transport(e) => {
                transport_sample.get_or_insert_with(|| e.clone());
                "transport error".to_string()
            }
            WriterEnd::Timeout => "timeout".to_string(),
            WriterEnd::AppError(e) => format!("application error: {e}"),
        };
        *ends.entry(kind).or_default() += 1;
        anomalies.append(&mut a);
        writers.push(wr);
    }
    writers.sort_by_key(|w| w.id);
    let in_flight: usize = writers
        .iter()
        .flat_map(|w| &w.keys)
        .map(|k| k.unacked.len())
        .sum();
    println!(
        "round {round}: signal {signal} after {:?} ({} acks, {active}/{WRITERS} writers active, \
         {in_flight} unacknowledged attempts, compaction running: {compacting}); writers ended by \
         {ends:?} (e.g. {})",
        started.elapsed(),
        acks.load(Ordering::SeqCst),
        transport_sample.as_deref().unwrap_or("-")
    );
    (writers, acks.load(Ordering::SeqCst), anomalies, compacting)
}
