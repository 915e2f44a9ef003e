//! An in-memory connection for the network fuzz targets, and a bounded
//! poll that replaces an executor.
//!
//! [`FuzzIo`] reads the fuzz input in chunks of a chosen size; once the
//! input is consumed it answers `Pending` (a client that sent everything
//! and waits) until the end-of-input flag is set, then end of file. Writes
//! are taken whole and dropped. Nothing here ever blocks: [`poll_bounded`]
//! polls a future a fixed number of times with a no-op waker, so a future
//! that waits for input that will never come is abandoned, not awaited.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Polls enough for a future whose input is all buffered: each poll of a
/// connection reads until the input is consumed.
pub(super) const POLLS: usize = 8;

/// The client side of a connection: the fuzz input, then silence or EOF.
pub(super) struct FuzzIo {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    eof: Rc<Cell<bool>>,
}

impl FuzzIo {
    /// Reads `input` at most `chunk` bytes at a time (at least 1); end of
    /// file once `eof` is set.
    pub(super) fn new(input: &[u8], chunk: usize, eof: Rc<Cell<bool>>) -> Self {
        Self {
            input: input.to_vec(),
            pos: 0,
            chunk: chunk.max(1),
            eof,
        }
    }
}

impl AsyncRead for FuzzIo {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let rest = this.input.get(this.pos..).unwrap_or_default();
        if rest.is_empty() {
            return if this.eof.get() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let n = rest.len().min(this.chunk).min(buf.remaining());
        buf.put_slice(rest.get(..n).unwrap_or_default());
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for FuzzIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The future's output if it completes within `polls` polls.
pub(super) fn poll_bounded<F: Future>(mut fut: Pin<&mut F>, polls: usize) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}
