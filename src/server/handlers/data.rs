//! The data methods: Write, Delete, Repair and Read of one key.
//!
//! Owns their validation (sizes, clocks), the put every one of them shares
//! and the Read answer's size bound. Application errors travel in the
//! response body (`success = false` + `error_code`).

use super::{owner, BodyError, CoreContext};
use crate::engine::{PutClock, ShardOp, ShardReply};
use crate::model::{KeyRef, PutOrigin};
use crate::proto;
use crate::proto::grpc::{encode_frame, Code, Frame, Status, PREFIX_BYTES};
use crate::server::convert::{self, Invalid};
use crate::server::read_answer;
use bytes::Bytes;

/// A Read answer within `limits.message_bytes_max`, or RESOURCE_EXHAUSTED.
/// Only a key pushed past its per-key bounds by Repair can answer more:
/// client writes are refused before a Read answer could grow this big.
pub(super) fn fit_answer(core: &CoreContext, frame: Frame) -> Result<Frame, Status> {
    let max = core.config.limits.message_bytes_max;
    let len = frame.len().saturating_sub(PREFIX_BYTES);
    if len > max {
        return Err(Status::new(
            Code::ResourceExhausted,
            format!(
                "the Read answer takes {len} bytes, over limits.message_bytes_max ({max}); \
                 resolve the key's siblings by writing with a clock that descends them"
            ),
        ));
    }
    Ok(frame)
}

/// Outcome of a put as the fields every put-like response shares.
struct PutAnswer {
    success: bool,
    clock: Option<proto::VectorClock>,
    error_message: String,
    error_code: proto::ErrorCode,
}

impl PutAnswer {
    fn invalid(e: Invalid) -> Self {
        Self {
            success: false,
            clock: None,
            error_message: e.0,
            error_code: proto::ErrorCode::InvalidRequest,
        }
    }
}

async fn put(
    core: &CoreContext,
    key: Result<KeyRef, Invalid>,
    value: Option<Bytes>,
    clock: PutClock,
    origin: PutOrigin,
) -> PutAnswer {
    let key = match key {
        Ok(k) => k,
        Err(e) => return PutAnswer::invalid(e),
    };
    let Some(_in_flight) = core.router.node.admit_put() else {
        return PutAnswer {
            success: false,
            clock: None,
            error_message: format!(
                "this node is {}: writes are refused (reads go on); undrain it or write to another replica",
                core.router.node.state().name()
            ),
            error_code: proto::ErrorCode::NodeDraining,
        };
    };
    let shard = owner(core, &key);
    match core
        .router
        .call(
            shard,
            ShardOp::Put {
                key,
                value,
                clock,
                origin,
            },
        )
        .await
    {
        ShardReply::Put { clock, .. } => PutAnswer {
            success: true,
            clock: Some(convert::clock_to_wire(&clock)),
            error_message: String::new(),
            error_code: proto::ErrorCode::Unknown,
        },
        ShardReply::Failed(e) => PutAnswer {
            success: false,
            clock: None,
            error_message: e.to_string(),
            error_code: convert::error_code(&e),
        },
        other => PutAnswer {
            success: false,
            clock: None,
            error_message: format!("internal error: unexpected shard reply {other:?}"),
            error_code: proto::ErrorCode::InternalError,
        },
    }
}

/// Validates a Write/Delete clock: empty means blind.
fn put_clock(clock: Option<proto::VectorClock>, core: &CoreContext) -> Result<PutClock, Invalid> {
    let clock = convert::clock_from_wire(clock, &core.config.limits)?;
    Ok(if clock.is_empty() {
        PutClock::Blind
    } else {
        PutClock::Given(clock)
    })
}

pub(super) async fn write(core: &CoreContext, req: proto::WriteRequest) -> proto::WriteResponse {
    let limits = &core.config.limits;
    let checked = convert::key_ref(&req.tenant_id, &req.key, limits)
        .and_then(|k| convert::check_value(&req.value, limits).map(|_| k))
        .and_then(|k| put_clock(req.vector_clock, core).map(|c| (k, c)));
    let a = match checked {
        Ok((key, clock)) => put(core, Ok(key), Some(req.value), clock, PutOrigin::Client).await,
        Err(e) => PutAnswer::invalid(e),
    };
    proto::WriteResponse {
        success: a.success,
        updated_vector_clock: a.clock,
        error_message: a.error_message,
        error_code: a.error_code as i32,
    }
}

pub(super) async fn delete(core: &CoreContext, req: proto::DeleteRequest) -> proto::DeleteResponse {
    let checked = convert::key_ref(&req.tenant_id, &req.key, &core.config.limits)
        .and_then(|k| put_clock(req.vector_clock, core).map(|c| (k, c)));
    let a = match checked {
        Ok((key, clock)) => put(core, Ok(key), None, clock, PutOrigin::Client).await,
        Err(e) => PutAnswer::invalid(e),
    };
    proto::DeleteResponse {
        success: a.success,
        updated_vector_clock: a.clock,
        error_message: a.error_message,
        error_code: a.error_code as i32,
    }
}

pub(super) async fn repair(core: &CoreContext, req: proto::RepairRequest) -> proto::RepairResponse {
    let limits = &core.config.limits;
    let checked = convert::key_ref(&req.tenant_id, &req.key, limits)
        .and_then(|k| convert::check_value(&req.value, limits).map(|_| k))
        .and_then(|k| convert::clock_from_wire(req.vector_clock, limits).map(|c| (k, c)))
        .and_then(|(k, c)| {
            if c.is_empty() {
                Err(Invalid(
                    "vector_clock: a repair must carry the version's clock (it is never stamped)"
                        .into(),
                ))
            } else {
                Ok((k, c))
            }
        });
    let a = match checked {
        Ok((key, clock)) => {
            put(
                core,
                Ok(key),
                Some(req.value),
                PutClock::Given(clock),
                PutOrigin::Replica,
            )
            .await
        }
        Err(e) => PutAnswer::invalid(e),
    };
    proto::RepairResponse {
        success: a.success,
        error_message: a.error_message,
        error_code: a.error_code as i32,
    }
}

/// The framed Read answer: the key's versions encoded straight from the
/// shard's reply (see `read_answer`), or an error in the body.
pub(super) async fn read(core: &CoreContext, req: proto::ReadRequest) -> (Frame, BodyError) {
    let fail = |code: proto::ErrorCode, message: String| -> (Frame, BodyError) {
        let frame = encode_frame(&proto::ReadResponse {
            success: false,
            error_message: message,
            error_code: code as i32,
            ..Default::default()
        })
        .into();
        (frame, Some(code as i32))
    };
    let key = match convert::key_ref(&req.tenant_id, &req.key, &core.config.limits) {
        Ok(k) => k,
        Err(e) => return fail(proto::ErrorCode::InvalidRequest, e.0),
    };
    let shard = owner(core, &key);
    let versions = match core.router.call(shard, ShardOp::Get { key }).await {
        ShardReply::Get { versions } => versions,
        ShardReply::Failed(e) => return fail(convert::error_code(&e), e.to_string()),
        other => {
            return fail(
                proto::ErrorCode::InternalError,
                format!("internal error: unexpected shard reply {other:?}"),
            )
        }
    };
    let error = versions
        .visible()
        .is_none()
        .then_some(proto::ErrorCode::KeyNotFound as i32);
    (
        read_answer::encode(&req.tenant_id, &req.key, &versions),
        error,
    )
}
