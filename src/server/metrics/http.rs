//! The metrics endpoint: `GET /metrics` over HTTP/1.1 on its own port,
//! served by one core.
//!
//! Owns the request head parsing (pure, unit-tested) and the connection
//! loop. Invariants: a request head is read into at most
//! [`HEAD_BYTES_MAX`] bytes within [`HEAD_TIMEOUT`], else the connection is
//! answered 400/408 (or closed); at most [`CONNECTIONS_MAX`] connections
//! are served at once (more are answered 503 at once); every connection is
//! closed after one answer (`Connection: close`), so nothing is kept per
//! client; the endpoint stops accepting when the node shuts down.

use super::scrape::Scraper;
use crate::server::context::CoreContext;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Largest request head read (request line and headers).
pub(crate) const HEAD_BYTES_MAX: usize = 8 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may take to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
const CONNECTIONS_MAX: usize = 16;
/// The content type of the text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ask {
    /// `GET /metrics` (`head`: a HEAD request, headers only).
    Metrics { head: bool },
    /// Any other answer: status and a plain-text reason.
    Refuse(u16, &'static str),
}

/// What the head of `buf` asks for; `None` while the head is incomplete.
pub(crate) fn parse_head(buf: &[u8]) -> Option<Ask> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..end];
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Some(Ask::Refuse(400, "the request line is not UTF-8"));
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(Ask::Refuse(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Some(Ask::Refuse(505, "only HTTP/1.x is served here"));
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return Some(Ask::Refuse(404, "not found: metrics are at /metrics"));
    }
    match method {
        "GET" => Some(Ask::Metrics { head: false }),
        "HEAD" => Some(Ask::Metrics { head: true }),
        _ => Some(Ask::Refuse(405, "only GET and HEAD are served")),
    }
}

/// A whole HTTP/1.1 answer.
pub(crate) fn answer(status: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn refusal(status: u16, reason: &str) -> Vec<u8> {
    answer(
        status,
        "text/plain; charset=utf-8",
        &format!("{reason}\n"),
        false,
    )
}

/// Serves `listener` until the node shuts down.
pub(crate) async fn serve(listener: TcpListener, core: Rc<CoreContext>) {
    let scraper = Rc::new(Scraper::new());
    let open = Rc::new(Cell::new(0usize));
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            core.wait_shutdown().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (core, scraper, open) = (Rc::clone(&core), Rc::clone(&scraper), Rc::clone(&open));
        glommio::spawn_local(async move {
            open.set(open.get() + 1);
            let busy = open.get() > CONNECTIONS_MAX;
            serve_one(stream, &core, &scraper, busy).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

async fn serve_one(mut stream: TcpStream, core: &CoreContext, scraper: &Scraper, busy: bool) {
    let peer = stream.peer_addr().ok();
    let out = if busy {
        refusal(503, "too many metrics connections at once")
    } else {
        let ask = future::or(read_head(&mut stream), async {
            glommio::timer::sleep(HEAD_TIMEOUT).await;
            Err(Some(Ask::Refuse(
                408,
                "the request head did not arrive in time",
            )))
        })
        .await;
        match ask {
            Ok(Ask::Metrics { head }) => match scraper.scrape(core).await {
                Ok(text) => answer(200, TEXT_FORMAT, &text, head),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: scrape failed");
                    refusal(503, &e)
                }
            },
            Ok(Ask::Refuse(status, reason)) | Err(Some(Ask::Refuse(status, reason))) => {
                refusal(status, reason)
            }
            Err(_) => return,
        }
    };
    let written = future::or(
        async { stream.write_all(&out).await.and(stream.flush().await) },
        async {
            glommio::timer::sleep(WRITE_TIMEOUT).await;
            Err(std::io::ErrorKind::TimedOut.into())
        },
    )
    .await;
    if let Err(e) = written {
        tracing::debug!(?peer, error = %e, "metrics: answer not delivered");
    }
    let _ = stream.close().await;
}

/// Reads until the request head is complete. `Err(None)`: the client left
/// before sending one (nothing to answer).
async fn read_head(stream: &mut TcpStream) -> Result<Ask, Option<Ask>> {
    let mut buf = vec![0u8; HEAD_BYTES_MAX];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Ok(Ask::Refuse(431, "request head too large"));
        }
        let n = stream.read(&mut buf[len..]).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        len += n;
        if let Some(ask) = parse_head(&buf[..len]) {
            return Ok(ask);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_head_of_metrics_are_served() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        assert_eq!(parse_head(get), Some(Ask::Metrics { head: false }));
        let query = b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n";
        assert_eq!(parse_head(query), Some(Ask::Metrics { head: false }));
        let head = b"HEAD /metrics HTTP/1.1\r\n\r\n";
        assert_eq!(parse_head(head), Some(Ask::Metrics { head: true }));
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert_eq!(parse_head(b""), None);
        assert_eq!(parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn anything_else_is_refused_with_its_status() {
        let cases: [(&[u8], u16); 6] = [
            (b"GET / HTTP/1.1\r\n\r\n", 404),
            (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
            (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
            (b"GET /metrics\r\n\r\n", 400),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", 400),
            (b"\xff\xfe /metrics HTTP/1.1\r\n\r\n", 400),
        ];
        for (req, status) in cases {
            match parse_head(req) {
                Some(Ask::Refuse(s, _)) => assert_eq!(s, status, "{req:?}"),
                other => panic!("{req:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn answers_carry_length_and_close() {
        let a = String::from_utf8(answer(200, TEXT_FORMAT, "x 1\n", false)).expect("utf-8");
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
        assert!(a.contains("Content-Length: 4\r\n"), "{a}");
        assert!(a.contains("Connection: close\r\n"), "{a}");
        assert!(a.ends_with("\r\n\r\nx 1\n"), "{a}");
        let h = String::from_utf8(answer(200, TEXT_FORMAT, "x 1\n", true)).expect("utf-8");
        assert!(
            h.ends_with("\r\n\r\n") && h.contains("Content-Length: 4"),
            "{h}"
        );
        let r = String::from_utf8(refusal(405, "no")).expect("utf-8");
        assert!(r.contains("Allow: GET, HEAD\r\n"), "{r}");
    }
}
