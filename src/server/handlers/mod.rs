//! The gRPC methods the node serves: decode, validate, route, answer.
//!
//! Owns the request semantics at the edge: which shard a request goes to
//! (by ring token), which errors travel in the response body
//! (`success = false` + `error_code`, gRPC status 0) and which are transport
//! statuses (bad protobuf: INVALID_ARGUMENT; unknown methods:
//! UNIMPLEMENTED). Decoding happens once, on the core that received the
//! request; the owning core gets typed [`ShardOp`](crate::engine::ShardOp)s.
//! One file per group of methods:
//! - [`data`] answers Write, Delete, Repair, Read;
//! - [`health`] answers HealthCheck;
//! - [`shard_map`] answers GetShardMap (shard-aware clients);
//! - [`ranges`] answers StreamKeys (server streaming) and GetKeyRange;
//! - [`replicate`] answers ReplicateData (listed keys or a key range to a
//!   member);
//! - [`peer`] answers the peer service's ApplyVersions (range moves, target
//!   side);
//! - [`streams`] answers StartStreaming, GetStreamStatus, StopStreaming,
//!   NotifyStreamingComplete (range moves, source side);
//! - [`admin`] answers DrainNode and the admin service (RangeDigest,
//!   Cleanup, Undrain); [`maintenance`] its Flush and Compact;
//!   [`stream_list`] its ListStreams;
//! - [`grpc_health`] answers the standard `grpc.health.v1.Health` (Check and
//!   List here; Watch, server streaming, through [`long_call`]);
//! - [`reflection`] answers server reflection (bidirectional, through
//!   [`long_call`]);
//! - `checks` (tests and fuzzing only) applies each method's request checks
//!   without a shard.

mod admin;
#[cfg(test)]
mod alloc_tests;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod checks;
mod data;
pub(crate) mod grpc_health;
mod health;
mod maintenance;
mod peer;
mod ranges;
pub(crate) mod reflection;
mod replicate;
mod shard_map;
mod stream_list;
mod streams;

use super::context::CoreContext;
use crate::model::{owner_shard, KeyRef};
use crate::proto;
use crate::proto::grpc::{encode_frame, Code, Frame, Status};
use bytes::Bytes;
use prost::Message;

/// The contract's service.
pub(crate) const STORAGE_SERVICE: &str = "storage.StorageNodeService";
/// Node-to-node operations of range moves (additive).
pub(crate) const PEER_SERVICE: &str = "storage.StoragePeerService";
/// Operator operations (additive).
pub(crate) const ADMIN_SERVICE: &str = "storage.StorageAdminService";

pub(crate) use ranges::KeyStream;

/// A call that outlives one request message; conn.rs hands it to
/// [`crate::server::streaming`] instead of reading one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LongCall {
    /// `grpc.health.v1.Health/Watch` (server streaming).
    HealthWatch,
    /// `ServerReflectionInfo` of reflection v1 or v1alpha (bidirectional).
    Reflection,
}

/// The long call `path` names, if any. Costs one prefix compare for the
/// node's own services.
pub(crate) fn long_call(path: &str) -> Option<LongCall> {
    if !path.starts_with("/grpc.") {
        return None;
    }
    match split_path(path)? {
        (grpc_health::HEALTH_SERVICE, "Watch") => Some(LongCall::HealthWatch),
        (reflection::REFLECTION_V1 | reflection::REFLECTION_V1ALPHA, "ServerReflectionInfo") => {
            Some(LongCall::Reflection)
        }
        _ => None,
    }
}

/// What a call answers: one message with the error code its body reports
/// (for the request metrics), or a stream of them (server streaming).
pub(crate) enum Answer {
    Unary(Frame, BodyError),
    Stream(KeyStream),
}

/// The `error_code` a response body reports: `None` when the body reports
/// success or the method's answer has no verdict of its own.
pub(crate) type BodyError = Option<i32>;

/// A response message's verdict, as [`BodyError`].
trait Verdict {
    fn body_error(&self) -> BodyError;
}

/// Answers with `success` and an `error_code`.
macro_rules! coded {
    ($($t:ident),*) => {$(
        impl Verdict for proto::$t {
            fn body_error(&self) -> BodyError {
                (!self.success).then_some(self.error_code)
            }
        }
    )*};
}
coded!(
    WriteResponse,
    DeleteResponse,
    RepairResponse,
    ReplicateResponse,
    DrainResponse,
    ApplyVersionsResponse,
    RangeDigestResponse,
    CleanupResponse,
    FlushResponse,
    CompactResponse
);

/// Answers with `success` only: a failure counts as UNKNOWN.
macro_rules! flagged {
    ($($t:ident),*) => {$(
        impl Verdict for proto::$t {
            fn body_error(&self) -> BodyError {
                (!self.success).then_some(proto::ErrorCode::Unknown as i32)
            }
        }
    )*};
}
flagged!(
    StartStreamingResponse,
    StopStreamingResponse,
    StreamingCompleteResponse
);

/// Answers that carry no verdict.
macro_rules! plain {
    ($($t:ident),*) => {$(
        impl Verdict for proto::$t {
            fn body_error(&self) -> BodyError {
                None
            }
        }
    )*};
}
plain!(
    HealthResponse,
    ShardMapResponse,
    KeyRangeResponse,
    StreamStatusResponse,
    ListStreamsResponse
);

fn unary<M: Message + Verdict>(m: &M) -> Result<Answer, Status> {
    Ok(Answer::Unary(encode_frame(m).into(), m.body_error()))
}

/// Handles one call to `path` (`/<service>/<method>`); `body` is the
/// request message without its prefix. Answers the response, or a gRPC
/// status.
pub(crate) async fn dispatch(
    core: &CoreContext,
    path: &str,
    body: Bytes,
) -> Result<Answer, Status> {
    let (service, method) = split_path(path).ok_or_else(|| {
        Status::new(
            Code::Unimplemented,
            format!("unknown service or method path {path:?}"),
        )
    })?;
    match (service, method) {
        (STORAGE_SERVICE, "Write") => unary(&data::write(core, decode(body)?).await),
        (STORAGE_SERVICE, "Read") => {
            let (frame, error) = data::read(core, decode(body)?).await;
            data::fit_answer(core, frame).map(|f| Answer::Unary(f, error))
        }
        (STORAGE_SERVICE, "Delete") => unary(&data::delete(core, decode(body)?).await),
        (STORAGE_SERVICE, "Repair") => unary(&data::repair(core, decode(body)?).await),
        (STORAGE_SERVICE, "HealthCheck") => {
            let _: proto::HealthCheckRequest = decode(body)?;
            unary(&health::health(core).await)
        }
        (STORAGE_SERVICE, "GetShardMap") => {
            let _: proto::ShardMapRequest = decode(body)?;
            unary(&shard_map::shard_map(core))
        }
        (STORAGE_SERVICE, "StreamKeys") => {
            ranges::stream_keys(core, decode(body)?).map(Answer::Stream)
        }
        (STORAGE_SERVICE, "GetKeyRange") => {
            unary(&ranges::get_key_range(core, decode(body)?).await?)
        }
        (STORAGE_SERVICE, "StartStreaming") => unary(&streams::start(core, decode(body)?).await),
        (STORAGE_SERVICE, "GetStreamStatus") => unary(&streams::status(core, decode(body)?).await),
        (STORAGE_SERVICE, "StopStreaming") => unary(&streams::stop(core, decode(body)?).await),
        (STORAGE_SERVICE, "NotifyStreamingComplete") => {
            unary(&streams::notify_complete(core, decode(body)?).await)
        }
        (PEER_SERVICE, "ApplyVersions") => unary(&peer::apply_versions(core, decode(body)?).await),
        (STORAGE_SERVICE, "DrainNode") => unary(&admin::drain(core, decode(body)?).await),
        (ADMIN_SERVICE, "RangeDigest") => unary(&admin::range_digest(core, decode(body)?).await),
        (ADMIN_SERVICE, "Cleanup") => unary(&admin::cleanup(core, decode(body)?).await),
        (ADMIN_SERVICE, "Undrain") => unary(&admin::undrain(core, decode(body)?).await),
        (ADMIN_SERVICE, "Flush") => unary(&maintenance::flush(core, decode(body)?).await),
        (ADMIN_SERVICE, "Compact") => unary(&maintenance::compact(core, decode(body)?).await),
        (ADMIN_SERVICE, "ListStreams") => unary(&stream_list::list(core, decode(body)?).await),
        (STORAGE_SERVICE, "ReplicateData") => {
            unary(&replicate::replicate(core, decode(body)?).await)
        }
        (grpc_health::HEALTH_SERVICE, "Check") => {
            unary(&grpc_health::check(core, decode(body)?).await?)
        }
        (grpc_health::HEALTH_SERVICE, "List") => {
            unary(&grpc_health::list(core, decode(body)?).await)
        }
        (
            STORAGE_SERVICE
            | PEER_SERVICE
            | ADMIN_SERVICE
            | grpc_health::HEALTH_SERVICE
            | reflection::REFLECTION_V1
            | reflection::REFLECTION_V1ALPHA,
            other,
        ) => Err(Status::new(
            Code::Unimplemented,
            format!("unknown method {other:?} of {service}"),
        )),
        _ => Err(Status::new(
            Code::Unimplemented,
            format!("unknown service {service:?}"),
        )),
    }
}

/// `/<service>/<method>` split in two; `None` for any other shape.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// `body` as a message of type `M`; INVALID_ARGUMENT when it is not one.
pub(crate) fn decode<M: Message + Default>(body: Bytes) -> Result<M, Status> {
    M::decode(body).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("request is not a valid protobuf message: {e}"),
        )
    })
}

fn owner(core: &CoreContext, key: &KeyRef) -> usize {
    owner_shard(key.token, core.router.shards())
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/storage.StorageNodeService/Write"),
            Some(("storage.StorageNodeService", "Write"))
        );
        for bad in ["", "/", "//Write", "/svc/", "svc/Write", "/svc/a/b"] {
            assert_eq!(split_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn long_calls_are_found_by_path() {
        use super::{long_call, LongCall};
        assert_eq!(
            long_call("/grpc.health.v1.Health/Watch"),
            Some(LongCall::HealthWatch)
        );
        for reflection in [
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(long_call(reflection), Some(LongCall::Reflection));
        }
        for unary in [
            "/grpc.health.v1.Health/Check",
            "/storage.StorageNodeService/Write",
            "/grpc.reflection.v1.ServerReflection/Other",
        ] {
            assert_eq!(long_call(unary), None, "{unary}");
        }
    }
}
