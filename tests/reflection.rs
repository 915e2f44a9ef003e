//! Server reflection through tonic-reflection's clients, v1 and v1alpha
//! alike: the service list, the file declaring a service or a message (a
//! FileDescriptorProto holding the service's methods), a file by name, and
//! an error answer for an unknown symbol, with the stream going on after it;
//! requests sent one at a time on one stream, each after the previous
//! answer, and all at once.

mod common;

use common::*;
use prost::Message;
use prost_types::FileDescriptorProto;

const SERVICES: [&str; 6] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "storage.StorageAdminService",
    "storage.StorageNodeService",
    "storage.StoragePeerService",
];

fn decode_files(files: &[Vec<u8>]) -> Vec<FileDescriptorProto> {
    files
        .iter()
        .map(|b| FileDescriptorProto::decode(b.as_slice()).expect("FileDescriptorProto"))
        .collect()
}

/// One module of tests per reflection version: same messages, other
/// package.
macro_rules! reflection_tests {
    ($version:ident) => {
        mod $version {
            use super::*;
            use tonic::transport::Channel;
            use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$version::{
                ServerReflectionRequest, ServerReflectionResponse,
            };

            fn req(m: MessageRequest) -> ServerReflectionRequest {
                ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(m),
                }
            }

            async fn client(node: &Node) -> ServerReflectionClient<Channel> {
                ServerReflectionClient::new(node.endpoint().connect().await.expect("connect"))
            }

            fn files(resp: ServerReflectionResponse) -> Vec<FileDescriptorProto> {
                match resp.message_response {
                    Some(MessageResponse::FileDescriptorResponse(f)) => {
                        decode_files(&f.file_descriptor_proto)
                    }
                    other => panic!("not a file answer: {other:?}"),
                }
            }

            #[tokio::test]
            async fn requests_one_at_a_time_on_one_stream() {
                let node = Node::start(1).await;
                let mut c = client(&node).await;
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let requests = futures_lite::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|m| (m, rx))
                });
                let mut answers = c
                    .server_reflection_info(requests)
                    .await
                    .expect("ServerReflectionInfo")
                    .into_inner();
                let mut ask = async |m: MessageRequest| {
                    tx.send(req(m)).await.expect("send");
                    answers
                        .message()
                        .await
                        .expect("answer")
                        .expect("stream ended early")
                };

                let list = ask(MessageRequest::ListServices(String::new())).await;
                let Some(MessageResponse::ListServicesResponse(list)) = list.message_response
                else {
                    panic!("not a service list: {list:?}");
                };
                let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
                assert_eq!(names, SERVICES);

                let service = files(
                    ask(MessageRequest::FileContainingSymbol(
                        "storage.StorageNodeService".into(),
                    ))
                    .await,
                );
                assert_eq!(service[0].name(), "storage.proto");
                assert_eq!(service[0].package(), "storage");
                let node_service = service[0]
                    .service
                    .iter()
                    .find(|s| s.name() == "StorageNodeService")
                    .expect("StorageNodeService in storage.proto");
                let methods: Vec<_> = node_service.method.iter().map(|m| m.name()).collect();
                for m in ["Write", "Read", "StreamKeys", "HealthCheck", "DrainNode"] {
                    assert!(methods.contains(&m), "{m} missing from {methods:?}");
                }

                let message = files(
                    ask(MessageRequest::FileContainingSymbol("storage.WriteRequest".into())).await,
                );
                assert!(message[0]
                    .message_type
                    .iter()
                    .any(|m| m.name() == "WriteRequest"));

                let method = files(
                    ask(MessageRequest::FileContainingSymbol(
                        "storage.StorageNodeService.Write".into(),
                    ))
                    .await,
                );
                assert_eq!(method[0].name(), "storage.proto");

                let unknown = ask(MessageRequest::FileContainingSymbol("storage.Nope".into())).await;
                match unknown.message_response {
                    Some(MessageResponse::ErrorResponse(e)) => {
                        assert_eq!(e.error_code, tonic::Code::NotFound as i32, "{e:?}");
                        assert!(e.error_message.contains("storage.Nope"), "{e:?}");
                    }
                    other => panic!("not an error: {other:?}"),
                }

                // The stream goes on after an error answer.
                let health =
                    files(ask(MessageRequest::FileByFilename("grpc/health/v1/health.proto".into())).await);
                assert_eq!(health[0].package(), "grpc.health.v1");
                assert_eq!(health[0].service[0].name(), "Health");

                drop(tx);
                let end = answers.message().await.expect("OK end of stream");
                assert!(end.is_none(), "{end:?}");
            }

            #[tokio::test]
            async fn requests_sent_at_once_are_answered_in_order() {
                let node = Node::start(2).await;
                let mut c = client(&node).await;
                let requests = vec![
                    req(MessageRequest::FileByFilename(
                        "grpc/reflection/v1alpha/reflection.proto".into(),
                    )),
                    req(MessageRequest::FileByFilename("nope.proto".into())),
                    req(MessageRequest::AllExtensionNumbersOfType(
                        "storage.WriteRequest".into(),
                    )),
                ];
                let mut answers = c
                    .server_reflection_info(futures_lite::stream::iter(requests.clone()))
                    .await
                    .expect("ServerReflectionInfo")
                    .into_inner();
                let mut got = Vec::new();
                while let Some(a) = answers.message().await.expect("answer") {
                    got.push(a);
                }
                assert_eq!(got.len(), 3, "{got:?}");
                for (a, r) in got.iter().zip(&requests) {
                    assert_eq!(a.original_request.as_ref(), Some(r));
                }
                let alpha = files(got[0].clone());
                assert_eq!(alpha[0].package(), "grpc.reflection.v1alpha");
                assert!(matches!(
                    &got[1].message_response,
                    Some(MessageResponse::ErrorResponse(e)) if e.error_code == tonic::Code::NotFound as i32
                ));
                match &got[2].message_response {
                    Some(MessageResponse::AllExtensionNumbersResponse(n)) => {
                        assert_eq!(n.base_type_name, "storage.WriteRequest");
                        assert!(n.extension_number.is_empty());
                    }
                    other => panic!("not extension numbers: {other:?}"),
                }
            }
        }
    };
}

reflection_tests!(v1);
reflection_tests!(v1alpha);

const REFLECTION_V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

/// Framed messages of an answer body.
fn frames(mut body: &[u8]) -> usize {
    let mut n = 0;
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body = &body[5 + len..];
        n += 1;
    }
    assert!(body.is_empty(), "a partial frame is left");
    n
}

#[tokio::test]
async fn bad_request_streams_end_with_a_clear_status() {
    let node = Node::start(1).await;
    // list_services = "" (field 7, empty): two bytes.
    let list = grpc_frame(&[0x3a, 0x00]);
    let cases: [(&str, Vec<u8>, i32); 5] = [
        ("not protobuf", grpc_frame(&[0xff, 0xff]).to_vec(), 3),
        ("oversized", vec![0, 0xff, 0xff, 0xff, 0xff, 1], 8),
        ("compressed", vec![1, 0, 0, 0, 2, 0x3a, 0x00], 12),
        ("cut short", vec![0, 0, 0, 0, 10, 1, 2], 3),
        (
            "valid then cut short",
            [&list[..], &[0, 0, 0][..]].concat(),
            3,
        ),
    ];
    for (what, body, code) in cases {
        let r = raw_call(node.addr, REFLECTION_V1, &[], body.into()).await;
        assert_eq!(r.grpc_status(), Some(code), "{what}: {r:?}");
        assert!(
            r.grpc_message().is_some_and(|m| !m.is_empty()),
            "{what}: {r:?}"
        );
    }
    let r = raw_call(
        node.addr,
        "/grpc.health.v1.Health/Watch",
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(r.grpc_status(), Some(3), "Watch without a request: {r:?}");
    // The node is still up and answering.
    let r = raw_call(node.addr, REFLECTION_V1, &[], list.clone()).await;
    assert_eq!(r.grpc_status(), Some(0), "{r:?}");
    assert_eq!(frames(&r.body), 1);
}

#[tokio::test]
async fn a_stream_answers_a_bounded_number_of_requests() {
    let node = Node::start(1).await;
    let list = grpc_frame(&[0x3a, 0x00]);
    let body: Vec<u8> = std::iter::repeat_n(&list[..], 1025)
        .flatten()
        .copied()
        .collect();
    let r = raw_call(node.addr, REFLECTION_V1, &[], body.into()).await;
    assert_eq!(r.grpc_status(), Some(8), "{:?}", r.grpc_message());
    assert_eq!(frames(&r.body), 1024);
}

#[tokio::test]
async fn an_open_stream_does_not_hold_the_node_at_shutdown() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut node = Node::start(2).await;
    let channel = node.endpoint().connect().await.expect("connect");
    let mut c = ServerReflectionClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let requests =
        futures_lite::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut answers = c
        .server_reflection_info(requests)
        .await
        .expect("ServerReflectionInfo")
        .into_inner();
    tx.send(ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    })
    .await
    .expect("send");
    assert!(answers.message().await.expect("answer").is_some());

    let signalled = std::time::Instant::now();
    node.signal(libc::SIGTERM);
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), answers.message())
        .await
        .expect("the stream ends at shutdown");
    match end {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
        Ok(other) => panic!("stream went on at shutdown: {other:?}"),
    }
    let exited = node
        .wait_exit_async(std::time::Duration::from_secs(8))
        .await;
    assert!(exited.is_some_and(|s| s.success()), "exit: {exited:?}");
    assert!(signalled.elapsed() < std::time::Duration::from_secs(8));
    drop(tx);
}
