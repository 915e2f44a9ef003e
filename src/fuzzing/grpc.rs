//! Fuzz target of a gRPC request as the server decodes it once its body is
//! read: the 5-byte frame, the protobuf message of the method, and the
//! method's validation (`server::handlers::checks`), plus the pure header
//! helpers (`grpc-timeout` parsing, `grpc-message` encoding).
//!
//! The first input byte picks the method (one value past the list is an
//! unknown method); the rest is the request body. Properties: an accepted
//! frame holds exactly the announced bytes within the limit; a
//! percent-encoded message is printable ASCII and decodes back to the
//! original text.

use crate::config::Config;
use crate::proto::grpc::{self, Status, PREFIX_BYTES};
use crate::server::handlers::checks::{check_request, METHODS};
use bytes::Bytes;
use std::sync::OnceLock;

/// The default configuration, built once.
pub(super) fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(Config::default)
}

/// The path of method `selector` (modulo the list plus one unknown).
pub(super) fn method_path(selector: u8) -> String {
    match METHODS.get(usize::from(selector) % (METHODS.len() + 1)) {
        Some((service, method)) => format!("/{service}/{method}"),
        None => "/storage.StorageNodeService/NoSuchMethod".into(),
    }
}

/// Decodes and checks one request body.
pub fn grpc_request(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let config = config();
    let max = config.limits.message_bytes_max;
    match grpc::decode_unary(body, max) {
        Ok(message) => {
            assert_eq!(message.len() + PREFIX_BYTES, body.len(), "frame length");
            assert!(message.len() <= max, "frame over the limit");
            let _ = check_request(
                &method_path(selector),
                Bytes::copy_from_slice(message),
                config,
            );
        }
        Err(e) => {
            let _ = Status::from(e);
        }
    }
    let text = String::from_utf8_lossy(body);
    let _ = grpc::parse_timeout(&text);
    check_percent_encoding(&text);
}

fn check_percent_encoding(text: &str) {
    let encoded = grpc::percent_encode(text);
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = encoded.bytes();
    while let Some(b) = bytes.next() {
        assert!((0x20..=0x7e).contains(&b), "grpc-message byte {b:#04x}");
        if b == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            match u8::from_str_radix(&hex, 16) {
                Ok(v) => out.push(v),
                Err(_) => panic!("bad percent escape {hex:?}"),
            }
        } else {
            out.push(b);
        }
    }
    assert_eq!(out, text.as_bytes(), "grpc-message round trip");
}
