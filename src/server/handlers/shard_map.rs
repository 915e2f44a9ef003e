//! GetShardMap (additive): what a shard-aware client needs to send each
//! key straight to the core that owns it.
//!
//! Owns the answer: the shard count, the key-to-shard rule by name
//! (`token_range`, the rule of `model::owner_shard` over the ring token) and
//! the per-shard ports when `node.shard_port_base` is set. Invariant: the
//! rule named here is the one the router applies, so a request sent to the
//! port it designates is executed on the receiving core; a request on any
//! other port is still served (forwarded), so a stale map costs a hop, never
//! a wrong answer.

use super::super::context::CoreContext;
use crate::proto;

/// The key-to-shard rule's name (see the proto's ShardMapResponse).
pub(crate) const PARTITIONING: &str = "token_range";

pub(super) fn shard_map(core: &CoreContext) -> proto::ShardMapResponse {
    let shards = core.router.shards();
    let base = core.config.node.shard_port_base;
    let shard_ports = if base == 0 {
        Vec::new()
    } else {
        (0..shards).map(|i| u32::from(base) + i as u32).collect()
    };
    proto::ShardMapResponse {
        shards: shards as u32,
        partitioning: PARTITIONING.to_string(),
        shard_ports,
        node_id: core.config.node.node_id.clone(),
    }
}
