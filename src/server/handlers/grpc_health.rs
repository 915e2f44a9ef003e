//! The standard gRPC health service (`grpc.health.v1.Health`: Check, List,
//! Watch): liveness and readiness probes.
//!
//! Owns what each probed service name means. Service `""` is liveness: it
//! answers SERVING whenever the node answers at all (a drained or disk-full
//! node is alive, and must not be restarted for it). Service
//! `storage.StorageNodeService` is readiness: SERVING while the node takes
//! writes, NOT_SERVING while it drains or is drained, while any shard's WAL
//! refuses writes (disk full, failed) and once shutdown has begun. The port
//! opens only after every shard is open, so a node that answers has its
//! shards open. Any other name is unknown (Check: NOT_FOUND; Watch:
//! SERVICE_UNKNOWN). Nothing here changes state. Invariants: a Check costs
//! one stats round over the cores; a Watch looks at this core's state every
//! [`WATCH_TICK`] and asks the shards only every
//! [`WATCH_STATS_EVERY_TICKS`] ticks.

use super::{CoreContext, STORAGE_SERVICE};
use crate::proto::grpc::{Code, Status};
use crate::proto::health_v1::health_check_response::ServingStatus;
use crate::proto::health_v1::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use crate::server::drain::NodeMode;
use std::time::Duration;

/// The service's name.
pub(crate) const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// How often a Watch looks at the node's state.
pub(crate) const WATCH_TICK: Duration = Duration::from_millis(200);
/// A Watch asks every shard for its write state once per this many ticks.
const WATCH_STATS_EVERY_TICKS: u32 = 5;

/// What a probed service name asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// `""`: does the process serve at all?
    Liveness,
    /// `storage.StorageNodeService`: should clients send it requests?
    Readiness,
}

/// The probe a service name asks for; `None` for a name not served.
pub(crate) fn probe(service: &str) -> Option<Probe> {
    match service {
        "" => Some(Probe::Liveness),
        STORAGE_SERVICE => Some(Probe::Readiness),
        _ => None,
    }
}

/// What readiness is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeView {
    pub shutting_down: bool,
    pub mode: NodeMode,
    /// Some shard refuses writes (disk full, WAL failed), or the shards
    /// could not be asked.
    pub writes_refused: bool,
}

/// The status a probe answers for the node's `view`.
pub(crate) fn serving_status(probe: Option<Probe>, view: &NodeView) -> ServingStatus {
    match probe {
        None => ServingStatus::ServiceUnknown,
        Some(Probe::Liveness) => ServingStatus::Serving,
        Some(Probe::Readiness) => {
            if view.shutting_down || view.mode != NodeMode::Serving || view.writes_refused {
                ServingStatus::NotServing
            } else {
                ServingStatus::Serving
            }
        }
    }
}

/// Whether this core has begun shutting down (without waiting).
pub(crate) async fn shutting_down(core: &CoreContext) -> bool {
    futures_lite::future::poll_once(core.wait_shutdown())
        .await
        .is_some()
}

/// Whether any shard refuses writes; shards that cannot be asked count as
/// refusing.
async fn writes_refused(core: &CoreContext) -> bool {
    match core.router.all_stats().await {
        Ok(stats) => stats.iter().any(|s| s.write_state != "writing"),
        Err(e) => {
            tracing::debug!(error = %e, "readiness: shard stats unavailable");
            true
        }
    }
}

/// Check: the status of the requested service, NOT_FOUND if unknown.
pub(super) async fn check(
    core: &CoreContext,
    req: HealthCheckRequest,
) -> Result<HealthCheckResponse, Status> {
    let probe = probe(&req.service).ok_or_else(|| {
        Status::new(
            Code::NotFound,
            format!(
                "unknown service {:?} (known: \"\" for liveness, {STORAGE_SERVICE:?} for readiness)",
                req.service
            ),
        )
    })?;
    Ok(answer(current(core, probe).await))
}

/// List: the status of every known service.
pub(super) async fn list(core: &CoreContext, _req: HealthListRequest) -> HealthListResponse {
    let mut statuses = std::collections::HashMap::new();
    for (name, probe) in [("", Probe::Liveness), (STORAGE_SERVICE, Probe::Readiness)] {
        statuses.insert(name.to_string(), answer(current(core, probe).await));
    }
    HealthListResponse { statuses }
}

/// What `probe` answers now (readiness asks every shard): a Watch's first
/// look.
async fn current(core: &CoreContext, probe: Probe) -> ServingStatus {
    Watcher::for_probe(Some(probe)).status(core).await
}

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

/// Health answers carry no verdict of their own (request metrics).
impl super::Verdict for HealthCheckResponse {
    fn body_error(&self) -> super::BodyError {
        None
    }
}

impl super::Verdict for HealthListResponse {
    fn body_error(&self) -> super::BodyError {
        None
    }
}

/// One Watch's view of the node, refreshed tick by tick.
pub(crate) struct Watcher {
    probe: Option<Probe>,
    ticks: u32,
    writes_refused: bool,
}

impl Watcher {
    pub(crate) fn new(req: &HealthCheckRequest) -> Self {
        Self::for_probe(probe(&req.service))
    }

    fn for_probe(probe: Option<Probe>) -> Self {
        Self {
            probe,
            ticks: 0,
            writes_refused: false,
        }
    }

    /// The status now. Asks the shards on the first call and then once
    /// every [`WATCH_STATS_EVERY_TICKS`] calls; the rest is this core's.
    pub(crate) async fn status(&mut self, core: &CoreContext) -> ServingStatus {
        if self.probe == Some(Probe::Readiness) {
            if self.ticks.is_multiple_of(WATCH_STATS_EVERY_TICKS) {
                self.writes_refused = writes_refused(core).await;
            }
            self.ticks = self.ticks.wrapping_add(1);
        }
        let view = NodeView {
            shutting_down: shutting_down(core).await,
            mode: core.router.node.state(),
            writes_refused: self.writes_refused,
        };
        serving_status(self.probe, &view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(shutting_down: bool, mode: NodeMode, writes_refused: bool) -> NodeView {
        NodeView {
            shutting_down,
            mode,
            writes_refused,
        }
    }

    #[test]
    fn liveness_serves_whatever_the_node_state() {
        for mode in [NodeMode::Serving, NodeMode::Draining, NodeMode::Drained] {
            for (down, refused) in [(false, false), (true, true)] {
                let v = view(down, mode, refused);
                assert_eq!(
                    serving_status(probe(""), &v),
                    ServingStatus::Serving,
                    "{v:?}"
                );
            }
        }
    }

    #[test]
    fn readiness_needs_a_serving_node_taking_writes() {
        let ready = probe(STORAGE_SERVICE);
        assert_eq!(
            serving_status(ready, &view(false, NodeMode::Serving, false)),
            ServingStatus::Serving
        );
        for v in [
            view(true, NodeMode::Serving, false),
            view(false, NodeMode::Draining, false),
            view(false, NodeMode::Drained, false),
            view(false, NodeMode::Serving, true),
        ] {
            assert_eq!(
                serving_status(ready, &v),
                ServingStatus::NotServing,
                "{v:?}"
            );
        }
    }

    #[test]
    fn other_names_are_unknown() {
        for name in ["storage", "storage.StoragePeerService", "x", " "] {
            assert_eq!(probe(name), None, "{name}");
        }
        assert_eq!(
            serving_status(None, &view(false, NodeMode::Serving, false)),
            ServingStatus::ServiceUnknown
        );
    }
}
