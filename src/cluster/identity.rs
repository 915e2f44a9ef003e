//! This node's identity in the gossip cluster, as foca carries it.
//!
//! Owns [`NodeIdentity`]: the node id, the gRPC address other nodes should
//! use, the gossip UDP address, and a start stamp plus a renewal count that
//! make each run of a node a distinct identity. Foca knows one identity per
//! gossip address ([`foca::Identity::addr`]); when two share an address the
//! later start (then the higher renewal) wins ([`win_addr_conflict`]), so a
//! node restarted after kill -9 on the same address replaces its dead
//! predecessor at once instead of waiting for the cluster to forget it, and a
//! node the cluster declared down rejoins under a renewed identity
//! ([`foca::Identity::renew`]). Pure: no I/O.
//!
//! Invariants: `gossip` is the address others send UDP to (never a wildcard);
//! `started_us` is fixed for the life of the process; `renewals` only grows.
//!
//! [`win_addr_conflict`]: foca::Identity::win_addr_conflict

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest encoded identity accepted: a gossip header carries up to three
/// identities (sender, receiver, the target of an indirect probe) in a
/// 1400-byte packet, with room left for membership updates.
pub(crate) const IDENTITY_BYTES_MAX: usize = 320;

/// One run of one node, as the cluster knows it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct NodeIdentity {
    /// The node id (`node.node_id`): the id stamped into vector clocks.
    pub(crate) node_id: String,
    /// The gRPC address (`HOST:PORT`) others should use for this node.
    pub(crate) grpc: String,
    /// Where this node receives gossip (UDP).
    pub(crate) gossip: SocketAddr,
    /// When this process started, microseconds since the Unix epoch.
    pub(crate) started_us: u64,
    /// How often this run renewed its identity after being declared down.
    pub(crate) renewals: u16,
}

impl NodeIdentity {
    /// The identity of a process starting now.
    pub(crate) fn starting_now(node_id: String, grpc: String, gossip: SocketAddr) -> Self {
        let started_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Self {
            node_id,
            grpc,
            gossip,
            started_us,
            renewals: 0,
        }
    }

    /// A stand-in for a seed whose identity is not known yet: foca accepts
    /// an announce addressed to any identity with the receiver's address.
    pub(crate) fn seed(gossip: SocketAddr) -> Self {
        Self {
            node_id: String::new(),
            grpc: String::new(),
            gossip,
            started_us: 0,
            renewals: 0,
        }
    }

    /// Which run is newer: the later start, then the later renewal.
    fn generation(&self) -> (u64, u16) {
        (self.started_us, self.renewals)
    }
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{} (grpc {}, started {}.{})",
            self.node_id, self.gossip, self.grpc, self.started_us, self.renewals
        )
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            renewals: self.renewals.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.gossip
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation() > adversary.generation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(started_us: u64) -> NodeIdentity {
        NodeIdentity {
            node_id: "a".into(),
            grpc: "127.0.0.1:7000".into(),
            gossip: "127.0.0.1:7000".parse().unwrap(),
            started_us,
            renewals: 0,
        }
    }

    #[test]
    fn a_restart_wins_over_its_predecessor() {
        let old = id(100);
        let new = id(200);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        assert_eq!(old.addr(), new.addr());
    }

    #[test]
    fn a_renewed_identity_wins_and_keeps_its_address_and_start() {
        let first = id(100);
        let renewed = first.renew().unwrap();
        assert!(renewed.win_addr_conflict(&first));
        assert_eq!(renewed.addr(), first.addr());
        assert_eq!(renewed.started_us, first.started_us);
        assert_ne!(renewed, first);
    }

    #[test]
    fn an_identity_fits_its_packet_budget() {
        use foca::Codec;
        let mut long = id(u64::MAX);
        long.node_id = "n".repeat(64);
        long.grpc = format!("{}:65535", "h".repeat(64));
        let mut buf = Vec::new();
        foca::PostcardCodec
            .encode_member(&foca::Member::alive(long), &mut buf)
            .unwrap();
        assert!(buf.len() <= IDENTITY_BYTES_MAX, "{}", buf.len());
    }
}
