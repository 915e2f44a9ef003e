//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`
//! ServerReflectionInfo): what each request of the bidirectional stream
//! answers, from the descriptor set embedded at build time.
//!
//! Owns the mapping of reflection requests onto the
//! [`DescriptorIndex`]: list_services, file_by_filename,
//! file_containing_symbol, file_containing_extension and
//! all_extension_numbers_of_type. Both versions share one wire format, so
//! one set of types answers both. Invariants: the index is built once per
//! core, on first use; an unknown name answers an `error_response`
//! (NOT_FOUND) and the stream goes on; only a request that is not a valid
//! message ends the stream (INVALID_ARGUMENT); a stream answers at most
//! [`REQUESTS_MAX_PER_STREAM`] requests.

use crate::proto::descriptors::{DescriptorError, DescriptorIndex};
use crate::proto::grpc::{Code, Status};
use crate::proto::reflection_v1::server_reflection_request::MessageRequest;
use crate::proto::reflection_v1::server_reflection_response::MessageResponse;
use crate::proto::reflection_v1::{
    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
};
use bytes::Bytes;
use prost::Message;
use std::cell::OnceCell;
use std::rc::Rc;

pub(crate) const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
pub(crate) const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";
/// Requests one reflection stream may send; a client needing more opens
/// another stream.
pub(crate) const REQUESTS_MAX_PER_STREAM: usize = 1024;

thread_local! {
    /// This core's index (each core is one thread).
    static INDEX: OnceCell<Result<Rc<DescriptorIndex>, DescriptorError>> =
        const { OnceCell::new() };
}

fn index() -> Result<Rc<DescriptorIndex>, Status> {
    INDEX.with(|cell| {
        cell.get_or_init(|| DescriptorIndex::new(crate::proto::FILE_DESCRIPTOR_SET).map(Rc::new))
            .clone()
            .map_err(|e| Status::new(Code::Internal, e.to_string()))
    })
}

/// Answers one request message of a reflection stream.
pub(crate) fn answer(body: Bytes) -> Result<ServerReflectionResponse, Status> {
    let req = ServerReflectionRequest::decode(body).map_err(|e| {
        Status::new(
            Code::InvalidArgument,
            format!("reflection request is not a valid protobuf message: {e}"),
        )
    })?;
    let index = index()?;
    let files = |found: Result<Vec<Bytes>, DescriptorError>| match found {
        Ok(files) => MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
            file_descriptor_proto: files,
        }),
        Err(e) => not_found(&e),
    };
    let response = match &req.message_request {
        Some(MessageRequest::ListServices(_)) => {
            MessageResponse::ListServicesResponse(ListServiceResponse {
                service: index
                    .services()
                    .iter()
                    .map(|name| ServiceResponse { name: name.clone() })
                    .collect(),
            })
        }
        Some(MessageRequest::FileByFilename(name)) => files(index.file_by_name(name)),
        Some(MessageRequest::FileContainingSymbol(symbol)) => {
            files(index.file_containing_symbol(symbol))
        }
        Some(MessageRequest::FileContainingExtension(ext)) => {
            files(index.file_containing_extension(&ext.containing_type, ext.extension_number))
        }
        Some(MessageRequest::AllExtensionNumbersOfType(type_name)) => {
            match index.extension_numbers(type_name) {
                Ok(numbers) => {
                    MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                        base_type_name: type_name.clone(),
                        extension_number: numbers,
                    })
                }
                Err(e) => not_found(&e),
            }
        }
        None => MessageResponse::ErrorResponse(ErrorResponse {
            error_code: Code::InvalidArgument as i32,
            error_message: "the request sets none of message_request's fields".into(),
        }),
    };
    Ok(ServerReflectionResponse {
        valid_host: req.host.clone(),
        original_request: Some(req),
        message_response: Some(response),
    })
}

fn not_found(e: &DescriptorError) -> MessageResponse {
    MessageResponse::ErrorResponse(ErrorResponse {
        error_code: Code::NotFound as i32,
        error_message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reflection_v1::ExtensionRequest;
    use prost_types::FileDescriptorProto;

    fn ask(request: MessageRequest) -> MessageResponse {
        let req = ServerReflectionRequest {
            host: "h".into(),
            message_request: Some(request),
        };
        let resp = answer(req.encode_to_vec().into()).unwrap();
        assert_eq!(resp.valid_host, "h");
        assert_eq!(resp.original_request, Some(req));
        resp.message_response.unwrap()
    }

    #[test]
    fn lists_services_and_finds_their_files() {
        let MessageResponse::ListServicesResponse(list) =
            ask(MessageRequest::ListServices(String::new()))
        else {
            panic!("not a service list");
        };
        assert_eq!(list.service.len(), 6);
        let MessageResponse::FileDescriptorResponse(files) = ask(
            MessageRequest::FileContainingSymbol("storage.StorageNodeService".into()),
        ) else {
            panic!("no file");
        };
        let file = FileDescriptorProto::decode(files.file_descriptor_proto[0].clone()).unwrap();
        assert_eq!(file.name(), "storage.proto");
        assert!(file.service[0].method.iter().any(|m| m.name() == "Write"));
    }

    #[test]
    fn unknown_names_answer_not_found_errors() {
        for request in [
            MessageRequest::FileContainingSymbol("storage.Nope".into()),
            MessageRequest::FileByFilename("nope.proto".into()),
            MessageRequest::AllExtensionNumbersOfType("storage.Nope".into()),
            MessageRequest::FileContainingExtension(ExtensionRequest {
                containing_type: "storage.WriteRequest".into(),
                extension_number: 1,
            }),
        ] {
            let MessageResponse::ErrorResponse(e) = ask(request) else {
                panic!("not an error");
            };
            assert_eq!(e.error_code, Code::NotFound as i32);
        }
    }

    #[test]
    fn bad_messages_are_refused() {
        let err = answer(Bytes::from_static(b"\xff\xff")).unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
        let empty = answer(Bytes::new()).unwrap();
        assert!(matches!(
            empty.message_response,
            Some(MessageResponse::ErrorResponse(_))
        ));
    }
}
