//! Wire types generated from proto/storage.proto by build.rs (prost, with
//! `bytes` fields as `Bytes`), and in [`wire`] the conversions from model
//! types every layer that speaks to other nodes shares. The server links no
//! tonic.

#[allow(clippy::all, missing_docs, unreachable_pub)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/server/storage.rs"));
}
pub use generated::*;

pub(crate) mod grpc;
pub(crate) mod wire;
