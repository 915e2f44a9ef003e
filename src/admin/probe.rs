//! `probe`: the standard gRPC health check (`grpc.health.v1.Health/Check`),
//! for container health checks.
//!
//! Owns the two messages of that protocol, defined here (prost derive) so
//! the tool depends on nothing else of it. Invariants: only `SERVING` is
//! success; any other status, and a node that does not serve the health
//! protocol (UNIMPLEMENTED), is a failure the node answered (exit 1); no
//! answer is exit 3 (see [`super::error`]).

use super::call::{NodeCalls, GRPC_HEALTH_CHECK};
use super::error::AdminError;
use super::output::Report;
use serde_json::json;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (the status enum as its number).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// The name of a serving status.
pub fn serving_status_name(status: i32) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNRECOGNIZED",
    }
}

pub async fn probe(calls: &NodeCalls, service: &str) -> Result<Report, AdminError> {
    let req = HealthCheckRequest {
        service: service.to_string(),
    };
    let resp: HealthCheckResponse = calls.unary(GRPC_HEALTH_CHECK, &req).await?;
    let name = serving_status_name(resp.status);
    let shown = if service.is_empty() {
        "the server"
    } else {
        service
    };
    let text = format!("{}: {shown} is {name}\n", calls.node());
    let json = json!({
        "ok": resp.status == 1,
        "node": calls.node(),
        "service": service,
        "status": name,
    });
    if resp.status == 1 {
        Ok(Report::ok(text, json))
    } else {
        Ok(Report::failed(
            text,
            json,
            format!("{} reports {shown} {name}", calls.node()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn messages_match_the_health_protocol_wire_form() {
        let req = HealthCheckRequest {
            service: "storage.StorageNodeService".into(),
        };
        let bytes = req.encode_to_vec();
        assert_eq!(bytes[0], 0x0a, "field 1, length-delimited");
        assert_eq!(HealthCheckRequest::decode(bytes.as_slice()), Ok(req));
        let resp = HealthCheckResponse::decode([0x08u8, 0x01].as_slice()).expect("decodes");
        assert_eq!(serving_status_name(resp.status), "SERVING");
        assert_eq!(serving_status_name(3), "SERVICE_UNKNOWN");
        assert_eq!(serving_status_name(9), "UNRECOGNIZED");
    }
}
