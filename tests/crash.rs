//! Crash consistency: acknowledged writes survive `kill -9`, whether the node
//! is only logging and flushing, or compacting at the moment it dies.
//!
//! One node (2 shards) runs on a data directory on a real disk (under
//! `CARGO_TARGET_TMPDIR`; tmpfs has no O_DIRECT). Sixteen writer tasks, each
//! on its own HTTP/2 connection, issue blind writes (small and 4-64 KiB
//! values) and blind deletes to 50 keys of their own. Every writer remembers,
//! per key, the last acknowledged outcome with its `updated_vector_clock` and
//! the attempts sent after it that were never acknowledged. While the writers
//! run, the node gets SIGKILL after a random delay; it is restarted on the
//! same data directory and every key is read back:
//!
//! - a value must be the last acknowledged write of that key or one of its
//!   later unacknowledged attempts, byte for byte, as a single version;
//! - a key last acknowledged as deleted reads KEY_NOT_FOUND unless a later
//!   unacknowledged write to it is visible (and vice versa: KEY_NOT_FOUND for
//!   a key acknowledged as written needs a later unacknowledged delete);
//! - the read clock descends the last acknowledged clock (and equals it when
//!   the acknowledged value itself is read back).
//!
//! What a read shows after a restart is recovered state, so it becomes the
//! key's baseline for the next cycle. The cycles (5, or `PAIRDB_CRASH_CYCLES`)
//! keep the keys and their state; a final round ends with SIGTERM (exit 0)
//! instead and is checked the same way. The RNG seed is printed; set
//! `PAIRDB_CRASH_SEED` to repeat a run's choices (timing still varies).
//!
//! The second test runs the same cycles on a node configured to compact all
//! the time (256 KiB memtables, L0 trigger 2, 1 MiB L1, compaction limited to
//! 4 MB/s so each merge lasts long enough to be killed in the middle). Just
//! before each kill it samples `shard.N.compaction_running`; at least one
//! kill must land during a compaction, and compactions must have moved data
//! below L0. Writers answered MEMORY_PRESSURE (flow control) back off and
//! retry, counting the attempt as unacknowledged.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TENANT: &str = "crash";
const SHARDS: usize = 2;
const WRITERS: usize = 16;
const KEYS_PER_WRITER: usize = 50;
const DEFAULT_CYCLES: usize = 5;
/// Acknowledged writes a cycle waits for before its kill timer starts, so
/// every cycle kills a node that is really taking writes.
const ACKS_BEFORE_KILL: u64 = 32;
/// Kill delay range after those first acknowledgements (milliseconds).
const KILL_DELAY_MS: (u64, u64) = (200, 1500);
/// Generous limits for a noisy 2-core box.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const FIRST_ACKS_TIMEOUT: Duration = Duration::from_secs(30);
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Deterministic randomness (splitmix64; no rand crate in dev-dependencies)
// ---------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

// ---------------------------------------------------------------------------
// The model: what each key may hold
// ---------------------------------------------------------------------------

type Clock = BTreeMap<String, i64>;

/// One write attempt. `seq` is unique per writer, so a value names the
/// attempt that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Put { seq: u64, len: usize },
    Delete { seq: u64 },
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put { seq, len } => write!(f, "put n{seq} ({len} B)"),
            Op::Delete { seq } => write!(f, "delete n{seq}"),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct KeyModel {
    /// The last acknowledged outcome and its clock, or the state read back
    /// after the last restart (recovered state is as good as acknowledged).
    acked: Option<(Op, Clock)>,
    /// Attempts sent after `acked` and never acknowledged, in order.
    unacked: Vec<Op>,
}

impl KeyModel {
    fn describe(&self) -> String {
        let acked = match &self.acked {
            Some((op, clock)) => format!("last acknowledged {op} clock {clock:?}"),
            None => "nothing acknowledged".to_string(),
        };
        let unacked: Vec<String> = self.unacked.iter().map(|o| o.to_string()).collect();
        format!("{acked}; unacknowledged after it: [{}]", unacked.join(", "))
    }
}

/// One writer's keys, carried across cycles.
struct Writer {
    id: usize,
    next_seq: u64,
    keys: Vec<KeyModel>,
}

/// How a writer's phase ended.
#[derive(Debug)]
enum WriterEnd {
    Transport(String),
    AppError(String),
    Timeout,
}

fn key_name(w: usize, k: usize) -> String {
    format!("w{w}-k{k}")
}

fn value_prefix(w: usize, k: usize, seq: u64) -> String {
    format!("w{w}-k{k}-n{seq}|")
}

/// The value of attempt `seq`: a prefix naming it, then a deterministic
/// filler up to `len` bytes (so a torn or mixed-up value is noticed).
fn value_bytes(w: usize, k: usize, seq: u64, len: usize) -> Vec<u8> {
    let mut v = value_prefix(w, k, seq).into_bytes();
    let start = v.len();
    v.extend((start..len.max(start)).map(|i| ((seq as usize * 131 + i * 7 + w) % 251) as u8));
    v
}

/// The attempt sequence number a stored value names, if it is one of ours.
fn parse_seq(w: usize, k: usize, value: &[u8]) -> Option<u64> {
    let bar = value.iter().position(|b| *b == b'|')?;
    let head = std::str::from_utf8(&value[..bar]).ok()?;
    head.strip_prefix(&format!("w{w}-k{k}-n"))?.parse().ok()
}

/// `a` descends `b`: every entry of `b` is <= the same entry of `a`.
fn descends(a: &Clock, b: &Clock) -> bool {
    b.iter()
        .all(|(node, c)| a.get(node).copied().unwrap_or(0) >= *c)
}

// ---------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------

/// Writes until the node stops answering (or answers an error), keeping the
/// model of its own keys up to date. Returns the writer, how it ended, and
/// clock anomalies seen in acknowledgements.
async fn run_writer(
    mut wr: Writer,
    mut client: Client,
    mut rng: Rng,
    acks: Arc<AtomicU64>,
) -> (Writer, WriterEnd, Vec<String>) {
    let mut anomalies = Vec::new();
    loop {
        let k = rng.range(0, KEYS_PER_WRITER as u64 - 1) as usize;
        let seq = wr.next_seq;
        wr.next_seq += 1;
        let key = key_name(wr.id, k);
        let op = if rng.chance(20) {
            Op::Delete { seq }
        } else {
            let min = value_prefix(wr.id, k, seq).len();
            let len = if rng.chance(30) {
                rng.range(4 << 10, 64 << 10) as usize
            } else {
                min + rng.range(0, 480) as usize
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
async fn write_phase(
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
        let rng = Rng::new(seed ^ ((round as u64) << 40) ^ ((wr.id as u64 + 1) << 20));
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
    let status = wait_exit_async(node, EXIT_TIMEOUT)
        .await
        .unwrap_or_else(|| {
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

/// Waits for the node to exit without blocking a runtime worker.
async fn wait_exit_async(node: &mut Node, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = node.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Restart and verification
// ---------------------------------------------------------------------------

/// Starts a node on `data_dir`, on `port` if it can still be had, else on a
/// fresh port (another process may have taken it meanwhile).
async fn start_on(opts: &NodeOptions, data_dir: &Path, port: u16, what: &str) -> Node {
    let mut port = port;
    let mut last = String::new();
    for attempt in 0..3 {
        let started = Instant::now();
        let mut node = Node::spawn_on_data_dir(opts, port, data_dir);
        match node.wait_ready().await {
            Ok(()) => {
                println!("{what}: ready on port {port} after {:?}", started.elapsed());
                return node;
            }
            Err(e) => {
                let stderr = node.stderr();
                last = format!("{e}\n--- node stderr ---\n{stderr}");
                if !stderr.contains("already serves") {
                    break;
                }
                println!("{what}: port {port} busy (attempt {attempt}), trying a fresh port");
                port = free_port();
            }
        }
    }
    panic!(
        "{what}: node did not become ready on {}: {last}",
        data_dir.display()
    );
}

/// Sum of `shard.N.wal_replayed_records` over the shards.
/// Whether any shard reports a compaction in progress (a health check with
/// a short timeout; `false` if the node does not answer in time).
async fn compaction_running(node: &Node) -> bool {
    let probe = async {
        let mut c = node.client().await;
        let m = metrics(&mut c).await;
        (0..SHARDS).any(|s| {
            m.get(&format!("shard.{s}.compaction_running"))
                .is_some_and(|v| v == "true")
        })
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .unwrap_or(false)
}

/// Tables below L0, over every shard.
async fn tables_below_l0(node: &Node) -> u64 {
    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    (0..SHARDS)
        .flat_map(|s| (1..5).map(move |l| format!("shard.{s}.level.{l}.tables")))
        .map(|k| metric_u64(&m, &k))
        .sum()
}

async fn replayed_records(node: &Node) -> u64 {
    let mut c = node.client().await;
    let m = metrics(&mut c).await;
    (0..SHARDS)
        .map(|s| metric_u64(&m, &format!("shard.{s}.wal_replayed_records")))
        .sum()
}

#[derive(Debug, Default)]
struct Verified {
    checked: usize,
    with_acked_state: usize,
    found: usize,
    not_found: usize,
    unacked_visible: usize,
    failures: Vec<String>,
}

/// Reads every key of `wr` and checks it against the model; on success the
/// recovered state becomes the key's new baseline.
async fn verify_writer(mut wr: Writer, mut client: Client, label: String) -> (Writer, Verified) {
    let mut out = Verified::default();
    for k in 0..KEYS_PER_WRITER {
        let key = key_name(wr.id, k);
        out.checked += 1;
        let model = &mut wr.keys[k];
        if model.acked.is_some() {
            out.with_acked_state += 1;
        }
        let fail = |actual: String| {
            format!(
                "{label}: key {TENANT}/{key}: expected {}; actual {actual}",
                model.describe()
            )
        };
        let req = pb::ReadRequest {
            tenant_id: TENANT.into(),
            key: key.clone(),
        };
        let r = match tokio::time::timeout(RPC_TIMEOUT, client.read(req)).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(s)) => {
                out.failures.push(fail(format!("Read failed: {s}")));
                continue;
            }
            Err(_) => {
                out.failures
                    .push(fail(format!("Read timed out after {RPC_TIMEOUT:?}")));
                continue;
            }
        };
        let clock = clock_map(&r.vector_clock);
        let acked_clock = model
            .acked
            .as_ref()
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        if !descends(&clock, &acked_clock) {
            let observed = if r.success {
                format!(
                    "value {:?}... ({} B)",
                    String::from_utf8_lossy(&r.value[..r.value.len().min(40)]),
                    r.value.len()
                )
            } else {
                format!("success=false, error_code {}", r.error_code)
            };
            out.failures.push(fail(format!(
                "{observed} with clock {clock:?}, which does not descend the acknowledged clock \
                 {acked_clock:?}{}",
                if clock.is_empty() && !r.success {
                    " (LOST: nothing stored for this key)"
                } else {
                    ""
                }
            )));
            continue;
        }
        let new_state = if r.success {
            out.found += 1;
            let versions = read_versions(&r);
            let shown = String::from_utf8_lossy(&r.value[..r.value.len().min(40)]).into_owned();
            let Some(seq) = parse_seq(wr.id, k, &r.value) else {
                out.failures.push(fail(format!(
                    "a value that is not one of this key's writes: {shown:?} ({} B)",
                    r.value.len()
                )));
                continue;
            };
            let acked_put = matches!(model.acked, Some((Op::Put { seq: s, .. }, _)) if s == seq);
            let candidate = model
                .acked
                .iter()
                .map(|(op, _)| *op)
                .chain(model.unacked.iter().copied())
                .find(|op| matches!(op, Op::Put { seq: s, .. } if *s == seq));
            let Some(op @ Op::Put { len, .. }) = candidate else {
                out.failures.push(fail(format!(
                    "value of write n{seq} ({shown:?}..., {} B, clock {clock:?}), which is neither \
                     the last acknowledged write nor a later attempt",
                    r.value.len()
                )));
                continue;
            };
            if r.value != value_bytes(wr.id, k, seq, len) {
                out.failures.push(fail(format!(
                    "value of n{seq} is damaged: {} B read, {len} B written",
                    r.value.len()
                )));
                continue;
            }
            if versions.len() != 1 {
                out.failures.push(fail(format!(
                    "{} versions after blind writes (expected 1): {:?}",
                    versions.len(),
                    versions
                        .iter()
                        .map(|v| (v.is_tombstone, clock_map(&v.vector_clock)))
                        .collect::<Vec<_>>()
                )));
                continue;
            }
            if acked_put && clock != acked_clock {
                out.failures.push(fail(format!(
                    "the acknowledged value n{seq} with clock {clock:?}, not its acknowledged \
                     clock {acked_clock:?}"
                )));
                continue;
            }
            if !acked_put {
                out.unacked_visible += 1;
                if clock == acked_clock {
                    out.failures.push(fail(format!(
                        "unacknowledged write n{seq} visible with the acknowledged clock \
                         {clock:?} of another outcome"
                    )));
                    continue;
                }
            }
            Some((op, clock))
        } else {
            out.not_found += 1;
            if r.error_code != KEY_NOT_FOUND {
                out.failures.push(fail(format!(
                    "Read answered success=false, error_code {}: {}",
                    r.error_code, r.error_message
                )));
                continue;
            }
            if r.versions.iter().any(|v| !v.is_tombstone) || r.versions.len() > 1 {
                out.failures.push(fail(format!(
                    "KEY_NOT_FOUND with versions {:?}",
                    r.versions
                        .iter()
                        .map(|v| (v.is_tombstone, clock_map(&v.vector_clock)))
                        .collect::<Vec<_>>()
                )));
                continue;
            }
            let acked_delete = matches!(model.acked, Some((Op::Delete { .. }, _)));
            let later_delete = model
                .unacked
                .iter()
                .rev()
                .find(|op| matches!(op, Op::Delete { .. }))
                .copied();
            if clock.is_empty() {
                // Nothing at all is stored: only right if nothing ever landed.
                if model.acked.is_some() {
                    out.failures.push(fail(
                        "KEY_NOT_FOUND with an empty clock: the key's history is gone".into(),
                    ));
                    continue;
                }
                None
            } else if acked_delete && clock == acked_clock {
                model.acked.clone()
            } else if let Some(op) = later_delete {
                out.unacked_visible += 1;
                Some((op, clock))
            } else {
                out.failures.push(fail(format!(
                    "KEY_NOT_FOUND with clock {clock:?}, which is not the acknowledged state and \
                     no later delete was attempted"
                )));
                continue;
            }
        };
        model.acked = new_state;
        model.unacked.clear();
    }
    (wr, out)
}

/// Checks every key of every writer on `node`; returns the writers (with the
/// recovered state as their new baseline) and the totals.
async fn verify_all(node: &Node, writers: Vec<Writer>, label: &str) -> (Vec<Writer>, Verified) {
    let mut tasks = Vec::new();
    for wr in writers {
        let client = node.client().await;
        tasks.push(tokio::spawn(verify_writer(wr, client, label.to_string())));
    }
    let mut writers = Vec::new();
    let mut total = Verified::default();
    for t in tasks {
        let (wr, v) = t.await.expect("verify task");
        writers.push(wr);
        total.checked += v.checked;
        total.with_acked_state += v.with_acked_state;
        total.found += v.found;
        total.not_found += v.not_found;
        total.unacked_visible += v.unacked_visible;
        total.failures.extend(v.failures);
    }
    writers.sort_by_key(|w| w.id);
    (writers, total)
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
    )
}

/// Panics with every failure of a check (and the node's log) if there are any.
fn assert_clean(label: &str, seed: u64, v: &Verified, anomalies: &[String], node: &Node) {
    if v.failures.is_empty() && anomalies.is_empty() {
        return;
    }
    let mut text = format!(
        "{label} (seed {seed}, PAIRDB_CRASH_SEED={seed} repeats the choices): {} key(s) wrong, \
         {} writer anomalies\n",
        v.failures.len(),
        anomalies.len()
    );
    for f in v.failures.iter().take(30) {
        text.push_str(&format!("  {f}\n"));
    }
    for a in anomalies.iter().take(30) {
        text.push_str(&format!("  writer: {a}\n"));
    }
    panic!(
        "{text}--- stderr of the restarted node ---\n{}",
        node.stderr()
    );
}

/// A node configured to compact constantly (see the module doc).
const COMPACTING_CONFIG: &str = r#"
[storage]
memtable_bytes_max = 262144

[storage.compaction]
l0_trigger_tables = 2
level1_target_bytes = 1048576
level_size_multiplier = 4
sstable_target_bytes = 262144
rate_mb_s = 4

[storage.flow_control]
l0_slowdown_tables = 8
l0_stop_tables = 16
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    run_cycles(None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_during_compaction() {
    run_cycles(Some(COMPACTING_CONFIG.to_string()), true).await;
}

/// The kill/restart/verify cycles on a node started with `config`; with
/// `expect_compaction`, some kill must land during a compaction.
async fn run_cycles(config: Option<String>, expect_compaction: bool) {
    let test_started = Instant::now();
    let seed = env_u64("PAIRDB_CRASH_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let cycles = env_u64("PAIRDB_CRASH_CYCLES").unwrap_or(DEFAULT_CYCLES as u64) as usize;
    println!(
        "crash test: seed {seed} (PAIRDB_CRASH_SEED={seed} repeats it), {cycles} kill -9 cycles"
    );
    let mut rng = Rng::new(seed);

    let base = tempfile::Builder::new()
        .prefix("crash-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under CARGO_TARGET_TMPDIR");
    let data_dir = base.path().join("data");
    let opts = NodeOptions {
        shards: SHARDS,
        node_id: "node-crash".into(),
        config,
    };
    let mut node = start_on(&opts, &data_dir, free_port(), "first start").await;
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|id| Writer {
            id,
            next_seq: 0,
            keys: vec![KeyModel::default(); KEYS_PER_WRITER],
        })
        .collect();

    let mut total_acks = 0u64;
    let mut total_checked = 0usize;
    let mut replay_seen = 0u64;
    let mut kills_during_compaction = 0usize;
    for cycle in 1..=cycles + 1 {
        let last = cycle == cycles + 1;
        let (label, signal) = if last {
            ("final SIGTERM round".to_string(), libc::SIGTERM)
        } else {
            (format!("kill -9 cycle {cycle}/{cycles}"), libc::SIGKILL)
        };
        let delay = Duration::from_millis(rng.range(KILL_DELAY_MS.0, KILL_DELAY_MS.1));
        println!("{label}: signal {delay:?} after the first {ACKS_BEFORE_KILL} acks");
        let (back, acks, anomalies, compacting) =
            write_phase(&mut node, writers, seed, cycle, delay, signal).await;
        total_acks += acks;
        if compacting && !last {
            kills_during_compaction += 1;
        }
        let port = node.addr.port();
        drop(node);
        node = start_on(&opts, &data_dir, port, &format!("{label}: restart")).await;
        let replayed = replayed_records(&node).await;
        replay_seen = replay_seen.max(replayed);
        let (checked_writers, v) = verify_all(&node, back, &label).await;
        writers = checked_writers;
        println!(
            "{label}: replayed {replayed} WAL records; checked {} keys ({} with an acknowledged \
             state, {} found, {} not found, {} showing an unacknowledged attempt), {} wrong",
            v.checked,
            v.with_acked_state,
            v.found,
            v.not_found,
            v.unacked_visible,
            v.failures.len()
        );
        assert_clean(&label, seed, &v, &anomalies, &node);
        assert!(
            v.checked > 0 && v.with_acked_state > 0,
            "{label}: nothing checked"
        );
        total_checked += v.checked;
    }

    assert!(total_acks > 0 && total_checked > 0);
    if expect_compaction {
        let below = tables_below_l0(&node).await;
        println!(
            "{kills_during_compaction} kills landed during a compaction; {below} tables below L0"
        );
        assert!(
            kills_during_compaction > 0,
            "no kill landed during a compaction (seed {seed})"
        );
        assert!(
            below > 0,
            "compaction never moved data below L0 (seed {seed})"
        );
    }
    assert!(
        replay_seen > 0,
        "shard.N.wal_replayed_records stayed 0 after every restart (seed {seed})"
    );
    node.signal(libc::SIGTERM);
    let status = wait_exit_async(&mut node, EXIT_TIMEOUT)
        .await
        .expect("node exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", node.stderr());
    println!(
        "crash test done in {:?}: seed {seed}, {total_acks} acknowledged writes, {total_checked} key \
         checks, up to {replay_seen} WAL records replayed",
        test_started.elapsed()
    );
}
