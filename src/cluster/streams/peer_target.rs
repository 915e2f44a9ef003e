//! The production [`Target`]: the target node's
//! `StoragePeerService/ApplyVersions` over the node's own gRPC client.
//!
//! Owns [`PeerTarget`]: one client per stream part, made on the first send
//! (an address that does not resolve yet is retried like a down node), one
//! HTTP/2 connection reused across batches and re-made after a failure.
//! Invariant: which errors are retried is the client's to say
//! ([`ClientError::is_retryable`]): connection failures, timeouts and
//! UNAVAILABLE are; a refusal of the request itself is not.

use super::target::{LocalFuture, SendError, Target};
use crate::client::{ClientConfig, ClientError, PeerClient};
use crate::proto;
use std::cell::RefCell;
use std::time::Duration;

/// The method batches go to.
pub(crate) const APPLY_VERSIONS_PATH: &str = "/storage.StoragePeerService/ApplyVersions";

pub(crate) struct PeerTarget {
    addr: String,
    timeout: Duration,
    client: RefCell<Option<PeerClient>>,
}

impl PeerTarget {
    pub(crate) fn new(addr: &str, timeout: Duration) -> Self {
        Self {
            addr: addr.to_string(),
            timeout,
            client: RefCell::new(None),
        }
    }

    fn client(&self) -> Result<PeerClient, ClientError> {
        if let Some(c) = self.client.borrow().as_ref() {
            return Ok(c.clone());
        }
        let c = PeerClient::new(&self.addr, ClientConfig::default())?;
        *self.client.borrow_mut() = Some(c.clone());
        Ok(c)
    }
}

fn send_error(e: &ClientError) -> SendError {
    SendError {
        retryable: e.is_retryable(),
        message: e.to_string(),
    }
}

impl Target for PeerTarget {
    fn apply(
        &self,
        req: proto::ApplyVersionsRequest,
    ) -> LocalFuture<'_, Result<proto::ApplyVersionsResponse, SendError>> {
        Box::pin(async move {
            let client = self.client().map_err(|e| send_error(&e))?;
            client
                .unary::<_, proto::ApplyVersionsResponse>(APPLY_VERSIONS_PATH, &req, self.timeout)
                .await
                .map_err(|e| send_error(&e))
        })
    }
}
