//! Shard-aware routing (`--shard-aware`): each request goes to the port of
//! the shard that owns its key, as GetShardMap describes, so the node never
//! forwards it between cores.
//!
//! Owns the key-to-shard rule on the client side (ring token, then
//! `token_range`), checked against the rule the node names, and the
//! per-shard connections of one connection slot. Invariant: a node whose
//! map has no shard ports, or names another rule, is refused with a
//! message rather than silently routed by guess.

use sha2::{Digest, Sha256};

use crate::cli::Args;
use crate::proto::ShardMapRequest;
use crate::rpc::{Client, MAX_MESSAGE_BYTES};
use crate::BoxError;

/// The only key-to-shard rule this client knows.
const PARTITIONING: &str = "token_range";

/// The ring token: the first 8 bytes, big-endian, of SHA-256 of
/// `tenant + ":" + key`.
pub fn ring_token(tenant: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update(b":");
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// Shard owning `token` under `token_range`: `(token * shards) >> 64`.
pub fn owner_shard(token: u64, shards: usize) -> usize {
    ((token as u128 * shards as u128) >> 64) as usize
}

/// One connection to each shard's port.
#[derive(Clone)]
pub struct ShardRoute {
    clients: Vec<Client>,
}

impl ShardRoute {
    /// The connection to the shard owning `tenant`/`key`.
    pub fn client_for(&mut self, tenant: &str, key: &str) -> &mut Client {
        let shard = owner_shard(ring_token(tenant, key), self.clients.len());
        &mut self.clients[shard]
    }
}

/// `uri` (`http://HOST:PORT[/]`) with its port replaced.
fn with_port(uri: &str, port: u32) -> Result<String, BoxError> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| format!("--target {uri:?} has no scheme"))?;
    let authority = rest.trim_end_matches('/');
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    Ok(format!("{scheme}://{host}:{port}"))
}

/// Asks the node for its shard map and opens `slots` sets of per-shard
/// connections.
pub async fn connect(args: &Args, slots: usize) -> Result<Vec<ShardRoute>, BoxError> {
    let mut client = Client::new(args.endpoint()?.connect().await?);
    let map = client
        .get_shard_map(ShardMapRequest {})
        .await
        .map_err(|s| format!("GetShardMap: {s}"))?
        .into_inner();
    if map.partitioning != PARTITIONING {
        return Err(format!(
            "--shard-aware: the node partitions by {:?}, this client knows only {PARTITIONING:?}",
            map.partitioning
        )
        .into());
    }
    if map.shard_ports.is_empty() || map.shard_ports.len() != map.shards as usize {
        return Err(format!(
            "--shard-aware: the node reports {} shard ports for {} shards (set node.shard_port_base)",
            map.shard_ports.len(),
            map.shards
        )
        .into());
    }
    let mut routes = Vec::with_capacity(slots);
    for _ in 0..slots {
        let mut clients = Vec::with_capacity(map.shard_ports.len());
        for port in &map.shard_ports {
            let uri = with_port(&args.target, *port)?;
            let endpoint = tonic::transport::Endpoint::from_shared(uri)?
                .tcp_nodelay(true)
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_millis(args.request_timeout_ms));
            clients.push(
                Client::new(endpoint.connect().await?)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            );
        }
        routes.push(ShardRoute { clients });
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_owner_follow_the_node() {
        // The node's own test vectors (model::key): `printf '%s' 't:k' | sha256sum`.
        assert_eq!(ring_token("t", "k"), 0x21da_4549_2b9a_16b3);
        assert_eq!(ring_token("tenant-1", "user:42"), 0x877e_3c69_6cf4_0903);
        assert_eq!(owner_shard(0, 2), 0);
        assert_eq!(owner_shard(u64::MAX / 2, 2), 0);
        assert_eq!(owner_shard(u64::MAX / 2 + 1, 2), 1);
        assert_eq!(owner_shard(u64::MAX, 16), 15);
    }

    #[test]
    fn the_port_is_replaced_in_the_target() {
        assert_eq!(
            with_port("http://127.0.0.1:50051", 7000).unwrap(),
            "http://127.0.0.1:7000"
        );
        assert_eq!(
            with_port("http://[::1]:50051/", 7001).unwrap(),
            "http://[::1]:7001"
        );
        assert!(with_port("127.0.0.1:1", 2).is_err());
    }
}
