//! Heap allocations per request on the handler path, counted with the test
//! build's counting allocator: decode, validate, route to the (local) shard,
//! execute, encode the answer. The bounds guard against regressions; the
//! counts are printed for the request-path notes.
//!
//! Not counted: the connection's HTTP/2 work (h2 frames, header maps), which
//! needs a socket, and the hop between cores (one shard here).

use super::{dispatch, Answer};
use crate::alloc_count::allocations;
use crate::cluster::{MemberView, Members};
use crate::config::Config;
use crate::engine::shard::tests::with_executor;
use crate::engine::shard::Shard;
use crate::proto;
use crate::server::context::CoreContext;
use crate::server::router::Router;
use bytes::Bytes;
use prost::Message;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

const CALLS: u64 = 500;

fn body(m: &impl Message) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

/// The `success` field (field 1 of every data answer) of a unary answer.
fn succeeded(answer: Answer) -> bool {
    let Answer::Unary(frame, _) = answer else {
        return false;
    };
    let bytes: Vec<u8> = frame.into_chunks().concat();
    // gRPC prefix (5 bytes), then the message; both answers start with
    // `bool success = 1`.
    bytes.get(5..).is_some_and(|m| m.starts_with(&[0x08, 0x01]))
}

/// Allocations per call of `path` with the bodies `make(i)` gives; every
/// call must succeed (an error path would be counted otherwise).
async fn per_call(core: &CoreContext, path: &str, make: impl Fn(u64) -> Bytes) -> f64 {
    let bodies: Vec<Bytes> = (0..CALLS).map(&make).collect();
    let mut answers = Vec::with_capacity(bodies.len());
    let before = allocations();
    for b in bodies {
        answers.push(dispatch(core, path, b).await);
    }
    let per_call = (allocations() - before) as f64 / CALLS as f64;
    for answer in answers {
        let answer = answer.unwrap_or_else(|s| panic!("{path}: {s:?}"));
        assert!(succeeded(answer), "{path}: an answer without success");
    }
    per_call
}

#[test]
fn allocations_per_request_stay_low() {
    with_executor(|dir| async move {
        let config = Config::default();
        let shard = Shard::open(&dir, 0, config.node.node_id.clone(), &config.storage)
            .await
            .unwrap();
        let router = Rc::new(Router::new(Rc::clone(&shard), 1, None));
        let members = Rc::new(MemberView::new(Arc::new(Members::new([], None))));
        let core = CoreContext::new(config, router, Instant::now(), members);
        let value = vec![7u8; 1024];
        let write = |i: u64| {
            body(&proto::WriteRequest {
                tenant_id: "tenant".into(),
                key: format!("key-{i:06}"),
                value: Bytes::from(value.clone()),
                vector_clock: None,
                idempotency_key: String::new(),
            })
        };
        let read = |i: u64| {
            body(&proto::ReadRequest {
                tenant_id: "tenant".into(),
                key: format!("key-{i:06}"),
            })
        };
        // Warm-up: first writes create the keys; caches and tables settle.
        per_call(&core, "/storage.StorageNodeService/Write", write).await;
        per_call(&core, "/storage.StorageNodeService/Read", read).await;
        let writes = per_call(&core, "/storage.StorageNodeService/Write", write).await;
        let reads = per_call(&core, "/storage.StorageNodeService/Read", read).await;
        eprintln!("allocations per request: write {writes:.1}, read {reads:.1}");
        // Measured: write 36.9, read 8.0 when written; write 29.9, read 7.0
        // once clock node ids were shared and the WAL kept its queue lists.
        assert!(writes <= 35.0, "write: {writes:.1} allocations per request");
        assert!(reads <= 10.0, "read: {reads:.1} allocations per request");
        shard.halt().await;
    });
}

/// Allocations per call of `step`, averaged over `CALLS` calls.
async fn per_step<F, Fut>(mut step: F) -> f64
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = allocations();
    for i in 0..CALLS {
        step(i).await;
    }
    (allocations() - before) as f64 / CALLS as f64
}

/// Where a Write's allocations go, step by step (blind overwrites of a
/// 1 KiB value on a local shard): decode, validate (key and clock), the
/// shard's put, and the answer's encoding. Printed for the request-path
/// notes; each step keeps a bound.
#[test]
fn write_allocations_by_step() {
    use crate::engine::{PutClock, ShardOp, ShardReply};
    use crate::model::{KeyRef, PutOrigin};
    use crate::server::convert;
    with_executor(|dir| async move {
        let config = Config::default();
        let shard = Shard::open(&dir, 0, config.node.node_id.clone(), &config.storage)
            .await
            .unwrap();
        let limits = config.limits.clone();
        let value = Bytes::from(vec![7u8; 1024]);
        let request = |i: u64| proto::WriteRequest {
            tenant_id: "tenant".into(),
            key: format!("key-{i:06}"),
            value: value.clone(),
            vector_clock: None,
            idempotency_key: String::new(),
        };
        // A blind put of `key` straight to the shard, which must succeed.
        let put = |key: KeyRef| {
            let shard = Rc::clone(&shard);
            let value = value.clone();
            async move {
                let op = ShardOp::Put {
                    key,
                    value: Some(value),
                    clock: PutClock::Blind,
                    origin: PutOrigin::Client,
                };
                let reply = shard.execute(op).await;
                assert!(matches!(reply, ShardReply::Put { .. }), "{reply:?}");
            }
        };
        let key = |i: u64| convert::key_ref("tenant", &format!("key-{i:06}"), &limits).unwrap();
        // Warm-up: the keys exist, so every measured put overwrites.
        per_step(|i| put(key(i))).await;

        let bodies: Vec<Bytes> = (0..CALLS).map(|i| body(&request(i))).collect();
        let decode = per_step(|i| {
            let b = bodies[i as usize].clone();
            async move {
                let r = proto::WriteRequest::decode(b).unwrap();
                assert_eq!(r.value.len(), 1024);
            }
        })
        .await;
        // The request's own allocations (its key String) are made before
        // the count starts: only the checks are counted.
        let requests: Vec<proto::WriteRequest> = (0..CALLS).map(request).collect();
        let validate = per_step(|i| {
            let r = &requests[i as usize];
            let limits = &limits;
            async move {
                let k = convert::key_ref(&r.tenant_id, &r.key, limits).unwrap();
                convert::check_value(&r.value, limits).unwrap();
                let c = convert::clock_from_wire(r.vector_clock.clone(), limits).unwrap();
                assert!(c.is_empty());
                std::hint::black_box(k);
            }
        })
        .await;
        // The key's own allocations are counted with the validation above.
        let mut keys: Vec<_> = (0..CALLS).map(key).collect();
        // Taken from the back: no allocation while counting.
        keys.reverse();
        let engine = per_step(|_| put(keys.pop().unwrap())).await;
        let clock =
            crate::model::VectorClock::from_entries([("pairdb-local".to_string(), 7)], 8).unwrap();
        let encode = per_step(|_| {
            let clock = &clock;
            async move {
                let answer = proto::WriteResponse {
                    success: true,
                    updated_vector_clock: Some(convert::clock_to_wire(clock)),
                    error_message: String::new(),
                    error_code: 0,
                };
                let frame = crate::proto::grpc::encode_frame(&answer);
                assert!(frame.len() > 5);
            }
        })
        .await;
        eprintln!(
            "write allocations by step: decode {decode:.1}, validate {validate:.1}, \
             shard put {engine:.1}, encode answer {encode:.1}"
        );
        assert!(decode <= 4.0, "decode: {decode:.1}");
        assert!(validate <= 4.0, "validate: {validate:.1}");
        assert!(engine <= 26.0, "shard put: {engine:.1}");
        assert!(encode <= 6.0, "encode: {encode:.1}");
        shard.halt().await;
    });
}
