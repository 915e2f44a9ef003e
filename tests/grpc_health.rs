//! The standard gRPC health service through tonic-health's client:
//! liveness (service "") answers SERVING whatever the node's state;
//! readiness (storage.StorageNodeService) turns NOT_SERVING while the node
//! drains and back after Undrain, and at shutdown; an unknown service is
//! NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch); a Watch sees each change
//! and does not keep the node from exiting; List answers both known
//! services.

mod common;

use common::*;
use std::time::Duration;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const READY: &str = "storage.StorageNodeService";
/// Longest wait for a Watch's next message (it looks every ~200 ms, and at
/// the shards' write state every ~1 s).
const WATCH_WAIT: Duration = Duration::from_secs(5);
/// SERVICE_UNKNOWN, which tonic-health's older enum does not name.
const SERVICE_UNKNOWN: i32 = 3;

async fn health(node: &Node) -> HealthClient<Channel> {
    HealthClient::new(node.endpoint().connect().await.expect("connect"))
}

async fn check(c: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    c.check(HealthCheckRequest {
        service: service.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("Check {service:?}: {e}"))
    .into_inner()
    .status()
}

async fn next(
    watch: &mut tonic::Streaming<HealthCheckResponse>,
) -> Result<Option<HealthCheckResponse>, tonic::Status> {
    tokio::time::timeout(WATCH_WAIT, watch.message())
        .await
        .expect("no Watch message in time")
}

/// The status in a Watch's next message (which must come).
async fn next_status(watch: &mut tonic::Streaming<HealthCheckResponse>) -> ServingStatus {
    next(watch)
        .await
        .expect("Watch message")
        .expect("Watch still open")
        .status()
}

async fn watch(
    c: &mut HealthClient<Channel>,
    service: &str,
) -> tonic::Streaming<HealthCheckResponse> {
    c.watch(HealthCheckRequest {
        service: service.into(),
    })
    .await
    .expect("Watch")
    .into_inner()
}

#[tokio::test]
async fn liveness_and_readiness_follow_drain_and_undrain() {
    let node = Node::start(2).await;
    let mut h = health(&node).await;
    assert_eq!(check(&mut h, "").await, ServingStatus::Serving);
    assert_eq!(check(&mut h, READY).await, ServingStatus::Serving);
    let err = h
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    let mut ready = watch(&mut h, READY).await;
    let mut live = watch(&mut h, "").await;
    assert_eq!(next_status(&mut ready).await, ServingStatus::Serving);
    assert_eq!(next_status(&mut live).await, ServingStatus::Serving);

    let mut c = node.client().await;
    let drained = c
        .drain_node(pb::DrainRequest {
            graceful: true,
            timeout_seconds: 5,
        })
        .await
        .expect("DrainNode")
        .into_inner();
    assert!(drained.success, "{drained:?}");
    assert_eq!(check(&mut h, READY).await, ServingStatus::NotServing);
    assert_eq!(
        check(&mut h, "").await,
        ServingStatus::Serving,
        "a drained node is alive"
    );
    assert_eq!(next_status(&mut ready).await, ServingStatus::NotServing);

    let undrained = node
        .admin()
        .await
        .undrain(pb::UndrainRequest {})
        .await
        .expect("Undrain")
        .into_inner();
    assert!(undrained.success, "{undrained:?}");
    assert_eq!(check(&mut h, READY).await, ServingStatus::Serving);
    assert_eq!(next_status(&mut ready).await, ServingStatus::Serving);

    // Liveness never changed, so its Watch sent nothing more.
    let quiet = tokio::time::timeout(Duration::from_millis(500), live.message()).await;
    assert!(quiet.is_err(), "liveness Watch sent {quiet:?}");
}

#[tokio::test]
async fn watching_an_unknown_service_answers_service_unknown() {
    let node = Node::start(1).await;
    let mut h = health(&node).await;
    let mut w = watch(&mut h, "no.such.Service").await;
    assert_eq!(next(&mut w).await.unwrap().unwrap().status, SERVICE_UNKNOWN);
}

#[tokio::test]
async fn watches_end_at_shutdown_without_holding_the_node() {
    let mut node = Node::start(2).await;
    let mut h = health(&node).await;
    let mut ready = watch(&mut h, READY).await;
    let mut live = watch(&mut h, "").await;
    assert_eq!(next_status(&mut ready).await, ServingStatus::Serving);
    assert_eq!(next_status(&mut live).await, ServingStatus::Serving);

    let signalled = std::time::Instant::now();
    node.signal(libc::SIGTERM);
    for w in [&mut ready, &mut live] {
        assert_eq!(
            next(w).await.unwrap().unwrap().status(),
            ServingStatus::NotServing
        );
        match next(w).await {
            Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
            Ok(other) => panic!("Watch went on after NOT_SERVING: {other:?}"),
        }
    }
    let exited = node.wait_exit_async(Duration::from_secs(8)).await;
    assert!(exited.is_some_and(|s| s.success()), "exit: {exited:?}");
    // The drain time (10 s) was not spent waiting for the watches.
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "{:?}",
        signalled.elapsed()
    );
}

/// List, which tonic-health's client predates: through the stubs build.rs
/// generates from the same health.proto.
#[allow(clippy::all, dead_code, unreachable_pub)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/client/grpc.health.v1.rs"));
}

#[tokio::test]
async fn list_answers_every_known_service() {
    let node = Node::start(2).await;
    let channel = node.endpoint().connect().await.expect("connect");
    let mut c = generated::health_client::HealthClient::new(channel);
    let list = c
        .list(generated::HealthListRequest {})
        .await
        .expect("List")
        .into_inner();
    let serving = ServingStatus::Serving as i32;
    assert_eq!(list.statuses.len(), 2, "{list:?}");
    assert_eq!(list.statuses[""].status, serving, "{list:?}");
    assert_eq!(list.statuses[READY].status, serving, "{list:?}");
}
