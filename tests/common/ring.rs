//! The coordinator's consistent-hash ring, computed the way it computes it
//! (../shared/CLUSTER.md): 150 virtual nodes per node at token
//! SHA-256("<node_id>-vnode-<i>") (first 8 bytes, big-endian); a key's token
//! is [`ring_token`]; the owner of token t is the first vnode with hash >= t,
//! wrapping to the lowest. The vnode at H whose predecessor is P owns
//! (P, H]. Also the ranges a node addition or removal streams, one per
//! vnode, not merged, grouped by source or by inheritor.

use pairdb_storage::model::{ring_token, TokenRange};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Virtual nodes per node.
pub const VNODES: usize = 150;

/// A token range `(start, end]` as StartStreaming and RangeDigest carry it.
pub type Range = (u64, u64);

/// First 8 bytes, big-endian, of SHA-256 of `text`.
pub fn token_of(text: &str) -> u64 {
    let d = Sha256::digest(text.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The token of vnode `i` of `node_id`.
pub fn vnode_token(node_id: &str, i: usize) -> u64 {
    token_of(&format!("{node_id}-vnode-{i}"))
}

/// True when `token` lies in one of `ranges`.
pub fn in_ranges(ranges: &[Range], token: u64) -> bool {
    ranges
        .iter()
        .any(|&(s, e)| TokenRange::new(s, e).contains(token))
}

#[derive(Debug, Clone)]
pub struct Ring {
    /// (token, node id), sorted by token.
    vnodes: Vec<(u64, String)>,
}

impl Ring {
    pub fn new<S: AsRef<str>>(nodes: &[S]) -> Ring {
        let mut vnodes: Vec<(u64, String)> = nodes
            .iter()
            .flat_map(|n| {
                let n = n.as_ref();
                (0..VNODES).map(move |i| (vnode_token(n, i), n.to_string()))
            })
            .collect();
        vnodes.sort();
        Ring { vnodes }
    }

    /// The ring without `node`.
    pub fn without(&self, node: &str) -> Ring {
        Ring {
            vnodes: self
                .vnodes
                .iter()
                .filter(|(_, n)| n != node)
                .cloned()
                .collect(),
        }
    }

    /// The owner of `token`: the first vnode with hash >= token, wrapping.
    pub fn owner_of_token(&self, token: u64) -> &str {
        let i = self.vnodes.partition_point(|(h, _)| *h < token);
        &self.vnodes[i % self.vnodes.len()].1
    }

    /// The primary owner of a tenant's key.
    pub fn owner(&self, tenant: &str, key: &str) -> &str {
        self.owner_of_token(ring_token(tenant, key))
    }

    /// (P, H] for every vnode H of `node`, P its predecessor in this ring.
    pub fn ranges_of(&self, node: &str) -> Vec<Range> {
        let len = self.vnodes.len();
        (0..len)
            .filter(|&i| self.vnodes[i].1 == node)
            .map(|i| (self.vnodes[(i + len - 1) % len].0, self.vnodes[i].0))
            .collect()
    }

    /// What the coordinator streams when `new_node` joins this ring: for
    /// every vnode H of `new_node`, (P, H] with P its predecessor in the
    /// ring with `new_node`, grouped by the owner of H in this ring (the
    /// source).
    pub fn addition_moves(&self, new_node: &str) -> BTreeMap<String, Vec<Range>> {
        let mut with = self.clone();
        with.vnodes.extend(Ring::new(&[new_node]).vnodes);
        with.vnodes.sort();
        let mut moves: BTreeMap<String, Vec<Range>> = BTreeMap::new();
        for (p, h) in with.ranges_of(new_node) {
            let source = self.owner_of_token(h).to_string();
            moves.entry(source).or_default().push((p, h));
        }
        moves
    }

    /// What the coordinator streams from `leaving` when it leaves this
    /// ring: for every vnode H of `leaving`, (P, H] with P its predecessor
    /// here, grouped by the owner of H in the ring without `leaving` (the
    /// inheritor).
    pub fn removal_moves(&self, leaving: &str) -> BTreeMap<String, Vec<Range>> {
        let rest = self.without(leaving);
        let mut moves: BTreeMap<String, Vec<Range>> = BTreeMap::new();
        for (p, h) in self.ranges_of(leaving) {
            let heir = rest.owner_of_token(h).to_string();
            moves.entry(heir).or_default().push((p, h));
        }
        moves
    }
}
