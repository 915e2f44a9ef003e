//! Settings of a peer client.
//!
//! Owns [`ClientConfig`] and its defaults. Invariant: every bound a peer
//! could push past (connect time, response size, receive windows) has a
//! finite default here.

use std::time::Duration;

/// How a [`super::PeerClient`] connects and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Longest a connection attempt (TCP connect plus HTTP/2 handshake) may
    /// take; a call's own deadline cuts it shorter.
    pub connect_timeout: Duration,
    /// Largest response message accepted, prefix excluded; a larger one
    /// fails the call with `ClientError::TooLarge` before it is buffered.
    pub response_bytes_max: usize,
    /// HTTP/2 receive window of each stream (bytes a server may send ahead
    /// of what the client has read).
    pub stream_window_bytes: u32,
    /// HTTP/2 receive window of the whole connection.
    pub connection_window_bytes: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            response_bytes_max: 64 << 20,
            stream_window_bytes: 1 << 20,
            connection_window_bytes: 8 << 20,
        }
    }
}
