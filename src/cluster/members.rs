//! The membership snapshot every core reads: [`Members`].
//!
//! Owns the immutable value core 0 publishes on each change: one [`Member`]
//! per node id (its gRPC address, state and incarnation), self included,
//! down and left members kept for the retention period. Pure: built by the
//! roster on core 0, shared as `Arc<Members>`, never mutated after.
//!
//! Invariants: at most one member per node id, the one that keeps the id
//! (see `claims`); a member is live (may be sent data) only in state alive
//! or suspect; `members_alive` counts state alive only.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// How this node sees a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// Answers probes.
    Alive,
    /// A probe went unanswered; still treated as alive until declared down
    /// or refuted.
    Suspect,
    /// Declared down by the cluster (crashed, killed or unreachable).
    Down,
    /// Announced its own departure (graceful shutdown).
    Left,
}

impl MemberState {
    /// The name HealthCheck and the logs use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }

    /// Whether the member is taken to be running (alive or suspect).
    pub(crate) fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// One member as a snapshot lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) node_id: String,
    /// The gRPC address (`HOST:PORT`) to use for this member.
    pub(crate) grpc: String,
    /// Where it receives gossip (UDP).
    pub(crate) gossip: SocketAddr,
    pub(crate) state: MemberState,
    /// SWIM incarnation: raised by the member each time it refutes a
    /// suspicion (0 for this node itself).
    #[allow(
        dead_code,
        reason = "part of the snapshot's interface for callers that order updates"
    )]
    pub(crate) incarnation: u16,
    /// When the member's process started (microseconds since the epoch).
    pub(crate) started_us: u64,
}

/// An immutable membership snapshot: one entry per node id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Members {
    by_id: BTreeMap<String, Member>,
    /// On a node whose id a live member that started earlier holds: that
    /// member (the cluster ignores this node while it lives).
    id_taken_by: Option<Member>,
}

impl Members {
    /// A snapshot of `members` (one per node id; a later duplicate replaces
    /// an earlier one) and, if this node's id is held by another live
    /// member, that member.
    pub(crate) fn new(
        members: impl IntoIterator<Item = Member>,
        id_taken_by: Option<Member>,
    ) -> Self {
        let by_id = members
            .into_iter()
            .map(|m| (m.node_id.clone(), m))
            .collect();
        Self { by_id, id_taken_by }
    }

    /// The member with `node_id`, in whatever state.
    pub(crate) fn get(&self, node_id: &str) -> Option<&Member> {
        self.by_id.get(node_id)
    }

    /// The gRPC address of `node_id` if it is a live member (alive or
    /// suspect), else `None`.
    pub(crate) fn live_grpc(&self, node_id: &str) -> Option<&str> {
        self.get(node_id)
            .filter(|m| m.state.is_live())
            .map(|m| m.grpc.as_str())
    }

    /// Every member, by node id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Member> {
        self.by_id.values()
    }

    /// Members in state alive (suspect ones not counted), self included.
    pub(crate) fn alive_count(&self) -> usize {
        self.iter()
            .filter(|m| m.state == MemberState::Alive)
            .count()
    }

    /// The live member holding this node's id, if it is not this node.
    pub(crate) fn id_taken_by(&self) -> Option<&Member> {
        self.id_taken_by.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node_id: &str, port: u16, state: MemberState) -> Member {
        Member {
            node_id: node_id.into(),
            grpc: format!("127.0.0.1:{port}"),
            gossip: format!("127.0.0.1:{port}").parse().unwrap(),
            state,
            incarnation: 0,
            started_us: 1,
        }
    }

    #[test]
    fn live_means_alive_or_suspect_and_only_alive_counts() {
        let m = Members::new(
            [
                member("a", 1, MemberState::Alive),
                member("b", 2, MemberState::Suspect),
                member("c", 3, MemberState::Down),
                member("d", 4, MemberState::Left),
            ],
            None,
        );
        assert_eq!(m.alive_count(), 1);
        assert_eq!(m.live_grpc("a"), Some("127.0.0.1:1"));
        assert_eq!(m.live_grpc("b"), Some("127.0.0.1:2"));
        assert_eq!(m.live_grpc("c"), None);
        assert_eq!(m.live_grpc("d"), None);
        assert_eq!(m.live_grpc("zz"), None);
        assert_eq!(m.get("d").map(|m| m.state), Some(MemberState::Left));
        let names: Vec<_> = m.iter().map(|m| m.node_id.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }
}
