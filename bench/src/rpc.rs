//! The requests the load generator sends: the client type, one Write or
//! Read and what it came back with (`Outcome`), and waiting until the server
//! answers HealthCheck.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tonic::transport::Channel;

use crate::cli::Args;
use crate::proto::storage_node_service_client::StorageNodeServiceClient;
use crate::proto::{ErrorCode, HealthCheckRequest, ReadRequest, WriteRequest};
use crate::BoxError;

pub type Client = StorageNodeServiceClient<Channel>;

/// Largest response the client accepts (values plus sibling copies).
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// What one request came back with.
pub(crate) enum Outcome {
    Ok,
    Miss,
    /// `success = false` with MEMORY_PRESSURE: the node's flow control
    /// refused the operation.
    MemoryPressure,
    Err(String),
}

pub(crate) async fn do_write(
    client: &mut Client,
    tenant: &str,
    key: String,
    value: Bytes,
) -> Outcome {
    let req = WriteRequest {
        tenant_id: tenant.to_string(),
        key,
        value,
        vector_clock: None,
        idempotency_key: String::new(),
    };
    match client.write(req).await {
        Ok(r) => {
            let r = r.into_inner();
            if r.success {
                Outcome::Ok
            } else if r.error_code == ErrorCode::MemoryPressure as i32 {
                Outcome::MemoryPressure
            } else {
                Outcome::Err(format!(
                    "write success=false code={} {}",
                    r.error_code, r.error_message
                ))
            }
        }
        Err(s) => Outcome::Err(format!("write status {:?}: {}", s.code(), s.message())),
    }
}

pub(crate) async fn do_read(client: &mut Client, tenant: &str, key: String) -> Outcome {
    let req = ReadRequest {
        tenant_id: tenant.to_string(),
        key,
    };
    match client.read(req).await {
        Ok(r) => {
            let r = r.into_inner();
            if r.success {
                Outcome::Ok
            } else if r.error_code == ErrorCode::KeyNotFound as i32 {
                Outcome::Miss
            } else if r.error_code == ErrorCode::MemoryPressure as i32 {
                Outcome::MemoryPressure
            } else {
                Outcome::Err(format!(
                    "read success=false code={} {}",
                    r.error_code, r.error_message
                ))
            }
        }
        Err(s) => Outcome::Err(format!("read status {:?}: {}", s.code(), s.message())),
    }
}

/// An error with its sources, e.g. "transport error: Connection refused".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// Retries HealthCheck on fresh connections until it answers healthy or
/// `wait_s` runs out.
pub(crate) async fn wait_ready(args: &Args) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs_f64(args.wait_ready_s);
    loop {
        let attempt = async {
            let ch = args
                .endpoint()?
                .timeout(Duration::from_secs(1))
                .connect()
                .await?;
            let r = Client::new(ch).health_check(HealthCheckRequest {}).await?;
            let r = r.into_inner();
            if r.healthy {
                Ok::<(), BoxError>(())
            } else {
                Err(format!("unhealthy: {}", r.status).into())
            }
        };
        let last = match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) => error_chain(e.as_ref()),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{} not ready after {} s: {last}",
                args.target, args.wait_ready_s
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
