//! Calls to the node: the node's own h2 + prost client
//! ([`PeerClient`]) with the command line's address and timeout.
//!
//! Owns [`NodeCalls`] and the method paths. Invariants: every call ends
//! within `--timeout-ms` (connecting included); every failure is an
//! [`AdminError`] naming the node; an error in a response body reads
//! `<node> answered <ERROR_CODE>: <message>`. Runs inside a glommio
//! executor.

use super::error::AdminError;
use crate::client::{ClientConfig, PeerClient};
use crate::proto;
use std::time::Duration;

pub const HEALTH_CHECK: &str = "/storage.StorageNodeService/HealthCheck";
pub const READ: &str = "/storage.StorageNodeService/Read";
pub const WRITE: &str = "/storage.StorageNodeService/Write";
pub const DELETE: &str = "/storage.StorageNodeService/Delete";
pub const DRAIN: &str = "/storage.StorageNodeService/DrainNode";
pub const UNDRAIN: &str = "/storage.StorageAdminService/Undrain";
pub const FLUSH: &str = "/storage.StorageAdminService/Flush";
pub const COMPACT: &str = "/storage.StorageAdminService/Compact";
pub const LIST_STREAMS: &str = "/storage.StorageAdminService/ListStreams";
pub const RANGE_DIGEST: &str = "/storage.StorageAdminService/RangeDigest";
pub const CLEANUP: &str = "/storage.StorageAdminService/Cleanup";
pub const GRPC_HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// Calls to one node.
pub struct NodeCalls {
    client: PeerClient,
    node: String,
    timeout: Duration,
}

impl NodeCalls {
    /// A client for `node` (resolved now; connects on the first call).
    pub fn new(node: &str, timeout: Duration) -> Result<NodeCalls, AdminError> {
        let config = ClientConfig {
            connect_timeout: timeout.min(Duration::from_secs(10)),
            ..ClientConfig::default()
        };
        let client =
            PeerClient::new(node, config).map_err(|e| AdminError::from_client(node, &e))?;
        Ok(NodeCalls {
            client,
            node: node.to_string(),
            timeout,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// One unary call.
    pub async fn unary<Req, Resp>(&self, path: &str, req: &Req) -> Result<Resp, AdminError>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        self.client
            .unary(path, req, self.timeout)
            .await
            .map_err(|e| AdminError::from_client(&self.node, &e))
    }

    /// `<node> answered <ERROR_CODE>: <message>` for an error in a body.
    pub fn body_error(&self, code: i32, message: &str) -> String {
        format!(
            "{} answered {}: {message}",
            self.node,
            error_code_name(code)
        )
    }
}

/// The wire name of an `ErrorCode` value (the number if unknown).
pub fn error_code_name(code: i32) -> String {
    proto::ErrorCode::try_from(code)
        .map(|c| c.as_str_name().to_string())
        .unwrap_or_else(|_| format!("error code {code}"))
}
