//! What can go wrong with a call to a peer, and whether trying again may help.
//!
//! Owns [`ClientError`]. Invariants: every error names the peer address it
//! concerns; an error is retryable ([`ClientError::is_retryable`]) only when
//! the same call may succeed later unchanged (the peer was unreachable, the
//! connection broke, the deadline passed, or the server said UNAVAILABLE),
//! never for answers that will not change (a bad request, an unknown method,
//! a message over the size limit). The client never retries by itself: the
//! caller decides about retries and back-off.

use super::code::Code;
use std::fmt;
use std::time::Duration;

/// A failed call to a peer.
#[derive(Debug)]
pub enum ClientError {
    /// No connection could be made (resolution, TCP connect or HTTP/2
    /// handshake failed, or took longer than the connect timeout).
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// The call's deadline passed before it completed.
    Timeout { addr: String, after_ms: u64 },
    /// The connection broke (reset, GOAWAY, I/O error) before the call
    /// completed; the next call reconnects.
    Unavailable { addr: String, reason: String },
    /// The server answered with a non-OK gRPC status (or an HTTP status or
    /// stream reset that maps to one).
    Status {
        addr: String,
        code: Code,
        message: String,
    },
    /// The answer broke the gRPC protocol (no status, a truncated message,
    /// a compressed message, a non-gRPC content type...).
    Protocol { addr: String, reason: String },
    /// A response message was larger than `response_bytes_max`.
    TooLarge {
        addr: String,
        bytes: usize,
        max: usize,
    },
    /// A response message was not the protobuf message expected.
    Decode { addr: String, reason: String },
}

impl ClientError {
    /// Whether the same call may succeed if made again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Unavailable { .. } => true,
            ClientError::Status { code, .. } => *code == Code::Unavailable,
            ClientError::Protocol { .. }
            | ClientError::TooLarge { .. }
            | ClientError::Decode { .. } => false,
        }
    }

    /// The gRPC code this error amounts to (the server's own code for a
    /// `Status`), for callers that report or forward codes.
    pub fn code(&self) -> Code {
        match self {
            ClientError::Connect { .. } | ClientError::Unavailable { .. } => Code::Unavailable,
            ClientError::Timeout { .. } => Code::DeadlineExceeded,
            ClientError::Status { code, .. } => *code,
            ClientError::Protocol { .. } | ClientError::Decode { .. } => Code::Internal,
            ClientError::TooLarge { .. } => Code::ResourceExhausted,
        }
    }

    /// The call to `addr` did not complete within `timeout`.
    pub(crate) fn timeout(addr: &str, timeout: Duration) -> ClientError {
        ClientError::Timeout {
            addr: addr.to_string(),
            after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The peer address the error concerns, as the client was given it.
    pub fn addr(&self) -> &str {
        match self {
            ClientError::Connect { addr, .. }
            | ClientError::Timeout { addr, .. }
            | ClientError::Unavailable { addr, .. }
            | ClientError::Status { addr, .. }
            | ClientError::Protocol { addr, .. }
            | ClientError::TooLarge { addr, .. }
            | ClientError::Decode { addr, .. } => addr,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {source}")
            }
            ClientError::Timeout { addr, after_ms } => {
                write!(f, "call to {addr} timed out after {after_ms} ms")
            }
            ClientError::Unavailable { addr, reason } => {
                write!(f, "connection to {addr} lost: {reason}")
            }
            ClientError::Status {
                addr,
                code,
                message,
            } => write!(f, "{addr} answered {code}: {message}"),
            ClientError::Protocol { addr, reason } => {
                write!(f, "protocol error from {addr}: {reason}")
            }
            ClientError::TooLarge { addr, bytes, max } => write!(
                f,
                "response message from {addr} of {bytes} bytes exceeds the limit of {max} bytes"
            ),
            ClientError::Decode { addr, reason } => {
                write!(f, "cannot decode the response from {addr}: {reason}")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code) -> ClientError {
        ClientError::Status {
            addr: "peer:1".into(),
            code,
            message: "m".into(),
        }
    }

    #[test]
    fn retryable_only_when_the_same_call_may_succeed_later() {
        let addr = || "10.0.0.1:50051".to_string();
        let retryable = [
            ClientError::Connect {
                addr: addr(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            },
            ClientError::Timeout {
                addr: addr(),
                after_ms: 5,
            },
            ClientError::Unavailable {
                addr: addr(),
                reason: "reset".into(),
            },
            status(Code::Unavailable),
        ];
        for e in &retryable {
            assert!(e.is_retryable(), "{e}");
        }
        let final_ = [
            status(Code::InvalidArgument),
            status(Code::Unimplemented),
            status(Code::ResourceExhausted),
            ClientError::TooLarge {
                addr: addr(),
                bytes: 2,
                max: 1,
            },
            ClientError::Protocol {
                addr: addr(),
                reason: "x".into(),
            },
            ClientError::Decode {
                addr: addr(),
                reason: "x".into(),
            },
        ];
        for e in &final_ {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn messages_name_the_peer_and_the_cause() {
        let e = ClientError::Connect {
            addr: "10.0.0.1:50051".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("10.0.0.1:50051") && text.contains("refused"),
            "{text}"
        );
        assert!(std::error::Error::source(&e).is_some());
        let text = status(Code::Unimplemented).to_string();
        assert_eq!(text, "peer:1 answered UNIMPLEMENTED (12): m");
        let e = ClientError::TooLarge {
            addr: "p:1".into(),
            bytes: 70,
            max: 64,
        };
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert!(e.to_string().contains("70 bytes") && e.to_string().contains("p:1"));
    }
}
