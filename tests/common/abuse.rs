//! Tools for the overload and abuse tests: the node's resident memory
//! (VmRSS from `/proc/<pid>/status`, sampled in the background for its
//! peak), raw TCP connections that stop at a chosen point of the HTTP/2
//! handshake and report how the server ends them (GOAWAY and its error code,
//! EOF, or nothing within a time), and an h2 client whose socket stops being
//! read after the handshake.
//!
//! Invariants: a sampler stops when dropped; a raw connection reports only
//! what arrived on the wire, parsed as HTTP/2 frames (length, type, flags,
//! stream id), never guessed.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The client connection preface of HTTP/2 (RFC 9113, 3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame (the client's first frame after the preface).
pub const H2_EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0];
/// HTTP/2 frame type GOAWAY.
pub const H2_GOAWAY: u8 = 0x7;

/// Resident set size of process `pid` in bytes, or `None` once it is gone.
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples a process's RSS every few milliseconds on its own thread and
/// keeps the peak until dropped.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: i32, every: Duration) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_bytes(pid) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(every);
                }
            })
        };
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// The highest RSS seen so far, in bytes.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a raw connection stops in the HTTP/2 handshake, then holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfOpen {
    /// TCP connected, nothing sent.
    Silent,
    /// The first 10 bytes of the client preface.
    PartialPreface,
    /// The whole preface and SETTINGS, then 4 bytes of a frame header.
    PartialFrame,
    /// The whole preface and SETTINGS: an idle HTTP/2 connection.
    IdleH2,
}

impl HalfOpen {
    /// Whether the client completed the HTTP/2 preface (the server can
    /// then answer with HTTP/2 frames such as GOAWAY).
    pub fn speaks_h2(self) -> bool {
        matches!(self, HalfOpen::PartialFrame | HalfOpen::IdleH2)
    }
}

/// Opens a TCP connection to `addr` and sends what `kind` says.
pub async fn open_half(addr: SocketAddr, kind: HalfOpen) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let mut out = Vec::new();
    match kind {
        HalfOpen::Silent => {}
        HalfOpen::PartialPreface => out.extend_from_slice(&H2_PREFACE[..10]),
        HalfOpen::PartialFrame => {
            out.extend_from_slice(H2_PREFACE);
            out.extend_from_slice(&H2_EMPTY_SETTINGS);
            // A HEADERS frame header announcing 5 bytes, cut after 4 bytes.
            out.extend_from_slice(&[0, 0, 5, 0x1]);
        }
        HalfOpen::IdleH2 => {
            out.extend_from_slice(H2_PREFACE);
            out.extend_from_slice(&H2_EMPTY_SETTINGS);
        }
    }
    tcp.write_all(&out).await.expect("send partial handshake");
    tcp
}

/// How the server ended (or did not end) a raw connection.
#[derive(Debug, Clone, Default)]
pub struct Ending {
    /// Error code of the first GOAWAY frame received.
    pub goaway: Option<u32>,
    /// The server closed the connection (EOF or reset).
    pub closed: bool,
    /// Frame types received, in order.
    pub frames: Vec<u8>,
}

/// Reads HTTP/2 frames from `tcp` until the server closes it or `within`
/// passes; what was seen is answered either way.
pub async fn watch_ending(tcp: &mut TcpStream, within: Duration) -> Ending {
    let deadline = Instant::now() + within;
    let mut seen = Ending::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut chunk)).await {
            Err(_) => return seen,
            Ok(Ok(0) | Err(_)) => {
                seen.closed = true;
                return seen;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        // Whole frames only; the rest waits for more bytes.
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let kind = buf[3];
            seen.frames.push(kind);
            if kind == H2_GOAWAY && len >= 8 && seen.goaway.is_none() {
                let p = &buf[9..17];
                seen.goaway = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
            }
            buf.drain(..9 + len);
        }
    }
}

/// A socket whose reads stop (stay pending for ever) once `stop` is set:
/// the client then never reads what the server sends.
pub struct StopReading<S> {
    inner: S,
    stop: Arc<AtomicBool>,
}

impl<S> StopReading<S> {
    pub fn new(inner: S, stop: Arc<AtomicBool>) -> Self {
        StopReading { inner, stop }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StopReading<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.stop.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StopReading<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
