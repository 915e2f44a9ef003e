//! The request checks of every method, without a shard: decode the
//! protobuf message the method takes and apply the validation its handler
//! applies before it touches a shard, the mesh or the network. For the fuzz
//! targets (`crate::fuzzing`), which drive the server's decoding with no
//! running node.
//!
//! Invariant: [`METHODS`] lists every `(service, method)` that
//! [`super::dispatch`] serves, and each arm below decodes the same message
//! type and calls the same checks as the handler behind that arm.

use super::{
    admin, decode, peer, ranges, split_path, ADMIN_SERVICE, PEER_SERVICE, STORAGE_SERVICE,
};
use crate::cluster::streams::spec::{validate_start, TargetCheck};
use crate::config::Config;
use crate::proto;
use crate::proto::grpc::{Code, Status};
use crate::server::convert::{self, Invalid};
use crate::storage::streams_file;
use bytes::Bytes;

/// Every method the server answers, as `(service, method)`.
pub(crate) const METHODS: &[(&str, &str)] = &[
    (STORAGE_SERVICE, "Write"),
    (STORAGE_SERVICE, "Read"),
    (STORAGE_SERVICE, "Delete"),
    (STORAGE_SERVICE, "Repair"),
    (STORAGE_SERVICE, "HealthCheck"),
    (STORAGE_SERVICE, "StreamKeys"),
    (STORAGE_SERVICE, "GetKeyRange"),
    (STORAGE_SERVICE, "StartStreaming"),
    (STORAGE_SERVICE, "GetStreamStatus"),
    (STORAGE_SERVICE, "StopStreaming"),
    (STORAGE_SERVICE, "NotifyStreamingComplete"),
    (PEER_SERVICE, "ApplyVersions"),
    (STORAGE_SERVICE, "DrainNode"),
    (ADMIN_SERVICE, "RangeDigest"),
    (ADMIN_SERVICE, "Cleanup"),
    (ADMIN_SERVICE, "Undrain"),
    (STORAGE_SERVICE, "ReplicateData"),
    // Appended, not inserted: committed fuzz inputs select methods by index.
    (STORAGE_SERVICE, "GetShardMap"),
];

fn invalid(Invalid(m): Invalid) -> Status {
    Status::new(Code::InvalidArgument, m)
}

/// Decodes `body` as the request of `path` and runs the checks of its
/// handler; the error is the status (or the body error, as a status) the
/// call would answer.
pub(crate) fn check_request(path: &str, body: Bytes, config: &Config) -> Result<(), Status> {
    let limits = &config.limits;
    let (service, method) = split_path(path)
        .ok_or_else(|| Status::new(Code::Unimplemented, format!("unknown path {path:?}")))?;
    match (service, method) {
        (STORAGE_SERVICE, "Write") => {
            let r: proto::WriteRequest = decode(body)?;
            convert::key_ref(&r.tenant_id, &r.key, limits).map_err(invalid)?;
            convert::check_value(&r.value, limits).map_err(invalid)?;
            convert::clock_from_wire(r.vector_clock, limits).map_err(invalid)?;
        }
        (STORAGE_SERVICE, "Read") => {
            let r: proto::ReadRequest = decode(body)?;
            convert::key_ref(&r.tenant_id, &r.key, limits).map_err(invalid)?;
        }
        (STORAGE_SERVICE, "Delete") => {
            let r: proto::DeleteRequest = decode(body)?;
            convert::key_ref(&r.tenant_id, &r.key, limits).map_err(invalid)?;
            convert::clock_from_wire(r.vector_clock, limits).map_err(invalid)?;
        }
        (STORAGE_SERVICE, "Repair") => {
            let r: proto::RepairRequest = decode(body)?;
            convert::key_ref(&r.tenant_id, &r.key, limits).map_err(invalid)?;
            convert::check_value(&r.value, limits).map_err(invalid)?;
            let clock = convert::clock_from_wire(r.vector_clock, limits).map_err(invalid)?;
            if clock.is_empty() {
                return Err(Status::new(Code::InvalidArgument, "empty repair clock"));
            }
        }
        (STORAGE_SERVICE, "HealthCheck") => {
            let _: proto::HealthCheckRequest = decode(body)?;
        }
        (STORAGE_SERVICE, "GetShardMap") => {
            let _: proto::ShardMapRequest = decode(body)?;
        }
        (STORAGE_SERVICE, "StreamKeys") => {
            let r: proto::StreamKeysRequest = decode(body)?;
            ranges::check_range(limits, &r.tenant_id, &r.key_range_start, &r.key_range_end)?;
        }
        (STORAGE_SERVICE, "GetKeyRange") => {
            let r: proto::KeyRangeRequest = decode(body)?;
            ranges::check_range(limits, &r.tenant_id, &r.key_range_start, &r.key_range_end)?;
        }
        (STORAGE_SERVICE, "StartStreaming") => {
            let r: proto::StartStreamingRequest = decode(body)?;
            // Every node is taken as a live member, to reach every check.
            let live = |node_id: &str| Some(format!("{node_id}:7000"));
            let targets = TargetCheck {
                live_member_addr: &live,
                allowed: &config.cluster.stream_targets_allowed,
            };
            let record = validate_start(&r, &config.node.node_id, &targets, 0)
                .map_err(|m| Status::new(Code::InvalidArgument, m))?;
            // An accepted stream is persisted: it must survive its file.
            let file = streams_file::encode(std::slice::from_ref(&record));
            assert_eq!(
                streams_file::decode(&file).ok(),
                Some(vec![record]),
                "an accepted stream does not round-trip through STREAMS"
            );
        }
        (STORAGE_SERVICE, "GetStreamStatus") => {
            let _: proto::StreamStatusRequest = decode(body)?;
        }
        (STORAGE_SERVICE, "StopStreaming") => {
            let _: proto::StopStreamingRequest = decode(body)?;
        }
        (STORAGE_SERVICE, "NotifyStreamingComplete") => {
            let _: proto::StreamingCompleteRequest = decode(body)?;
        }
        (PEER_SERVICE, "ApplyVersions") => {
            let r: proto::ApplyVersionsRequest = decode(body)?;
            for (i, e) in r.versions.into_iter().enumerate() {
                peer::entry(limits, i, e).map_err(invalid)?;
            }
        }
        (STORAGE_SERVICE, "DrainNode") => {
            let _: proto::DrainRequest = decode(body)?;
        }
        (ADMIN_SERVICE, "RangeDigest") => {
            let r: proto::RangeDigestRequest = decode(body)?;
            admin::ranges_of(&r.key_ranges).map_err(|m| Status::new(Code::InvalidArgument, m))?;
        }
        (ADMIN_SERVICE, "Cleanup") => {
            let r: proto::CleanupRequest = decode(body)?;
            admin::ranges_of(&r.key_ranges).map_err(|m| Status::new(Code::InvalidArgument, m))?;
        }
        (ADMIN_SERVICE, "Undrain") => {
            let _: proto::UndrainRequest = decode(body)?;
        }
        (STORAGE_SERVICE, "ReplicateData") => {
            let r: proto::ReplicateRequest = decode(body)?;
            if r.keys.is_empty() {
                ranges::check_range(limits, &r.tenant_id, &r.key_range_start, &r.key_range_end)?;
            } else {
                for k in &r.keys {
                    convert::key_ref(&r.tenant_id, k, limits).map_err(invalid)?;
                }
            }
        }
        _ => {
            return Err(Status::new(
                Code::Unimplemented,
                format!("unknown method {method:?} of {service:?}"),
            ))
        }
    }
    Ok(())
}
