//! Wire types generated from proto/storage.proto by build.rs (prost, with
//! `bytes` fields as `Bytes`), and in [`wire`] the conversions from model
//! types every layer that speaks to other nodes shares. The server links no
//! tonic.

#[allow(clippy::all, missing_docs, unreachable_pub)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/server/storage.rs"));
}
pub use generated::*;

/// The standard gRPC health protocol (`grpc.health.v1`).
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub(crate) mod health_v1 {
    include!(concat!(env!("OUT_DIR"), "/server/grpc.health.v1.rs"));
}

/// The standard gRPC server reflection protocol (`grpc.reflection.v1`).
/// Its older twin `v1alpha`, which many tools still call, has the same
/// messages with the same field numbers: these types decode and encode both.
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub(crate) mod reflection_v1 {
    include!(concat!(env!("OUT_DIR"), "/server/grpc.reflection.v1.rs"));
}

/// Every .proto file the node serves, with its imports, as an encoded
/// `FileDescriptorSet` (written by build.rs), for server reflection.
pub(crate) const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

pub(crate) mod descriptors;
pub(crate) mod frames;
pub(crate) mod grpc;
pub(crate) mod wire;
