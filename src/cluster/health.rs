//! The cluster's HealthCheck metrics.
//!
//! Owns the `cluster.*` entries of the HealthCheck metrics map, read from
//! the answering core's [`MemberView`]: `cluster.members_alive` (members in
//! state alive, this node included), one `cluster.member.<node_id>` =
//! `"<alive|suspect|down|left> <grpc host:port>"` per member listed, and on a
//! node whose id another live member holds, `cluster.node_id_taken_by` =
//! that member's gRPC address. Pure: reads one snapshot.

use super::view::MemberView;
use std::collections::HashMap;

/// Adds the cluster metrics of `view`'s latest snapshot to `metrics`.
pub(crate) fn insert_health_metrics(view: &MemberView, metrics: &mut HashMap<String, String>) {
    let members = view.snapshot();
    metrics.insert(
        "cluster.members_alive".to_string(),
        members.alive_count().to_string(),
    );
    for m in members.iter() {
        metrics.insert(
            format!("cluster.member.{}", m.node_id),
            format!("{} {}", m.state.as_str(), m.grpc),
        );
    }
    if let Some(keeper) = members.id_taken_by() {
        metrics.insert("cluster.node_id_taken_by".to_string(), keeper.grpc.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::members::{Member, MemberState, Members};
    use std::sync::Arc;

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
    fn one_entry_per_member_and_the_alive_count() {
        let view = MemberView::new(Arc::new(Members::new(
            [
                member("a", 1, MemberState::Alive),
                member("b", 2, MemberState::Down),
                member("c", 3, MemberState::Left),
            ],
            None,
        )));
        let mut m = HashMap::new();
        insert_health_metrics(&view, &mut m);
        assert_eq!(m["cluster.members_alive"], "1");
        assert_eq!(m["cluster.member.a"], "alive 127.0.0.1:1");
        assert_eq!(m["cluster.member.b"], "down 127.0.0.1:2");
        assert_eq!(m["cluster.member.c"], "left 127.0.0.1:3");
        assert!(!m.contains_key("cluster.node_id_taken_by"));
        assert_eq!(m.len(), 4);
    }
}
