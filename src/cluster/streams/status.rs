//! The state of a stream on one shard, and the node's answer to
//! GetStreamStatus built from every shard's.
//!
//! Pure. Owns [`Phase`], [`ShardStatus`] and [`aggregate`]. Invariants: the
//! node answers "completed" only when every shard's part is completed (its
//! copy pass and every forward sent before the pass ended acknowledged by
//! the target); "failed" when any shard's part failed; "copying" otherwise;
//! "not_found" (active = false) when no shard has the stream.

use crate::proto;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A copy pass runs, or waits for the target.
    Copying,
    /// The last copy pass and the forwards before its end are acknowledged;
    /// forwarding goes on.
    Completed,
    /// The stream cannot go on; the reason is logged and kept here.
    Failed(String),
}

impl Phase {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Phase::Copying => "copying",
            Phase::Completed => "completed",
            Phase::Failed(_) => "failed",
        }
    }
}

/// One shard's part of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardStatus {
    pub phase: Phase,
    /// Keys and wire bytes the copy passes sent (acknowledged).
    pub keys_copied: u64,
    pub bytes_copied: u64,
    /// Versions and wire bytes forwarded live (acknowledged).
    pub keys_streamed: u64,
    pub bytes_streamed: u64,
    /// Copy passes started (more than one after a backlog overflow or a
    /// restart).
    pub passes: u64,
    /// Forwards dropped because the backlog was full (each made good by
    /// another copy pass).
    pub forwards_dropped: u64,
    /// Sends that failed and were retried.
    pub send_retries: u64,
    /// Forwards queued now (filled in by listings, not kept up to date).
    pub backlog_bytes: u64,
}

impl ShardStatus {
    pub(crate) fn new() -> Self {
        Self {
            phase: Phase::Copying,
            keys_copied: 0,
            bytes_copied: 0,
            keys_streamed: 0,
            bytes_streamed: 0,
            passes: 0,
            forwards_dropped: 0,
            send_retries: 0,
            backlog_bytes: 0,
        }
    }
}

/// The phase of one stream over every shard that has it: failed if any
/// part failed, completed once every part completed, else copying.
pub(crate) fn overall_phase(parts: &[ShardStatus]) -> Phase {
    if parts.iter().any(|s| matches!(s.phase, Phase::Failed(_))) {
        Phase::Failed(String::new())
    } else if parts.iter().all(|s| s.phase == Phase::Completed) {
        Phase::Completed
    } else {
        Phase::Copying
    }
}

/// The figures of one stream over every shard that has it, for metrics:
/// (name, value) pairs.
pub(crate) fn figures(parts: &[ShardStatus]) -> Vec<(&'static str, String)> {
    let state = overall_phase(parts);
    let sum = |f: fn(&ShardStatus) -> u64| parts.iter().map(f).sum::<u64>().to_string();
    vec![
        ("state", state.name().to_string()),
        ("keys_copied", sum(|s| s.keys_copied)),
        ("bytes_copied", sum(|s| s.bytes_copied)),
        ("keys_streamed", sum(|s| s.keys_streamed)),
        ("bytes_streamed", sum(|s| s.bytes_streamed)),
        ("passes", sum(|s| s.passes)),
        ("forwards_dropped", sum(|s| s.forwards_dropped)),
        ("send_retries", sum(|s| s.send_retries)),
        ("backlog_bytes", sum(|s| s.backlog_bytes)),
    ]
}

/// The node's GetStreamStatus answer from each shard's part (`None`: that
/// shard has no such stream).
pub(crate) fn aggregate(parts: &[Option<ShardStatus>]) -> proto::StreamStatusResponse {
    let present: Vec<&ShardStatus> = parts.iter().flatten().collect();
    if present.is_empty() {
        return proto::StreamStatusResponse {
            active: false,
            state: "not_found".into(),
            ..Default::default()
        };
    }
    let failed = present.iter().any(|s| matches!(s.phase, Phase::Failed(_)));
    let copying = present.iter().any(|s| s.phase == Phase::Copying);
    // Every shard takes part in every stream, so a shard missing it (a
    // start still spreading over the cores) means still copying.
    let all = present.len() == parts.len();
    let state = if failed {
        "failed"
    } else if copying || !all {
        "copying"
    } else {
        "completed"
    };
    let sum = |f: fn(&ShardStatus) -> u64| present.iter().map(|s| f(s)).sum::<u64>() as i64;
    proto::StreamStatusResponse {
        active: !failed,
        state: state.into(),
        keys_copied: sum(|s| s.keys_copied),
        keys_streamed: sum(|s| s.keys_streamed),
        bytes_copied: sum(|s| s.bytes_copied),
        bytes_streamed: sum(|s| s.bytes_streamed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(phase: Phase, keys: u64) -> Option<ShardStatus> {
        Some(ShardStatus {
            phase,
            keys_copied: keys,
            ..ShardStatus::new()
        })
    }

    #[test]
    fn completed_only_when_every_shard_is() {
        let a = aggregate(&[part(Phase::Completed, 2), part(Phase::Completed, 3)]);
        assert_eq!(
            (a.state.as_str(), a.active, a.keys_copied),
            ("completed", true, 5)
        );
        let a = aggregate(&[part(Phase::Completed, 2), part(Phase::Copying, 3)]);
        assert_eq!((a.state.as_str(), a.active), ("copying", true));
        let a = aggregate(&[part(Phase::Completed, 2), None]);
        assert_eq!(a.state, "copying");
    }

    #[test]
    fn any_failed_part_fails_the_stream() {
        let a = aggregate(&[part(Phase::Failed("x".into()), 0), part(Phase::Copying, 1)]);
        assert_eq!((a.state.as_str(), a.active), ("failed", false));
    }

    #[test]
    fn no_part_is_not_found() {
        let a = aggregate(&[None, None]);
        assert_eq!((a.state.as_str(), a.active), ("not_found", false));
    }
}
