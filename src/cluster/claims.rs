//! Which of several members claiming one node id keeps it.
//!
//! Two live nodes with one node id would stamp vector clocks with the same
//! id and break causality, so the cluster lets exactly one of them hold it:
//! the live claimant that started first (then the lowest gossip address, so
//! every node decides alike). The others are ignored in the membership view
//! while the keeper lives. Among claimants none of which is live, the latest
//! run stands for the node id (its last known state). Pure.
//!
//! Invariant: the decision depends only on the claims, never on the order
//! they are given in, so every node that knows the same claims agrees.

use super::members::Member;

/// The index in `claims` of the member that stands for their node id, or
/// `None` for no claims.
pub(crate) fn keeper(claims: &[Member]) -> Option<usize> {
    let live = claims
        .iter()
        .enumerate()
        .filter(|(_, m)| m.state.is_live())
        .min_by_key(|(_, m)| (m.started_us, m.gossip));
    if let Some((i, _)) = live {
        return Some(i);
    }
    claims
        .iter()
        .enumerate()
        .max_by_key(|(_, m)| (m.started_us, std::cmp::Reverse(m.gossip)))
        .map(|(i, _)| i)
}

/// The live claimants other than the keeper: members refused the id.
pub(crate) fn refused(claims: &[Member]) -> Vec<usize> {
    let Some(k) = keeper(claims) else {
        return Vec::new();
    };
    claims
        .iter()
        .enumerate()
        .filter(|(i, m)| *i != k && m.state.is_live())
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::members::MemberState;

    fn claim(port: u16, started_us: u64, state: MemberState) -> Member {
        Member {
            node_id: "a".into(),
            grpc: format!("127.0.0.1:{port}"),
            gossip: format!("127.0.0.1:{port}").parse().unwrap(),
            state,
            incarnation: 0,
            started_us,
        }
    }

    #[test]
    fn the_first_live_claimant_keeps_the_id() {
        let claims = [
            claim(2, 200, MemberState::Alive),
            claim(1, 100, MemberState::Suspect),
            claim(3, 50, MemberState::Down),
        ];
        assert_eq!(keeper(&claims), Some(1));
        assert_eq!(refused(&claims), [0]);
    }

    #[test]
    fn once_the_keeper_is_gone_the_newcomer_takes_over() {
        let claims = [
            claim(2, 200, MemberState::Alive),
            claim(1, 100, MemberState::Down),
        ];
        assert_eq!(keeper(&claims), Some(0));
        assert!(refused(&claims).is_empty());
    }

    #[test]
    fn equal_starts_fall_back_to_the_address() {
        let a = claim(1, 100, MemberState::Alive);
        let b = claim(2, 100, MemberState::Alive);
        assert_eq!(keeper(&[a.clone(), b.clone()]), Some(0));
        assert_eq!(keeper(&[b, a]), Some(1));
    }

    #[test]
    fn without_live_claimants_the_latest_run_stands() {
        let claims = [
            claim(1, 100, MemberState::Down),
            claim(1, 300, MemberState::Left),
            claim(2, 200, MemberState::Down),
        ];
        assert_eq!(keeper(&claims), Some(1));
        assert!(refused(&claims).is_empty());
        assert_eq!(keeper(&[]), None);
    }

    #[test]
    fn the_decision_ignores_order() {
        let mut claims = vec![
            claim(3, 300, MemberState::Alive),
            claim(1, 100, MemberState::Alive),
            claim(2, 200, MemberState::Suspect),
        ];
        for _ in 0..3 {
            claims.rotate_left(1);
            let k = keeper(&claims).unwrap();
            assert_eq!(claims[k].started_us, 100);
            assert_eq!(refused(&claims).len(), 2);
        }
    }
}
