//! Why a command failed, and the exit code each cause gives.
//!
//! Owns [`AdminError`] and the exit codes. Invariants: every message names
//! the node address and the cause; a node that could not be reached or
//! did not answer in time is [`EXIT_UNREACHABLE`], an answer that is an
//! error (a gRPC status, `success = false`) is [`EXIT_NODE_ERROR`], bad
//! input is [`EXIT_USAGE`] (as clap's own usage errors).

use crate::client::ClientError;
use std::fmt;

/// The command did what it was asked.
pub const EXIT_OK: u8 = 0;
/// The node answered an error (a gRPC status, or `success = false`).
pub const EXIT_NODE_ERROR: u8 = 1;
/// Bad command line or input (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// The node could not be reached, or did not answer in time.
pub const EXIT_UNREACHABLE: u8 = 3;

/// A failed command.
#[derive(Debug)]
pub enum AdminError {
    /// No answer from the node: connect failure, timeout, lost connection.
    Unreachable { node: String, cause: String },
    /// The node answered, with an error.
    Node { node: String, cause: String },
    /// The input is unusable (an unreadable value file, say).
    Usage { cause: String },
}

impl AdminError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Unreachable { .. } => EXIT_UNREACHABLE,
            AdminError::Node { .. } => EXIT_NODE_ERROR,
            AdminError::Usage { .. } => EXIT_USAGE,
        }
    }

    /// A failed call to `node`, by what the client found.
    pub fn from_client(node: &str, e: &ClientError) -> AdminError {
        let cause = e.to_string();
        match e {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Unavailable { .. } => AdminError::Unreachable {
                node: node.to_string(),
                cause,
            },
            ClientError::Status { .. }
            | ClientError::Protocol { .. }
            | ClientError::TooLarge { .. }
            | ClientError::Decode { .. } => AdminError::Node {
                node: node.to_string(),
                cause,
            },
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Unreachable { node, cause } => {
                // The client's own messages already name the address.
                if cause.contains(node.as_str()) {
                    write!(f, "node {node} unreachable: {cause}")
                } else {
                    write!(f, "node {node} unreachable: {cause} ({node})")
                }
            }
            AdminError::Node { node, cause } => {
                if cause.contains(node.as_str()) {
                    write!(f, "{cause}")
                } else {
                    write!(f, "{node}: {cause}")
                }
            }
            AdminError::Usage { cause } => write!(f, "{cause}"),
        }
    }
}

impl std::error::Error for AdminError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Code;

    #[test]
    fn causes_map_to_exit_codes_and_name_the_node() {
        let node = "10.0.0.1:50051";
        let refused = ClientError::Connect {
            addr: node.into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        let e = AdminError::from_client(node, &refused);
        assert_eq!(e.exit_code(), EXIT_UNREACHABLE);
        let text = e.to_string();
        assert!(text.contains(node) && text.contains("refused"), "{text}");
        let timeout = ClientError::Timeout {
            addr: node.into(),
            after_ms: 5,
        };
        assert_eq!(
            AdminError::from_client(node, &timeout).exit_code(),
            EXIT_UNREACHABLE
        );
        let status = ClientError::Status {
            addr: node.into(),
            code: Code::Unimplemented,
            message: "unknown method".into(),
        };
        let e = AdminError::from_client(node, &status);
        assert_eq!(e.exit_code(), EXIT_NODE_ERROR);
        assert!(e.to_string().contains("UNIMPLEMENTED"), "{e}");
        assert_eq!(
            AdminError::Usage { cause: "x".into() }.exit_code(),
            EXIT_USAGE
        );
    }
}
