//! Wire types generated from proto/storage.proto by build.rs (prost, with
//! `bytes` fields as `Bytes`). The server links no tonic.
#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/server/storage.rs"));
