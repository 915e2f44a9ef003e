//! The tonic client stubs and message types that build.rs generates from
//! `proto/storage.proto` (package `storage`).

include!(concat!(env!("OUT_DIR"), "/client/storage.rs"));
