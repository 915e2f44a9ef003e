//! ApplyVersions: the target side of a range move.
//!
//! Owns the checks a batch from another node must pass (addressed to this
//! node; every entry a valid key, value and non-empty clock; a tombstone
//! carries no value) and its application: entries grouped by owning shard,
//! one `ShardOp::ApplyBatch` per shard, all shards at once. Invariants: a
//! batch with any invalid entry is refused whole before anything is
//! applied; success is answered only once every version is durable under
//! this node's sync setting.

use super::{owner, CoreContext};
use crate::config::LimitsConfig;
use crate::engine::{ShardOp, ShardReply};
use crate::model::{KeyRef, Version};
use crate::proto;
use crate::server::convert::{self, Invalid};

fn refuse(code: proto::ErrorCode, message: String) -> proto::ApplyVersionsResponse {
    proto::ApplyVersionsResponse {
        success: false,
        error_message: message,
        error_code: code as i32,
        ..Default::default()
    }
}

/// One entry of a batch as a key and version, or why it is refused.
pub(super) fn entry(
    limits: &LimitsConfig,
    i: usize,
    e: proto::KeyValueEntry,
) -> Result<(KeyRef, Version), Invalid> {
    let at = |Invalid(m): Invalid| Invalid(format!("versions[{i}]: {m}"));
    let key = convert::key_ref(&e.tenant_id, &e.key, limits).map_err(at)?;
    convert::check_value(&e.value, limits).map_err(at)?;
    let clock = convert::clock_from_wire(e.vector_clock, limits).map_err(at)?;
    if clock.is_empty() {
        return Err(at(Invalid(
            "vector_clock: a copied version must carry its clock".into(),
        )));
    }
    if e.is_tombstone && !e.value.is_empty() {
        return Err(at(Invalid("value: a tombstone carries no value".into())));
    }
    let value = (!e.is_tombstone).then_some(e.value);
    Ok((
        key,
        Version {
            clock,
            timestamp_ms: e.timestamp,
            value,
        },
    ))
}

pub(super) async fn apply_versions(
    core: &CoreContext,
    req: proto::ApplyVersionsRequest,
) -> proto::ApplyVersionsResponse {
    let own = &core.config.node.node_id;
    if req.target_node_id != *own {
        return refuse(
            proto::ErrorCode::InvalidRequest,
            format!(
                "this node is {own:?}, the batch is addressed to {:?}: refusing to store it",
                req.target_node_id
            ),
        );
    }
    let shards = core.router.shards();
    let mut per_shard: Vec<Vec<(KeyRef, Version)>> = (0..shards).map(|_| Vec::new()).collect();
    for (i, e) in req.versions.into_iter().enumerate() {
        match entry(&core.config.limits, i, e) {
            Ok((key, v)) => {
                if let Some(list) = per_shard.get_mut(owner(core, &key)) {
                    list.push((key, v));
                }
            }
            Err(Invalid(m)) => return refuse(proto::ErrorCode::InvalidRequest, m),
        }
    }
    let calls = per_shard
        .into_iter()
        .enumerate()
        .filter(|(_, entries)| !entries.is_empty())
        .map(|(shard, entries)| core.router.call(shard, ShardOp::ApplyBatch { entries }));
    let mut answer = proto::ApplyVersionsResponse {
        success: true,
        ..Default::default()
    };
    for reply in crate::engine::join::join_all(calls).await {
        match reply {
            ShardReply::Applied { stored, stale } => {
                answer.versions_applied += stored as i64;
                answer.versions_stale += stale as i64;
            }
            ShardReply::Failed(e) => return refuse(convert::error_code(&e), e.to_string()),
            other => {
                return refuse(
                    proto::ErrorCode::InternalError,
                    format!("internal error: unexpected shard reply {other:?}"),
                )
            }
        }
    }
    answer
}
