//! The crash test's verifier: after a restart, reads every key back and
//! checks it against the model (the last acknowledged outcome or one of the
//! later unacknowledged attempts, a clock that descends the acknowledged
//! one); what it reads becomes the key's baseline for the next cycle.

use crate::common::*;
use crate::model::{key_name, parse_seq, value_bytes, Op, Writer};
use crate::{KEYS_PER_WRITER, RPC_TIMEOUT, TENANT};

#[derive(Debug, Default)]
pub(crate) struct Verified {
    pub checked: usize,
    pub with_acked_state: usize,
    pub found: usize,
    pub not_found: usize,
    pub unacked_visible: usize,
    pub failures: Vec<String>,
}

/// Reads every key of `wr` and checks it against the model; on success the
/// recovered state becomes the key's new baseline.
pub(crate) async fn verify_writer(
    mut wr: Writer,
    mut client: Client,
    label: String,
) -> (Writer, Verified) {
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
pub(crate) async fn verify_all(
    node: &Node,
    writers: Vec<Writer>,
    label: &str,
) -> (Vec<Writer>, Verified) {
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

/// Panics with every failure of a check (and the node's log) if there are any.
pub(crate) fn assert_clean(
    label: &str,
    seed: u64,
    v: &Verified,
    anomalies: &[String],
    node: &Node,
) {
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
