//! The gRPC server: HTTP/2 connections, gRPC framing and the service methods.
//!
//! `grpc`, `convert` and `read_answer` are pure; `conn` drives h2 on a glommio socket;
//! `handlers` maps each method onto shard operations; `context` holds the
//! per-core admission state all connections of a core share.

pub mod conn;
pub mod context;
pub mod convert;
pub mod grpc;
pub mod handlers;
pub mod read_answer;
