//! Where a stream's batches go: the target node's ApplyVersions.
//!
//! Owns the [`Target`] seam (a trait, so the stream logic is tested with an
//! in-process target) and [`SendError`], which says whether a failed send
//! is worth retrying. Invariant: a batch counts as delivered only on a
//! success answer, which the target gives once every version is durable
//! under its own sync setting.

use crate::proto;
use std::future::Future;
use std::pin::Pin;

/// A boxed, single-core future (glommio tasks are `!Send`).
pub(crate) type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Why a batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SendError {
    /// The target is down, overloaded, draining or full: try again later.
    pub retryable: bool,
    pub message: String,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The node a stream sends to.
pub(crate) trait Target {
    fn apply(
        &self,
        req: proto::ApplyVersionsRequest,
    ) -> LocalFuture<'_, Result<proto::ApplyVersionsResponse, SendError>>;
}

/// Whether an answer in the body (`success = false`) is worth retrying:
/// the target is under pressure, draining, full or hit an internal error;
/// a refusal of the request itself is not.
pub(crate) fn body_error(resp: &proto::ApplyVersionsResponse) -> SendError {
    use proto::ErrorCode as E;
    let code = E::try_from(resp.error_code).unwrap_or(E::Unknown);
    let retryable = matches!(
        code,
        E::DiskFull | E::MemoryPressure | E::NodeDraining | E::InternalError | E::Unknown
    );
    SendError {
        retryable,
        message: format!(
            "the target refused the batch ({}): {}",
            code.as_str_name(),
            resp.error_message
        ),
    }
}
