//! Core 0's record of every member it knows, and the snapshots built from it.
//!
//! Owns the bookkeeping between foca and the [`Members`] snapshots: after
//! every interaction with foca the gossip loop hands the roster foca's full
//! membership state ([`Roster::sync`]); the roster keeps one entry per gossip
//! address with the state, incarnation and the time it last changed, marks
//! as left the identities that announced their departure, reports each
//! change once (for the log), forgets down and left members after the
//! retention period, and builds the snapshot with one member per node id
//! (`claims` decides between several claimants). Pure: time comes in as an
//! argument.
//!
//! Invariants: this node is never an entry (it is `me`); an entry's
//! `since` is when its state last changed; a departed identity stays left
//! even if stale gossip says otherwise; every duplicate node id incident is
//! reported once for as long as it lasts.

use super::claims;
use super::identity::NodeIdentity;
use super::members::{Member, MemberState, Members};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Departures remembered at most (identities, not nodes); older notices are
/// dropped first. Far above any cluster's churn within the retention period.
const LEFT_REMEMBERED_MAX: usize = 4096;

/// A change of one member, reported once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// An identity seen for the first time, in `state`.
    Joined {
        id: NodeIdentity,
        state: MemberState,
    },
    /// A new identity at a known address: the node restarted (or renewed
    /// its identity after being declared down).
    Rejoined {
        old: NodeIdentity,
        new: NodeIdentity,
        state: MemberState,
    },
    /// A known identity changed state.
    State {
        id: NodeIdentity,
        from: MemberState,
        to: MemberState,
        incarnation: u16,
    },
    /// A down or left member past the retention period, no longer listed.
    Forgotten { id: NodeIdentity },
}

/// Two live members claiming one node id: `keeper` holds it, `refused` is
/// ignored while the keeper lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub(crate) keeper: Member,
    pub(crate) refused: Member,
}

#[derive(Debug, Clone)]
struct Entry {
    id: NodeIdentity,
    state: MemberState,
    incarnation: u16,
    since: Instant,
}

/// Core 0's view of the cluster.
#[derive(Debug)]
pub(crate) struct Roster {
    me: NodeIdentity,
    /// This node's own state: alive, or left once it announced its leave.
    my_state: MemberState,
    retention: Duration,
    entries: HashMap<SocketAddr, Entry>,
    /// Identities that announced their departure, oldest first.
    left: Vec<NodeIdentity>,
    /// Duplicate node id incidents already reported: (node id, refused
    /// member's gossip address, its start).
    reported: HashSet<(String, SocketAddr, u64)>,
}

fn from_foca(state: foca::State) -> MemberState {
    match state {
        foca::State::Alive => MemberState::Alive,
        foca::State::Suspect => MemberState::Suspect,
        foca::State::Down => MemberState::Down,
    }
}

impl Roster {
    pub(crate) fn new(me: NodeIdentity, retention: Duration) -> Self {
        Self {
            me,
            my_state: MemberState::Alive,
            retention,
            entries: HashMap::new(),
            left: Vec::new(),
            reported: HashSet::new(),
        }
    }

    /// This node's current identity.
    pub(crate) fn me(&self) -> &NodeIdentity {
        &self.me
    }

    /// This node renewed its identity (foca's rejoin after being declared
    /// down).
    pub(crate) fn renamed(&mut self, me: NodeIdentity) {
        self.me = me;
    }

    /// This node announced its leave.
    pub(crate) fn leaving(&mut self) {
        self.my_state = MemberState::Left;
    }

    /// `id` announced its departure; it is listed as left from the next
    /// [`Roster::sync`] on.
    pub(crate) fn departed(&mut self, id: NodeIdentity) {
        if self.left.contains(&id) {
            return;
        }
        if self.left.len() >= LEFT_REMEMBERED_MAX {
            self.left.remove(0);
        }
        self.left.push(id);
    }

    /// Brings the roster in line with foca's membership state `seen`
    /// (identity, state, incarnation) at `now`, and returns what changed.
    pub(crate) fn sync<'a>(
        &mut self,
        seen: impl IntoIterator<Item = (&'a NodeIdentity, foca::State, u16)>,
        now: Instant,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut present = HashSet::new();
        for (id, state, incarnation) in seen {
            if id.gossip == self.me.gossip {
                continue;
            }
            let state = if self.left.contains(id) {
                MemberState::Left
            } else {
                from_foca(state)
            };
            present.insert(id.gossip);
            match self.entries.get_mut(&id.gossip) {
                Some(e) if e.id == *id => {
                    e.incarnation = incarnation;
                    // A departure is final for an identity: foca's later
                    // "down" about it must not turn "left" back into "down".
                    if e.state != state && e.state != MemberState::Left {
                        changes.push(Change::State {
                            id: id.clone(),
                            from: e.state,
                            to: state,
                            incarnation,
                        });
                        e.state = state;
                        e.since = now;
                    }
                }
                Some(e) => {
                    changes.push(Change::Rejoined {
                        old: e.id.clone(),
                        new: id.clone(),
                        state,
                    });
                    *e = Entry {
                        id: id.clone(),
                        state,
                        incarnation,
                        since: now,
                    };
                }
                None => {
                    changes.push(Change::Joined {
                        id: id.clone(),
                        state,
                    });
                    self.entries.insert(
                        id.gossip,
                        Entry {
                            id: id.clone(),
                            state,
                            incarnation,
                            since: now,
                        },
                    );
                }
            }
        }
        // Foca forgets down members after its own retention; a live entry
        // foca no longer lists is gone too.
        for e in self.entries.values_mut() {
            if !present.contains(&e.id.gossip) && e.state.is_live() {
                changes.push(Change::State {
                    id: e.id.clone(),
                    from: e.state,
                    to: MemberState::Down,
                    incarnation: e.incarnation,
                });
                e.state = MemberState::Down;
                e.since = now;
            }
        }
        let retention = self.retention;
        self.entries.retain(|_, e| {
            let keep = e.state.is_live() || now.saturating_duration_since(e.since) < retention;
            if !keep {
                changes.push(Change::Forgotten { id: e.id.clone() });
            }
            keep
        });
        let entries = &self.entries;
        self.left
            .retain(|id| entries.get(&id.gossip).is_none_or(|e| e.id == *id));
        changes
    }

    fn member(id: &NodeIdentity, state: MemberState, incarnation: u16) -> Member {
        Member {
            node_id: id.node_id.clone(),
            grpc: id.grpc.clone(),
            gossip: id.gossip,
            state,
            incarnation,
            started_us: id.started_us,
        }
    }

    /// Every member (self first), grouped by node id.
    fn claims(&self) -> BTreeMap<&str, Vec<Member>> {
        let mut by_id: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
        by_id
            .entry(self.me.node_id.as_str())
            .or_default()
            .push(Self::member(&self.me, self.my_state, 0));
        for e in self.entries.values() {
            by_id
                .entry(e.id.node_id.as_str())
                .or_default()
                .push(Self::member(&e.id, e.state, e.incarnation));
        }
        by_id
    }

    /// The snapshot: for each node id the member that keeps it.
    pub(crate) fn members(&self) -> Members {
        let mut id_taken_by = None;
        let mut listed = Vec::new();
        for (node_id, claims) in self.claims() {
            let Some(k) = claims::keeper(&claims) else {
                continue;
            };
            let Some(keeper) = claims.get(k) else {
                continue;
            };
            // Self is the first claim of its own node id.
            if node_id == self.me.node_id && k != 0 && self.my_state.is_live() {
                id_taken_by = Some(keeper.clone());
            }
            listed.push(keeper.clone());
        }
        Members::new(listed, id_taken_by)
    }

    /// Duplicate node id incidents not reported yet. An incident that ended
    /// (the refused member or the keeper went away) may be reported again
    /// if it recurs.
    pub(crate) fn new_conflicts(&mut self) -> Vec<Conflict> {
        let mut current = Vec::new();
        for claims in self.claims().into_values() {
            let Some(keeper) = claims::keeper(&claims).and_then(|k| claims.get(k)) else {
                continue;
            };
            for i in claims::refused(&claims) {
                if let Some(refused) = claims.get(i) {
                    current.push(Conflict {
                        keeper: keeper.clone(),
                        refused: refused.clone(),
                    });
                }
            }
        }
        let key = |c: &Conflict| {
            (
                c.refused.node_id.clone(),
                c.refused.gossip,
                c.refused.started_us,
            )
        };
        let keys: HashSet<_> = current.iter().map(key).collect();
        self.reported.retain(|k| keys.contains(k));
        current
            .into_iter()
            .filter(|c| self.reported.insert(key(c)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(node_id: &str, port: u16, started_us: u64) -> NodeIdentity {
        NodeIdentity {
            node_id: node_id.into(),
            grpc: format!("127.0.0.1:{port}"),
            gossip: format!("127.0.0.1:{port}").parse().unwrap(),
            started_us,
            renewals: 0,
        }
    }

    fn state_of(r: &Roster, node_id: &str) -> Option<(MemberState, String)> {
        r.members().get(node_id).map(|m| (m.state, m.grpc.clone()))
    }

    const ALIVE: foca::State = foca::State::Alive;
    const SUSPECT: foca::State = foca::State::Suspect;
    const DOWN: foca::State = foca::State::Down;

    #[test]
    fn join_suspect_refute_down_and_forget() {
        let t0 = Instant::now();
        let me = id("a", 1, 10);
        let b = id("b", 2, 20);
        let mut r = Roster::new(me, Duration::from_secs(60));
        assert_eq!(r.members().alive_count(), 1);

        let ch = r.sync([(&b, ALIVE, 0)], t0);
        assert_eq!(
            ch,
            [Change::Joined {
                id: b.clone(),
                state: MemberState::Alive
            }]
        );
        assert_eq!(r.members().alive_count(), 2);
        assert!(
            r.sync([(&b, ALIVE, 0)], t0).is_empty(),
            "no change, no report"
        );

        let ch = r.sync([(&b, SUSPECT, 0)], t0);
        assert!(matches!(
            ch.as_slice(),
            [Change::State {
                to: MemberState::Suspect,
                ..
            }]
        ));
        assert_eq!(r.members().alive_count(), 1);
        assert_eq!(r.members().live_grpc("b"), Some("127.0.0.1:2"));

        let ch = r.sync([(&b, ALIVE, 1)], t0);
        assert!(matches!(
            ch.as_slice(),
            [Change::State {
                from: MemberState::Suspect,
                to: MemberState::Alive,
                incarnation: 1,
                ..
            }]
        ));

        let t1 = t0 + Duration::from_secs(5);
        r.sync([(&b, DOWN, 1)], t1);
        assert_eq!(
            state_of(&r, "b"),
            Some((MemberState::Down, "127.0.0.1:2".into()))
        );
        assert_eq!(r.members().live_grpc("b"), None);
        // Kept for the retention period, even once foca forgets it.
        assert!(r.sync([], t1 + Duration::from_secs(59)).is_empty());
        assert!(state_of(&r, "b").is_some());
        let ch = r.sync([], t1 + Duration::from_secs(60));
        assert_eq!(ch, [Change::Forgotten { id: b }]);
        assert_eq!(state_of(&r, "b"), None);
    }

    #[test]
    fn a_restart_on_the_same_address_replaces_the_old_run() {
        let t0 = Instant::now();
        let mut r = Roster::new(id("a", 1, 10), Duration::from_secs(60));
        let old = id("b", 2, 20);
        let new = id("b", 2, 30);
        r.sync([(&old, ALIVE, 0)], t0);
        r.sync([(&old, DOWN, 0)], t0);
        let ch = r.sync([(&new, ALIVE, 0)], t0);
        assert_eq!(
            ch,
            [Change::Rejoined {
                old,
                new,
                state: MemberState::Alive
            }]
        );
        assert_eq!(
            state_of(&r, "b"),
            Some((MemberState::Alive, "127.0.0.1:2".into()))
        );
        assert_eq!(r.members().alive_count(), 2);
    }

    #[test]
    fn a_departure_is_left_not_down_and_stays_so() {
        let t0 = Instant::now();
        let mut r = Roster::new(id("a", 1, 10), Duration::from_secs(60));
        let b = id("b", 2, 20);
        r.sync([(&b, ALIVE, 0)], t0);
        r.departed(b.clone());
        let ch = r.sync([(&b, DOWN, 0)], t0);
        assert!(matches!(
            ch.as_slice(),
            [Change::State {
                to: MemberState::Left,
                ..
            }]
        ));
        assert!(r.sync([(&b, DOWN, 0)], t0).is_empty());
        assert_eq!(state_of(&r, "b").map(|s| s.0), Some(MemberState::Left));
        // A later run of the same node is a new identity: alive again.
        let b2 = id("b", 2, 30);
        r.sync([(&b2, ALIVE, 0)], t0);
        assert_eq!(state_of(&r, "b").map(|s| s.0), Some(MemberState::Alive));
    }

    #[test]
    fn own_leave_shows_in_the_snapshot() {
        let mut r = Roster::new(id("a", 1, 10), Duration::from_secs(60));
        r.leaving();
        assert_eq!(state_of(&r, "a").map(|s| s.0), Some(MemberState::Left));
        assert_eq!(r.members().alive_count(), 0);
    }

    #[test]
    fn a_duplicate_node_id_is_ignored_and_reported_once() {
        let t0 = Instant::now();
        let mut r = Roster::new(id("a", 1, 10), Duration::from_secs(60));
        let first = id("b", 2, 20);
        let dup = id("b", 3, 30);
        r.sync([(&first, ALIVE, 0), (&dup, ALIVE, 0)], t0);
        assert_eq!(
            state_of(&r, "b"),
            Some((MemberState::Alive, "127.0.0.1:2".into()))
        );
        assert_eq!(r.members().alive_count(), 2, "a and b (the first)");
        let c = r.new_conflicts();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].keeper.gossip, first.gossip);
        assert_eq!(c[0].refused.gossip, dup.gossip);
        assert!(r.new_conflicts().is_empty(), "reported once");
        // The keeper dies: the newcomer now stands for the id.
        r.sync([(&first, DOWN, 0), (&dup, ALIVE, 0)], t0);
        assert_eq!(
            state_of(&r, "b"),
            Some((MemberState::Alive, "127.0.0.1:3".into()))
        );
        assert!(r.new_conflicts().is_empty());
    }

    #[test]
    fn a_newcomer_learns_its_id_is_taken() {
        let t0 = Instant::now();
        let mut r = Roster::new(id("b", 3, 30), Duration::from_secs(60));
        assert!(r.members().id_taken_by().is_none());
        let first = id("b", 2, 20);
        r.sync([(&first, ALIVE, 0)], t0);
        let m = r.members();
        assert_eq!(
            m.id_taken_by().map(|k| k.grpc.as_str()),
            Some("127.0.0.1:2")
        );
        assert_eq!(m.live_grpc("b"), Some("127.0.0.1:2"));
        let c = r.new_conflicts();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].refused.gossip, r.me().gossip);
    }
}
