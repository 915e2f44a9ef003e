//! Reading a response body: its messages in order, then its status.
//!
//! Owns the receive side of a call after the head: DATA chunks go into a
//! [`MessageSplitter`], flow-control capacity is released for every chunk
//! as it is taken (so a stream never stalls on a full window), and the
//! trailers give the final status. Invariants: a new chunk is read only
//! when no complete message is buffered, so memory per call stays within
//! one message (`response_bytes_max`) plus one DATA frame; after the end
//! (status or error) nothing more is read.

use super::connection::Connection;
use super::error::ClientError;
use super::splitter::MessageSplitter;
use super::status::{self, WireStatus};
use crate::proto::grpc::FrameError;
use bytes::Bytes;
use h2::RecvStream;
use std::rc::Rc;

/// What the body holds next.
#[derive(Debug)]
pub(crate) enum Next {
    /// One complete response message (prefix removed).
    Message(Bytes),
    /// The body ended; the call's status from the trailers.
    End(WireStatus),
}

/// The messages and trailers of one response.
#[derive(Debug)]
pub(crate) struct BodyReader {
    conn: Rc<Connection>,
    body: RecvStream,
    splitter: MessageSplitter,
}

impl BodyReader {
    pub(crate) fn new(conn: Rc<Connection>, body: RecvStream, message_bytes_max: usize) -> Self {
        Self {
            conn,
            body,
            splitter: MessageSplitter::new(message_bytes_max),
        }
    }

    /// The next message, or the final status once the body has ended.
    pub(crate) async fn next(&mut self) -> Result<Next, ClientError> {
        loop {
            if let Some(message) = self
                .splitter
                .next_message()
                .map_err(|e| self.frame_error(e))?
            {
                return Ok(Next::Message(message));
            }
            match self.body.data().await {
                Some(Ok(chunk)) => {
                    // The bytes now count against our own bound, not the
                    // window: let the server send on.
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.splitter.push(chunk);
                }
                Some(Err(e)) => return Err(self.conn.fail(&e)),
                None => break,
            }
        }
        self.splitter.finish().map_err(|e| self.frame_error(e))?;
        let trailers = self.body.trailers().await.map_err(|e| self.conn.fail(&e))?;
        trailers
            .as_ref()
            .and_then(status::from_headers)
            .map(Next::End)
            .ok_or_else(|| ClientError::Protocol {
                addr: self.conn.addr().to_string(),
                reason: "the response ended without a grpc-status".into(),
            })
    }

    fn frame_error(&self, e: FrameError) -> ClientError {
        let addr = self.conn.addr().to_string();
        match e {
            FrameError::TooLarge { len, max } => ClientError::TooLarge {
                addr,
                bytes: len,
                max,
            },
            FrameError::Compressed => ClientError::Protocol {
                addr,
                reason: "compressed response message, but no compression was offered".into(),
            },
            FrameError::Truncated { have, want } => ClientError::Protocol {
                addr,
                reason: format!("the response ended inside a message (had {have} of {want} bytes)"),
            },
        }
    }
}
