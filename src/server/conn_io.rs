//! A served connection's socket as h2 sees it, with one send per poll.
//!
//! h2 flushes after every DATA frame it sends from its own buffer (each
//! answer's payload), so a plain socket takes at least one `send` per
//! answer, two when writes are not vectored. [`ConnIo`] instead copies what
//! h2 writes into one outgoing buffer and treats h2's flush as a no-op; the
//! task that drives the connection sends the buffer once per poll through
//! [`Sender::flushed`], after h2 has written everything that poll made ready: every
//! answer finished since the last poll leaves in one `send`.
//!
//! Invariants: bytes leave in the order h2 wrote them; the buffer holds at
//! most [`OUT_BYTES_MAX`] (a write that would overflow it waits until it is
//! sent; one larger than it goes straight to the socket once the buffer is
//! empty); nothing h2 wrote is left unsent while the connection is driven,
//! and shutting the socket down sends the rest first; a failed send is
//! returned to h2 on its next read or write of the socket, so the
//! connection ends with it.

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

/// The most bytes waiting to be sent on one connection.
pub(crate) const OUT_BYTES_MAX: usize = 64 << 10;

struct Socket {
    stream: TcpStream,
    out: BytesMut,
    /// A send that failed, returned to h2 on its next use of the socket.
    failed: Option<(io::ErrorKind, String)>,
    /// h2 is waiting for the buffer to drain (a write or shutdown found it
    /// full). glommio keeps one writability waker and drops it when a later
    /// send succeeds, so the driver wakes the task itself when it empties
    /// the buffer first.
    h2_waiting: bool,
}

impl Socket {
    fn failure(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }

    /// Sends the buffer; ready once it is empty. Pending means the socket
    /// is full and this task wakes when it can take more.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.failure() {
            return Poll::Ready(Err(e));
        }
        while !self.out.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(self.fail(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => self.out.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.fail(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// [`Self::poll_send`] on h2's behalf: a Pending is remembered (see
    /// `h2_waiting`).
    fn poll_send_for_h2(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = self.poll_send(cx);
        self.h2_waiting = polled.is_pending();
        polled
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.failed = Some((e.kind(), e.to_string()));
        e
    }

    /// Room for `len` more bytes: sends first when they would overflow the
    /// buffer. Ready(false) means the buffer is empty and `len` alone is
    /// over the bound (the caller writes straight to the socket).
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if let Some(e) = self.failure() {
            return Poll::Ready(Err(e));
        }
        if self.out.len() + len > OUT_BYTES_MAX {
            ready!(self.poll_send_for_h2(cx))?;
        }
        Poll::Ready(Ok(len <= OUT_BYTES_MAX))
    }
}

/// The socket half h2 owns.
pub(crate) struct ConnIo {
    socket: Rc<RefCell<Socket>>,
}

/// The driving task's handle on the same socket: sends what h2 wrote.
pub(crate) struct Sender {
    socket: Rc<RefCell<Socket>>,
}

/// Splits an accepted socket into h2's side and the driver's side.
pub(crate) fn split(stream: TcpStream) -> (ConnIo, Sender) {
    let socket = Rc::new(RefCell::new(Socket {
        stream,
        out: BytesMut::new(),
        failed: None,
        h2_waiting: false,
    }));
    (
        ConnIo {
            socket: Rc::clone(&socket),
        },
        Sender { socket },
    )
}

impl Sender {
    /// Drives `fut` and, after each poll of it, sends what it wrote.
    pub(crate) async fn flushed<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            let out = fut.as_mut().poll(cx);
            self.send(cx, out.is_pending());
            out
        })
        .await
    }

    /// Sends what h2 wrote. A failed send is kept and ends the connection
    /// through h2; a full socket registers this task for when it drains.
    /// When h2 waits for room this send made, or for an error it must
    /// see, the task is woken to poll h2 again.
    fn send(&self, cx: &mut Context<'_>, pending: bool) {
        let mut socket = self.socket.borrow_mut();
        let wake = match socket.poll_send(cx) {
            Poll::Pending => false,
            Poll::Ready(Ok(())) => std::mem::take(&mut socket.h2_waiting),
            Poll::Ready(Err(_)) => true,
        };
        if wake && pending {
            cx.waker().wake_by_ref();
        }
    }

    /// Bytes written but not yet sent.
    #[cfg(test)]
    fn unsent_bytes(&self) -> usize {
        self.socket.borrow().out.len()
    }
}

impl tokio::io::AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut socket = self.socket.borrow_mut();
        if let Some(e) = socket.failure() {
            return Poll::Ready(Err(e));
        }
        let n = ready!(Pin::new(&mut socket.stream).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut socket = self.socket.borrow_mut();
        if ready!(socket.poll_room(cx, data.len()))? {
            socket.out.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        let socket = &mut *socket;
        match ready!(Pin::new(&mut socket.stream).poll_write(cx, data)) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e) => Poll::Ready(Err(socket.fail(e))),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let mut socket = self.socket.borrow_mut();
        if ready!(socket.poll_room(cx, len))? {
            for b in bufs {
                socket.out.extend_from_slice(b);
            }
            return Poll::Ready(Ok(len));
        }
        drop(socket);
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// A no-op: the driving task sends once per poll (module documentation).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.socket.borrow().failure() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut socket = self.socket.borrow_mut();
        ready!(socket.poll_send_for_h2(cx))?;
        Pin::new(&mut socket.stream).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::net::TcpListener;
    use tokio::io::AsyncWriteExt;

    /// Runs a test body inside a glommio executor of its own.
    fn on_executor<F, Fut>(body: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        glommio::LocalExecutorBuilder::default()
            .spawn(body)
            .expect("spawn")
            .join()
            .expect("join");
    }

    /// A served connection split as `serve` splits it, and its client end.
    async fn connected() -> (ConnIo, Sender, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = glommio::spawn_local(async move { TcpStream::connect(addr).await }).detach();
        let served = listener.accept().await.expect("accept");
        let client = client.await.expect("task").expect("connect");
        let (io, sender) = split(served);
        (io, sender, client)
    }

    async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
        use futures_lite::AsyncReadExt;
        let mut got = vec![0u8; len];
        stream.read_exact(&mut got).await.expect("read");
        got
    }

    #[test]
    fn writes_wait_for_the_driver_then_leave_in_order() {
        on_executor(|| async {
            let (mut io, sender, mut client) = connected().await;
            io.write_all(b"one ").await.expect("write");
            let parts = [io::IoSlice::new(b"two "), io::IoSlice::new(b"three")];
            let n = io.write_vectored(&parts).await.expect("write");
            assert_eq!(n, 9);
            io.flush().await.expect("flush");
            assert_eq!(sender.unsent_bytes(), 13, "h2's flush sends nothing");
            sender.flushed(async {}).await;
            assert_eq!(sender.unsent_bytes(), 0);
            assert_eq!(read_exactly(&mut client, 13).await, b"one two three");
        });
    }

    #[test]
    fn a_write_over_the_bound_goes_out_after_what_was_buffered() {
        on_executor(|| async {
            let (mut io, sender, mut client) = connected().await;
            io.write_all(b"head").await.expect("write");
            let big: Vec<u8> = (0..OUT_BYTES_MAX * 3).map(|i| i as u8).collect();
            let reader = glommio::spawn_local(async move {
                read_exactly(&mut client, 4 + OUT_BYTES_MAX * 3).await
            })
            .detach();
            sender
                .flushed(async { io.write_all(&big).await.expect("write") })
                .await;
            assert!(sender.unsent_bytes() <= OUT_BYTES_MAX);
            sender.flushed(async {}).await;
            io.shutdown().await.expect("shutdown");
            let got = reader.await.expect("reader");
            assert_eq!(&got[..4], b"head");
            assert_eq!(&got[4..], &big[..]);
        });
    }

    #[test]
    fn shutdown_sends_the_rest_first() {
        on_executor(|| async {
            let (mut io, _sender, mut client) = connected().await;
            io.write_all(b"last words").await.expect("write");
            io.shutdown().await.expect("shutdown");
            let mut all = Vec::new();
            use futures_lite::AsyncReadExt;
            client.read_to_end(&mut all).await.expect("read");
            assert_eq!(all, b"last words");
        });
    }

    #[test]
    fn a_failed_send_reaches_h2_on_its_next_use() {
        on_executor(|| async {
            let (mut io, sender, client) = connected().await;
            drop(client);
            // The peer is gone: sends fail once the kernel knows it.
            let mut failed = false;
            for _ in 0..100 {
                if io.write_all(&[7u8; 4096]).await.is_err() {
                    failed = true;
                    break;
                }
                sender.flushed(async {}).await;
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert!(failed, "writes to a closed peer must fail");
            let mut buf = [0u8; 8];
            use tokio::io::AsyncReadExt;
            assert!(io.read(&mut buf).await.is_err());
        });
    }
}
