//! ReplicateData: copy a tenant's listed keys, or its keys in a range, with
//! every version, to another node of the cluster.
//!
//! Owns the contract's ReplicateData. The target is named by node id and
//! reached at the address gossip membership gives for it (never an address
//! from the request); the versions travel as ApplyVersions batches of about
//! 1 MiB, each applied on the target as a repair keeping its timestamp.
//! Invariants: `keys_replicated` counts only keys in batches the target
//! acknowledged; versions always travel with their clocks
//! (`include_vector_clock` is accepted and has no effect); an empty
//! `key_range_end` means to the tenant's last key.

use super::ranges::{check_range, Merge};
use super::CoreContext;
use crate::client::{ClientConfig, PeerClient};
use crate::cluster::streams::peer_target::APPLY_VERSIONS_PATH;
use crate::engine::{ShardOp, ShardReply};
use crate::model::Version;
use crate::proto;
use crate::server::convert;
use bytes::Bytes;
use prost::Message;
use std::rc::Rc;
use std::time::Duration;

/// Wire bytes per batch, about.
const BATCH_BYTES: usize = 1 << 20;
/// How long one batch may take on the target.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

fn fail(code: proto::ErrorCode, keys: i64, message: String) -> proto::ReplicateResponse {
    proto::ReplicateResponse {
        success: false,
        keys_replicated: keys,
        error_message: message,
        error_code: code as i32,
    }
}

/// Batches of whole keys sent to one target.
struct Sender {
    client: PeerClient,
    source: String,
    target: String,
    entries: Vec<proto::KeyValueEntry>,
    bytes: usize,
    keys_in_batch: i64,
    keys_acked: i64,
}

impl Sender {
    async fn add(&mut self, key: &Bytes, versions: &[Version]) -> Result<(), String> {
        let Some((tenant, k)) = crate::model::key::decode_storage_key(key) else {
            return Ok(());
        };
        for v in versions {
            let e = proto::wire::version_to_wire(tenant, k, v);
            self.bytes += e.encoded_len() + 8;
            self.entries.push(e);
        }
        self.keys_in_batch += 1;
        if self.bytes >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let req = proto::ApplyVersionsRequest {
            source_node_id: self.source.clone(),
            target_node_id: self.target.clone(),
            versions: std::mem::take(&mut self.entries),
        };
        self.bytes = 0;
        let resp: proto::ApplyVersionsResponse = self
            .client
            .unary(APPLY_VERSIONS_PATH, &req, BATCH_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if !resp.success {
            return Err(format!(
                "the target refused a batch: {}",
                resp.error_message
            ));
        }
        self.keys_acked += std::mem::take(&mut self.keys_in_batch);
        Ok(())
    }
}

pub(super) async fn replicate(
    core: &CoreContext,
    req: proto::ReplicateRequest,
) -> proto::ReplicateResponse {
    use proto::ErrorCode as E;
    let own = &core.config.node.node_id;
    if req.target_node_id.is_empty() {
        return fail(
            E::InvalidRequest,
            0,
            "target_node_id must not be empty".into(),
        );
    }
    if req.target_node_id == *own {
        return fail(E::InvalidRequest, 0, "target_node_id is this node".into());
    }
    let Some(addr) = core.live_member_addr(&req.target_node_id) else {
        return fail(
            E::InvalidRequest,
            0,
            format!(
                "target_node_id {:?} is not a live member of this node's cluster",
                req.target_node_id
            ),
        );
    };
    let client = match PeerClient::new(&addr, ClientConfig::default()) {
        Ok(c) => c,
        Err(e) => return fail(E::InternalError, 0, e.to_string()),
    };
    let mut sender = Sender {
        client,
        source: own.clone(),
        target: req.target_node_id.clone(),
        entries: Vec::new(),
        bytes: 0,
        keys_in_batch: 0,
        keys_acked: 0,
    };
    let sent = if req.keys.is_empty() {
        let range = match check_range(
            &core.config.limits,
            &req.tenant_id,
            &req.key_range_start,
            &req.key_range_end,
        ) {
            Ok(r) => r,
            Err(s) => return fail(E::InvalidRequest, 0, s.message),
        };
        let mut merge = Merge::new(Rc::clone(&core.router), range, 1024);
        async {
            while let Some((key, versions)) = merge.next().await.map_err(|s| s.message)? {
                sender.add(&key, &versions).await?;
            }
            sender.flush().await
        }
        .await
    } else {
        let mut keys = Vec::with_capacity(req.keys.len());
        for k in &req.keys {
            match convert::key_ref(&req.tenant_id, k, &core.config.limits) {
                Ok(key) => keys.push(key),
                Err(e) => return fail(E::InvalidRequest, 0, e.0),
            }
        }
        async {
            for key in keys {
                let shard = super::owner(core, &key);
                let storage_key = key.storage_key.clone();
                match core.router.call(shard, ShardOp::Get { key }).await {
                    ShardReply::Get { versions } if !versions.is_empty() => {
                        sender.add(&storage_key, versions.versions()).await?;
                    }
                    ShardReply::Get { .. } => {}
                    ShardReply::Failed(e) => return Err(e.to_string()),
                    other => return Err(format!("unexpected shard reply {other:?}")),
                }
            }
            sender.flush().await
        }
        .await
    };
    match sent {
        Ok(()) => proto::ReplicateResponse {
            success: true,
            keys_replicated: sender.keys_acked,
            error_message: String::new(),
            error_code: E::Unknown as i32,
        },
        Err(m) => fail(
            E::InternalError,
            sender.keys_acked,
            format!("replication to {addr} stopped: {m}"),
        ),
    }
}
