//! The messages of a server-streaming call, read one at a time.
//!
//! Owns [`ResponseStream`]. Invariants: messages come out in the order the
//! server sent them; the call's deadline bounds every wait; the stream ends
//! (`None`) after an OK status, and after the first error, which is
//! reported once (a non-OK status, a broken connection, a bad message).
//! Dropping the stream early cancels the call (h2 resets the stream).

use super::body::{BodyReader, Next};
use super::code::Code;
use super::error::ClientError;
use futures_lite::future;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// Responses of a server-streaming call, in order.
#[derive(Debug)]
pub struct ResponseStream<Resp> {
    /// `None` once the call has ended.
    reader: Option<BodyReader>,
    addr: String,
    deadline: Instant,
    timeout: Duration,
    _resp: PhantomData<fn() -> Resp>,
}

impl<Resp: prost::Message + Default> ResponseStream<Resp> {
    pub(crate) fn new(
        reader: Option<BodyReader>,
        addr: String,
        deadline: Instant,
        timeout: Duration,
    ) -> Self {
        Self {
            reader,
            addr,
            deadline,
            timeout,
            _resp: PhantomData,
        }
    }

    /// The next message; `None` once the server ended the call with OK (or
    /// after an error was returned).
    pub async fn next(&mut self) -> Option<Result<Resp, ClientError>> {
        let reader = self.reader.as_mut()?;
        let left = self.deadline.saturating_duration_since(Instant::now());
        let timeout = self.timeout;
        let addr = &self.addr;
        let next = future::or(reader.next(), async {
            glommio::timer::sleep(left).await;
            Err(ClientError::timeout(addr, timeout))
        })
        .await;
        let outcome = match next {
            Ok(Next::Message(bytes)) => match Resp::decode(bytes) {
                Ok(message) => return Some(Ok(message)),
                Err(e) => Some(Err(ClientError::Decode {
                    addr: self.addr.clone(),
                    reason: e.to_string(),
                })),
            },
            Ok(Next::End(status)) if status.code == Code::Ok => None,
            Ok(Next::End(status)) => Some(Err(ClientError::Status {
                addr: self.addr.clone(),
                code: status.code,
                message: status.message,
            })),
            Err(e) => Some(Err(e)),
        };
        // Ended: dropping the body cancels whatever the server still sends.
        self.reader = None;
        outcome
    }

    /// Whether the call has ended (every later `next` is `None`).
    pub fn is_finished(&self) -> bool {
        self.reader.is_none()
    }
}
